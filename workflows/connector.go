package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/transform"
)

// Names of the workflow, its task queue, signals and queries.
const (
	ConnectorName = "Connector"
	TaskQueue     = "dumpflow"
	SignalPause   = "pause"
	SignalResume  = "resume"
	// SignalAckDataLoss acknowledges that a partition's records were
	// deleted from Kafka (retention) before they were dumped; payload
	// AckDataLoss. The partition records the declared gap and goes on.
	SignalAckDataLoss = "acknowledge-data-loss"
	QueryStatus       = "status"
	QuerySpec         = activities.SpecQuery
)

// versionDiscoveryLongPoll is the GetVersion change id of the runs whose
// later discoveries long-poll (see discover).
const versionDiscoveryLongPoll = "discovery-long-poll"

// discoveryWait is how long a long-poll discovery that finds nothing new
// runs before it returns.
const discoveryWait = 10 * time.Minute

// versionV2 is the GetVersion change id of the second build's connector.
// Runs without its marker (started by the first build) run legacyConnector.
const versionV2 = "dumpflow-v2"

// DefaultHistoryLimit is the history length at which a connector run
// continues as new, carrying its cursors. Temporal warns at 10k events.
const DefaultHistoryLimit = 4000

// maxDiscoveryInterval is how often, at least, a running connector looks
// for new partitions.
const maxDiscoveryInterval = time.Minute

// defaultDiscoveryInterval is how often a connector looks for new
// partitions unless its input says otherwise, so a partition added to a
// running topic is dumped within a minute (runs started before the
// discovery-interval-30s version look every minute).
const defaultDiscoveryInterval = 30 * time.Second

// ConnectorInput is the Connector workflow's single input.
type ConnectorInput struct {
	// Spec is the connector spec, as JSON. Required. It is decoded
	// strictly: an unknown field (in any letter case) is an error, as with
	// starter create.
	Spec json.RawMessage `json:"spec"`
	// State is carried across continue-as-new; leave it out on start.
	State *ConnectorState `json:"state,omitempty"`
	// HistoryLimit is when a run continues as new. Optional. Default: 4000.
	HistoryLimit int `json:"historyLimit,omitempty"`
	// DiscoveryInterval is how often the connector looks for new
	// partitions, e.g. "10s". Optional. Default: 30s. Maximum: 1m.
	DiscoveryInterval connector.Duration `json:"discoveryInterval,omitempty"`
	// RefreshInterval is how often the offsets of waiting (paused,
	// stopped, data-lost) partitions are read again, so their lag stays
	// true, e.g. "5s". Optional. Default and maximum: 30s.
	RefreshInterval connector.Duration `json:"refreshInterval,omitempty"`
	// Shard is set on a sharded connector's shard workflows (started by
	// the connector's workflow; see Sharding): the run takes only the
	// shard's partitions.
	Shard *activities.Shard `json:"shard,omitempty"`
}

// NewInput is the input that starts spec's connector.
func NewInput(spec *connector.Spec) ConnectorInput {
	b, _ := json.Marshal(spec)
	return ConnectorInput{Spec: b}
}

// ConnectorState is the durable state of a connector between runs.
type ConnectorState struct {
	Paused     bool              `json:"paused"`
	Run        int               `json:"run"`
	Partitions []*PartitionState `json:"partitions"`
	// Discovered is set once the first discovery placed the partitions
	// that existed when the connector started; partitions found later
	// start at their earliest offset.
	Discovered bool `json:"discovered,omitempty"`
	// TopicID is the topic's id at the first discovery: a recreated topic
	// has another.
	TopicID string `json:"topicId,omitempty"`
	// Transform totals what each transform step did, over every partition
	// and run since the connector started.
	Transform []transform.StepCounts `json:"transform,omitempty"`
	// Shards, when set, makes the run a sharded connector's root: its
	// partitions run in this many shard workflows (see Sharding).
	Shards int `json:"shards,omitempty"`
	// ShardStates are a sharded root's shards' states as they last
	// reported them (ShardState), by shard index.
	ShardStates []string `json:"shardStates,omitempty"`
}

