package workflows

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/transform"
)

// versionShards is the GetVersion change id of the connectors that spread
// a topic of more than spec.partitionsPerWorkflow partitions over shard
// workflows. It is asked on a connector's first run only: the decision is
// kept in ConnectorState.Shards.
const versionShards = "shards"

// shardIDs are the root's shard workflow ids, by shard index.
func (c *conn) shardIDs() []string {
	ids := make([]string, c.st.Shards)
	for k := range ids {
		ids[k] = connector.ShardWorkflowID(c.spec.Name, k)
	}
	return ids
}

// concurrency is how many loops this run runs: the spec's, shared among
// a sharded connector's shards (at least one each).
func (c *conn) concurrency() int {
	if c.shard == nil || c.shard.Count <= 1 {
		return c.spec.Concurrency
	}
	return max(1, (c.spec.Concurrency+c.shard.Count-1)/c.shard.Count)
}

// countPartitions lists the topic's partitions on a connector's first run,
// retrying (visibly, in status) until the topic is reachable.
func (c *conn) countPartitions(ctx workflow.Context) (int, error) {
	actx := discoverOptions(ctx, 0)
	for {
		var res activities.DiscoverResult
		err := workflow.ExecuteActivity(actx, (*activities.Activities).Discover, activities.DiscoverInput{
			SpecInput: activities.SpecInput{SpecRef: c.specRef}, Version: activities.V2, Initial: true, Writer: c.writer, ListOnly: true,
		}).Get(ctx, &res)
		if err == nil {
			c.err = ""
			return len(res.Partitions), nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		c.err = "discover: " + errMessage(err)
		workflow.GetLogger(ctx).Error("connector cannot start; retrying in 30s", "error", err)
		if err := workflow.Sleep(ctx, 30*time.Second); err != nil {
			return 0, err
		}
	}
}

// forward is a signal the root passes on to its shards.
type forward struct {
	name string
	arg  any
}

// runRoot runs a sharded connector's root workflow (see Sharding).
func (c *conn) runRoot(ctx workflow.Context, in ConnectorInput, chans []namedChannel) error {
	ids := c.shardIDs()
	started, err := c.startShards(ctx, in, ids)
	if err != nil {
		return c.finishRoot(ctx, ids)
	}
	if started && c.st.Paused {
		// Paused before its shards started (a pause sent while the
		// partitions were being listed): they start paused too.
		c.forwards = append([]forward{{name: SignalPause}}, c.forwards...)
	}
	workflow.Go(ctx, func(ctx workflow.Context) { c.forwardSignals(ctx, ids) })
	workflow.Go(ctx, c.reportShardStates)
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if err := workflow.Await(dctx, func() bool {
		return ctx.Err() != nil || c.draining && len(c.forwards) == 0 && workflow.AllHandlersFinished(ctx)
	}); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return c.finishRoot(ctx, ids)
	}
	// Signals that came in while draining are forwarded first.
	c.applySignals(chans)
	if err := workflow.Await(dctx, func() bool { return len(c.forwards) == 0 }); err != nil {
		return err
	}
	c.takeShardStates(ctx)
	return workflow.NewContinueAsNewError(ctx, ConnectorName, c.continued(in))
}

// startShards starts the shard workflows that are not running, trying
// again every 30 s (visibly, in status) those that cannot start yet. It
// reports whether it started any, and fails only when ctx is cancelled.
func (c *conn) startShards(ctx workflow.Context, in ConnectorInput, ids []string) (bool, error) {
	started := false
	todo := make([]int, len(ids))
	for k := range todo {
		todo[k] = k
	}
	for {
		var failed []int
		for _, k := range todo {
			cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
				WorkflowID:        ids[k],
				ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
			})
			f := workflow.ExecuteChildWorkflow(cctx, ConnectorName, ConnectorInput{
				Spec: c.specJSON, Shard: &activities.Shard{Index: k, Count: len(ids)},
				HistoryLimit: in.HistoryLimit, DiscoveryInterval: in.DiscoveryInterval, RefreshInterval: in.RefreshInterval,
			})
			err := f.GetChildWorkflowExecution().Get(ctx, nil)
			var running *temporal.ChildWorkflowExecutionAlreadyStartedError
			switch {
			case err == nil:
				started = true
			case errors.As(err, &running):
			case ctx.Err() != nil:
				return started, ctx.Err()
			default:
				c.err = "start shard " + ids[k] + ": " + errMessage(err) + " (tried again every 30s)"
				failed = append(failed, k)
			}
		}
		if len(failed) == 0 {
			c.err = ""
			return started, nil
		}
		if err := workflow.Sleep(ctx, 30*time.Second); err != nil {
			return started, err
		}
		todo = failed
	}
}

