package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/sink"
)

// UpdateSetOffsets is the Update that moves a paused connector's
// partitions (Kafka Connect's KIP-875, in Temporal): payload SetOffsets,
// result SetOffsetsResult. Its validator rejects it, before it enters
// history, on a running connector or a malformed request; a target outside
// a partition's [log start, high watermark] fails it, naming the partition
// and the value, and moves nothing.
const UpdateSetOffsets = "set-offsets"

// versionSetOffsets gates the set-offsets handler's commands.
const versionSetOffsets = "set-offsets"

// Offset targets of SetOffsets.To.
const (
	OffsetsEarliest  = activities.ToEarliest
	OffsetsLatest    = activities.ToLatest
	OffsetsTimestamp = activities.ToTimestamp
	OffsetsOffset    = activities.ToOffset
	// OffsetsReset is the spec's kafka.initialPosition (earliest unless
	// set): where the connector would start anew.
	OffsetsReset = "reset"
)

// SetOffsets is the set-offsets update's payload, e.g.
//
//	{"to": "offset", "offset": 1200, "partitions": [0], "by": "alice"}
//	{"to": "timestamp", "timestamp": "2026-12-01T08:00:00Z"}
//	{"to": "earliest"}
type SetOffsets struct {
	// Partitions are the partitions to move. Optional. Default: every
	// partition.
	Partitions []int32 `json:"partitions,omitempty"`
	// To is earliest, latest, timestamp, offset or reset. Required.
	To string `json:"to"`
	// Offset is the exact offset, with to=offset.
	Offset *int64 `json:"offset,omitempty"`
	// Timestamp (RFC 3339), with to=timestamp: each partition moves to its
	// first record at or after it (its high watermark when none is).
	Timestamp string `json:"timestamp,omitempty"`
	// By names who sets the offsets, for the sink's ledger. Optional.
	By string `json:"by,omitempty"`
}

// SetOffsetsResult is the set-offsets update's result: one move per
// partition.
type SetOffsetsResult struct {
	Moves []activities.OffsetMove `json:"moves"`
}

var setOffsetsDescription = `Move a paused connector's partitions (KIP-875). Payload {"to": "earliest|latest|timestamp|offset|reset", "offset": N, "timestamp": "RFC 3339", "partitions": [N, ...], "by": "name"}. A forward jump is declared in the sink as skipped, a backward one as a rewind whose range is written again. Rejected on a running connector and for an offset outside [log start, high watermark].`

func (c *conn) registerUpdates(ctx workflow.Context) error {
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateSetOffsets, c.setOffsets, workflow.UpdateHandlerOptions{
		Validator:   c.validateSetOffsets,
		Description: setOffsetsDescription,
	}); err != nil {
		return err
	}
	return workflow.SetUpdateHandlerWithOptions(ctx, UpdateSpec, c.updateSpec, workflow.UpdateHandlerOptions{
		Validator:   c.validateUpdateSpec,
		Description: `Change a running connector's batch limits, concurrency, errors.tolerance and transforms at the next batch boundary. Payload {"spec": {...the whole new spec...}, "by": "name"}; any other field that differs from the running spec is rejected, naming it.`,
	})
}

