package tests

// Shared helpers of the window job tests (window_test.go,
// window_schedule_test.go). Every name starts with "win". They build window
// job specs against a test stack, produce records at chosen timestamps,
// run WindowLoad and WindowBackfill and wait for their results, and read
// what a load left behind through the unmodified SDKs only — a MaxCompute
// partition's rows through a tunnel download session, an OSS prefix's
// objects through the OSS SDK, dead letters through a Kafka client — never
// through dumpflow's own metadata, so they are oracles of the data itself.
//
// Windowing is by offset range: a run resolves its window's bounds to
// offsets with ListOffsets by timestamp (the first offset whose timestamp
// is at or after the bound). A test that asserts which records a window
// holds must therefore produce each partition's records in non-decreasing
// timestamp order, as producers stamping CreateTime do.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aliyun/aliyun-odps-go-sdk/odps/data"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/tunnel"
	alioss "github.com/aliyun/aliyun-oss-go-sdk/oss"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/window"
	"github.com/dumpflow/dumpflow/workflows"
)

// winTimeout bounds how long a helper waits for one window run or one
// backfill to close. Generous: other tests share the machine.
const winTimeout = 4 * time.Minute

// winTableDDL creates (%s: the table's name) the table of the hourly
// example (deploy/examples/window/window-maxcompute-hourly.yaml), the one
// winMCSpec's columns fill.
const winTableDDL = "CREATE TABLE %s (value STRING, kafka_partition BIGINT, kafka_offset BIGINT, kafka_ts BIGINT) PARTITIONED BY (pt STRING);"

// winJob is a window job under test: the spec, defaulted and validated,
// and the JSON the workflows receive (WindowInput.Spec, BackfillInput.Spec).
type winJob struct {
	Spec *window.Spec
	Raw  json.RawMessage
}

// Name is the job's name.
func (j winJob) Name() string { return j.Spec.Name }

// winBool returns a pointer to b (Truncate, SkipExceedRecord).
func winBool(b bool) *bool { return &b }

// winTime is the instant written as "2006-01-02 15:04:05.000" at
// GMT+08:00 (the seed's zone, built in maxcompute_test.go independently of
// the window package), e.g. winTime("2024-01-01 09:00:00.000").
func winTime(t *testing.T, s string) time.Time {
	t.Helper()
	ts, err := time.ParseInLocation("2006-01-02 15:04:05.000", s, gmt8)
	require.NoError(t, err)
	return ts
}

// winAround is the three instants 1ms before at, at, and 1ms after: the
// records just before a window boundary, exactly on it and just after.
func winAround(at time.Time) []time.Time {
	return []time.Time{at.Add(-time.Millisecond), at, at.Add(time.Millisecond)}
}

// winCreateTable creates table with winTableDDL through the SDK.
func (s *stack) winCreateTable(table string) {
	s.t.Helper()
	s.mcExec(fmt.Sprintf(winTableDDL, table))
}

// winMCSpec is a MaxCompute window job of this stack, without a schedule,
// as deploy/examples/window/window-maxcompute-hourly.yaml: valueType
// STRING, partition pt=${yyyyMMddHH} at GMT+08:00, truncate, columns
// value ← __value__, kafka_partition ← __partition__, kafka_offset ←
// __offset__, kafka_ts ← __timestamp__ (the columns of winTableDDL; create
// the table with winCreateTable). Change fields before calling winJobOf.
func (s *stack) winMCSpec(name, topic, table string) *window.Spec {
	return &window.Spec{
		Name: name,
		Reader: window.ReaderSpec{
			Brokers: s.brokers, Topic: topic, ValueType: window.TypeString,
		},
		Writer: window.WriterSpec{MaxCompute: &window.MaxComputeWriter{
			Endpoint: s.mc.URL + "/api", TunnelEndpoint: s.mc.URL, Project: mcProject, Table: table, Credentials: credName,
			Partition: "pt=${yyyyMMddHH}", TimeZone: "GMT+08:00", Truncate: winBool(true),
			Columns: []connector.ColumnSpec{
				{Name: "value", Source: connector.SourceValue},
				{Name: "kafka_partition", Source: connector.SourcePartition},
				{Name: "kafka_offset", Source: connector.SourceOffset},
				{Name: "kafka_ts", Source: connector.SourceTimestamp},
			},
		}},
	}
}

