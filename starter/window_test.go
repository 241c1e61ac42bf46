package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aliyun/aliyun-odps-go-sdk/odps"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/account"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/vbauerster/mpb/v8"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/server/temporaltest"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/deploy/localstack/odpsemu"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/sink/maxcompute"
	"github.com/dumpflow/dumpflow/window"
	"github.com/dumpflow/dumpflow/workers/runner"
	"github.com/dumpflow/dumpflow/workflows"
)

// The window and schedule commands, run in process against a local stack:
// the Temporal test server, a kfake Kafka cluster, the MaxCompute emulator
// and a dumpflow worker (runner.RunWithClient). Records are produced at
// chosen timestamps, so each window's records are known; what a load wrote
// is read back from the emulator through the tunnel.

const (
	winProject  = "dumpflow"
	winCredName = "local"
)

var gmt8 = time.FixedZone("+08", 8*3600)

// winStack is the local stack of a window test.
type winStack struct {
	t        *testing.T
	temporal *temporaltest.TestServer
	c        client.Client
	brokers  []string
	mcURL    string
	producer *kgo.Client
	tflags   []string
}

func quietSlog() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

func newWinStack(t *testing.T) *winStack {
	t.Helper()
	t.Setenv(connector.CredentialsEnvPrefix(winCredName)+"ACCESS_KEY_ID", "dumpflow")
	t.Setenv(connector.CredentialsEnvPrefix(winCredName)+"ACCESS_KEY_SECRET", "dumpflow-secret")
	s := &winStack{t: t}
	s.temporal = temporaltest.NewServer(temporaltest.WithT(t),
		temporaltest.WithBaseClientOptions(client.Options{Logger: tlog.NewStructuredLogger(quietSlog())}))
	s.c = s.temporal.GetDefaultClient()
	s.tflags = []string{"--temporal", s.temporal.GetFrontendHostPort(), "--namespace", s.temporal.GetDefaultNamespace()}

	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	require.NoError(t, err)
	t.Cleanup(kc.Close)
	s.brokers = kc.ListenAddrs()

	emu, err := odpsemu.New(odpsemu.Options{Dir: t.TempDir(), Projects: []string{winProject}, AccessKeyID: "dumpflow", AccessKeySecret: "dumpflow-secret"})
	require.NoError(t, err)
	srv := httptest.NewServer(emu)
	t.Cleanup(func() { srv.Close(); _ = emu.Close() })
	s.mcURL = srv.URL

	s.producer, err = kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	t.Cleanup(s.producer.Close)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := runner.RunWithClient(ctx, s.c, runner.Config{Logger: quietSlog()}); err != nil {
			t.Errorf("worker: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	// The CLI's own client logs at the default level; keep test output
	// readable.
	prev := slog.Default()
	slog.SetDefault(quietSlog())
	t.Cleanup(func() { slog.SetDefault(prev) })
	return s
}

// createTopic creates topic with n partitions.
func (s *winStack) createTopic(topic string, n int32) {
	s.t.Helper()
	kc, err := kafka.NewClient(kgo.SeedBrokers(s.brokers...))
	require.NoError(s.t, err)
	defer kc.Close()
	require.NoError(s.t, kc.EnsureTopic(context.Background(), topic, n))
}

// createTable creates table with seed 004's default schema (the default
// columns of a window job's MaxCompute writer).
func (s *winStack) createTable(table string) {
	s.t.Helper()
	o := odps.NewOdps(account.NewAliyunAccount("dumpflow", "dumpflow-secret"), s.mcURL+"/api")
	o.SetDefaultProjectName(winProject)
	ins, err := o.ExecSQl(fmt.Sprintf(maxcompute.DefaultDDL, table) + ";")
	require.NoError(s.t, err)
	require.NoError(s.t, ins.WaitForSuccess())
}

// produced is a record the test produced.
type produced struct {
	partition int32
	ts        time.Time
	value     string
}

// produce writes one record per timestamp (in order) to partition p.
func (s *winStack) produce(topic string, p int32, tss ...time.Time) []produced {
	s.t.Helper()
	var recs []*kgo.Record
	var out []produced
	for i, ts := range tss {
		v := fmt.Sprintf("%s|p%d|%s|%d", topic, p, ts.In(gmt8).Format("2006-01-02T15:04:05.000"), i)
		recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(v), Timestamp: ts})
		out = append(out, produced{p, ts, v})
	}
	require.NoError(s.t, s.producer.ProduceSync(context.Background(), recs...).FirstErr())
	return out
}

