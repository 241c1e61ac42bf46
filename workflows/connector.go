package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/connector"
)

// Names of the workflow, its task queue, signals and query.
const (
	ConnectorName = "Connector"
	TaskQueue     = "dumpflow"
	SignalPause   = "pause"
	SignalResume  = "resume"
	QueryStatus   = "status"
	QuerySpec     = "spec"
)

// DefaultHistoryLimit is the history length at which a connector run
// continues as new, carrying its cursors. Temporal warns at 10k events.
const DefaultHistoryLimit = 4000

// ConnectorInput is the Connector workflow's single input.
type ConnectorInput struct {
	// Spec is the connector spec. Required.
	Spec connector.Spec `json:"spec"`
	// State is carried across continue-as-new; leave it out on start.
	State *ConnectorState `json:"state,omitempty"`
	// HistoryLimit is when a run continues as new. Optional. Default: 4000.
	HistoryLimit int `json:"historyLimit,omitempty"`
}

// ConnectorState is the durable state of a connector between runs.
type ConnectorState struct {
	Paused     bool              `json:"paused"`
	Run        int               `json:"run"`
	Partitions []*PartitionState `json:"partitions"`
}

// Partition states.
const (
	StateRunning = "running" // writing, or waiting for data
	StatePaused  = "paused"
	StateStopped = "stopped" // parked until a resume signal
)

// PartitionState is one partition's cursor and counters.
type PartitionState struct {
	Partition     int32  `json:"partition"`
	Start         int64  `json:"start"`
	Next          int64  `json:"next"`
	HighWatermark int64  `json:"highWatermark"`
	LogStart      int64  `json:"logStart"`
	From          string `json:"from"`
	Records       int64  `json:"records"`
	Bytes         int64  `json:"bytes"`
	Objects       int64  `json:"objects"`
	DeadLetters   int64  `json:"deadLetters"`
	ErrorRecords  int64  `json:"errorRecords"`
	Stopped       bool   `json:"stopped"`
	LastError     string `json:"lastError,omitempty"`
	// Poison is the record a stopped partition is parked on.
	Poison *activities.Poison `json:"poison,omitempty"`
	// SkipAt is a poison offset the operator resumed past, or -1.
	SkipAt int64 `json:"skipAt"`
	// LastObject is the most recent object key or session id written.
	LastObject string `json:"lastObject,omitempty"`
	// Backlog is set while the cursor is behind the high watermark seen at
	// the last plan: the next fetch does not wait for the flush interval.
	Backlog bool `json:"backlog,omitempty"`
}

// Status is the answer to the status query.
type Status struct {
	Name          string            `json:"name"`
	Topic         string            `json:"topic"`
	Sink          string            `json:"sink"`
	Paused        bool              `json:"paused"`
	Run           int               `json:"run"`
	HistoryLength int               `json:"historyLength"`
	Error         string            `json:"error,omitempty"`
	Partitions    []PartitionStatus `json:"partitions"`
}

// PartitionStatus is one partition's row in Status.
type PartitionStatus struct {
	PartitionState
	Lag   int64  `json:"lag"`
	State string `json:"state"`
}

type conn struct {
	spec     connector.Spec
	st       *ConnectorState
	limit    int
	draining bool
	loops    int
	err      string // connector-level error, e.g. discovery failing
}

