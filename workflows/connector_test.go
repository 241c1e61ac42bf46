package workflows_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/workers/runner"
	"github.com/dumpflow/dumpflow/workflows"
)

// These are workflow unit tests on Temporal's test environment, with the
// activities mocked: they pin down orchestration rules that end-to-end
// tests on a real server can only hit by timing (signals arriving in one
// workflow task, continue-as-new at a given moment, a spec that a newer
// build rejects).

func testSpec() *connector.Spec {
	s := &connector.Spec{
		Name:  "unit",
		Kafka: connector.KafkaSpec{Brokers: []string{"127.0.0.1:9092"}, Topic: "t"},
		Sink: connector.SinkSpec{Type: connector.SinkOSS, OSS: &connector.OSSSpec{
			Endpoint: "http://127.0.0.1:9300", Bucket: "dumpflow", Credentials: "local", PathStyle: true,
		}},
	}
	s.Default()
	return s
}

type env struct {
	*testsuite.TestWorkflowEnvironment
}

// newEnv runs the Connector with the worker's interceptors, one partition
// and no data: every FetchRanges waits a second and plans nothing.
func newEnv(t *testing.T, id string) env {
	e := env{connectorEnv(id)}
	var a *activities.Activities
	e.OnActivity(a.Discover, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DiscoverInput) (activities.DiscoverResult, error) {
			if len(in.Known) > 0 {
				return activities.DiscoverResult{}, nil
			}
			return activities.DiscoverResult{Partitions: []activities.PartitionStart{{Partition: 0, From: "earliest"}}}, nil
		})
	mockIdleLoops(e.TestWorkflowEnvironment)
	return e
}

// mockIdleLoops mocks the loops' activities: every FetchRanges waits a
// second and plans nothing; commits succeed.
func mockIdleLoops(e *testsuite.TestWorkflowEnvironment) {
	var a *activities.Activities
	e.OnActivity(a.FetchRanges, mock.Anything, mock.Anything).After(time.Second).Return(
		func(_ context.Context, in activities.FetchRangesInput) (activities.FetchRangesResult, error) {
			var res activities.FetchRangesResult
			for _, c := range in.Cursors {
				res.Plans = append(res.Plans, activities.Plan{Partition: c.Partition, First: c.Next, PlanEnd: c.Next})
			}
			return res, nil
		})
	e.OnActivity(a.CommitOffsets, mock.Anything, mock.Anything).Return(nil)
}

// connectorEnv is a test environment that runs the Connector, as
// workflow id, with the worker's interceptors; the caller mocks the
// activities.
func connectorEnv(id string) *testsuite.TestWorkflowEnvironment {
	var suite testsuite.WorkflowTestSuite
	e := suite.NewTestWorkflowEnvironment()
	e.SetWorkerOptions(worker.Options{Interceptors: runner.Interceptors()})
	e.RegisterWorkflowWithOptions(workflows.Connector, workflow.RegisterOptions{Name: workflows.ConnectorName})
	e.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: id})
	return e
}

func (e env) status(t *testing.T) workflows.Status { return queryStatus(t, e.TestWorkflowEnvironment) }

// queryStatus answers the status query of e's workflow.
func queryStatus(t *testing.T, e *testsuite.TestWorkflowEnvironment) workflows.Status {
	t.Helper()
	v, err := e.QueryWorkflow(workflows.QueryStatus)
	require.NoError(t, err)
	var st workflows.Status
	require.NoError(t, v.Get(&st))
	return st
}

// TestSignalsKeepTheirOrder: pause and resume sent back to back land in one
// workflow task; the last one sent wins, in either order. (The first build
// read the two channels in a fixed order, so "resume, then pause" ended
// running.)
func TestSignalsKeepTheirOrder(t *testing.T) {
	for _, tc := range []struct {
		name       string
		signals    []string
		wantPaused bool
	}{
		{"pause then resume", []string{workflows.SignalPause, workflows.SignalResume}, false},
		{"resume then pause", []string{workflows.SignalResume, workflows.SignalPause}, true},
		{"pause resume pause", []string{workflows.SignalPause, workflows.SignalResume, workflows.SignalPause}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "connector-unit")
			e.RegisterDelayedCallback(func() {
				for _, s := range tc.signals {
					e.SignalWorkflow(s, nil)
				}
			}, 5*time.Second)
			e.RegisterDelayedCallback(func() {
				require.Equal(t, tc.wantPaused, e.status(t).Paused)
				e.CancelWorkflow()
			}, 30*time.Second)
			e.ExecuteWorkflow(workflows.ConnectorName, workflows.NewInput(testSpec()))
			require.True(t, e.IsWorkflowCompleted())
		})
	}
}