// forwardSignals sends the root's signals to its shards, one at a time in
// the order they came.
func (c *conn) forwardSignals(ctx workflow.Context, ids []string) {
	for {
		if err := workflow.Await(ctx, func() bool { return len(c.forwards) > 0 }); err != nil {
			return
		}
		f := c.forwards[0]
		for k, id := range ids {
			if a, ok := f.arg.(AckDataLoss); ok && a.Partition != nil && int(*a.Partition)%len(ids) != k {
				continue
			}
			if err := workflow.SignalExternalWorkflow(ctx, id, "", f.name, f.arg).Get(ctx, nil); err != nil {
				if ctx.Err() != nil {
					return
				}
				c.err = "forward " + f.name + " to " + id + ": " + errMessage(err)
				workflow.GetLogger(ctx).Error("forwarding a signal to a shard failed", "signal", f.name, "shard", id, "error", err)
			}
		}
		c.forwards = c.forwards[1:]
		c.checkHistory(ctx)
	}
}

// finishRoot ends a cancelled root: it cancels its shards and waits until
// each has let its writes finish and committed its offsets.
func (c *conn) finishRoot(ctx workflow.Context, ids []string) error {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	for _, id := range ids {
		if err := workflow.RequestCancelExternalWorkflow(dctx, id, "").Get(dctx, nil); err != nil {
			workflow.GetLogger(ctx).Warn("cancel shard", "shard", id, "error", err)
		}
	}
	actx := workflow.WithActivityOptions(dctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Hour,
		HeartbeatTimeout:    30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 10 * time.Second},
	})
	if err := workflow.ExecuteActivity(actx, (*activities.Activities).AwaitClosed, activities.AwaitClosedInput{Workflows: ids}).Get(dctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("waiting for the shards to finish", "error", err)
	}
	return temporal.NewCanceledError()
}

// forwardUpdate sends an Update to shards (ForwardUpdate) and returns each
// shard's result.
func (c *conn) forwardUpdate(ctx workflow.Context, ids []string, name string, arg any) ([]json.RawMessage, error) {
	raw, err := json.Marshal(arg)
	if err != nil {
		return nil, err
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 10 * time.Second, MaximumAttempts: 5,
			NonRetryableErrorTypes: []string{"UpdateRejected", "Unsupported"}},
	})
	var res activities.ForwardUpdateResult
	err = workflow.ExecuteActivity(actx, (*activities.Activities).ForwardUpdate, activities.ForwardUpdateInput{Workflows: ids, Name: name, Arg: raw}).Get(ctx, &res)
	c.checkHistory(ctx)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(errMessage(err), errType(err), nil)
	}
	return res.Results, nil
}

// rootSetOffsets forwards set-offsets to the shards that own the selected
// partitions (every shard when none is named), each with its share.
func (c *conn) rootSetOffsets(ctx workflow.Context, req SetOffsets) (SetOffsetsResult, error) {
	c.settingOffsets = true
	defer func() { c.settingOffsets = false }()
	var out SetOffsetsResult
	for k, id := range c.shardIDs() {
		share := req
		if len(req.Partitions) > 0 {
			share.Partitions = nil
			for _, p := range req.Partitions {
				if int(p)%c.st.Shards == k {
					share.Partitions = append(share.Partitions, p)
				}
			}
			if len(share.Partitions) == 0 {
				continue
			}
		}
		results, err := c.forwardUpdate(ctx, []string{id}, UpdateSetOffsets, share)
		if err != nil {
			return out, err
		}
		var r SetOffsetsResult
		if err := json.Unmarshal(results[0], &r); err != nil {
			return out, err
		}
		out.Moves = append(out.Moves, r.Moves...)
	}
	return out, nil
}

