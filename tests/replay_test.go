package tests

import (
	"bytes"
	"context"
	"flag"
	tlog "go.temporal.io/sdk/log"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/workers/runner"
	"github.com/dumpflow/dumpflow/workflows"
)

var updateHistories = flag.Bool("update-histories", false, "record this build's tests/testdata/*-v2.history.json anew from live runs")

// TestReplayRecordedHistories replays every recorded connector history in
// testdata against the current workflow code. A change that would break
// running connectors (a reordered activity, a new blocking call without a
// version gate) fails here.
//
//   - connector-oss.history.json was recorded by the first build: it
//     replays through the frozen legacy code behind the "dumpflow-v2"
//     version gate. It is never recorded again.
//   - connector-oss-v2.history.json and connector-maxcompute-v2.history.json
//     were recorded by this build. Record them anew, deliberately, with
//     go test ./tests -run TestReplayRecordedHistories -update-histories;
//     keep the old ones under another name when a change must stay
//     compatible with them.
func TestReplayRecordedHistories(t *testing.T) {
	if *updateHistories {
		recordHistory(t, filepath.Join("testdata", "connector-oss-v2.history.json"), false)
		recordHistory(t, filepath.Join("testdata", "connector-maxcompute-v2.history.json"), true)
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.history.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no recorded histories in testdata")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			// History holds offsets, keys, ids and counts: never record bytes
			// (values are "<topic>-p<partition>-<n>...") and never secrets.
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			require.NotContains(t, string(data), "replay-p0-")
			require.NotContains(t, string(data), "dumpflow-secret")

			h, err := runner.ReadHistory(bytes.NewReader(data))
			require.NoError(t, err)
			require.NoError(t, runner.Replay(h, "", tlog.NewStructuredLogger(quietLogger())))
		})
	}
}

// recordHistory runs a connector through a poison record (tolerance stop),
// a resume, a pause and a continue-as-new, and saves the first run's
// history.
func recordHistory(t *testing.T, path string, mc bool) {
	s := newStack(t)
	s.startWorker()
	const topic, n, size = "replay", 600, 64
	s.createTopic(topic, 2)
	s.producePoison(topic, n, size, 250, 4096)
	s.produce(topic, 2, 100, size, time.Time{})
	spec := s.ossSpec("replay-oss", topic)
	if mc {
		spec = s.mcSpec("replay-mc", topic, "kafka_replay")
	}
	spec.Batch.MaxRecords = 100
	spec.Errors.MaxRecordBytes = 1024
	spec.Errors.Tolerance = connector.ToleranceStop
	s.start(spec, 120)
	s.waitFor(spec.Name, time.Minute, "stop on poison", func(st workflows.Status) bool {
		return len(st.Partitions) == 2 && st.Partitions[0].State == workflows.StateStopped
	})
	ctx := context.Background()
	require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalResume, nil))
	require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalPause, nil))
	require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalResume, nil))
	s.waitFor(spec.Name, time.Minute, "caught up", func(st workflows.Status) bool {
		return st.Run > 0 && len(st.Partitions) == 2 && st.Partitions[0].Next == n+100 && st.Partitions[1].Next == 100
	})

	// The first run, which ended in continue-as-new.
	iter := s.client.GetWorkflowHistory(ctx, spec.WorkflowID(), firstRunID(t, s, spec), false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var h historypb.History
	for iter.HasNext() {
		e, err := iter.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, e)
	}
	data, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&h)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, 0o644))
}

func firstRunID(t *testing.T, s *stack, spec *connector.Spec) string {
	resp, err := s.client.DescribeWorkflowExecution(context.Background(), spec.WorkflowID(), "")
	require.NoError(t, err)
	return resp.GetWorkflowExecutionInfo().GetFirstRunId()
}

// TestReplayDetectsNondeterminism: the replay check is not vacuous. A
// recorded history whose first activity is changed to another type no
// longer matches the code, and Replay says so, naming the event.
func TestReplayDetectsNondeterminism(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "connector-oss-v2.history.json"))
	require.NoError(t, err)
	h, err := runner.ReadHistory(bytes.NewReader(data))
	require.NoError(t, err)
	changed := false
	for _, e := range h.Events {
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil {
			a.ActivityType.Name = "PrepareWrite" // the workflow schedules Discover here
			changed = true
			break
		}
	}
	require.True(t, changed)
	err = runner.Replay(h, "", tlog.NewStructuredLogger(quietLogger()))
	require.Error(t, err)
	require.Contains(t, err.Error(), "nondeterministic")
	t.Logf("replay error: %v", err)
}
