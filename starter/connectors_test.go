package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
)

// captureStdout runs fn with os.Stdout going to a pipe and returns what
// it printed (the commands that print to os.Stdout directly).
func captureStdout(t *testing.T, fn func() error) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	prev := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	ferr := fn()
	os.Stdout = prev
	w.Close()
	return <-done, ferr
}

func (s *winStack) connectorSpec(name, topic, table string) string {
	doc := fmt.Sprintf(`name: %s
kafka:
  brokers: [%q]
  topic: %s
batch:
  flushInterval: 500ms
sink:
  type: maxcompute
  maxcompute:
    endpoint: %s/api
    tunnelEndpoint: %s
    project: %s
    table: %s
    createTable: true
    credentials: %s
`, name, s.brokers[0], topic, s.mcURL, s.mcURL, winProject, table, winCredName)
	return writeJobFile(s.t, doc)
}

func runStatusCmd(ctx context.Context, args ...string) (string, error) {
	var out bytes.Buffer
	err := runStatus(ctx, args, &out)
	return out.String(), err
}

func runListCmd(args ...string) (string, error) {
	var out bytes.Buffer
	err := runList(context.Background(), args, &out)
	return out.String(), err
}

// TestConnectorCommands drives a MaxCompute connector on the local stack
// the way an operator does: flags after the name (starter status NAME
// --json), status --watch refreshing in place on a terminal and plainly
// elsewhere, list with each connector's health, and status of a deleted
// connector saying so.
func TestConnectorCommands(t *testing.T) {
	s := newWinStack(t)
	const topic, name = "events", "events-mc"
	s.createTopic(topic, 2)
	ts := time.Now()
	s.produce(topic, 0, ts, ts, ts)
	s.produce(topic, 1, ts, ts)
	spec := s.connectorSpec(name, topic, "kafka_events")

	out, err := captureStdout(t, func() error { return cmdCreate(context.Background(), append([]string{"-f", spec}, s.tflags...)) })
	require.NoError(t, err, out)
	require.Contains(t, out, "connector events-mc started: workflow connector-events-mc")

	// Flags after the name, as kubectl and the temporal CLI take them.
	var st statusView
	require.Eventually(t, func() bool {
		out, err := runStatusCmd(context.Background(), append([]string{name, "--json"}, s.tflags...)...)
		if err != nil || json.Unmarshal([]byte(out), &st) != nil {
			return false
		}
		return len(st.Partitions) == 2 && st.Partitions[0].Next == 3 && st.Partitions[1].Next == 2
	}, time.Minute, 200*time.Millisecond, "status --json after the name")
	require.Equal(t, "running", st.State)
	require.Nil(t, st.Closed)

	// Flags mixed before and after the name.
	out, err = runStatusCmd(context.Background(), append(append([]string{"--temporal", s.tflags[1]}, name), s.tflags[2:]...)...)
	require.NoError(t, err, out)
	require.Contains(t, out, "connector events-mc  topic events → maxcompute  running")

	// Signals with flags after the name.
	out, err = captureStdout(t, func() error { return cmdPause(context.Background(), append([]string{name, "--json"}, s.tflags...)) })
	require.NoError(t, err, out)
	require.JSONEq(t, `{"connector": "events-mc", "signal": "pause"}`, out)
	require.Eventually(t, func() bool {
		out, err := runStatusCmd(context.Background(), append([]string{name, "--json"}, s.tflags...)...)
		return err == nil && json.Unmarshal([]byte(out), &st) == nil && st.State == "paused"
	}, 30*time.Second, 200*time.Millisecond, "paused")
	out, err = captureStdout(t, func() error { return cmdResume(context.Background(), append([]string{name}, s.tflags...)) })
	require.NoError(t, err, out)
	require.Equal(t, "connector events-mc: resume signalled\n", out)

	// --watch, not a terminal: the whole status again and again, each
	// frame under a time line.
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	out, err = runStatusCmd(ctx, append([]string{name, "--watch", "--interval", "500ms"}, s.tflags...)...)
	cancel()
	require.NoError(t, err)
	frames := regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d  every 500ms, Ctrl-C to stop$`).FindAllString(out, -1)
	require.GreaterOrEqual(t, len(frames), 2, out)
	require.Equal(t, len(frames), strings.Count(out, "connector events-mc  topic events"))
	require.NotContains(t, out, "\033[")

	// --watch on a terminal: each frame redraws the screen in place.
	prev := isTerminalWriter
	isTerminalWriter = func(io.Writer) bool { return true }
	t.Cleanup(func() { isTerminalWriter = prev })
	ctx, cancel = context.WithTimeout(context.Background(), 1500*time.Millisecond)
	out, err = runStatusCmd(ctx, append([]string{"-w", name, "--interval", "500ms"}, s.tflags...)...)
	cancel()
	isTerminalWriter = prev
	require.NoError(t, err)
	require.GreaterOrEqual(t, strings.Count(out, "\033[H\033[2J"), 2, "each frame homes the cursor and clears the screen")
	require.Contains(t, out, "\033[K\n")

	// list: health of every connector.
	out, err = runListCmd(s.tflags...)
	require.NoError(t, err)
	t.Logf("list:\n%s", out)
	require.Regexp(t, `(?m)^NAME\s+STATE\s+PARTITIONS\s+LAG\s+LAG SECONDS\s+STOPPED\s+DEAD LETTERS\s+STARTED\s+ERROR\s*$`, out)
	require.Regexp(t, `(?m)^events-mc\s+running\s+2\s+0\s+0\s+0\s+0\s+\S+\s*$`, out)
	out, err = runListCmd(append(s.tflags, "--json")...)
	require.NoError(t, err)
	var rows []connectorRow
	require.NoError(t, json.Unmarshal([]byte(out), &rows))
	require.Len(t, rows, 1)
	require.Equal(t, "running", rows[0].State)
	require.NotNil(t, rows[0].LagSeconds)

	// Delete, then status says the connector is deleted (not "running").
	out, err = captureStdout(t, func() error {
		return cmdDelete(context.Background(), append([]string{name, "--wait", "1m"}, s.tflags...))
	})
	require.NoError(t, err, out)
	out, err = runStatusCmd(context.Background(), append([]string{name}, s.tflags...)...)
	require.NoError(t, err)
	t.Logf("status after delete:\n%s", out)
	require.Contains(t, out, "connector events-mc was deleted at ")
	require.Contains(t, out, "'starter create -f SPEC' resumes where it stopped")
	require.NotContains(t, out, "running")
	out, err = runStatusCmd(context.Background(), append([]string{name, "--json"}, s.tflags...)...)
	require.NoError(t, err)
	st = statusView{}
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	require.Equal(t, "deleted", st.State)
	require.NotNil(t, st.Closed)
	// --watch of a deleted connector prints it once and ends.
	out, err = runStatusCmd(context.Background(), append([]string{name, "--watch"}, s.tflags...)...)
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(out, "was deleted at"))
	out, err = runListCmd(s.tflags...)
	require.NoError(t, err)
	require.Regexp(t, `(?m)^events-mc\s+deleted\s+-\s+-\s+-\s+-\s+-\s+\S+`, out)

	// Errors read as sentences.
	_, err = runStatusCmd(context.Background(), append([]string{"nosuch", "--watch"}, s.tflags...)...)
	require.ErrorContains(t, err, "no connector nosuch", "--watch of a connector that does not exist ends at once")
	_, err = runStatusCmd(context.Background(), append([]string{"nosuch"}, s.tflags...)...)
	require.Error(t, err)
	msg := sentence(err.Error())
	t.Logf("status of a connector that never existed: %s", msg)
	require.Equal(t, "no connector nosuch: there is no workflow connector-nosuch in this namespace (see 'starter list')", msg)
	require.NotRegexp(t, `wrapError|serviceerror|\*[a-z]+\.`, msg)
}

// TestSentence: error texts lose Go type names and the SDK's id-laden
// wrappers.
func TestSentence(t *testing.T) {
	for in, want := range map[string]string{
		"discover: wrapError: dial tcp 127.0.0.1:1: connection refused": "discover: dial tcp 127.0.0.1:1: connection refused",
		"connector x ended with: workflow execution error (type: Connector, workflowID: connector-x, runID: 0192, workflowTaskCompletedEventID: 9): activity error (type: Discover, scheduledEventID: 5, startedEventID: 6, identity: 1@host): no such topic (type: wrapError, retryable: true)": "connector x ended with: workflow Connector: activity Discover: no such topic",
		"write: NoSuchTable: table t does not exist (type: NoSuchTable, retryable: false)": "write: NoSuchTable: table t does not exist",
		"*fmt.wrapError: boom":       "boom",
		"errorString: bad input":     "bad input",
		"no connector a: not found:": "no connector a: not found",
	} {
		require.Equal(t, want, sentence(in), in)
	}
}

// TestDemoSamplesOnce: the demo produces its sample records into an empty
// topic only; run again on the same Kafka data it finds them and produces
// none (or only what a first run that stopped early did not).
func TestDemoSamplesOnce(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	require.NoError(t, err)
	t.Cleanup(kc.Close)
	cl, err := kafka.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	ctx := context.Background()
	require.NoError(t, cl.EnsureTopic(ctx, demoTopic, 3))

	n, err := samplesToProduce(ctx, cl, 3000)
	require.NoError(t, err)
	require.Equal(t, 3000, n, "an empty topic gets them all")
	require.NoError(t, produceSamples(ctx, cl.Kgo(), 1000, time.Now().Add(-time.Hour), time.Now()))
	n, err = samplesToProduce(ctx, cl, 3000)
	require.NoError(t, err)
	require.Equal(t, 2000, n, "a first run that stopped early is completed")
	require.NoError(t, produceSamples(ctx, cl.Kgo(), n, time.Now().Add(-time.Hour), time.Now()))
	n, err = samplesToProduce(ctx, cl, 3000)
	require.NoError(t, err)
	require.Zero(t, n, "a second run produces no more")
	n, err = samplesToProduce(ctx, cl, 0)
	require.NoError(t, err)
	require.Zero(t, n)
}

// TestLagSeconds: the age of the oldest record a connector has not dumped
// is read from Kafka at its cursors.
func TestLagSeconds(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "lag"))
	require.NoError(t, err)
	t.Cleanup(kc.Close)
	pr, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	t.Cleanup(pr.Close)
	old := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	ctx := context.Background()
	for i := range 3 {
		require.NoError(t, pr.ProduceSync(ctx, &kgo.Record{Topic: "lag", Partition: 0, Value: []byte("v"), Timestamp: old.Add(time.Duration(i) * time.Minute)}).FirstErr())
		require.NoError(t, pr.ProduceSync(ctx, &kgo.Record{Topic: "lag", Partition: 1, Value: []byte("v"), Timestamp: old.Add(time.Duration(i+10) * time.Minute)}).FirstErr())
	}
	spec := &connector.Spec{Name: "lag", Kafka: connector.KafkaSpec{Brokers: kc.ListenAddrs(), Topic: "lag"}}
	oldest, ok := oldestUndumped(ctx, spec, map[int32]int64{0: 1, 1: 0})
	require.True(t, ok)
	require.True(t, oldest.Equal(old.Add(time.Minute)), "partition 0's record at offset 1: %s", oldest)
}