// Partition states.
const (
	StateRunning  = "running" // writing, or waiting for data
	StatePaused   = "paused"
	StateStopped  = "stopped"   // parked until a resume signal
	StateDataLost = "data-lost" // parked until acknowledge-data-loss
	StateError    = "error"     // its offsets cannot be read; retried
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

	// Stable is the last stable offset seen at the last plan.
	Stable int64 `json:"stable,omitempty"`
	// Pending is the range being written: its cut and sessions are decided
	// once and kept until it is done, through retries, expiry, stop and
	// resume, and continue-as-new.
	Pending *Pending `json:"pending,omitempty"`
	// DataLost is set while the partition is parked because [First, End)
	// was deleted from Kafka before it was dumped.
	DataLost *sink.Range `json:"dataLost,omitempty"`
	// AckBy is set by acknowledge-data-loss until the gap is declared.
	AckBy string `json:"ackBy,omitempty"`
	// Gaps are the gaps declared so far (the last few).
	Gaps []DeclaredGap `json:"gaps,omitempty"`
	// FetchErrors counts consecutive plans that failed for this partition.
	FetchErrors int `json:"fetchErrors,omitempty"`
	// Epoch counts the operator's rewinds of the partition (set-offsets
	// backwards): ranges written after one are the new epoch's
	// (sink.BatchID.Epoch).
	Epoch int `json:"epoch,omitempty"`
}

// Pending is a range being written.
type Pending struct {
	First    int64              `json:"first"`
	End      int64              `json:"end"`
	Records  int64              `json:"records,omitempty"`
	Bytes    int64              `json:"bytes,omitempty"`
	Parts    []string           `json:"parts,omitempty"`
	Sessions []sink.Session     `json:"sessions,omitempty"`
	Poison   *activities.Poison `json:"poison,omitempty"`
	// Uncut (V3) says End only bounds the range: one write cuts it into
	// batches as it reads it (activities.WriteInput.Batches).
	Uncut bool `json:"uncut,omitempty"`
	// Group is set once the range is prepared as a member of a group batch
	// (versionGroupWrites): every member's range, the leader first; the
	// members share Sessions and are written together.
	Group []sink.Member `json:"group,omitempty"`
}

// DeclaredGap is a range an operator acknowledged as lost, skipped
// (offsets set forward) or rewound (offsets set back: written again).
type DeclaredGap struct {
	First int64     `json:"first"`
	End   int64     `json:"end"`
	By    string    `json:"by"`
	At    time.Time `json:"at"`
	// Kind is gap (empty in older states), skipped or rewind.
	Kind string `json:"kind,omitempty"`
}

// AckDataLoss is acknowledge-data-loss's payload. Partition selects one
// partition; without it every data-lost partition is acknowledged.
type AckDataLoss struct {
	Partition *int32 `json:"partition,omitempty"`
	// By names who acknowledges, for the ledger. Optional.
	By string `json:"by,omitempty"`
}

// Status is the answer to the status query.
type Status struct {
	Name          string `json:"name"`
	Topic         string `json:"topic"`
	Sink          string `json:"sink"`
	Paused        bool   `json:"paused"`
	Run           int    `json:"run"`
	HistoryLength int    `json:"historyLength"`
	Error         string `json:"error,omitempty"`
	// Warning is set when the spec no longer passes this build's
	// validation: the connector keeps running as it was started.
	Warning    string            `json:"warning,omitempty"`
	Partitions []PartitionStatus `json:"partitions"`
	// Transform is what each transform step did so far: records in, out,
	// dropped and failed.
	Transform []transform.StepCounts `json:"transform,omitempty"`
	// Shards are a sharded connector's shard workflow ids; its partitions
	// are in their status (ConnectorStatus merges them).
	Shards []string `json:"shards,omitempty"`
}

// PartitionStatus is one partition's row in Status.
type PartitionStatus struct {
	PartitionState
	Lag   int64  `json:"lag"`
	State string `json:"state"`
}