// winOSSSpec is an OSS window job of this stack, without a schedule:
// objects of raw values, one a line (the default format), under prefix
// (window variables allowed, expanded at UTC unless the caller sets
// Writer.OSS.TimeZone). Change fields before calling winJobOf.
func (s *stack) winOSSSpec(name, topic, prefix string) *window.Spec {
	return &window.Spec{
		Name:   name,
		Reader: window.ReaderSpec{Brokers: s.brokers, Topic: topic},
		Writer: window.WriterSpec{OSS: &window.OSSWriter{
			Endpoint: s.oss.URL, Bucket: bucket, Credentials: credName, PathStyle: true, Prefix: prefix, TimeZone: "UTC",
		}},
	}
}

// winHourly adds an hourly schedule at GMT+08:00 to spec (cron "0 * * * *"),
// for WindowBackfill's windows and scheduled runs.
func winHourly(spec *window.Spec) *window.Spec {
	spec.Schedule = &window.ScheduleSpec{Cron: "0 * * * *", TimeZone: "GMT+08:00"}
	return spec
}

// winJobOf defaults and validates spec (as a worker will, with
// window.ParseJSON on its JSON) and returns the job.
func (s *stack) winJobOf(spec *window.Spec) winJob {
	s.t.Helper()
	spec.Default()
	raw := json.RawMessage(spec.JSON())
	parsed, err := window.ParseJSON(raw)
	require.NoError(s.t, err, "window job spec:\n%s", raw)
	return winJob{Spec: parsed, Raw: raw}
}

// winJobYAML parses a YAML (or JSON) window job document with window.Parse,
// as `starter` reads a file, and returns the job.
func (s *stack) winJobYAML(doc string) winJob {
	s.t.Helper()
	spec, err := window.Parse([]byte(doc))
	require.NoError(s.t, err, "window job spec:\n%s", doc)
	return s.winJobOf(spec)
}

// ---------------------------------------------------------------------------
// Producing

// winRec is a record produced by a test: where it landed and what it holds.
type winRec struct {
	Partition int32
	Offset    int64
	Key       string
	Value     string
	TS        time.Time
}

// winSeq makes winValue's values unique within the test binary.
var winSeq atomic.Int64

// winValue is a unique record value naming its topic, partition and
// timestamp: "<topic>|p<p>|<ts at GMT+08:00, ms>|<n>".
func winValue(topic string, p int32, ts time.Time) string {
	return fmt.Sprintf("%s|p%d|%s|%d", topic, p, ts.In(gmt8).Format("2006-01-02T15:04:05.000"), winSeq.Add(1))
}

// winProduceRecords produces recs synchronously (in order, per partition)
// and returns them with their offsets. Key and Value are taken as given.
func (s *stack) winProduceRecords(recs ...*kgo.Record) []winRec {
	s.t.Helper()
	res := s.producer.ProduceSync(context.Background(), recs...)
	require.NoError(s.t, res.FirstErr())
	out := make([]winRec, 0, len(res))
	for _, r := range res {
		out = append(out, winRec{Partition: r.Record.Partition, Offset: r.Record.Offset, Key: string(r.Record.Key),
			Value: string(r.Record.Value), TS: r.Record.Timestamp})
	}
	return out
}

// winProduceAt produces one record per timestamp to partition p of topic,
// in the order given (give them in non-decreasing order), each with a
// winValue value and key "k<offset order>", and returns them.
func (s *stack) winProduceAt(topic string, p int32, tss ...time.Time) []winRec {
	s.t.Helper()
	recs := make([]*kgo.Record, len(tss))
	for i, ts := range tss {
		recs[i] = &kgo.Record{Topic: topic, Partition: p, Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(winValue(topic, p, ts)), Timestamp: ts}
	}
	return s.winProduceRecords(recs...)
}

// winProduceValues produces values to partition p of topic, all stamped
// ts, and returns them.
func (s *stack) winProduceValues(topic string, p int32, ts time.Time, values ...string) []winRec {
	s.t.Helper()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: topic, Partition: p, Value: []byte(v), Timestamp: ts}
	}
	return s.winProduceRecords(recs...)
}