// validateSetOffsets rejects a request the connector cannot take now, or
// one that is malformed, naming the field, the value and the rule. It only
// reads state.
func (c *conn) validateSetOffsets(req SetOffsets) error {
	if c.st.Shards > 0 {
		// A sharded root's shards check the request against their
		// partitions.
		if c.settingOffsets {
			return fmt.Errorf("connector %s: another set-offsets update is being applied; retry when it is done", c.spec.Name)
		}
		return nil
	}
	if !c.st.Paused {
		// Partitions parked as data-lost or stopped run nothing: setting
		// their offsets is the way on, without pausing the others.
		for _, p := range c.selected(req) {
			if !p.Stopped && p.DataLost == nil {
				return fmt.Errorf("connector %s is running (partition %d is %s): offsets are set only on a paused connector, or on partitions parked as data-lost or stopped (starter pause %s, then wait for status paused)", c.spec.Name, p.Partition, StateRunning, c.spec.Name)
			}
		}
	}
	if c.settingOffsets {
		return fmt.Errorf("connector %s: another set-offsets update is being applied; retry when it is done", c.spec.Name)
	}
	var problems []string
	switch req.To {
	case OffsetsEarliest, OffsetsLatest, OffsetsReset:
	case OffsetsOffset:
		if req.Offset == nil {
			problems = append(problems, `offset: is required with to "offset"`)
		} else if *req.Offset < 0 {
			problems = append(problems, fmt.Sprintf("offset: %d must be 0 or more", *req.Offset))
		}
	case OffsetsTimestamp:
		if _, err := time.Parse(time.RFC3339Nano, req.Timestamp); err != nil {
			problems = append(problems, fmt.Sprintf(`timestamp: %q must be an RFC 3339 time, e.g. "2026-12-01T08:00:00Z"`, req.Timestamp))
		}
	default:
		problems = append(problems, fmt.Sprintf("to: %q must be one of earliest, latest, timestamp, offset, reset", req.To))
	}
	if req.To != OffsetsOffset && req.Offset != nil {
		problems = append(problems, fmt.Sprintf("offset: %d is only for to \"offset\", not %q", *req.Offset, req.To))
	}
	var known []int32
	for _, p := range c.st.Partitions {
		known = append(known, p.Partition)
	}
	for _, n := range req.Partitions {
		if !slices.Contains(known, n) {
			problems = append(problems, fmt.Sprintf("partitions: %d is not a partition of the connector (it has %v)", n, known))
		}
	}
	for _, p := range c.selected(req) {
		if c.busy[p.Partition] > 0 {
			problems = append(problems, fmt.Sprintf("partition %d: is still writing its last batch; retry when status shows it paused", p.Partition))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("set-offsets rejected: %s", strings.Join(problems, "; "))
	}
	return nil
}

func (c *conn) selected(req SetOffsets) []*PartitionState {
	var out []*PartitionState
	for _, p := range c.st.Partitions {
		if len(req.Partitions) == 0 || slices.Contains(req.Partitions, p.Partition) {
			out = append(out, p)
		}
	}
	return out
}

// setOffsets applies a validated set-offsets request: the SetOffsets
// activity resolves and checks the targets and records the moves in the
// sink; then each partition continues at its target, its range in hand,
// data-lost or stopped state dropped. The cursors are mirrored into the
// consumer group.
func (c *conn) setOffsets(ctx workflow.Context, req SetOffsets) (SetOffsetsResult, error) {
	if workflow.GetVersion(ctx, versionSetOffsets, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return SetOffsetsResult{}, temporal.NewNonRetryableApplicationError("set-offsets is not supported by this run", "Unsupported", nil)
	}
	if c.st.Shards > 0 {
		return c.rootSetOffsets(ctx, req)
	}
	c.settingOffsets = true
	defer func() { c.settingOffsets = false }()
	to := req.To
	if to == OffsetsReset {
		to = c.spec.Kafka.InitialPosition
		if to == "" {
			to = OffsetsEarliest
		}
	}
	ps := c.selected(req)
	// A batch that was planned before the pause finishes first.
	if err := workflow.Await(ctx, func() bool {
		for _, p := range ps {
			if c.busy[p.Partition] > 0 {
				return false
			}
		}
		return true
	}); err != nil {
		return SetOffsetsResult{}, err
	}
	by := req.By
	if by == "" {
		by = "update " + UpdateSetOffsets
	}
	in := activities.SetOffsetsInput{SpecInput: activities.SpecInput{SpecRef: c.specRef}, To: to, By: by, At: workflow.Now(ctx).UTC(), Writer: c.writer}
	if req.Offset != nil {
		in.Offset = *req.Offset
	}
	if to == OffsetsTimestamp {
		in.Timestamp, _ = time.Parse(time.RFC3339Nano, req.Timestamp)
	}
	for _, p := range ps {
		in.Partitions = append(in.Partitions, activities.OffsetCursor{Partition: p.Partition, Next: p.Next, Start: p.Start, Epoch: p.Epoch})
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		HeartbeatTimeout:    20 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 10 * time.Second, MaximumAttempts: 5,
			NonRetryableErrorTypes: []string{"InvalidSpec", "SpecUnavailable", "BadOffset"}},
	})
	var res activities.SetOffsetsResult
	if err := workflow.ExecuteActivity(actx, (*activities.Activities).SetOffsets, in).Get(ctx, &res); err != nil {
		return SetOffsetsResult{}, temporal.NewNonRetryableApplicationError(errMessage(err), errType(err), nil)
	}
	now := workflow.Now(ctx)
	var moved []activities.Cursor
	for _, m := range res.Moves {
		p := find(c.st.Partitions, m.Partition)
		if p == nil {
			continue
		}
		p.Next, p.Start, p.Epoch = m.To, m.Start, m.Epoch
		if p.Pending != nil && len(p.Pending.Group) > 0 {
			// The group cannot be written whole any more: its other
			// members are written again in new groups.
			c.dissolve(p.Pending.Group)
		}
		p.Pending, p.DataLost, p.AckBy, p.Poison = nil, nil, "", nil
		p.Stopped, p.SkipAt, p.LastError, p.FetchErrors, p.Backlog = false, -1, "", 0, false
		if m.Lost != nil {
			p.Gaps = append(p.Gaps, DeclaredGap{First: m.Lost.First, End: m.Lost.End, By: by, At: now, Kind: sink.MarkGap})
		}
		switch m.Kind {
		case sink.MarkSkipped:
			first := m.From
			if m.Lost != nil {
				first = m.Lost.End
			}
			if first < m.To {
				p.Gaps = append(p.Gaps, DeclaredGap{First: first, End: m.To, By: by, At: now, Kind: sink.MarkSkipped})
			}
		case sink.MarkRewind:
			p.Gaps = append(p.Gaps, DeclaredGap{First: m.To, End: m.From, By: by, At: now, Kind: sink.MarkRewind})
		}
		if len(p.Gaps) > maxGapsKept {
			p.Gaps = p.Gaps[len(p.Gaps)-maxGapsKept:]
		}
		moved = append(moved, cursor(p))
	}
	if len(moved) > 0 {
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		if err := c.commit(dctx, moved); err != nil {
			c.commitErr = "commit offsets: " + errMessage(err)
		}
	}
	return SetOffsetsResult{Moves: res.Moves}, nil
}