type conn struct {
	spec              connector.Spec
	specRef           string
	writer            string
	warning           string
	st                *ConnectorState
	limit             int
	draining          bool
	loops             int
	discovery         bool   // the discovery goroutine runs
	err               string // connector-level error, e.g. discovery failing
	commitErr         string
	signals           *signalLog
	applied           int // signals of the log applied
	discoveryInterval time.Duration
	cancelDiscovery   workflow.CancelFunc // cancels the discovery in flight
	parallel          *bool               // the run writes a loop's partitions concurrently (nil: not yet decided)
	batched           *bool               // the run plans uncut ranges and writes several batches per write (nil: not yet decided)
	grouped           *bool               // the run writes group batches (MaxCompute; nil: not yet decided)
	wakes             *bool               // a waiting FetchRanges is cancelled for work it does not plan (nil: not yet decided)
	refreshing        bool                // the goroutine refreshing waiting partitions' offsets runs
	refreshInterval   time.Duration
	queued            map[string][]any
	busy              map[int32]int     // activities in flight that write to the sink, per partition
	settingOffsets    bool              // a set-offsets update is being applied: loops wait
	holding           bool              // an update-spec waits for the batch boundary: loops wait
	idle              int               // loops waiting at the top of an iteration
	running           map[int]bool      // the loops running, by index
	specJSON          []byte            // the spec as the next run starts with it (changed by update-spec)
	shard             *activities.Shard // set in a shard workflow: the partitions it takes
	forwards          []forward         // signals a sharded root has yet to forward
}