// produceSized is produce with values padded to size bytes.
func (s *winStack) produceSized(topic string, p int32, size int, tss ...time.Time) []produced {
	s.t.Helper()
	var recs []*kgo.Record
	var out []produced
	for i, ts := range tss {
		v := fmt.Sprintf("%s|p%d|%s|%d|", topic, p, ts.In(gmt8).Format("2006-01-02T15:04:05.000"), i)
		v += strings.Repeat(".", max(0, size-len(v)))
		recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(v), Timestamp: ts})
		out = append(out, produced{p, ts, v})
	}
	require.NoError(s.t, s.producer.ProduceSync(context.Background(), recs...).FirstErr())
	return out
}

// valuesIn are the values of recs stamped in [begin, end), sorted.
func valuesIn(recs []produced, begin, end time.Time) []string {
	var out []string
	for _, r := range recs {
		if !r.ts.Before(begin) && r.ts.Before(end) {
			out = append(out, r.value)
		}
	}
	sort.Strings(out)
	return out
}

// rows reads the values of a partition of table through a tunnel download.
func (s *winStack) rows(table, partition string) []string {
	s.t.Helper()
	spec := &connector.Spec{Name: "reader", Kafka: connector.KafkaSpec{Brokers: s.brokers, Topic: "x"},
		Sink: connector.SinkSpec{Type: connector.SinkMaxCompute, MaxCompute: &connector.MaxComputeSpec{
			Endpoint: s.mcURL + "/api", TunnelEndpoint: s.mcURL, Project: winProject, Table: table, Credentials: winCredName}}}
	spec.Default()
	creds, err := connector.ResolveCredentials(winCredName)
	require.NoError(s.t, err)
	var out []string
	err = maxcompute.ReadRows(context.Background(), spec, creds, partition, func(row []any) error {
		out = append(out, fmt.Sprint(row[4])) // topic, partition, offset, key, value, pt
		return nil
	})
	require.NoError(s.t, err, "read %s %s", table, partition)
	sort.Strings(out)
	return out
}

// hourlyJob writes a window job spec file: topic into table, partition
// pt=${yyyyMMddHH}, hourly at GMT+08:00 (no schedule when cron is "").
func (s *winStack) hourlyJob(name, topic, table, cron, extra string) string {
	doc := fmt.Sprintf(`name: %s
reader:
  brokers: [%q]
  topic: %s
writer:
  maxcompute:
    endpoint: %s/api
    tunnelEndpoint: %s
    project: %s
    table: %s
    credentials: %s
    partition: pt=${yyyyMMddHH}
    timeZone: GMT+08:00
`, name, s.brokers[0], topic, s.mcURL, s.mcURL, winProject, table, winCredName)
	if cron != "" {
		doc += fmt.Sprintf("schedule:\n  cron: %q\n  timeZone: GMT+08:00\n", cron)
	}
	doc += extra
	return writeJobFile(s.t, doc)
}

func writeJobFile(t *testing.T, doc string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "job.yaml")
	require.NoError(t, os.WriteFile(file, []byte(doc), 0o644))
	return file
}

// cmdTimeout bounds one command (a run follows its workflow to the end).
const cmdTimeout = 90 * time.Second

func runWindowCmd(args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	var out, errw bytes.Buffer
	err := runWindow(ctx, args, &out, &errw)
	return out.String(), errw.String(), err
}

func runScheduleCmd(args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	var out, errw bytes.Buffer
	err := runSchedule(ctx, args, &out, &errw)
	return out.String(), errw.String(), err
}

// withNow fixes the commands' clock for the rest of the test.
func withNow(t *testing.T, at time.Time) {
	prev := now
	now = func() time.Time { return at }
	t.Cleanup(func() { now = prev })
}

