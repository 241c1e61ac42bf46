package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func runReplayCmd(args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	var out, errw bytes.Buffer
	err := runReplay(ctx, args, &out, &errw)
	return out.String(), errw.String(), err
}

// TestReplayFile: `starter replay -f FILE` replays every recorded history
// of tests/testdata (written by `temporal workflow show --output json`)
// and says OK with the workflow type and event count; a history edited so
// that an activity the code schedules differs is reported, naming the
// event, and exits 1.
func TestReplayFile(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "tests", "testdata", "*.history.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		out, errOut, err := runReplayCmd("-f", f)
		require.NoError(t, err, "%s\n%s", out, errOut)
		require.Regexp(t, `^OK: the (Connector|WindowLoad|WindowBackfill|Redrive) history in .*, \d+ events, replays on this build's workflow code\n$`, out)
		t.Log(out)
	}

	// Break one: the third activity the connector scheduled (FetchRanges)
	// renamed in the file.
	data, err := os.ReadFile(filepath.Join("..", "tests", "testdata", "connector-oss-v2.history.json"))
	require.NoError(t, err)
	var h map[string]any
	require.NoError(t, json.Unmarshal(data, &h))
	n, broken := 0, int64(0)
	for _, e := range h["events"].([]any) {
		ev := e.(map[string]any)
		if a, ok := ev["activityTaskScheduledEventAttributes"].(map[string]any); ok {
			if n++; n == 3 {
				at := a["activityType"].(map[string]any)
				require.Equal(t, "FetchRanges", at["name"])
				at["name"] = "Discover"
				id, err := json.Number(ev["eventId"].(string)).Int64()
				require.NoError(t, err)
				broken = id
				break
			}
		}
	}
	require.NotZero(t, broken)
	data, err = json.Marshal(h)
	require.NoError(t, err)
	bad := filepath.Join(t.TempDir(), "broken.history.json")
	require.NoError(t, os.WriteFile(bad, data, 0o644))

	out, _, err := runReplayCmd("-f", bad)
	require.Equal(t, exitError(1), err)
	t.Log(out)
	require.Contains(t, out, "FAILED: the Connector history in "+bad+", ")
	require.Regexp(t, regexp.QuoteMeta("nondeterminism at event ")+`\d+`+regexp.QuoteMeta(" (ActivityTaskScheduled activity Discover): this build's workflow code issues ScheduleActivityTask (activity FetchRanges) there"), out)
	require.Contains(t, out, "at event "+itoa(broken)+" ")

	// --json, flags after the file.
	out, _, err = runReplayCmd("-f", bad, "--json")
	require.Equal(t, exitError(1), err)
	var res replayResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.False(t, res.OK)
	require.Equal(t, broken, res.EventID)
	require.Equal(t, "ActivityTaskScheduled", res.EventType)
	require.Equal(t, "Connector", res.WorkflowType)

	// Not a history.
	_, _, err = runReplayCmd("-f", filepath.Join("..", "README.md"))
	require.ErrorContains(t, err, "is not a workflow history")
}

func itoa(n int64) string { return jsonInt(n) }

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestReplayWorkflowID: `starter replay WORKFLOW_ID` fetches the history
// from Temporal — here a window load run by `starter window run` on the
// local stack — and replays it; --run-id picks the run; an unknown id is
// an error in a sentence.
func TestReplayWorkflowID(t *testing.T) {
	s := newWinStack(t)
	const topic, table, name = "clicks", "clicks_hourly", "clicks-hourly"
	s.createTopic(topic, 1)
	s.createTable(table)
	s.produce(topic, 0, time.Date(2024, 3, 1, 9, 30, 0, 0, gmt8))
	file := s.hourlyJob(name, topic, table, "0 * * * *", "")
	out, _, err := runWindowCmd(append([]string{"run", "-f", file, "--from", "20240301090000", "--to", "20240301100000"}, s.tflags...)...)
	require.NoError(t, err, out)
	id := "window-clicks-hourly-2024-03-01T02:00:00Z"

	out, errOut, err := runReplayCmd(append([]string{id}, s.tflags...)...)
	require.NoError(t, err, "%s\n%s", out, errOut)
	require.Regexp(t, `^OK: the WindowLoad history of `+id+`, \d+ events, replays on this build's workflow code\n$`, out)

	desc, err := s.c.DescribeWorkflowExecution(context.Background(), id, "")
	require.NoError(t, err)
	runID := desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	// Flags before and after the id.
	out, _, err = runReplayCmd(append(append([]string{"--run-id", runID}, s.tflags...), id, "--json")...)
	require.NoError(t, err, out)
	var res replayResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.True(t, res.OK)
	require.Equal(t, "WindowLoad", res.WorkflowType)
	require.Equal(t, runID, res.RunID)
	require.Greater(t, res.Events, 10)

	_, _, err = runReplayCmd(append([]string{"window-nosuch"}, s.tflags...)...)
	require.ErrorContains(t, err, "cannot fetch the history of workflow window-nosuch")
}