// winProduceSpread produces n records to every partition of topic, with
// timestamps spread evenly over [begin, end) (non-decreasing) and values
// winValue padded with '.' to size bytes, in chunks; it returns them.
func (s *stack) winProduceSpread(topic string, partitions int32, n, size int, begin, end time.Time) []winRec {
	s.t.Helper()
	var out []winRec
	step := end.Sub(begin) / time.Duration(n)
	for p := int32(0); p < partitions; p++ {
		for from := 0; from < n; from += 1000 {
			var recs []*kgo.Record
			for i := from; i < min(from+1000, n); i++ {
				ts := begin.Add(time.Duration(i) * step).Truncate(time.Millisecond)
				v := winValue(topic, p, ts)
				if len(v) < size {
					v += strings.Repeat(".", size-len(v))
				}
				recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(v), Timestamp: ts})
			}
			out = append(out, s.winProduceRecords(recs...)...)
		}
	}
	return out
}

// winIn are the records of recs stamped in [begin, end).
func winIn(recs []winRec, begin, end time.Time) []winRec {
	var out []winRec
	for _, r := range recs {
		if !r.TS.Before(begin) && r.TS.Before(end) {
			out = append(out, r)
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// Running

// winStart starts WindowLoad with input in (in.Spec is set from job) under
// the window's run id, workflows.WindowRunID(name, in.End), and returns
// the run.
func (s *stack) winStart(job winJob, in workflows.WindowInput) client.WorkflowRun {
	s.t.Helper()
	in.Spec = job.Raw
	run, err := s.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: workflows.WindowRunID(job.Name(), in.End), TaskQueue: workflows.TaskQueue,
	}, workflows.WindowLoadName, in)
	require.NoError(s.t, err)
	return run
}

// winRun runs WindowLoad for [begin, end) (as `starter window run` would:
// id WindowRunID, no position update) and waits for its result. The error
// is the workflow's; see winErrType.
func (s *stack) winRun(job winJob, begin, end time.Time) (workflows.WindowResult, error) {
	s.t.Helper()
	return s.winWait(s.winStart(job, workflows.WindowInput{Begin: begin, End: end}))
}

// winMustRun is winRun that requires the run to succeed.
func (s *stack) winMustRun(job winJob, begin, end time.Time) workflows.WindowResult {
	s.t.Helper()
	res, err := s.winRun(job, begin, end)
	require.NoError(s.t, err, "window [%s, %s) of %s", begin, end, job.Name())
	return res
}

// winWait waits (up to winTimeout) for run's result.
func (s *stack) winWait(run client.WorkflowRun) (workflows.WindowResult, error) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), winTimeout)
	defer cancel()
	var res workflows.WindowResult
	err := run.Get(ctx, &res)
	require.NoError(s.t, ctx.Err(), "window run %s did not close within %s; pending: %s", run.GetID(), winTimeout, s.winPending(run.GetID()))
	return res, err
}

// winResult waits until a workflow with id wid exists (a scheduled run is
// started by the server) and has closed, and returns the result of its
// latest run. Up to timeout in all.
func (s *stack) winResult(wid string, timeout time.Duration) (workflows.WindowResult, error) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		_, err := s.client.DescribeWorkflowExecution(ctx, wid, "")
		var nf *serviceerror.NotFound
		if err == nil {
			break
		}
		require.Truef(s.t, errors.As(err, &nf), "describe %s: %v", wid, err)
		select {
		case <-ctx.Done():
			s.t.Fatalf("no workflow %s within %s", wid, timeout)
		case <-time.After(200 * time.Millisecond):
		}
	}
	var res workflows.WindowResult
	err := s.client.GetWorkflow(ctx, wid, "").Get(ctx, &res)
	require.NoError(s.t, ctx.Err(), "window run %s did not close within %s; pending: %s", wid, timeout, s.winPending(wid))
	return res, err
}

// winBackfillID is the workflow id winBackfill gives a job's backfill.
func winBackfillID(name string) string { return "window-backfill-" + name }

// winStartBackfill starts WindowBackfill over [from, to) under
// winBackfillID and returns the run.
func (s *stack) winStartBackfill(job winJob, from, to time.Time) client.WorkflowRun {
	s.t.Helper()
	run, err := s.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: winBackfillID(job.Name()), TaskQueue: workflows.TaskQueue,
	}, workflows.WindowBackfillName, workflows.BackfillInput{Spec: job.Raw, From: from, To: to})
	require.NoError(s.t, err)
	return run
}

// winBackfill runs WindowBackfill over [from, to) and waits (up to
// winTimeout) for its result.
func (s *stack) winBackfill(job winJob, from, to time.Time) (workflows.BackfillProgress, error) {
	s.t.Helper()
	run := s.winStartBackfill(job, from, to)
	ctx, cancel := context.WithTimeout(context.Background(), winTimeout)
	defer cancel()
	var prog workflows.BackfillProgress
	err := run.Get(ctx, &prog)
	require.NoError(s.t, ctx.Err(), "backfill %s did not close within %s", run.GetID(), winTimeout)
	return prog, err
}