func TestWindowValidate(t *testing.T) {
	withNow(t, time.Date(2024, 3, 1, 9, 30, 0, 0, gmt8))
	const job = `name: orders-hourly
reader:
  brokers: ["127.0.0.1:9092"]
  topic: orders
writer:
  maxcompute:
    endpoint: http://127.0.0.1:9400/api
    project: dumpflow
    table: orders_hourly
    credentials: local
    partition: pt=${yyyyMMddHH}
schedule:
  cron: "0 * * * *"
  timeZone: GMT+08:00
  delay: 5m
`
	file := writeJobFile(t, job)
	out, _, err := runWindowCmd("validate", "-f", file)
	require.NoError(t, err)
	for _, want := range []string{
		"window job orders-hourly (" + file + "): valid\n",
		"  topic:        orders (brokers 127.0.0.1:9092; reader.begin window, reader.end window)\n",
		"  destination:  maxcompute dumpflow.orders_hourly partition pt=${yyyyMMddHH}\n",
		"  mode:         overwrite (writer.maxcompute.truncate true)",
		"  schedule:     0 * * * * in Etc/GMT-8 (GMT+08:00), schedule id window-orders-hourly\n",
		"overlap bufferAll, catch-up window 168h, delay 5m, jitter 0s, pause on failure false\n",
		"next 5 fire times (Etc/GMT-8) and the window each run loads:\n",
		"  FIRE TIME             WINDOW                                    DESTINATION\n" +
			"  2024-03-01 10:00 +08  [2024-03-01 09:00, 2024-03-01 10:00) +08  pt=2024030109\n" +
			"  2024-03-01 11:00 +08  [2024-03-01 10:00, 2024-03-01 11:00) +08  pt=2024030110\n" +
			"  2024-03-01 12:00 +08  [2024-03-01 11:00, 2024-03-01 12:00) +08  pt=2024030111\n" +
			"  2024-03-01 13:00 +08  [2024-03-01 12:00, 2024-03-01 13:00) +08  pt=2024030112\n" +
			"  2024-03-01 14:00 +08  [2024-03-01 13:00, 2024-03-01 14:00) +08  pt=2024030113\n",
	} {
		require.Contains(t, out, want)
	}
	require.NotContains(t, out, "warning:")

	// An overlap policy that can leave windows unloaded is flagged.
	skip := writeJobFile(t, job+"  overlap: skip\n")
	out, _, err = runWindowCmd("validate", "-f", skip)
	require.NoError(t, err)
	require.Contains(t, out, "  warning:      overlap skip can leave windows unloaded")

	out, _, err = runWindowCmd("validate", "-f", file, "--json")
	require.NoError(t, err)
	var js jobSummary
	require.NoError(t, json.Unmarshal([]byte(out), &js))
	require.True(t, js.Valid)
	require.Equal(t, "overwrite", js.Mode)
	require.Equal(t, "Etc/GMT-8", js.Schedule.TimeZone)
	require.Len(t, js.NextFires, 5)
	require.True(t, js.NextFires[0].Fire.Equal(time.Date(2024, 3, 1, 10, 0, 0, 0, gmt8)))
	require.True(t, js.NextFires[4].Begin.Equal(time.Date(2024, 3, 1, 13, 0, 0, 0, gmt8)))
	require.Equal(t, "pt=2024030113", js.NextFires[4].Destination)

	// Without a schedule: no fire times, and how to run it.
	noSched := writeJobFile(t, strings.Split(job, "schedule:")[0]+"    truncate: false\n")
	out, _, err = runWindowCmd("validate", "-f", noSched)
	require.NoError(t, err)
	require.Contains(t, out, "  mode:         append (writer.maxcompute.truncate false)")
	require.Contains(t, out, "  schedule:     none (time zone Etc/GMT-8)\n")
	require.Contains(t, out, "no schedule: load a window with 'starter window run -f "+noSched+" --from T --to T'")
	require.NotContains(t, out, "FIRE TIME")

	// Every violation with its field, value and rule.
	bad := strings.NewReplacer("name: orders-hourly", "name: Orders_Hourly", `cron: "0 * * * *"`, `cron: "0 0 * * 7"`,
		"table: orders_hourly", "table: 1orders", "delay: 5m", "delay: 48h").Replace(job)
	badFile := writeJobFile(t, bad)
	_, _, err = runWindowCmd("validate", "-f", badFile)
	require.Error(t, err)
	for _, want := range []string{
		"invalid window job spec (4 problems)",
		`name: "Orders_Hourly" may contain only lowercase letters, digits and '-'`,
		`writer.maxcompute.table: "1orders" must be a MaxCompute identifier`,
		`schedule.cron: "0 0 * * 7" day of week "7": 7 for Sunday is refused`,
		`schedule.delay: "48h0m0s" must be 0..24h`,
	} {
		require.Contains(t, err.Error(), want)
	}
	out, _, err = runWindowCmd("validate", "-f", badFile, "--json")
	require.Equal(t, exitError(1), err)
	require.NoError(t, json.Unmarshal([]byte(out), &js))
	require.False(t, js.Valid)
	require.Contains(t, js.Violations, violationJSON{Field: "name", Value: "Orders_Hourly", Rule: "may contain only lowercase letters, digits and '-'"})
}