// Connector runs a connector: it discovers the topic's partitions (and
// looks for new ones every 30 seconds), runs spec.Concurrency partition loops
// (fetch-range → [prepare] → write-partition → commit-offset), answers the
// status and spec queries, obeys pause, resume and acknowledge-data-loss in
// the order sent, and continues as new well before history grows large. It
// never fails on a data or destination error: a partition routes a failed
// range to the error-data topic (tolerance continue) or parks as stopped
// until resumed (tolerance stop, or an error no retry can fix). A partition
// whose records were deleted before they were dumped parks as data-lost.
//
// Cancelling the workflow (starter delete) lets every write in flight
// finish and commits the cursors to the consumer group before it ends.
func Connector(ctx workflow.Context, in ConnectorInput) error {
	if workflow.GetVersion(ctx, versionV2, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		spec, err := connector.DecodeLenient(in.Spec)
		if err != nil {
			return temporal.NewNonRetryableApplicationError(err.Error(), "InvalidSpec", err)
		}
		spec.Default()
		if err := spec.Validate(); err != nil {
			return temporal.NewNonRetryableApplicationError(err.Error(), "InvalidSpec", err)
		}
		return legacyConnector(ctx, in, *spec)
	}
	spec, warning, err := decodeSpec(in)
	if err != nil {
		return err
	}
	info := workflow.GetInfo(ctx)
	want := connector.WorkflowID(spec.Name)
	if in.Shard != nil {
		want = connector.ShardWorkflowID(spec.Name, in.Shard.Index)
	}
	if info.WorkflowExecution.ID != want {
		err := fmt.Errorf("connector %s must run as workflow %s, not %s: one connector name has one workflow, so two workflows can never write the same data (start it with 'starter create' or --workflow-id %s)",
			spec.Name, want, info.WorkflowExecution.ID, want)
		return temporal.NewNonRetryableApplicationError(err.Error(), "WrongWorkflowID", err)
	}
	c := &conn{
		spec:    *spec,
		specRef: activities.Remember(spec),
		writer:  info.Namespace + "/" + info.WorkflowExecution.ID + "/" + info.FirstRunID,
		warning: warning,
		st:      in.State,
		limit:   in.HistoryLimit,
		signals: signalLogOf(ctx),
		queued:  map[string][]any{},
		busy:    map[int32]int{},
		running: map[int]bool{},
		shard:   in.Shard,
	}
	c.specJSON = in.Spec
	if c.limit <= 0 {
		c.limit = DefaultHistoryLimit
	}
	c.discoveryInterval = in.DiscoveryInterval.D()
	if c.discoveryInterval <= 0 || c.discoveryInterval > maxDiscoveryInterval {
		c.discoveryInterval = maxDiscoveryInterval
		if in.DiscoveryInterval.D() <= 0 && workflow.GetVersion(ctx, "discovery-interval-30s", workflow.DefaultVersion, 1) == 1 {
			c.discoveryInterval = defaultDiscoveryInterval
		}
	}
	c.refreshInterval = in.RefreshInterval.D()
	if c.refreshInterval <= 0 || c.refreshInterval > RefreshInterval {
		c.refreshInterval = RefreshInterval
	}
	if c.st == nil {
		c.st = &ConnectorState{}
	} else {
		c.st.Run++
		if len(c.st.Partitions) > 0 {
			c.st.Discovered = true // state of a first-build run
		}
	}
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryStatus, func() (Status, error) { return c.status(ctx), nil },
		workflow.QueryHandlerOptions{Description: "Per-partition progress: cursor, lag, counters, state and last error."}); err != nil {
		return err
	}
	if err := workflow.SetQueryHandlerWithOptions(ctx, QuerySpec, func() (connector.Spec, error) { return c.spec, nil },
		workflow.QueryHandlerOptions{Description: "The connector spec with defaults filled in."}); err != nil {
		return err
	}
	if err := c.registerUpdates(ctx); err != nil {
		return err
	}
	chans := c.signalChannels(ctx)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			sel := workflow.NewSelector(ctx)
			for _, ch := range chans {
				sel.AddReceive(ch.ch, func(workflow.ReceiveChannel, bool) {})
			}
			sel.Select(ctx)
			if ctx.Err() != nil {
				return
			}
			c.applySignals(chans)
		}
	})

	workflow.Go(ctx, c.publish)

	if in.Shard == nil && c.st.Shards == 0 && !c.st.Discovered && workflow.GetVersion(ctx, versionShards, workflow.DefaultVersion, 1) == 1 {
		n, err := c.countPartitions(ctx)
		if err != nil {
			return c.finish(ctx, err)
		}
		c.st.Shards = c.spec.Shards(n)
	}
	if c.st.Shards > 0 {
		return c.runRoot(ctx, in, chans)
	}
	if err := c.discover(ctx, true, false); err != nil {
		return c.finish(ctx, err)
	}
	for i := range c.concurrency() {
		c.startLoop(ctx, i)
	}
	c.discovery = true
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { c.discovery = false }()
		longPoll := workflow.GetVersion(ctx, versionDiscoveryLongPoll, workflow.DefaultVersion, 1) == 1
		for {
			if !longPoll {
				ok, err := workflow.AwaitWithTimeout(ctx, c.discoveryInterval, func() bool { return c.draining })
				if err != nil || ok || c.draining {
					return
				}
			} else if ctx.Err() != nil || c.draining {
				return
			}
			// A discovery in flight when the run starts draining is
			// cancelled: the next run discovers again.
			dctx, cancel := workflow.WithCancel(ctx)
			c.cancelDiscovery = cancel
			began := workflow.Now(ctx)
			err := c.discover(dctx, false, longPoll)
			c.cancelDiscovery = nil
			cancel()
			c.checkHistory(ctx)
			if longPoll && err == nil {
				// A failed look-up, or one that returned early (a worker of an
				// older build does not long-poll), is followed by the rest of
				// an interval: discovery never spins.
				if rest := c.discoveryInterval - workflow.Now(ctx).Sub(began); rest > 0 || c.err != "" {
					if c.err != "" {
						rest = c.discoveryInterval
					}
					ok, err := workflow.AwaitWithTimeout(ctx, rest, func() bool { return c.draining })
					if err != nil || ok {
						return
					}
				}
			}
		}
	})
	c.startRefresh(ctx)
	// Wait on a disconnected context: when the workflow is cancelled the
	// loops stop planning but finish the writes they have in flight.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	// An update being applied finishes before the run continues as new.
	if err := workflow.Await(dctx, func() bool {
		return c.loops == 0 && !c.discovery && !c.refreshing && workflow.AllHandlersFinished(ctx)
	}); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return c.finish(ctx, temporal.NewCanceledError())
	}
	// Apply signals that arrived while draining, in order, then carry
	// everything over.
	c.applySignals(chans)
	return workflow.NewContinueAsNewError(ctx, ConnectorName, c.continued(in))
}

