package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/transform"
)

// RedriveName is the Redrive workflow's type name.
const RedriveName = "Redrive"

// redriveBatchesPerRun is how many batches one run writes before it
// continues as new (and plans again: what it wrote counts as done).
const redriveBatchesPerRun = 200

// RedriveInput is the Redrive workflow's single input. It names dead
// letters; it never holds record bytes.
type RedriveInput struct {
	// Connector is the connector's name. Required.
	Connector string `json:"connector"`
	// Selection says which dead letters. Required.
	Selection activities.RedriveSelection `json:"selection"`
	// Overrides change the connector's spec for the re-drive (a fixed
	// transform chain, a higher errors.maxRecordBytes). Optional.
	Overrides activities.RedriveOverrides `json:"overrides,omitzero"`
	// Spec is the connector's spec. Optional. Default: the spec of the
	// connector's workflow, connector-<name>.
	Spec *connector.Spec `json:"spec,omitempty"`
	// MaxLetters caps a batch. Optional. Default: 500.
	MaxLetters int `json:"maxLetters,omitempty"`
	// Result carries the totals across continue-as-new; leave it out.
	Result *RedriveResult `json:"result,omitempty"`
}

// RedriveResult is what a re-drive did.
type RedriveResult struct {
	Connector       string `json:"connector"`
	DeadLetterTopic string `json:"deadLetterTopic"`
	// Selected counts the dead letters the selection names at the last
	// plan; AlreadyDone those an earlier re-drive covered (nothing is
	// written for them).
	Selected    int64 `json:"selected"`
	AlreadyDone int64 `json:"alreadyDone"`
	Batches     int   `json:"batches"`
	// Letters re-driven; Records written to the destination (a transform
	// may drop or split records); Objects written; DeadLetters failed
	// again (back in the dead-letter topic, attempt one higher).
	Letters     int64                  `json:"letters"`
	Records     int64                  `json:"records"`
	Objects     []string               `json:"objects,omitempty"`
	DeadLetters int64                  `json:"deadLetters"`
	Transform   []transform.StepCounts `json:"transform,omitempty"`
	// State is planning, redriving or done.
	State string `json:"state"`
}

// RedriveWorkflowID is the id starter gives a re-drive: one per connector,
// selection and overrides, so the same request made twice finds the first
// (running: attached to; finished: run again, it plans nothing new).
func RedriveWorkflowID(in RedriveInput) string {
	b, _ := json.Marshal([]any{in.Selection, in.Overrides})
	h := sha256.Sum256(b)
	return "redrive-" + in.Connector + "-" + hex.EncodeToString(h[:6])
}

// Redrive is driven without dumpflow's CLI as
//
//	workflow type   Redrive           task queue  dumpflow
//	workflow id     redrive-<name>-<hash> (starter dlq redrive; any id works)
//	input           RedriveInput: {"connector": "<name>", "selection": {"all": true}
//	                | {"partition": 0, "from": 100, "to": 200}
//	                | {"deadLetterOffsets": [{"first": 3, "end": 6}]},
//	                "overrides": {"transforms": [...], "maxRecordBytes": "16MiB"}}
//	query progress  returns RedriveResult (letters, records written, failed again)
//
// Redrive sends dead letters back through the transform and the sink into
// the connector's destination: it plans batches of dead-letter offsets
// (PlanRedrive), then writes each (RedriveBatch). What a batch writes is
// named by the batch, and a plan leaves out letters already re-driven, so
// a retried batch or the same re-drive started again writes nothing twice.
// Letters that fail again go back to the dead-letter topic with their
// attempt header one higher.
func Redrive(ctx workflow.Context, in RedriveInput) (RedriveResult, error) {
	if in.Connector == "" {
		return RedriveResult{}, temporal.NewNonRetryableApplicationError("connector: required", "InvalidInput", nil)
	}
	if err := in.Selection.Validate(); err != nil {
		return RedriveResult{}, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidSelection", err)
	}
	res := RedriveResult{Connector: in.Connector, State: "planning"}
	if in.Result != nil {
		res = *in.Result
		res.State = "planning"
	}
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryProgress, func() (RedriveResult, error) { return res, nil },
		workflow.QueryHandlerOptions{Description: "What the re-drive planned and wrote so far."}); err != nil {
		return res, err
	}
	short := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		HeartbeatTimeout:    20 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second, MaximumAttempts: 10},
	})
	spec := in.Spec
	if spec == nil {
		var sr activities.RedriveSpecResult
		if err := workflow.ExecuteActivity(short, activities.RedriveSpecName, activities.RedriveSpecInput{Connector: in.Connector}).Get(ctx, &sr); err != nil {
			return res, err
		}
		spec = sr.Spec
	}
	if spec == nil || spec.Name != in.Connector {
		return res, temporal.NewNonRetryableApplicationError("the spec is not connector "+in.Connector+"'s", "InvalidSpec", errors.New("spec name"))
	}
	var plan activities.PlanRedriveResult
	if err := workflow.ExecuteActivity(short, activities.PlanRedriveName, activities.PlanRedriveInput{
		Spec: spec, Selection: in.Selection, Overrides: in.Overrides, MaxLetters: in.MaxLetters,
	}).Get(ctx, &plan); err != nil {
		return res, err
	}
	res.DeadLetterTopic = plan.DeadLetterTopic
	if in.Result == nil {
		res.Selected, res.AlreadyDone = plan.Selected, plan.Done
	}
	res.State = "redriving"
	write := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 15 * time.Minute,
		HeartbeatTimeout:    20 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute, MaximumAttempts: 10},
	})
	for i, b := range plan.Batches {
		if i == redriveBatchesPerRun {
			next := in
			next.Spec = spec
			r := res
			next.Result = &r
			return res, workflow.NewContinueAsNewError(ctx, RedriveName, next)
		}
		var br activities.RedriveBatchResult
		if err := workflow.ExecuteActivity(write, activities.RedriveBatchName, activities.RedriveBatchInput{
			Spec: spec, Overrides: in.Overrides, Batch: b,
		}).Get(ctx, &br); err != nil {
			return res, err
		}
		res.Batches++
		res.Letters += br.Letters
		res.Records += br.Written.Records
		res.DeadLetters += br.DeadLetters
		if len(res.Objects) < 100 {
			res.Objects = append(res.Objects, br.Written.Objects...)
		}
		res.Transform = sumCounts(res.Transform, br.Transform)
	}
	res.State = "done"
	return res, nil
}

// sumCounts adds a batch's transform step counts to total (a re-drive runs
// one chain, so the steps line up).
func sumCounts(total, counts []transform.StepCounts) []transform.StepCounts {
	if len(counts) == 0 {
		return total
	}
	if len(total) != len(counts) {
		total = make([]transform.StepCounts, len(counts))
		for i, n := range counts {
			total[i] = transform.StepCounts{Step: n.Step, Type: n.Type}
		}
	}
	for i, n := range counts {
		total[i].In += n.In
		total[i].Out += n.Out
		total[i].Dropped += n.Dropped
		total[i].Failed += n.Failed
	}
	return total
}
