package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/metrics"
)

// versionRefreshParked is the GetVersion change id of the runs that keep
// refreshing the offsets of partitions no loop plans (paused, stopped,
// data-lost). Runs without it replay as before.
const versionRefreshParked = "refresh-parked-bounds"

// RefreshInterval is how often, at most, a connector refreshes the offsets
// of its waiting partitions, so their lag in status and metrics stays true
// (ConnectorInput.RefreshInterval).
const RefreshInterval = 30 * time.Second

// startRefresh starts, in runs that recorded the version, the goroutine
// that refreshes waiting partitions' offsets (see refreshParked).
func (c *conn) startRefresh(ctx workflow.Context) {
	if workflow.GetVersion(ctx, versionRefreshParked, workflow.DefaultVersion, 1) != 1 {
		return
	}
	c.refreshing = true
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { c.refreshing = false }()
		c.refreshParked(ctx)
	})
}

// refreshParked runs RefreshBounds every refresh interval while some
// partition waits (the connector is paused, or a partition is stopped or
// data-lost): a loop plans only running partitions, and without this a
// waiting partition's high watermark, and so its lag, would freeze at its
// last plan. The activity also reports the partitions' lag and stopped
// reason to the worker's metrics. A healthy connector runs no timer and
// no activity for it.
func (c *conn) refreshParked(ctx workflow.Context) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 10 * time.Second, MaximumAttempts: 2,
			NonRetryableErrorTypes: []string{"InvalidSpec", "SpecUnavailable", "NoSuchTopic"}},
	})
	for {
		if err := workflow.Await(ctx, func() bool { return c.draining || len(c.parked()) > 0 }); err != nil || c.draining {
			return
		}
		var res activities.RefreshBoundsResult
		err := workflow.ExecuteActivity(actx, (*activities.Activities).RefreshBounds, activities.RefreshBoundsInput{
			SpecInput: activities.SpecInput{SpecRef: c.specRef}, Partitions: c.parked(),
		}).Get(ctx, &res)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			for _, b := range res.Partitions {
				if p := find(c.st.Partitions, b.Partition); p != nil && b.Error == "" {
					p.HighWatermark, p.LogStart, p.Stable = b.HighWatermark, b.LogStart, b.Stable
				}
			}
		}
		c.checkHistory(ctx)
		if ok, err := workflow.AwaitWithTimeout(ctx, c.refreshInterval, func() bool { return c.draining }); err != nil || ok {
			return
		}
	}
}

// parked lists the partitions that wait, with the reason (metrics.Reasons).
func (c *conn) parked() []activities.ParkedPartition {
	var out []activities.ParkedPartition
	for _, p := range c.st.Partitions {
		if r := c.waitReason(p); r != "" {
			out = append(out, activities.ParkedPartition{Partition: p.Partition, Next: p.Next, Reason: r})
		}
	}
	return out
}

// waitReason is why a partition waits, or "" while it runs.
func (c *conn) waitReason(p *PartitionState) string {
	switch {
	case p.DataLost != nil:
		return metrics.ReasonDataLost
	case p.Stopped && p.Poison != nil:
		return metrics.ReasonPoison
	case p.Stopped:
		return metrics.ReasonError
	case c.st.Paused:
		return metrics.ReasonPaused
	}
	return ""
}