// continued is the input the run continues as new with: in's settings
// and shard, the spec as updated and the state carried over.
func (c *conn) continued(in ConnectorInput) ConnectorInput {
	return ConnectorInput{Spec: c.specJSON, State: c.st, HistoryLimit: in.HistoryLimit, DiscoveryInterval: in.DiscoveryInterval, RefreshInterval: in.RefreshInterval, Shard: in.Shard}
}

// startLoop starts partition loop i unless it runs (a loop retired by a
// smaller concurrency ends at its next boundary).
func (c *conn) startLoop(ctx workflow.Context, i int) {
	if c.running[i] {
		return
	}
	c.running[i] = true
	c.loops++
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { c.loops--; delete(c.running, i) }()
		c.loop(ctx, i)
	})
}

// decodeSpec decodes the input's spec strictly. A first run with an invalid
// spec fails; a continued run whose spec a newer build finds invalid keeps
// running with it and says so in status, so upgrading workers never stops a
// running connector at its next continue-as-new.
func decodeSpec(in ConnectorInput) (*connector.Spec, string, error) {
	spec, err := connector.ParseJSON(in.Spec)
	if err == nil {
		return spec, "", nil
	}
	if in.State == nil {
		return nil, "", temporal.NewNonRetryableApplicationError(err.Error(), "InvalidSpec", err)
	}
	lenient, lerr := connector.DecodeLenient(in.Spec)
	if lerr != nil {
		return nil, "", temporal.NewNonRetryableApplicationError(lerr.Error(), "InvalidSpec", lerr)
	}
	lenient.Default()
	return lenient, "the spec no longer passes validation; the connector keeps running as started: " + err.Error(), nil
}