// TestSignalsKeepTheirOrderAcrossContinueAsNew: signals that arrive in the
// workflow task in which the run drains are applied in the order sent and
// carried into the next run's state.
func TestSignalsKeepTheirOrderAcrossContinueAsNew(t *testing.T) {
	for _, tc := range []struct {
		name       string
		signals    []string
		wantPaused bool
	}{
		{"pause then resume", []string{workflows.SignalPause, workflows.SignalResume}, false},
		{"resume then pause", []string{workflows.SignalResume, workflows.SignalPause}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "connector-unit")
			in := workflows.NewInput(testSpec())
			// The signals arrive in the workflow task in which the server
			// suggests continuing as new: the run drains at once.
			e.RegisterDelayedCallback(func() {
				for _, s := range tc.signals {
					e.SignalWorkflow(s, nil)
				}
				e.SetContinueAsNewSuggested(true)
			}, 3500*time.Millisecond)
			e.ExecuteWorkflow(workflows.ConnectorName, in)
			err := e.GetWorkflowError()
			var can *workflow.ContinueAsNewError
			require.True(t, errors.As(err, &can), "want continue-as-new, got %v", err)
			var next workflows.ConnectorInput
			require.NoError(t, decodeCANInput(can, &next))
			require.NotNil(t, next.State)
			require.Equal(t, tc.wantPaused, next.State.Paused)
		})
	}
}

func decodeCANInput(can *workflow.ContinueAsNewError, v any) error {
	return converter.GetDefaultDataConverter().FromPayloads(can.Input, v)
}

// TestSpecDecodedStrictly: an unknown field in the workflow input (as the
// temporal CLI or the Web UI would send it) fails the start with the
// field's full path, exactly as starter create reports it.
func TestSpecDecodedStrictly(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"misspelt nested field", `{"batch": {"flushIntervl": "5s"}}`, "batch.flushIntervl"},
		{"field in another case", `{"KAFKA": {}}`, "KAFKA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "connector-unit")
			var m map[string]any
			b, _ := json.Marshal(testSpec())
			require.NoError(t, json.Unmarshal(b, &m))
			var extra map[string]any
			require.NoError(t, json.Unmarshal([]byte(tc.doc), &extra))
			for k, v := range extra {
				if sub, ok := v.(map[string]any); ok {
					if cur, ok := m[k].(map[string]any); ok {
						for kk, vv := range sub {
							cur[kk] = vv
						}
						continue
					}
				}
				m[k] = v
			}
			raw, _ := json.Marshal(m)
			e.ExecuteWorkflow(workflows.ConnectorName, workflows.ConnectorInput{Spec: raw})
			err := e.GetWorkflowError()
			var appErr *temporal.ApplicationError
			require.True(t, errors.As(err, &appErr), "want an application error, got %v", err)
			require.Equal(t, "InvalidSpec", appErr.Type())
			require.Contains(t, appErr.Message(), tc.want)
			require.Contains(t, appErr.Message(), "unknown field")
		})
	}
}

// TestContinuedRunKeepsRunningWithAnOlderSpec: a connector whose spec a
// newer build's validation rejects keeps running after continue-as-new,
// with a warning in status, instead of failing.
func TestContinuedRunKeepsRunningWithAnOlderSpec(t *testing.T) {
	e := newEnv(t, "connector-unit")
	spec := testSpec()
	b, _ := json.Marshal(spec)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	m["concurrency"] = 5 // not one of 1, 2, 3, 6, 12
	raw, _ := json.Marshal(m)
	state := &workflows.ConnectorState{Partitions: []*workflows.PartitionState{{Partition: 0, SkipAt: -1}}, Discovered: true}
	e.RegisterDelayedCallback(func() {
		st := e.status(t)
		require.Contains(t, st.Warning, "concurrency")
		require.Len(t, st.Partitions, 1)
		e.CancelWorkflow()
	}, 10*time.Second)
	e.ExecuteWorkflow(workflows.ConnectorName, workflows.ConnectorInput{Spec: raw, State: state})
	err := e.GetWorkflowError()
	require.True(t, temporal.IsCanceledError(err), "the run was cancelled, not failed: %v", err)

	// The same spec on a first start fails.
	e2 := newEnv(t, "connector-unit")
	e2.ExecuteWorkflow(workflows.ConnectorName, workflows.ConnectorInput{Spec: raw})
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(e2.GetWorkflowError(), &appErr))
	require.Equal(t, "InvalidSpec", appErr.Type())
}

// TestWrongWorkflowIDRefused: a connector runs only as connector-<name>, so
// two workflows can never write one connector's data.
func TestWrongWorkflowIDRefused(t *testing.T) {
	e := newEnv(t, "connector-unit-2")
	e.ExecuteWorkflow(workflows.ConnectorName, workflows.NewInput(testSpec()))
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(e.GetWorkflowError(), &appErr), "got %v", e.GetWorkflowError())
	require.Equal(t, "WrongWorkflowID", appErr.Type())
	require.Contains(t, appErr.Message(), "connector-unit")
}