// winProgress queries a window run's progress (workflows.QueryProgress).
func (s *stack) winProgress(wid string) (workflows.WindowResult, error) {
	var res workflows.WindowResult
	v, err := s.client.QueryWorkflow(context.Background(), wid, "", workflows.QueryProgress)
	if err != nil {
		return res, err
	}
	return res, v.Get(&res)
}

// winErrType is the type of the outermost application error in err's
// chain, or "" when there is none. A workflow error that wraps an
// activity's (fmt.Errorf("...: %w")) reaches the client as an application
// error of type "wrapError" around it: see winErrTypes.
func winErrType(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Type()
	}
	return ""
}

// winErrTypes are the types of every application error in err's chain,
// outermost first (e.g. ["wrapError", "ErrorLimitExceeded"]).
func winErrTypes(err error) []string {
	var out []string
	for e := err; e != nil; e = errors.Unwrap(e) {
		if app, ok := e.(*temporal.ApplicationError); ok {
			out = append(out, app.Type())
		}
	}
	return out
}

// winActivity is a started, pending activity of a workflow.
type winActivity struct {
	ActivityID, Type, Identity string
	Attempt                    int32
	// Heartbeat is the raw JSON of the last heartbeat details, if any
	// (LoadWindowRange's activities.WindowProgress).
	Heartbeat string
}

// winStarted lists wid's pending activities in state started (a worker
// runs them).
func (s *stack) winStarted(wid string) []winActivity {
	s.t.Helper()
	desc, err := s.client.DescribeWorkflowExecution(context.Background(), wid, "")
	require.NoError(s.t, err)
	var out []winActivity
	for _, pa := range desc.GetPendingActivities() {
		if pa.GetState() != enumspb.PENDING_ACTIVITY_STATE_STARTED {
			continue
		}
		a := winActivity{ActivityID: pa.GetActivityId(), Type: pa.GetActivityType().GetName(), Identity: pa.GetLastWorkerIdentity(), Attempt: pa.GetAttempt()}
		if p := pa.GetHeartbeatDetails().GetPayloads(); len(p) > 0 {
			a.Heartbeat = string(p[0].GetData())
		}
		out = append(out, a)
	}
	return out
}

// winPending describes wid's pending activities, for failure messages.
func (s *stack) winPending(wid string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	desc, err := s.client.DescribeWorkflowExecution(ctx, wid, "")
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, pa := range desc.GetPendingActivities() {
		fmt.Fprintf(&b, "\n  %s %s %s attempt %d on %s, last failure: %.300s", pa.GetActivityId(), pa.GetActivityType().GetName(), pa.GetState(),
			pa.GetAttempt(), pa.GetLastWorkerIdentity(), pa.GetLastFailure().GetMessage())
	}
	return b.String()
}

// ---------------------------------------------------------------------------
// Reading MaxCompute through the SDK

// winRow is one table row read back: lower-case column name → value
// (string for STRING, int64 for BIGINT, time.Time for DATETIME and
// TIMESTAMP, nil for NULL, else the SDK's text). Partition columns are not
// included.
type winRow map[string]any

// winMCRows reads every row of partition pt ("pt=2024010109"; levels
// joined by ',' or '/') of table through an SDK tunnel download session,
// as `select * from table where ...` would. A partition that does not
// exist fails the test; check winMCPartitions first.
func (s *stack) winMCRows(table, pt string) []winRow {
	s.t.Helper()
	tt := tunnel.NewTunnel(s.mcODPS(), s.mc.URL)
	pt = strings.ReplaceAll(pt, "/", ",")
	ds, err := tt.CreateDownloadSession(mcProject, table, tunnel.SessionCfg.WithPartitionKey(pt))
	require.NoError(s.t, err, "download session on %s %s", table, pt)
	cols := ds.Schema().Columns
	n := ds.RecordCount()
	out := make([]winRow, 0, n)
	if n == 0 {
		return out
	}
	r, err := ds.OpenRecordReader(0, n, nil)
	require.NoError(s.t, err)
	defer r.Close()
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(s.t, err, "read %s %s", table, pt)
		row := winRow{}
		for i, d := range rec {
			if i < len(cols) {
				row[strings.ToLower(cols[i].Name)] = winGo(d)
			}
		}
		out = append(out, row)
	}
	require.Len(s.t, out, n, "rows of %s %s", table, pt)
	return out
}