// finish ends a run that was cancelled (starter delete): the loops have let
// their writes finish; the cursors are committed to the group, then the
// workflow ends as cancelled.
func (c *conn) finish(ctx workflow.Context, err error) error {
	if !temporal.IsCanceledError(err) && !errors.Is(err, workflow.ErrCanceled) {
		return err
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	var offs []activities.Cursor
	for _, p := range c.st.Partitions {
		offs = append(offs, activities.Cursor{Partition: p.Partition, Next: p.Next, Start: p.Start})
	}
	if len(offs) > 0 {
		_ = c.commit(dctx, offs)
	}
	return err
}

// namedChannel is a signal channel and its name.
type namedChannel struct {
	name string
	ch   workflow.ReceiveChannel
}

func (c *conn) signalChannels(ctx workflow.Context) []namedChannel {
	var out []namedChannel
	for _, n := range []string{SignalPause, SignalResume, SignalAckDataLoss} {
		out = append(out, namedChannel{n, workflow.GetSignalChannelWithOptions(ctx, n, workflow.SignalChannelOptions{Description: signalDescriptions[n]})})
	}
	return out
}

var signalDescriptions = map[string]string{
	SignalPause:       "Pause every partition after its current batch. No payload.",
	SignalResume:      "Resume paused and stopped partitions; a partition stopped on a poison record sends it to the dead-letter topic and goes on. No payload.",
	SignalAckDataLoss: `Acknowledge that a data-lost partition's records were deleted before they were dumped: the gap is recorded in the sink's ledger and the partition continues at the log start. Payload {"partition": N, "by": "name"}; without partition, every data-lost partition.`,
}

// applySignals takes every pending signal off its channel and applies them
// in the order they were sent (SignalOrder), or in a fixed order when the
// worker does not record it.
func (c *conn) applySignals(chans []namedChannel) {
	for _, ch := range chans {
		for {
			var v any
			var ack AckDataLoss
			ok := false
			if ch.name == SignalAckDataLoss {
				ok = ch.ch.ReceiveAsync(&ack)
				v = ack
			} else {
				ok = ch.ch.ReceiveAsync(nil)
			}
			if !ok {
				break
			}
			c.queued[ch.name] = append(c.queued[ch.name], v)
		}
	}
	apply := func(name string) {
		q := c.queued[name]
		if len(q) == 0 {
			return
		}
		v := q[0]
		c.queued[name] = q[1:]
		if c.st.Shards > 0 {
			// A sharded root passes signals on to its shards.
			c.forwards = append(c.forwards, forward{name, v})
			switch name {
			case SignalPause:
				c.st.Paused = true
			case SignalResume:
				c.st.Paused = false
			}
			return
		}
		switch name {
		case SignalPause:
			c.st.Paused = true
		case SignalResume:
			c.resume()
		case SignalAckDataLoss:
			c.ackDataLoss(v.(AckDataLoss))
		}
	}
	if c.signals != nil {
		for ; c.applied < len(c.signals.names); c.applied++ {
			apply(c.signals.names[c.applied])
		}
	}
	for _, ch := range chans {
		for len(c.queued[ch.name]) > 0 {
			apply(ch.name)
		}
	}
}

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

func (c *conn) ackDataLoss(a AckDataLoss) {
	by := a.By
	if by == "" {
		by = "signal " + SignalAckDataLoss
	}
	for _, p := range c.st.Partitions {
		if p.DataLost != nil && (a.Partition == nil || *a.Partition == p.Partition) {
			p.AckBy = by
		}
	}
}

// discover adds partitions not yet known. The first discovery of a run
// retries (visibly, in status) until the topic and sink are reachable;
// later ones try once and leave the error in status.
//
// A long-poll discovery (versionDiscoveryLongPoll) looks every discovery
// interval inside one Discover activity and returns when it finds a new
// partition or after discoveryWait: a topic whose partitions do not change
// costs one Discover every discoveryWait in history, not one per interval.
func (c *conn) discover(ctx workflow.Context, first, longPoll bool) error {
	known := make([]int32, len(c.st.Partitions))
	for i, p := range c.st.Partitions {
		known[i] = p.Partition
	}
	var wait time.Duration
	if longPoll {
		wait = discoveryWait
	}
	actx := discoverOptions(ctx, wait)
	for {
		var res activities.DiscoverResult
		err := workflow.ExecuteActivity(actx, (*activities.Activities).Discover, activities.DiscoverInput{
			SpecInput: activities.SpecInput{SpecRef: c.specRef}, Known: known, Version: activities.V2, Initial: !c.st.Discovered, Writer: c.writer,
			Wait: wait, Every: c.discoveryInterval, Shard: c.shard,
		}).Get(ctx, &res)
		if err == nil {
			c.err = ""
			c.st.Discovered = true
			if c.st.TopicID == "" {
				c.st.TopicID = res.TopicID
			}
			for _, ps := range res.Partitions {
				if slices.Contains(known, ps.Partition) {
					continue
				}
				p := &PartitionState{Partition: ps.Partition, Start: ps.Start, Next: ps.Next, From: ps.From, SkipAt: -1, Epoch: ps.Epoch}
				if ps.Pending != nil {
					p.Pending = &Pending{First: ps.Pending.First, End: ps.Pending.End, Sessions: ps.Pending.Sessions, Bytes: ps.Pending.Bytes, Group: ps.Pending.Group}
					for _, s := range ps.Pending.Sessions {
						p.Pending.Parts = append(p.Pending.Parts, s.Partition)
					}
				}
				c.st.Partitions = append(c.st.Partitions, p)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.err = "discover: " + errMessage(err)
		if !first || len(c.st.Partitions) > 0 {
			// Known partitions keep running; new ones are looked for again.
			workflow.GetLogger(ctx).Warn("partition discovery failed", "error", err)
			return nil
		}
		workflow.GetLogger(ctx).Error("connector cannot start; retrying in 30s", "error", err)
		if err := workflow.Sleep(ctx, 30*time.Second); err != nil {
			return err
		}
	}
}

// discoverOptions are a Discover's activity options; wait is how long it
// may long-poll.
func discoverOptions(ctx workflow.Context, wait time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: wait + 2*time.Minute,
		// A worker that dies mid-discovery is noticed in seconds: the run
		// may be waiting for this discovery to continue as new.
		HeartbeatTimeout: 20 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 10 * time.Second, MaximumAttempts: 3,
			NonRetryableErrorTypes: []string{"InvalidSpec", "SpecUnavailable"}},
	})
}