// rootUpdateSpec forwards a validated update-spec to every shard, then
// takes the new spec itself (for status, the spec query and the shards it
// may start again).
func (c *conn) rootUpdateSpec(ctx workflow.Context, req UpdateSpecRequest) (UpdateSpecResult, error) {
	spec, changed, err := c.parseUpdate(req)
	if err != nil || len(changed) == 0 {
		return UpdateSpecResult{SpecRef: c.specRef}, err
	}
	c.holding = true
	defer func() { c.holding = false }()
	if _, err := c.forwardUpdate(ctx, c.shardIDs(), UpdateSpec, req); err != nil {
		return UpdateSpecResult{}, err
	}
	raw, _ := json.Marshal(spec)
	c.spec, c.specJSON, c.warning = *spec, raw, ""
	c.specRef = activities.Remember(spec)
	workflow.GetLogger(ctx).Info("spec updated in every shard", "changed", changed, "by", req.By)
	return UpdateSpecResult{Changed: changed, SpecRef: c.specRef}, nil
}

// ConnectorStatus queries connector name's status. A sharded connector's
// status is its shards' merged (MergeShards).
func ConnectorStatus(ctx context.Context, c client.Client, name string) (Status, error) {
	root, err := queryStatus(ctx, c, connector.WorkflowID(name))
	if err != nil || len(root.Shards) == 0 {
		return root, err
	}
	shards := make([]Status, len(root.Shards))
	for k, id := range root.Shards {
		s, err := queryStatus(ctx, c, id)
		if err != nil {
			s = Status{Error: "status of shard " + id + ": " + err.Error()}
		}
		shards[k] = s
	}
	return MergeShards(root, shards), nil
}

func queryStatus(ctx context.Context, c client.Client, id string) (Status, error) {
	v, err := c.QueryWorkflow(ctx, id, "", QueryStatus)
	if err != nil {
		return Status{}, err
	}
	var s Status
	return s, v.Get(&s)
}

// MergeShards is a sharded connector's status: the root's, with every
// shard's partitions (by partition number), errors (each named by its
// shard) and transform counts; paused once every shard is.
func MergeShards(root Status, shards []Status) Status {
	out := root
	out.Partitions = nil
	out.Transform = nil
	var errs []string
	if root.Error != "" {
		errs = append(errs, root.Error)
	}
	paused := len(shards) > 0
	for k, s := range shards {
		out.Partitions = append(out.Partitions, s.Partitions...)
		paused = paused && s.Paused
		if s.Error != "" {
			errs = append(errs, fmt.Sprintf("%s: %s", root.Shards[k], s.Error))
		}
		out.Transform = addStepCounts(out.Transform, s.Transform)
	}
	out.Paused = paused
	out.Error = strings.Join(errs, "; ")
	slices.SortFunc(out.Partitions, func(a, b PartitionStatus) int { return cmp.Compare(a.Partition, b.Partition) })
	return out
}

// addStepCounts adds b's step counts to a's, step by step; a differing
// chain (a shard not yet at an update-spec) is kept as a's.
func addStepCounts(a, b []transform.StepCounts) []transform.StepCounts {
	if len(a) == 0 {
		return append([]transform.StepCounts(nil), b...)
	}
	if len(a) != len(b) {
		return a
	}
	for i := range a {
		if a[i].Step != b[i].Step {
			return a
		}
		a[i].In += b[i].In
		a[i].Out += b[i].Out
		a[i].Dropped += b[i].Dropped
		a[i].Failed += b[i].Failed
	}
	return a
}