func winGo(d data.Data) any {
	switch v := d.(type) {
	case nil, data.NullData:
		return nil
	case data.String:
		return string(v)
	case *data.String:
		return string(*v)
	case data.BigInt:
		return int64(v)
	case data.Binary:
		return string(v)
	case data.DateTime:
		return v.Time()
	case data.Timestamp:
		return v.Time()
	}
	return d.String()
}

// winMCPartitions lists table's partitions through the SDK, sorted, as
// "pt=2024010109" (levels joined by '/').
func (s *stack) winMCPartitions(table string) []string {
	s.t.Helper()
	ps, err := s.mcODPS().Table(table).GetPartitions()
	require.NoError(s.t, err, "partitions of %s", table)
	out := make([]string, len(ps))
	for i := range ps {
		out[i] = ps[i].Value()
	}
	sort.Strings(out)
	return out
}

// winRecKey identifies a record in a row of winTableDDL's shape:
// "p<partition>@<offset> <value> <timestamp ms>".
func winRecKey(p, offset int64, value string, tsMillis int64) string {
	return fmt.Sprintf("p%d@%d %s %d", p, offset, value, tsMillis)
}

// winRequireRows asserts that rows (winTableDDL's shape) hold exactly
// want, each once: value, Kafka partition, offset and timestamp (epoch
// milliseconds, Kafka's own) — no row missing, duplicated or extra.
func winRequireRows(t *testing.T, rows []winRow, want []winRec, what string) {
	t.Helper()
	got := map[string]int{}
	for _, r := range rows {
		p, _ := r["kafka_partition"].(int64)
		o, _ := r["kafka_offset"].(int64)
		v, _ := r["value"].(string)
		ts, ok := r["kafka_ts"].(int64)
		if !ok {
			ts = -1
		}
		got[winRecKey(p, o, v, ts)]++
	}
	exp := map[string]int{}
	for _, r := range want {
		exp[winRecKey(int64(r.Partition), r.Offset, r.Value, r.TS.UnixMilli())]++
	}
	winRequireCounts(t, got, exp, what)
}

// winRequireValues asserts that the values got (value → times present)
// are exactly those of want, each once.
func winRequireValues(t *testing.T, got map[string]int, want []winRec, what string) {
	t.Helper()
	exp := map[string]int{}
	for _, r := range want {
		exp[r.Value]++
	}
	winRequireCounts(t, got, exp, what)
}

// winRequireCounts compares two multisets and reports the first few
// differences (missing, extra, wrong count) with the totals.
func winRequireCounts(t *testing.T, got, want map[string]int, what string) {
	t.Helper()
	var diffs []string
	for k, n := range want {
		if got[k] != n {
			diffs = append(diffs, fmt.Sprintf("%q: want %d, got %d", k, n, got[k]))
		}
	}
	for k, n := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%q: want 0, got %d", k, n))
		}
	}
	if len(diffs) == 0 {
		return
	}
	slices.Sort(diffs)
	total := func(m map[string]int) (n int) {
		for _, c := range m {
			n += c
		}
		return n
	}
	t.Fatalf("%s: %d differences (want %d records, got %d); first: \n  %s", what, len(diffs), total(want), total(got),
		strings.Join(diffs[:min(len(diffs), 20)], "\n  "))
}

// winRowsKeys counts rows (winTableDDL's shape) by their full content, to
// compare two reads of one partition.
func winRowsKeys(rows []winRow) map[string]int {
	out := map[string]int{}
	for _, r := range rows {
		out[fmt.Sprintf("%v|%v|%v|%v", r["kafka_partition"], r["kafka_offset"], r["value"], r["kafka_ts"])]++
	}
	return out
}

// winValues counts the "value" column of rows.
func winValues(rows []winRow) map[string]int {
	out := map[string]int{}
	for _, r := range rows {
		v, _ := r["value"].(string)
		out[v]++
	}
	return out
}

// ---------------------------------------------------------------------------
// Reading OSS through the SDK

// winObject is a data object of a window prefix.
type winObject struct {
	Key  string
	Body []byte
}