// group is loop i's partitions: every spec.Concurrency-th, so partitions
// found later join a loop without moving the others.
func (c *conn) group(i int) []*PartitionState {
	var g []*PartitionState
	for j, p := range c.st.Partitions {
		if j%c.concurrency() == i {
			g = append(g, p)
		}
	}
	return g
}

// checkHistory starts draining once the run's history is long enough.
func (c *conn) checkHistory(ctx workflow.Context) {
	info := workflow.GetInfo(ctx)
	if info.GetCurrentHistoryLength() >= c.limit || info.GetContinueAsNewSuggested() {
		c.draining = true
		if c.cancelDiscovery != nil && workflow.GetVersion(ctx, "cancel-discovery-on-drain", workflow.DefaultVersion, 1) == 1 {
			c.cancelDiscovery()
		}
	}
}

func (c *conn) status(ctx workflow.Context) Status {
	s := Status{Name: c.spec.Name, Topic: c.spec.Kafka.Topic, Sink: c.spec.Sink.Type, Paused: c.st.Paused,
		Run: c.st.Run, HistoryLength: workflow.GetInfo(ctx).GetCurrentHistoryLength(), Error: c.err, Warning: c.warning, Transform: c.st.Transform}
	if c.commitErr != "" {
		if s.Error != "" {
			s.Error += "; "
		}
		s.Error += c.commitErr
	}
	if c.st.Shards > 0 {
		s.Shards = c.shardIDs()
	}
	for _, p := range c.st.Partitions {
		ps := PartitionStatus{PartitionState: *p, State: partitionState(c.st, p), Lag: max(0, p.HighWatermark-p.Next)}
		s.Partitions = append(s.Partitions, ps)
	}
	return s
}

// namedType reports whether an application error's type is one of the
// named types activities give (NoSuchTable, DataLost, ...) rather than the
// Go type name Temporal gives a plain error (wrapError, errorString).
func namedType(t string) bool {
	if t == "" || strings.HasSuffix(t, "Error") || strings.ContainsAny(t, "*.") {
		return false
	}
	r, _ := utf8.DecodeRuneInString(t)
	return unicode.IsUpper(r)
}

// errMessage is an activity error's type and message, without the
// ActivityError wrapping that repeats ids.
func errMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		if namedType(appErr.Type()) {
			return appErr.Type() + ": " + appErr.Message()
		}
		return appErr.Message()
	}
	var canceled *temporal.CanceledError
	if errors.As(err, &canceled) {
		return "canceled"
	}
	var timeout *temporal.TimeoutError
	if errors.As(err, &timeout) {
		return "timed out (" + timeout.TimeoutType().String() + ")"
	}
	return err.Error()
}

// addCounts adds a batch's transform step counts to the totals; a chain
// that changed (a different number or order of steps) starts them anew.
func (c *conn) addCounts(counts []transform.StepCounts) {
	if len(counts) == 0 {
		return
	}
	same := len(c.st.Transform) == len(counts)
	for i := 0; same && i < len(counts); i++ {
		same = c.st.Transform[i].Step == counts[i].Step
	}
	if !same {
		c.st.Transform = make([]transform.StepCounts, len(counts))
		for i, n := range counts {
			c.st.Transform[i] = transform.StepCounts{Step: n.Step, Type: n.Type}
		}
	}
	for i, n := range counts {
		t := &c.st.Transform[i]
		t.In += n.In
		t.Out += n.Out
		t.Dropped += n.Dropped
		t.Failed += n.Failed
	}
}