// TestWindowRun loads one hourly window, then a span of two through
// WindowBackfill, then a window whose records fail to decode, each
// followed with plain progress lines (the output is not a terminal).
func TestWindowRun(t *testing.T) {
	s := newWinStack(t)
	const topic, table, name = "orders", "orders_hourly", "orders-hourly"
	s.createTopic(topic, 2)
	s.createTable(table)
	at := func(h, m int, ms int) time.Time {
		return time.Date(2024, 3, 1, h, m, 0, ms*int(time.Millisecond), gmt8)
	}
	var recs []produced
	// Partition 0: 2 records at 08, 3 at 09 (one exactly at 09:00, one at
	// 09:59:59.999), 4 at 10, 1 at 11; partition 1: 1, 2, 0, 5.
	recs = append(recs, s.produce(topic, 0, at(8, 10, 0), at(8, 50, 0), at(9, 0, 0), at(9, 30, 0), at(9, 59, 59999),
		at(10, 0, 0), at(10, 1, 0), at(10, 2, 0), at(10, 3, 0), at(11, 5, 0))...)
	recs = append(recs, s.produce(topic, 1, at(8, 59, 59999), at(9, 15, 0), at(9, 45, 0),
		at(11, 0, 0), at(11, 10, 0), at(11, 20, 0), at(11, 30, 0), at(11, 40, 0))...)
	file := s.hourlyJob(name, topic, table, "0 * * * *", "")
	args := func(a ...string) []string { return append(append([]string{"run", "-f", file}, a...), s.tflags...) }

	// One window of the schedule: WindowLoad, the schedule's run id.
	out, _, err := runWindowCmd(args("--from", "20240301090000", "--to", "20240301100000")...)
	require.NoError(t, err, out)
	t.Logf("window run:\n%s", out)
	id := "window-orders-hourly-2024-03-01T02:00:00Z"
	require.Contains(t, out, "window job orders-hourly: window [2024-03-01 09:00, 2024-03-01 10:00) +08 (--from/--to) of topic orders → maxcompute dumpflow.orders_hourly partition pt=2024030109, overwrite, by WindowLoad "+id+"\n")
	require.Contains(t, out, "started "+id+" (run ")
	ts := `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\S* `
	require.Regexp(t, ts+`window \[2024-03-01 09:00, 2024-03-01 10:00\) \+08 resolved: 2 Kafka partitions, 5 offsets to read → maxcompute dumpflow.orders_hourly partition pt=2024030109\n`, out)
	require.Regexp(t, ts+`partition 0 \[2,5\): loaded 3 records, \d+B, 0 errors in `, out)
	require.Regexp(t, ts+`partition 1 \[1,3\): loaded 2 records, \d+B, 0 errors in `, out)
	require.Regexp(t, `(?m)^\s*PARTITION\s+FIRST\s+END\s+RECORDS\s+BYTES\s+ERRORS\s+DURATION\s+STATE\s*$`, out)
	require.Regexp(t, `(?m)^\s+0\s+2\s+5\s+3\s+\d+B\s+0\s+\S+\s+loaded\s*$`, out)
	require.Regexp(t, `(?m)^\s+1\s+1\s+3\s+2\s+\d+B\s+0\s+\S+\s+loaded\s*$`, out)
	require.Regexp(t, `(?m)^\s+total\s+5\s+\d+B\s+0\s+\S+\s*$`, out)
	require.Contains(t, out, "destination: maxcompute dumpflow.orders_hourly partition pt=2024030109 (overwrite): 5 records published\n")
	want09 := valuesIn(recs, at(9, 0, 0), at(10, 0, 0))
	require.Len(t, want09, 5)
	require.Equal(t, want09, s.rows(table, "pt=2024030109"))

	// Again, as JSON: a new run of the same window replaces the partition
	// with the same rows.
	out, notes, err := runWindowCmd(args("--from", "2024-03-01T09:00:00+08:00", "--to", "2024-03-01T10:00:00+08:00", "--json")...)
	require.NoError(t, err, notes)
	var js runJSON
	require.NoError(t, json.Unmarshal([]byte(out), &js), out)
	require.Equal(t, id, js.WorkflowID)
	require.Equal(t, "completed", js.Status)
	require.EqualValues(t, 5, js.Result.Records)
	require.Equal(t, "pt=2024030109", js.Result.Destination)
	require.Contains(t, notes, "resolved: 2 Kafka partitions") // progress goes to stderr with --json
	require.Equal(t, want09, s.rows(table, "pt=2024030109"))

	// Two windows: WindowBackfill, one child WindowLoad per window.
	out, _, err = runWindowCmd(args("--from", "2024-03-01T10:00:00+08:00", "--to", "20240301120000")...)
	require.NoError(t, err, out)
	t.Logf("window run (backfill):\n%s", out)
	bid := "window-backfill-orders-hourly-20240301T020000Z-20240301T040000Z"
	require.Contains(t, out, "window job orders-hourly: 2 windows of the schedule (0 * * * * in Etc/GMT-8) in [2024-03-01 10:00, 2024-03-01 12:00) +08, loaded one after another by WindowBackfill "+bid+"\n")
	require.Regexp(t, ts+`backfill \[2024-03-01 10:00, 2024-03-01 12:00\) \+08: 2 windows\n`, out)
	require.Regexp(t, `window 2/2 \[2024-03-01 11:00, 2024-03-01 12:00\) \+08 loaded: 6 records → maxcompute dumpflow.orders_hourly partition pt=2024030111\n`, out)
	require.Contains(t, out, "backfill [2024-03-01 10:00, 2024-03-01 12:00) +08 of topic orders: 2 of 2 windows loaded\n")
	require.Regexp(t, `(?m)^\[2024-03-01 10:00, 2024-03-01 11:00\) \+08\s+pt=2024030110\s+4\s+\d+B\s+0\s+\S+\s+completed\s+window-orders-hourly-2024-03-01T03:00:00Z$`, out)
	require.Regexp(t, `(?m)^\[2024-03-01 11:00, 2024-03-01 12:00\) \+08\s+pt=2024030111\s+6\s+\d+B\s+0\s+\S+\s+completed\s+window-orders-hourly-2024-03-01T04:00:00Z$`, out)
	require.Regexp(t, `(?m)^total\s+10\s+`, out)
	require.Equal(t, valuesIn(recs, at(10, 0, 0), at(11, 0, 0)), s.rows(table, "pt=2024030110"))
	require.Equal(t, valuesIn(recs, at(11, 0, 0), at(12, 0, 0)), s.rows(table, "pt=2024030111"))
	require.Len(t, s.rows(table, "pt=2024030111"), 6)

	// A slow load (settings.speed.bytes), started detached; a second run
	// of the window attaches to it instead of starting another, and its
	// summary lines show where the read is (the activity's heartbeat).
	prevEvery := followLineEvery
	followLineEvery = time.Second
	defer func() { followLineEvery = prevEvery }()
	var slow []time.Time
	for i := 0; i < 40; i++ {
		slow = append(slow, at(13, i, 0))
	}
	slowRecs := s.produceSized(topic, 0, 100, slow...)
	slowJob := s.hourlyJob("orders-slow", topic, table, "0 * * * *", "settings:\n  speed:\n    bytes: 1KiB\n")
	slowArgs := append([]string{"run", "-f", slowJob, "--from", "20240301130000", "--to", "20240301140000"}, s.tflags...)
	out, _, err = runWindowCmd(append(slowArgs, "--detach")...)
	require.NoError(t, err)
	slowID := "window-orders-slow-2024-03-01T06:00:00Z"
	require.Contains(t, out, "started "+slowID)
	require.Contains(t, out, "follow it with: starter window watch "+slowID+"\n")
	out, _, err = runWindowCmd(slowArgs...)
	require.NoError(t, err, out)
	t.Logf("window run (attached):\n%s", out)
	require.Regexp(t, regexp.QuoteMeta(slowID)+` is already running \(run \S+\): following it instead of starting another\n`, out)
	require.Regexp(t, ts+`1/2 partitions loaded, 0 records; partition 0 at offset \d+ of \[10,50\) \(\d+%\)\n`, out)
	require.Regexp(t, `(?m)^\s+0\s+10\s+50\s+40\s+\S+\s+0\s+\S+\s+loaded\s*$`, out)
	require.Contains(t, out, "destination: maxcompute dumpflow.orders_hourly partition pt=2024030113 (overwrite): 40 records published\n")
	require.Equal(t, valuesIn(slowRecs, at(13, 0, 0), at(14, 0, 0)), s.rows(table, "pt=2024030113"))
	// watch a finished run: its result.
	out, _, err = runWindowCmd(append([]string{"watch", slowID, "--json"}, s.tflags...)...)
	require.NoError(t, err, out)
	require.NoError(t, json.Unmarshal([]byte(out), &js), out)
	require.Equal(t, runJSON{WorkflowID: slowID, RunID: js.RunID, Workflow: "WindowLoad", Attached: true, Status: "completed", Result: js.Result}, js)
	require.EqualValues(t, 40, js.Result.Records)
	require.Equal(t, "loaded", js.Result.Partitions[0].State)

	// Windows must be the schedule's.
	_, _, err = runWindowCmd(args("--from", "20240301093000", "--to", "20240301100000")...)
	require.ErrorContains(t, err, "--from 2024-03-01 09:30 +08 is not a fire time of the job's schedule (0 * * * * in Etc/GMT-8)")
	require.ErrorContains(t, err, "the nearest are 2024-03-01 09:00 +08 and 2024-03-01 10:00 +08")
	_, _, err = runWindowCmd(args("--from", "20240301090000")...)
	require.ErrorContains(t, err, "give both --from and --to")
	_, _, err = runWindowCmd(args("--from", "yesterday", "--to", "20240301100000")...)
	require.ErrorContains(t, err, `--from "yesterday" must be an RFC 3339 time`)
	noSched := s.hourlyJob("orders-manual", topic, table, "", "")
	_, _, err = runWindowCmd(append([]string{"run", "-f", noSched}, s.tflags...)...)
	require.ErrorContains(t, err, "job orders-manual has no schedule and its reader bounds (begin window, end window) do not define a window: give --from and --to")

	// A record that does not decode fails the run at errorLimit 0: the
	// error names the rule, the partition and the dead-letter topic.
	strict := s.hourlyJob("orders-strict", topic, table, "0 * * * *", "settings:\n  errorLimit:\n    record: 0\n")
	strict = writeJobFile(t, strings.Replace(mustRead(t, strict), "  topic: orders\n", "  topic: orders\n  valueType: LONG\n", 1))
	out, _, err = runWindowCmd(append([]string{"run", "-f", strict, "--from", "20240301080000", "--to", "20240301090000"}, s.tflags...)...)
	require.Error(t, err)
	t.Logf("failed run: %v\n%s", err, out)
	require.Regexp(t, `WindowLoad window-orders-strict-2024-03-01T01:00:00Z failed: ErrorLimitExceeded: load partition \d \[\d,\d\) into pt=2024030108: 1 records of partition \d failed, more than settings.errorLimit.record 0 \(the last at offset \d: value as LONG: LONG needs 8 bytes, the record has \d+\): the window is not published \(the failed records are in window-error-orders-strict\)`, err.Error())
	require.Contains(t, out, "destination: maxcompute dumpflow.orders_hourly partition pt=2024030108 (overwrite): not published\n")
	require.Regexp(t, `(?m)^\s+\d\s+0\s+\d\s+0\s+0B\s+0\s+\S+\s+failed\s*$`, out)
}

