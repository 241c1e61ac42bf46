package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
)

// heartbeatInterval is how often long activities heartbeat in the
// background; workflows set HeartbeatTimeout to a few multiples of it, so a
// killed worker's activity is retried within seconds.
const heartbeatInterval = 5 * time.Second

// keepAlive heartbeats every heartbeatInterval until the returned stop
// function is called, so an activity stuck in a long upload or read still
// proves it is alive and a dead worker is detected quickly.
func keepAlive(ctx context.Context) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(heartbeatInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() { close(done); <-finished }
}