// winOSSObjects reads every data object under prefix (a window's prefix,
// without the trailing '/') through the OSS SDK, sorted by key, leaving
// out the meta objects (.oss_meta_file_*) and _SUCCESS.
func (s *stack) winOSSObjects(prefix string) []winObject {
	s.t.Helper()
	b := s.exBucket()
	var out []winObject
	for _, k := range s.exKeys(prefix + "/") {
		base := path.Base(k)
		if strings.HasPrefix(base, ".oss_meta_file") || base == "_SUCCESS" {
			continue
		}
		rc, err := b.GetObject(k)
		require.NoError(s.t, err, "get %s", k)
		body, err := io.ReadAll(rc)
		rc.Close()
		require.NoError(s.t, err)
		out = append(out, winObject{Key: k, Body: body})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// winLines splits an object's body into its lines (gunzipped first when
// gz), leaving out a final empty line.
func winLines(t *testing.T, body []byte, gz bool) []string {
	t.Helper()
	if gz {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		require.NoError(t, err)
		body, err = io.ReadAll(zr)
		require.NoError(t, err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	require.NoError(t, sc.Err())
	return out
}

// winOSSValues counts the lines of every data object under prefix (raw
// values, one a line: the default format).
func (s *stack) winOSSValues(prefix string) map[string]int {
	s.t.Helper()
	out := map[string]int{}
	for _, o := range s.winOSSObjects(prefix) {
		for _, l := range winLines(s.t, o.Body, false) {
			out[l]++
		}
	}
	return out
}

// winSuccess is the _SUCCESS object of an OSS window, as written.
type winSuccess struct {
	Job         string    `json:"job"`
	Topic       string    `json:"topic"`
	Begin       time.Time `json:"begin"`
	End         time.Time `json:"end"`
	Records     int64     `json:"records"`
	PublishedBy string    `json:"publishedBy"`
	Partitions  []struct {
		Partition int32 `json:"partition"`
		First     int64 `json:"first"`
		End       int64 `json:"end"`
		Records   int64 `json:"records"`
		Objects   []struct {
			Key     string `json:"key"`
			First   int64  `json:"first"`
			End     int64  `json:"end"`
			Records int64  `json:"records"`
		} `json:"objects"`
	} `json:"partitions"`
}

// winOSSSuccess reads prefix's _SUCCESS through the OSS SDK; ok is false
// when there is none.
func (s *stack) winOSSSuccess(prefix string) (succ winSuccess, ok bool) {
	s.t.Helper()
	b := s.exBucket()
	rc, err := b.GetObject(prefix + "/_SUCCESS")
	var se alioss.ServiceError
	if errors.As(err, &se) && se.StatusCode == 404 {
		return succ, false
	}
	require.NoError(s.t, err)
	defer rc.Close()
	body, err := io.ReadAll(rc)
	require.NoError(s.t, err)
	require.NoError(s.t, json.Unmarshal(body, &succ), "_SUCCESS of %s:\n%s", prefix, body)
	return succ, true
}

// ---------------------------------------------------------------------------
// Kafka

// winTopicRecords reads every record of every partition of topic (the
// dead-letter topic of a job: its Settings.DeadLetterTopic), waiting up to
// 30s for at least want records.
func (s *stack) winTopicRecords(topic string, want int) []*kgo.Record {
	s.t.Helper()
	kc, err := kafka.NewClient(kgo.SeedBrokers(s.brokers...))
	require.NoError(s.t, err)
	defer kc.Close()
	var bounds map[int32]kafka.Bounds
	require.Eventually(s.t, func() bool {
		b, err := kc.Bounds(context.Background(), topic)
		if err != nil {
			return false
		}
		n := int64(0)
		for _, pb := range b {
			n += pb.End - pb.Start
		}
		bounds = b
		return n >= int64(want)
	}, 30*time.Second, 100*time.Millisecond, "topic %s should hold %d records", topic, want)
	var out []*kgo.Record
	for p, b := range bounds {
		require.NoError(s.t, kc.ReadRange(context.Background(), topic, p, b.Start, b.End, kafka.ReadOptions{}, func(r *kgo.Record) (bool, error) {
			out = append(out, r)
			return true, nil
		}))
	}
	return out
}

// winGroupOffsets are the offsets committed in the job's consumer group
// (window-<name>, what reader.begin seekToLast reads), per partition of
// its topic, read with kadm.
func (s *stack) winGroupOffsets(job winJob) map[int32]int64 {
	s.t.Helper()
	resp, err := kadm.NewClient(s.producer).FetchOffsets(context.Background(), job.Spec.Group())
	require.NoError(s.t, err)
	out := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == job.Spec.Reader.Topic && o.Err == nil {
			out[o.Partition] = o.At
		}
	})
	return out
}