func mustRead(t *testing.T, file string) string {
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	return string(b)
}

// TestScheduleVerbs runs a job's schedule through every verb: create,
// list, describe, pause, unpause, update, trigger (its run loads the last
// complete hour), backfill of the two hours before it, delete.
func TestScheduleVerbs(t *testing.T) {
	s := newWinStack(t)
	const topic, table, name, sid = "clicks", "clicks_hourly", "clicks-hourly", "window-clicks-hourly"
	s.createTopic(topic, 2)
	s.createTable(table)
	// H is the last full hour: the trigger loads [H-1h, H), the backfill
	// [H-3h, H-1h). Each window gets a different count per partition; the
	// records at H belong to the next window.
	// A run of the schedule's own at the next full hour would load another
	// window: keep the test within one hour.
	if d := time.Until(time.Now().Truncate(time.Hour).Add(time.Hour)); d < 2*time.Minute {
		t.Logf("waiting %s for the next hour to begin", d.Round(time.Second))
		time.Sleep(d + time.Second)
	}
	H := time.Now().Truncate(time.Hour)
	var recs []produced
	for p := int32(0); p < 2; p++ {
		var tss []time.Time
		for w, n := range []int{2, 3, 4} { // windows H-3h, H-2h, H-1h
			for i := 0; i < n; i++ {
				tss = append(tss, H.Add(time.Duration(w-3)*time.Hour+time.Duration(i+1)*time.Minute))
			}
		}
		tss = append(tss, H)
		recs = append(recs, s.produce(topic, p, tss...)...)
	}
	file := s.hourlyJob(name, topic, table, "0 * * * *", "")
	sched := func(a ...string) (string, error) {
		out, notes, err := runScheduleCmd(append(a, s.tflags...)...)
		if err != nil {
			t.Logf("schedule %v: %v\n%s%s", a, err, out, notes)
		}
		return out, err
	}
	describe := func() describeJSON {
		out, err := sched("describe", name, "--json")
		require.NoError(t, err)
		var d describeJSON
		require.NoError(t, json.Unmarshal([]byte(out), &d), out)
		return d
	}
	hourLoc := func(t time.Time) string { return t.In(gmt8).Format("2006010215") }

	// create
	out, err := sched("create", "-f", file)
	require.NoError(t, err)
	require.Contains(t, out, "schedule "+sid+" created for window job "+name+"\n")
	require.Contains(t, out, "  schedule:     0 * * * * in Etc/GMT-8 (GMT+08:00), schedule id "+sid+"\n")
	next := H.Add(time.Hour)
	require.Contains(t, out, fmt.Sprintf("  %s  %s  pt=%s\n", fmtTime(next, gmt8), fmtWindow(H, next, gmt8), hourLoc(H)))
	_, err = sched("create", "-f", file)
	require.ErrorContains(t, err, "schedule "+sid+" of window job "+name+" already exists: change it with 'starter schedule update -f "+file+"'")

	// list (visibility is eventually consistent)
	var listed string
	require.Eventually(t, func() bool {
		listed, err = sched("list")
		return err == nil && strings.Contains(listed, sid)
	}, 30*time.Second, 200*time.Millisecond)
	require.Regexp(t, `(?m)^JOB\s+SCHEDULE ID\s+CRON\s+TIME ZONE\s+PAUSED\s+NEXT FIRE\s+LAST RUN$`, listed)
	require.Regexp(t, `(?m)^clicks-hourly\s+window-clicks-hourly\s+0 \* \* \* \*\s+Etc/GMT-8\s+no\s+`+regexp.QuoteMeta(fmtTime(next, gmt8))+`\s+-$`, listed)

	// describe
	out, err = sched("describe", sid) // the full id works too
	require.NoError(t, err)
	for _, want := range []string{
		"schedule:  " + sid + " (window job " + name + ")\n",
		"state:     active\n",
		"cron:      0 * * * * in Etc/GMT-8\n",
		"policies:  overlap bufferAll, catch-up window 168h, pause on failure false, jitter 0s, delay 0s\n",
		"job:       topic clicks → maxcompute dumpflow.clicks_hourly partition pt=${yyyyMMddHH} (overwrite)\n",
		"last runs (times in Etc/GMT-8):\n  none yet\n",
		fmt.Sprintf("  %s  %s  pt=%s\n", fmtTime(next, gmt8), fmtWindow(H, next, gmt8), hourLoc(H)),
	} {
		require.Contains(t, out, want)
	}

	// pause, unpause
	out, err = sched("pause", name, "--note", "maintenance of the table")
	require.NoError(t, err)
	require.Contains(t, out, "schedule "+sid+" paused (note: maintenance of the table)")
	out, err = sched("describe", name)
	require.NoError(t, err)
	require.Contains(t, out, "state:     paused\n")
	require.Contains(t, out, "note:      maintenance of the table\n")
	require.Contains(t, out, "next runs:\n  none while paused\n")
	out, err = sched("unpause", name)
	require.NoError(t, err)
	require.Contains(t, out, "schedule "+sid+" unpaused (note: unpaused by ")
	d := describe()
	require.False(t, d.Paused)
	require.Contains(t, d.Note, "unpaused by ")

	// update: the changed spec reaches the schedule.
	changed := writeJobFile(t, mustRead(t, file)+"  pauseOnFailure: true\n")
	out, err = sched("update", "-f", changed)
	require.NoError(t, err)
	require.Contains(t, out, "schedule "+sid+" updated")
	d = describe()
	require.True(t, d.PauseOnFailure)
	require.False(t, d.Paused)

	// trigger: the run loads the last complete window.
	out, err = sched("trigger", name)
	require.NoError(t, err)
	require.Contains(t, out, "schedule "+sid+" triggered (overlap bufferAll): the run loads the last complete window ")
	var trig scheduleRun
	require.Eventually(t, func() bool {
		for _, r := range describe().LastRuns {
			if r.Status == "completed" {
				trig = r
				return true
			}
		}
		return false
	}, 60*time.Second, 500*time.Millisecond)
	require.True(t, trig.End.Equal(trig.Nominal.Truncate(time.Hour)), "the trigger loads the hour before its time: %+v", trig)
	wantTrig := valuesIn(recs, trig.Begin, trig.End)
	require.NotEmpty(t, wantTrig)
	require.EqualValues(t, len(wantTrig), *trig.Records)
	require.Equal(t, "pt="+hourLoc(trig.Begin), trig.Destination)
	require.Equal(t, wantTrig, s.rows(table, trig.Destination))

	// backfill of the two windows before H-1h (through the schedule).
	from, to := H.Add(-3*time.Hour), H.Add(-time.Hour)
	out, err = sched("backfill", name, "--from", from.Format(time.RFC3339), "--to", to.In(gmt8).Format("20060102150405"))
	require.NoError(t, err)
	require.Contains(t, out, fmt.Sprintf("backfill of 2 windows %s requested from schedule %s (Temporal's schedule backfill, overlap bufferAll", fmtWindow(from, to, gmt8), sid))
	byEnd := map[time.Time]scheduleRun{}
	require.Eventually(t, func() bool {
		for _, r := range describe().LastRuns {
			if r.Status == "completed" {
				byEnd[r.End.UTC()] = r
			}
		}
		_, a := byEnd[H.Add(-2*time.Hour).UTC()]
		_, b := byEnd[H.Add(-time.Hour).UTC()]
		return a && b && len(byEnd) >= 2
	}, 90*time.Second, 500*time.Millisecond)
	for i, n := range []int{2, 3} { // per partition
		end := H.Add(time.Duration(i-2) * time.Hour)
		r := byEnd[end.UTC()]
		if r.WorkflowID != sid+"-"+end.UTC().Format(time.RFC3339) {
			continue // the trigger's run of the same window (near the hour)
		}
		require.True(t, r.Begin.Equal(end.Add(-time.Hour)), "%+v", r)
		require.EqualValues(t, 2*n, *r.Records, "%+v", r)
		require.Equal(t, "pt="+hourLoc(r.Begin), r.Destination)
		require.Equal(t, valuesIn(recs, r.Begin, r.End), s.rows(table, r.Destination))
	}
	out, err = sched("describe", name)
	require.NoError(t, err)
	t.Logf("describe:\n%s", out)
	require.Contains(t, out, "windows loaded (completed recent runs):\n")
	require.Contains(t, out, fmt.Sprintf("  %s  3 windows\n", fmtWindow(H.Add(-3*time.Hour), H, gmt8)))
	require.Regexp(t, regexp.QuoteMeta(sid+"-"+H.Add(-2*time.Hour).UTC().Format(time.RFC3339))+`\s+`+regexp.QuoteMeta(fmtWindow(H.Add(-3*time.Hour), H.Add(-2*time.Hour), gmt8))+`\s+completed\s+4\s+pt=`+hourLoc(H.Add(-3*time.Hour)), out)
	out, err = sched("list")
	require.NoError(t, err)
	require.Regexp(t, `(?m)^clicks-hourly\s+window-clicks-hourly\s+.*\s+completed \(window-clicks-hourly-\S+\)$`, out)

	// A backfill of more windows than a schedule buffers runs as our
	// WindowBackfill workflow (stopped here after it started).
	from, to = H.Add(-1002*time.Hour), H.Add(-time.Hour)
	out, err = sched("backfill", sid, "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339))
	require.NoError(t, err)
	bid := backfillID(name, from, to)
	require.Contains(t, out, fmt.Sprintf("backfill of 1001 windows %s: more than the 1000 a Temporal schedule buffers, so WindowBackfill started %s", fmtWindow(from, to, gmt8), bid))
	require.Contains(t, out, "watch it with: starter window watch "+bid+"\n")
	require.NoError(t, s.c.TerminateWorkflow(context.Background(), bid, "", "test: enough"))

	// delete
	out, err = sched("delete", name)
	require.NoError(t, err)
	require.Contains(t, out, "schedule "+sid+" deleted")
	_, err = sched("describe", name)
	require.ErrorContains(t, err, "no schedule "+sid)
}

// TestWindowProgressBars draws the bars of a load and of a backfill (what
// a terminal shows) into a buffer.
func TestWindowProgressBars(t *testing.T) {
	var buf bytes.Buffer
	w := &lockedWriter{w: &buf}
	opts := []mpb.ContainerOption{mpb.WithAutoRefresh(), mpb.WithRefreshRate(5 * time.Millisecond), mpb.WithWidth(100)}
	begin := time.Date(2024, 3, 1, 9, 0, 0, 0, gmt8)
	res := workflows.WindowResult{Job: "j", Begin: begin, End: begin.Add(time.Hour), Destination: "pt=2024030109", Partitions: []workflows.WindowPartition{
		{Partition: 0, First: 0, End: 10, State: workflows.WindowLoading},
		{Partition: 1, First: 5, End: 5, State: workflows.WindowPending},
	}}
	spec := &window.Spec{Name: "j"}
	b := newBarRenderer(w, gmt8, spec, opts...)
	b.load(loadView{res: res, ok: true, offsets: map[int32]int64{0: 4}})
	time.Sleep(50 * time.Millisecond)
	res.Partitions[0].State, res.Partitions[0].Records = workflows.WindowLoaded, 10
	res.Partitions[1].State = workflows.WindowLoaded
	b.load(loadView{res: res, ok: true})
	b.close()
	out := w.String()
	require.Contains(t, out, "offset 4 of [0,10)  0 records  loading")
	require.Regexp(t, `partition 0\s+\[=+\] offset 10 of \[0,10\)  10 records  loaded`, out)
	require.Regexp(t, `partition 1\s+\[=+\] offset 5 of \[5,5\)  0 records  loaded`, out)

	// A backfill: a bar of windows, and the current window's partitions.
	buf.Reset()
	b = newBarRenderer(w, gmt8, spec, opts...)
	prog := workflows.BackfillProgress{From: begin, To: begin.Add(3 * time.Hour), Total: 3, Done: 1, Current: &workflows.WindowResult{Begin: begin.Add(time.Hour), End: begin.Add(2 * time.Hour)}}
	child := loadView{ok: true, res: workflows.WindowResult{Begin: begin.Add(time.Hour), End: begin.Add(2 * time.Hour), Partitions: []workflows.WindowPartition{{Partition: 0, First: 10, End: 20, State: workflows.WindowLoading}}}, offsets: map[int32]int64{0: 15}}
	b.backfill(prog, true, &child)
	time.Sleep(50 * time.Millisecond)
	prog.Done, prog.Current = 3, nil
	b.backfill(prog, true, nil)
	b.close()
	out = w.String()
	require.Contains(t, out, "1/3 windows of [2024-03-01 09:00, 2024-03-01 12:00) +08")
	require.Contains(t, out, "offset 15 of [10,20)  0 records  loading")
	require.Regexp(t, `windows\s+\[=+\] 3/3 windows of`, out)
}

// lockedWriter is a buffer written by mpb's goroutine and read by the test.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}
