package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// Activity names of a sharded connector's root workflow.
const (
	ForwardUpdateName = "ForwardUpdate"
	AwaitClosedName   = "AwaitClosed"
)

// Shard is the share of a topic's partitions one shard workflow runs:
// partition p belongs to shard p mod Count.
type Shard struct {
	Index int `json:"index"`
	Count int `json:"count"`
}

// Owns says partition p is the shard's.
func (s *Shard) Owns(p int32) bool {
	return s == nil || s.Count <= 1 || int(p)%s.Count == s.Index
}

// ForwardUpdateInput sends one Update to shard workflows, in order.
type ForwardUpdateInput struct {
	Workflows []string        `json:"workflows"`
	Name      string          `json:"name"`
	Arg       json.RawMessage `json:"arg"`
}

// ForwardUpdateResult holds each shard's result, in Workflows' order.
type ForwardUpdateResult struct {
	Results []json.RawMessage `json:"results"`
}

// ForwardUpdate sends a sharded connector's Update (set-offsets,
// update-spec) to its shard workflows one by one and returns their results.
// Each shard's update id is fixed by the activity and the shard, so a
// retried activity does not apply an update twice to a shard that took it.
// A shard that rejects or fails the update stops the forwarding: the error
// (not retried) names it and the shards that took it already.
func (a *Activities) ForwardUpdate(ctx context.Context, in ForwardUpdateInput) (ForwardUpdateResult, error) {
	if a.temporal == nil {
		return ForwardUpdateResult{}, nonRetryable("Unsupported", errors.New("the worker has no Temporal client to forward the update to the connector's shard workflows"))
	}
	info := activity.GetInfo(ctx)
	var res ForwardUpdateResult
	for i, id := range in.Workflows {
		updateID := fmt.Sprintf("%s/%s/%s/%d", info.WorkflowExecution.RunID, info.ActivityID, in.Name, i)
		raw, err := a.temporal.Update(ctx, id, updateID, in.Name, in.Arg)
		if err != nil {
			var rejected *updateFailed
			if errors.As(err, &rejected) {
				return res, nonRetryable("UpdateRejected", fmt.Errorf("shard workflow %s: %v (applied by %d shard(s) before it: %v)", id, rejected.err, i, in.Workflows[:i]))
			}
			return res, fmt.Errorf("send %s to shard workflow %s: %w", in.Name, id, err)
		}
		res.Results = append(res.Results, raw)
	}
	return res, nil
}

// AwaitClosedInput names workflows to wait for.
type AwaitClosedInput struct {
	Workflows []string `json:"workflows"`
}

// AwaitClosed returns once no workflow of in has a running execution
// (a cancelled connector's shards have finished their writes and
// committed their offsets). It heartbeats while it waits.
func (a *Activities) AwaitClosed(ctx context.Context, in AwaitClosedInput) error {
	if a.temporal == nil {
		return nonRetryable("Unsupported", errors.New("the worker has no Temporal client to watch the connector's shard workflows"))
	}
	for _, id := range in.Workflows {
		for {
			running, err := a.temporal.Running(ctx, id)
			if err != nil {
				return fmt.Errorf("describe shard workflow %s: %w", id, err)
			}
			if !running {
				break
			}
			activity.RecordHeartbeat(ctx, id)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

// updateFailed is an Update that a workflow rejected or failed, as opposed
// to one that could not be sent.
type updateFailed struct{ err error }

func (u *updateFailed) Error() string { return u.err.Error() }

func (h historyClient) Update(ctx context.Context, workflowID, updateID, name string, arg any) (json.RawMessage, error) {
	handle, err := h.c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: workflowID, UpdateID: updateID, UpdateName: name, Args: []any{arg}, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		var app *temporal.ApplicationError
		if errors.As(err, &app) {
			return nil, &updateFailed{err}
		}
		return nil, err
	}
	var raw json.RawMessage
	if err := handle.Get(ctx, &raw); err != nil {
		return nil, &updateFailed{err}
	}
	return raw, nil
}

func (h historyClient) Running(ctx context.Context, workflowID string) (bool, error) {
	d, err := h.c.DescribeWorkflowExecution(ctx, workflowID, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return d.GetWorkflowExecutionInfo().GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}
