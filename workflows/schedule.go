package workflows

import (
	"encoding/json"
	"errors"
	"fmt"

	"go.temporal.io/sdk/client"

	"github.com/dumpflow/dumpflow/window"
)

// ScheduleOptions is the Temporal Schedule of a window job: id
// window-<name>, the job's cron expression in its IANA time zone, its
// overlap policy, catch-up window, pause-on-failure and jitter, and an
// action that starts WindowLoad (workflow id window-<name>, to which
// Temporal appends the nominal time: WindowRunID) with the spec and
// UpdatePosition. The window each run loads follows from its nominal
// time, so the action carries no window.
//
// The spec is validated and defaulted; it holds no secret (credentials
// are names resolved on the worker), so it may sit in the schedule's
// action and in every run's history.
func ScheduleOptions(spec *window.Spec) (client.ScheduleOptions, error) {
	if err := spec.Validate(); err != nil {
		return client.ScheduleOptions{}, err
	}
	sc := spec.Schedule
	if sc == nil {
		return client.ScheduleOptions{}, errors.New("schedule: required for a Temporal Schedule (cron, timeZone): a job without one runs with `starter window run` only")
	}
	zone, err := window.IANAZone(sc.TimeZone)
	if err != nil {
		return client.ScheduleOptions{}, fmt.Errorf("schedule.timeZone %q: %w", sc.TimeZone, err)
	}
	overlap, err := window.OverlapPolicy(sc.Overlap)
	if err != nil {
		return client.ScheduleOptions{}, fmt.Errorf("schedule.overlap %q: %w", sc.Overlap, err)
	}
	return client.ScheduleOptions{
		ID: spec.ScheduleID(),
		Spec: client.ScheduleSpec{
			CronExpressions: []string{sc.Cron},
			TimeZoneName:    zone,
			Jitter:          sc.Jitter.D(),
		},
		Action: &client.ScheduleWorkflowAction{
			ID:        spec.ScheduleID(),
			Workflow:  WindowLoadName,
			Args:      []any{WindowInput{Spec: specJSON(spec), UpdatePosition: true}},
			TaskQueue: TaskQueue,
		},
		Overlap:        overlap,
		CatchupWindow:  sc.CatchupWindow.D(),
		PauseOnFailure: sc.PauseOnFailure,
		Note:           fmt.Sprintf("dumpflow window job %s: %s (%s), windows end at each fire time", spec.Name, sc.Cron, zone),
	}, nil
}

// ScheduleUpdate applies spec to an existing schedule's description: the
// same fields ScheduleOptions sets, leaving its state (paused or not, its
// note) and its running actions alone.
func ScheduleUpdate(spec *window.Spec) func(client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
	return func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
		opts, err := ScheduleOptions(spec)
		if err != nil {
			return nil, err
		}
		s := in.Description.Schedule
		s.Spec = &opts.Spec
		s.Action = opts.Action
		if s.Policy == nil {
			s.Policy = &client.SchedulePolicies{}
		}
		s.Policy.Overlap = opts.Overlap
		s.Policy.CatchupWindow = opts.CatchupWindow
		s.Policy.PauseOnFailure = opts.PauseOnFailure
		return &client.ScheduleUpdate{Schedule: &s}, nil
	}
}

// specJSON is spec as compact JSON, a workflow input.
func specJSON(spec *window.Spec) json.RawMessage {
	b, err := json.Marshal(spec)
	if err != nil {
		panic(fmt.Sprintf("window spec does not marshal: %v", err)) // plain data: cannot happen
	}
	return b
}