// Connector runs a connector: it discovers the topic's partitions, runs
// spec.Concurrency partition loops (fetch-range → write-partition →
// commit-offset), answers the status query, obeys pause/resume, and
// continues as new well before history grows large. It never fails on a
// data or destination error: a partition either routes the failed range to
// the error-data topic (tolerance continue) or parks as stopped until
// resumed (tolerance stop).
func Connector(ctx workflow.Context, in ConnectorInput) error {
	spec := in.Spec
	spec.Default()
	if err := spec.Validate(); err != nil {
		return temporal.NewNonRetryableApplicationError(err.Error(), "InvalidSpec", err)
	}
	c := &conn{spec: spec, st: in.State, limit: in.HistoryLimit}
	if c.limit <= 0 {
		c.limit = DefaultHistoryLimit
	}
	if c.st == nil {
		c.st = &ConnectorState{}
	} else {
		c.st.Run++
	}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (Status, error) { return c.status(ctx), nil }); err != nil {
		return err
	}
	if err := workflow.SetQueryHandler(ctx, QuerySpec, func() (connector.Spec, error) { return c.spec, nil }); err != nil {
		return err
	}
	pauseCh := workflow.GetSignalChannel(ctx, SignalPause)
	resumeCh := workflow.GetSignalChannel(ctx, SignalResume)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			sel := workflow.NewSelector(ctx)
			sel.AddReceive(pauseCh, func(ch workflow.ReceiveChannel, _ bool) { ch.Receive(ctx, nil); c.pause() })
			sel.AddReceive(resumeCh, func(ch workflow.ReceiveChannel, _ bool) { ch.Receive(ctx, nil); c.resume() })
			sel.Select(ctx)
		}
	})

	c.discover(ctx)

	groups := c.groups()
	if len(groups) == 0 {
		// A topic without partitions: look again later.
		if err := workflow.Sleep(ctx, time.Minute); err != nil {
			return err
		}
	}
	c.loops = len(groups)
	for _, g := range groups {
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer func() { c.loops-- }()
			c.loop(ctx, g)
		})
	}
	if err := workflow.Await(ctx, func() bool { return c.loops == 0 }); err != nil {
		return err
	}
	// Apply signals that arrived while draining, then carry everything over.
	for pauseCh.ReceiveAsync(nil) {
		c.pause()
	}
	for resumeCh.ReceiveAsync(nil) {
		c.resume()
	}
	return workflow.NewContinueAsNewError(ctx, Connector, ConnectorInput{Spec: in.Spec, State: c.st, HistoryLimit: in.HistoryLimit})
}

func (c *conn) pause() { c.st.Paused = true }

func (c *conn) resume() {
	c.st.Paused = false
	for _, p := range c.st.Partitions {
		if p.Stopped {
			p.Stopped = false
			p.LastError = ""
			if p.Poison != nil {
				p.SkipAt = p.Poison.Offset
				p.Poison = nil
			}
		}
	}
}

// discover adds partitions not yet known, retrying (visibly, in status)
// until the topic and sink are reachable.
func (c *conn) discover(ctx workflow.Context) {
	known := make([]int32, len(c.st.Partitions))
	for i, p := range c.st.Partitions {
		known[i] = p.Partition
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 10 * time.Second, MaximumAttempts: 3},
	})
	for {
		var res activities.DiscoverResult
		err := workflow.ExecuteActivity(actx, (*activities.Activities).Discover, activities.DiscoverInput{Spec: c.spec, Known: known}).Get(ctx, &res)
		if err == nil {
			c.err = ""
			for _, ps := range res.Partitions {
				c.st.Partitions = append(c.st.Partitions, &PartitionState{Partition: ps.Partition, Start: ps.Start, Next: ps.Next, From: ps.From, SkipAt: -1})
			}
			return
		}
		if len(c.st.Partitions) > 0 {
			// Known partitions keep running; new ones are looked for next run.
			workflow.GetLogger(ctx).Warn("partition discovery failed", "error", err)
			return
		}
		c.err = "discover: " + errMessage(err)
		workflow.GetLogger(ctx).Error("connector cannot start; retrying in 30s", "error", err)
		_ = workflow.Sleep(ctx, 30*time.Second)
	}
}

// groups spreads partitions over spec.Concurrency loops round-robin.
func (c *conn) groups() [][]*PartitionState {
	n := min(c.spec.Concurrency, len(c.st.Partitions))
	gs := make([][]*PartitionState, n)
	for i, p := range c.st.Partitions {
		gs[i%n] = append(gs[i%n], p)
	}
	return gs
}

// checkHistory starts draining once the run's history is long enough.
func (c *conn) checkHistory(ctx workflow.Context) {
	info := workflow.GetInfo(ctx)
	if info.GetCurrentHistoryLength() >= c.limit || info.GetContinueAsNewSuggested() {
		c.draining = true
	}
}

func (c *conn) status(ctx workflow.Context) Status {
	s := Status{Name: c.spec.Name, Topic: c.spec.Kafka.Topic, Sink: c.spec.Sink.Type, Paused: c.st.Paused,
		Run: c.st.Run, HistoryLength: workflow.GetInfo(ctx).GetCurrentHistoryLength(), Error: c.err}
	for _, p := range c.st.Partitions {
		ps := PartitionStatus{PartitionState: *p, State: StateRunning, Lag: max(0, p.HighWatermark-p.Next)}
		switch {
		case p.Stopped:
			ps.State = StateStopped
		case c.st.Paused:
			ps.State = StatePaused
		}
		s.Partitions = append(s.Partitions, ps)
	}
	return s
}

// errMessage is an activity error's type and message, without the
// ActivityError wrapping that repeats ids.
func errMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Type() + ": " + appErr.Message()
	}
	return err.Error()
}
