package tests

import (
	"context"
	"encoding/json"
	"fmt"
	workflowservice "go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/transform"
	"github.com/dumpflow/dumpflow/window"
	"github.com/dumpflow/dumpflow/workflows"
)

// End-to-end tests of window jobs (seed 003): WindowLoad and WindowBackfill
// on the local stack, asserting on the data read back through the SDKs
// (helpers in window_harness_test.go).

// winHourRecords produces, to partition 0 of topic, records around and
// inside the hours [first, first+hours) at GMT+08:00: for every boundary
// of those hours and the one after the last, one record 1ms before, one
// exactly on it and one 1ms after, plus one at half past each hour; and,
// to partition 1, a sparser set that leaves the second hour empty. It
// returns everything produced, in timestamp order per partition.
func (s *stack) winHourRecords(topic string, first time.Time, hours int) []winRec {
	s.t.Helper()
	var p0 []time.Time
	for h := 0; h <= hours; h++ {
		at := first.Add(time.Duration(h) * time.Hour)
		p0 = append(p0, winAround(at)...)
		if h < hours {
			p0 = append(p0, at.Add(30*time.Minute))
		}
	}
	recs := s.winProduceAt(topic, 0, p0...)
	last := first.Add(time.Duration(hours) * time.Hour)
	p1 := []time.Time{first.Add(-time.Millisecond), first, first.Add(15 * time.Minute)}
	if hours > 2 {
		p1 = append(p1, first.Add(2*time.Hour), last.Add(-time.Millisecond))
	}
	p1 = append(p1, last)
	return append(recs, s.winProduceAt(topic, 1, p1...)...)
}

// TestWindowThreeHoursBackfilled backfills three hourly windows at
// GMT+08:00 with WindowBackfill over [09:00, 12:00): each lands in its own
// partition pt=yyyyMMddHH holding exactly the records stamped in that hour
// (boundary records in the later window, none from 08:59:59.999 or
// 12:00:00.000), each once; the children are WindowLoad runs with the ids
// workflows.WindowRunID gives, children of the backfill.
func TestWindowThreeHoursBackfilled(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, table = "clicks", "clicks_hourly"
	s.createTopic(topic, 2)
	s.winCreateTable(table)
	from := winTime(t, "2024-01-01 09:00:00.000")
	to := from.Add(3 * time.Hour)
	recs := s.winHourRecords(topic, from, 3)

	job := s.winJobOf(winHourly(s.winMCSpec("clicks-hourly", topic, table)))
	prog, err := s.winBackfill(job, from, to)
	require.NoError(t, err)
	require.Equal(t, 3, prog.Done)
	require.Equal(t, 3, prog.Total)

	pts := []string{"pt=2024010109", "pt=2024010110", "pt=2024010111"}
	require.Equal(t, pts, s.winMCPartitions(table), "one partition per window, none for the neighbouring hours")
	for i, pt := range pts {
		begin := from.Add(time.Duration(i) * time.Hour)
		end := begin.Add(time.Hour)
		want := winIn(recs, begin, end)
		require.NotEmpty(t, want)
		winRequireRows(t, s.winMCRows(table, pt), want, pt)

		// The child that loaded it: id WindowRunID, completed, the
		// backfill's child.
		wid := workflows.WindowRunID(job.Name(), end)
		desc, err := s.client.DescribeWorkflowExecution(context.Background(), wid, "")
		require.NoError(t, err, "child %s", wid)
		info := desc.GetWorkflowExecutionInfo()
		require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, info.GetStatus())
		require.Equal(t, workflows.WindowLoadName, info.GetType().GetName())
		require.Equal(t, winBackfillID(job.Name()), info.GetParentExecution().GetWorkflowId())
		var res workflows.WindowResult
		require.NoError(t, s.client.GetWorkflow(context.Background(), wid, "").Get(context.Background(), &res))
		require.Equal(t, pt, res.Destination)
		require.True(t, res.Begin.Equal(begin) && res.End.Equal(end), "window %s..%s", res.Begin, res.End)
		require.Equal(t, int64(len(want)), res.Records)
		require.Zero(t, res.Errors)
		require.False(t, res.AlreadyLoaded)
	}
	require.Equal(t, "window-clicks-hourly-2024-01-01T02:00:00Z", workflows.WindowRunID(job.Name(), from.Add(time.Hour)))
}

// TestWindowBackfillContinuesAsNew: a backfill longer than a run's batch
// (here 2 windows a run; 200 by default, so a year of hourly windows, 8760,
// is 44 runs) continues as new and carries where it is: 5 hourly windows
// take 3 runs of the backfill, each window is loaded once into its own
// partition, exactly, and the result counts all 5.
func TestWindowBackfillContinuesAsNew(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, table = "views", "views_hourly"
	s.createTopic(topic, 2)
	s.winCreateTable(table)
	from := winTime(t, "2024-01-01 09:00:00.000")
	const hours = 5
	to := from.Add(hours * time.Hour)
	recs := s.winHourRecords(topic, from, hours)

	job := s.winJobOf(winHourly(s.winMCSpec("views-hourly", topic, table)))
	ctx := context.Background()
	run, err := s.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: winBackfillID(job.Name()), TaskQueue: workflows.TaskQueue},
		workflows.WindowBackfillName, workflows.BackfillInput{Spec: job.Raw, From: from, To: to, Batch: 2})
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, winTimeout)
	defer cancel()
	var prog workflows.BackfillProgress
	require.NoError(t, run.Get(wctx, &prog)) // follows the continued runs
	require.Equal(t, hours, prog.Done)
	require.Equal(t, hours, prog.Total)
	require.NotNil(t, prog.Last)
	require.True(t, prog.Last.End.Equal(to), "the last window loaded ends at %s", prog.Last.End)

	// Three runs of the backfill: two continued as new, one completed.
	require.Eventually(t, func() bool {
		resp, err := s.client.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
			Namespace: s.temporal.GetDefaultNamespace(), Query: fmt.Sprintf("WorkflowId = '%s'", run.GetID()),
		})
		return err == nil && resp.GetCount() == 3
	}, 30*time.Second, 500*time.Millisecond, "3 runs of %s in visibility", run.GetID())

	var pts []string
	for h := range hours {
		begin := from.Add(time.Duration(h) * time.Hour)
		pt := "pt=" + begin.Format("2006010215")
		pts = append(pts, pt)
		want := winIn(recs, begin, begin.Add(time.Hour))
		require.NotEmpty(t, want)
		winRequireRows(t, s.winMCRows(table, pt), want, pt)
	}
	require.Equal(t, pts, s.winMCPartitions(table))
}

// TestWindowMissingTable: a window job does not create its table. A run
// against a missing one fails at once (not retried), naming the table, the
// columns the job fills and its partition, and loads nothing.
func TestWindowMissingTable(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic = "orders"
	s.createTopic(topic, 1)
	from := winTime(t, "2024-01-01 09:00:00.000")
	s.winProduceAt(topic, 0, from.Add(time.Minute))
	job := s.winJobOf(s.winMCSpec("orders-hourly", topic, "no_such_table"))
	_, err := s.winRun(job, from, from.Add(time.Hour))
	require.Error(t, err)
	require.Contains(t, winErrTypes(err), "NoSuchTable", "%v", err)
	require.Contains(t, err.Error(), "table dumpflow.no_such_table does not exist: a window job does not create tables; "+
		"create it with the columns writer.maxcompute.columns fills (value, kafka_partition, kafka_offset, kafka_ts), "+
		`partitioned by the keys of writer.maxcompute.partition "pt=${yyyyMMddHH}"`)
}

// TestWindowOverwriteRerunIdentical: with truncate: true a re-run of a
// window replaces its partition with the window's records as Kafka holds
// them then. The hour [10:00, 11:00) is loaded while its last records are
// still to come; they arrive (with records on and after 11:00), and the
// re-run's partition holds exactly the hour's records — the earlier ones
// once, the new ones, nothing from 11:00 on. A third, identical re-run
// leaves identical rows.
func TestWindowOverwriteRerunIdentical(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, table = "views", "views_hourly"
	s.createTopic(topic, 2)
	s.winCreateTable(table)
	begin := winTime(t, "2024-01-01 10:00:00.000")
	end := begin.Add(time.Hour)
	var recs []winRec
	for p := int32(0); p < 2; p++ {
		recs = append(recs, s.winProduceAt(topic, p, append(winAround(begin), begin.Add(20*time.Minute+time.Duration(p)*time.Second))...)...)
	}
	job := s.winJobOf(s.winMCSpec("views-hourly", topic, table))
	require.True(t, *job.Spec.Writer.MaxCompute.Truncate)

	res := s.winMustRun(job, begin, end)
	require.Equal(t, "pt=2024010110", res.Destination)
	first := winIn(recs, begin, end)
	require.Len(t, first, 6)
	require.Equal(t, int64(len(first)), res.Records)
	winRequireRows(t, s.winMCRows(table, res.Destination), first, "first run")

	// The rest of the hour arrives, and the next hour begins.
	for p := int32(0); p < 2; p++ {
		recs = append(recs, s.winProduceAt(topic, p, begin.Add(40*time.Minute), end.Add(-time.Millisecond), end, end.Add(time.Millisecond))...)
	}
	res2 := s.winMustRun(job, begin, end)
	require.Equal(t, res.Destination, res2.Destination)
	require.NotEqual(t, res.Session, res2.Session, "a re-run loads the window into a new overwrite session")
	want := winIn(recs, begin, end)
	require.Len(t, want, 10)
	require.Equal(t, int64(len(want)), res2.Records)
	rows2 := s.winMCRows(table, res.Destination)
	winRequireRows(t, rows2, want, "re-run after more records")

	// An identical re-run: the same rows.
	res3 := s.winMustRun(job, begin, end)
	require.Equal(t, res2.Records, res3.Records)
	rows3 := s.winMCRows(table, res.Destination)
	require.Equal(t, winRowsKeys(rows2), winRowsKeys(rows3), "an identical re-run leaves identical rows")
	winRequireRows(t, rows3, want, "identical re-run")
	require.Equal(t, []string{"pt=2024010110"}, s.winMCPartitions(table))
}

// TestWindowAppendRerunAddsNothing: with truncate: false a re-run of a
// loaded window finds it loaded (AlreadyLoaded) and adds nothing, even
// though more records of the hour arrived since; the next window is still
// loaded, into its own partition.
func TestWindowAppendRerunAddsNothing(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, table = "taps", "taps_hourly"
	s.createTopic(topic, 2)
	s.winCreateTable(table)
	begin := winTime(t, "2024-01-01 10:00:00.000")
	end := begin.Add(time.Hour)
	var recs []winRec
	for p := int32(0); p < 2; p++ {
		recs = append(recs, s.winProduceAt(topic, p, append(winAround(begin), begin.Add(25*time.Minute))...)...)
	}
	spec := s.winMCSpec("taps-hourly", topic, table)
	spec.Writer.MaxCompute.Truncate = winBool(false)
	job := s.winJobOf(spec)

	res := s.winMustRun(job, begin, end)
	require.False(t, res.AlreadyLoaded)
	first := winIn(recs, begin, end)
	require.Equal(t, int64(len(first)), res.Records)
	rows := s.winMCRows(table, res.Destination)
	winRequireRows(t, rows, first, "first run")

	for p := int32(0); p < 2; p++ {
		recs = append(recs, s.winProduceAt(topic, p, begin.Add(50*time.Minute), end.Add(-time.Millisecond), end, end.Add(time.Millisecond))...)
	}
	again := s.winMustRun(job, begin, end)
	require.True(t, again.AlreadyLoaded, "an append re-run finds the window loaded")
	require.Zero(t, again.Records)
	require.Equal(t, res.Destination, again.Destination)
	rows2 := s.winMCRows(table, res.Destination)
	require.Equal(t, winRowsKeys(rows), winRowsKeys(rows2), "the re-run added nothing")
	winRequireRows(t, rows2, first, "after the re-run")

	// The next hour is a window of its own: loaded, not found loaded.
	next := s.winMustRun(job, end, end.Add(time.Hour))
	require.False(t, next.AlreadyLoaded)
	require.Equal(t, "pt=2024010111", next.Destination)
	winRequireRows(t, s.winMCRows(table, next.Destination), winIn(recs, end, end.Add(time.Hour)), "next hour")
	require.Equal(t, []string{"pt=2024010110", "pt=2024010111"}, s.winMCPartitions(table))
}

// winOrderTableDDL is TestWindowErrorLimit's table: two columns from JSON
// paths of the value and the (transformed) value itself.
const winOrderTableDDL = "CREATE TABLE %s (id BIGINT, qty BIGINT, value STRING) PARTITIONED BY (pt STRING);"

// winOrdersSpec is TestWindowErrorLimit's job: values are JSON orders
// whose qty is cast to an integer, loaded hourly at GMT+08:00.
func (s *stack) winOrdersSpec(name, topic, table string, limit int) *window.Spec {
	spec := s.winMCSpec(name, topic, table)
	spec.Writer.MaxCompute.Columns = []connector.ColumnSpec{{Name: "id"}, {Name: "qty"}, {Name: "value", Source: connector.SourceValue}}
	spec.Transforms = []transform.StepSpec{{Type: "cast", Fields: []string{"qty"}, As: "int"}}
	spec.Settings.ErrorLimit.Record = limit
	return spec
}

// winOrder is a good order's value, and the value the table holds once
// qty is cast.
func winOrder(id, qty int) (in, out string) {
	return fmt.Sprintf(`{"id":%d,"qty":"%d"}`, id, qty), fmt.Sprintf(`{"id":%d,"qty":%d}`, id, qty)
}

// winBadOrders are records that fail, one per way a window job's record
// can fail: a value that is not UTF-8 (valueType STRING: decode), a qty
// the cast step cannot convert (transform), an id the BIGINT column cannot
// take (the writer's conversion).
var winBadOrders = []struct{ value, stage, err string }{
	{"\xff\xfe{not utf-8", "decode", "STRING needs UTF-8 text"},
	{`{"id":900,"qty":"many"}`, "transform", `cast field "qty" to int: "many" is not a number`},
	{`{"id":"x901","qty":"1"}`, "convert", "column id BIGINT: not a 64-bit integer"},
}

// TestWindowErrorLimit: records that fail — to decode, in a transform
// step, in a column's conversion — go to the dead-letter topic with
// headers naming their origin and the error. Within settings.errorLimit
// .record the run succeeds and the partition holds exactly the good
// records; over it the run fails with ErrorLimitExceeded and publishes
// nothing: a partition loaded before is unchanged (though good records
// arrived since), and a window never loaded has no partition. Both the
// per-range check (one partition over the limit) and the window's total
// (each partition within it, the sum over) are exercised.
func TestWindowErrorLimit(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, table = "orders", "orders_hourly"
	s.createTopic(topic, 2)
	s.mcExec(fmt.Sprintf(winOrderTableDDL, table))
	h10 := winTime(t, "2024-01-01 10:00:00.000")
	h11, h12 := h10.Add(time.Hour), h10.Add(2*time.Hour)

	// Hour 10: good orders around the boundaries, two bad records in
	// partition 0 and one in partition 1.
	type order struct {
		rec winRec
		out string // the value the table holds, "" for a bad record
		bad int    // index in winBadOrders + 1
	}
	var orders []order
	id := 0
	produce := func(p int32, ts time.Time, bad int) {
		var in, out string
		if bad > 0 {
			in = winBadOrders[bad-1].value
		} else {
			id++
			in, out = winOrder(id, id%7)
		}
		r := s.winProduceValues(topic, p, ts, in)[0]
		orders = append(orders, order{rec: r, out: out, bad: bad})
	}
	produce(0, h10.Add(-time.Millisecond), 0) // hour 9
	produce(0, h10, 0)
	produce(0, h10.Add(time.Millisecond), 1)
	produce(0, h10.Add(10*time.Minute), 0)
	produce(0, h10.Add(20*time.Minute), 3)
	produce(1, h10, 0)
	produce(1, h10.Add(5*time.Minute), 2)
	produce(1, h10.Add(30*time.Minute), 0)
	wantRows := func(from, to time.Time) (good []order, bad []order) {
		for _, o := range orders {
			if o.rec.TS.Before(from) || !o.rec.TS.Before(to) {
				continue
			}
			if o.bad > 0 {
				bad = append(bad, o)
			} else {
				good = append(good, o)
			}
		}
		return good, bad
	}
	requireOrders := func(pt string, good []order, what string) {
		t.Helper()
		got := map[string]int{}
		for _, r := range s.winMCRows(table, pt) {
			got[fmt.Sprintf("%v %v %v", r["id"], r["qty"], r["value"])]++
		}
		want := map[string]int{}
		for _, o := range good {
			var id, qty int
			_, err := fmt.Sscanf(o.rec.Value, `{"id":%d,"qty":"%d"}`, &id, &qty)
			require.NoError(t, err)
			want[fmt.Sprintf("%d %d %s", id, qty, o.out)]++
		}
		winRequireCounts(t, got, want, what)
	}

	// Within the limit (3 failed, limit 3).
	ok := s.winJobOf(s.winOrdersSpec("orders-tolerant", topic, table, 3))
	res := s.winMustRun(ok, h10, h11)
	good, bad := wantRows(h10, h11)
	require.Len(t, bad, 3)
	require.Equal(t, int64(3), res.Errors)
	require.Equal(t, int64(len(good)), res.Records)
	requireOrders("pt=2024010110", good, "within the limit")

	dls := s.winTopicRecords(ok.Spec.Settings.DeadLetterTopic, 3)
	require.Len(t, dls, 3, "each failed record once in %s", ok.Spec.Settings.DeadLetterTopic)
	byOffset := map[string]*kgo.Record{}
	for _, dl := range dls {
		h := headers(dl)
		byOffset[h[kafka.HeaderPartition]+"@"+h[kafka.HeaderOffset]] = dl
	}
	for _, o := range bad {
		dl := byOffset[fmt.Sprintf("%d@%d", o.rec.Partition, o.rec.Offset)]
		require.NotNil(t, dl, "dead letter of partition %d offset %d (%q)", o.rec.Partition, o.rec.Offset, o.rec.Value)
		b := winBadOrders[o.bad-1]
		require.Equal(t, o.rec.Value, string(dl.Value), "a dead letter holds the record as it came from Kafka")
		h := headers(dl)
		require.Equal(t, topic, h[kafka.HeaderTopic])
		require.Equal(t, "window-"+ok.Name(), h[kafka.HeaderConnector])
		require.Equal(t, fmt.Sprint(o.rec.Partition), h[kafka.HeaderPartition])
		require.Equal(t, fmt.Sprint(o.rec.Offset), h[kafka.HeaderOffset])
		require.Equal(t, b.stage, h[kafka.HeaderStage], "stage of %q", b.value)
		require.Contains(t, h[kafka.HeaderError], b.err, "error of %q", b.value)
		t.Logf("dead letter of %q: stage %s, error %q", b.value, h[kafka.HeaderStage], h[kafka.HeaderError])
	}

	// Good orders of hour 10 arrive late, and hour 11 comes with three
	// bad records, all in partition 1.
	produce(0, h10.Add(50*time.Minute), 0)
	produce(1, h10.Add(55*time.Minute), 0)
	produce(0, h11, 0)
	produce(1, h11.Add(time.Millisecond), 1)
	produce(1, h11.Add(time.Minute), 2)
	produce(1, h11.Add(2*time.Minute), 3)
	produce(1, h11.Add(3*time.Minute), 0)
	produce(0, h12, 0)

	// Over the limit (limit 2). Hour 10: 2 + 1 failed, no range over
	// the limit, the window's total is.
	strict := s.winJobOf(s.winOrdersSpec("orders-strict", topic, table, 2))
	before := s.winMCRows(table, "pt=2024010110")
	_, err := s.winRun(strict, h10, h11)
	require.Error(t, err)
	require.Contains(t, winErrTypes(err), "ErrorLimitExceeded", "%v", err)
	after := s.winMCRows(table, "pt=2024010110")
	require.ElementsMatch(t, before, after, "nothing published: the partition is unchanged")
	requireOrders("pt=2024010110", good, "after the failed run")

	// Hour 11: three failed in one range, more than the limit at once.
	_, err = s.winRun(strict, h11, h12)
	require.Error(t, err)
	require.Contains(t, winErrTypes(err), "ErrorLimitExceeded", "%v", err)
	// The window's upload session was created on its partition before
	// the load (the tunnel needs the partition to exist: PrepareWindow
	// creates it), and never committed: the partition may exist, but
	// holds no row.
	if pts := s.winMCPartitions(table); slices.Contains(pts, "pt=2024010111") {
		require.Empty(t, s.winMCRows(table, "pt=2024010111"), "the failed window published no row")
		t.Logf("the failed window's partition pt=2024010111 exists, empty (created for its upload session)")
	}
	require.Contains(t, s.winMCPartitions(table), "pt=2024010110")
	strictDL := s.winTopicRecords(strict.Spec.Settings.DeadLetterTopic, 6)
	require.GreaterOrEqual(t, len(strictDL), 6, "the failed runs' records are in the dead-letter topic too")

	// Within the limit, hour 11 loads.
	res11 := s.winMustRun(ok, h11, h12)
	good11, bad11 := wantRows(h11, h12)
	require.Len(t, bad11, 3)
	require.Equal(t, int64(3), res11.Errors)
	requireOrders("pt=2024010111", good11, "hour 11 within the limit")
}

// winSeedYAML is seed 003's job shape, written as
// deploy/examples/window/window-maxcompute-daily.yaml is: the value column
// only, a daily partition pt=${bizdate}, truncate, run by cron at
// Beijing time. %s: the broker, the MaxCompute endpoint.
const winSeedYAML = `
# seed 003: DataWorks Kafka Reader -> MaxCompute Writer, daily.
name: seed-daily
reader:
  brokers: ["%s"]
  topic: seed
  valueType: STRING
writer:
  maxcompute:
    endpoint: %s/api
    project: dumpflow
    table: kafka_seed
    credentials: local
    partition: pt=${bizdate}
    truncate: true
    columns:
      - {name: value, source: __value__}
settings:
  errorLimit:
    record: 0
schedule:
  cron: "0 0 * * *"
  delay: 30m
  timeZone: Asia/Shanghai
`

// TestWindowSeed003Shape runs seed 003's job shape end to end from its
// YAML (the tunnel endpoint asked of the service, as in the example): the
// day 2024-01-01 at Beijing time, backfilled, lands in pt=20240101 (the
// business date) holding exactly the day's values — the one at 00:00:00.000
// included, the ones at 23:59:59.999 the day before and at 00:00:00.000
// the day after not — in the table's single column; a re-run leaves the
// same values.
func TestWindowSeed003Shape(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, table = "seed", "kafka_seed"
	s.createTopic(topic, 3)
	s.mcExec("CREATE TABLE " + table + " (value STRING) PARTITIONED BY (pt STRING);")
	day := winTime(t, "2024-01-01 00:00:00.000")
	next := day.AddDate(0, 0, 1)
	var recs []winRec
	for p := int32(0); p < 3; p++ {
		tss := winAround(day)
		if p != 1 { // partition 1: only the first two records of the day
			tss = append(tss, day.Add(12*time.Hour+time.Duration(p)*time.Minute), next.Add(-time.Millisecond))
		}
		recs = append(recs, s.winProduceAt(topic, p, append(tss, next, next.Add(time.Millisecond))...)...)
	}

	job := s.winJobYAML(fmt.Sprintf(winSeedYAML, s.brokers[0], s.mc.URL))
	require.Equal(t, "pt=${bizdate}", job.Spec.Writer.MaxCompute.Partition)
	require.Empty(t, job.Spec.Writer.MaxCompute.TunnelEndpoint)
	prog, err := s.winBackfill(job, day, next)
	require.NoError(t, err)
	require.Equal(t, 1, prog.Done)
	require.NotNil(t, prog.Last)
	require.Equal(t, "pt=20240101", prog.Last.Destination)

	want := winIn(recs, day, next)
	require.Len(t, want, 2+4+4)
	require.Equal(t, []string{"pt=20240101"}, s.winMCPartitions(table))
	rows := s.winMCRows(table, "pt=20240101")
	for _, r := range rows {
		require.Len(t, r, 1, "the table's only column: %v", r)
	}
	winRequireValues(t, winValues(rows), want, "pt=20240101")

	// A re-run (by hand, the same window): the same values.
	res := s.winMustRun(job, day, next)
	require.Equal(t, "pt=20240101", res.Destination)
	winRequireValues(t, winValues(s.winMCRows(table, "pt=20240101")), want, "pt=20240101 after a re-run")
}

// winOSSYAML is deploy/examples/window/window-oss-daily.yaml with this
// stack's addresses (%s: the broker, the OSS endpoint).
const winOSSYAML = `
name: demo-oss-daily
reader:
  brokers: ["%s"]
  topic: demo
writer:
  oss:
    endpoint: %s
    bucket: dumpflow
    credentials: local
    pathStyle: true
    prefix: demo/${yyyy}/${MM}/${dd}
    timeZone: UTC
    format:
      type: jsonl
      compression: gzip
schedule:
  cron: "0 0 * * *"
  delay: 1h
  timeZone: UTC
  catchupWindow: 72h
  pauseOnFailure: true
`

// winEnvelope is a line of a jsonl object (format/doc.go).
type winEnvelope struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Timestamp string `json:"timestamp"`
	Value     string `json:"value"`
}

// TestWindowOSS runs the OSS daily example: the day 2024-01-01 (UTC) goes
// under demo/2024/01/01 as jsonl.gz objects holding exactly the day's
// records, each once, with their partition, offset and timestamp; the
// _SUCCESS object lists every data object with its offset range (the
// ranges of each partition tile the window's range) and the counts. A
// re-run of the published window does nothing, and the re-run of a window
// whose first run failed before publishing clears what that run left.
func TestWindowOSS(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic = "demo"
	s.createTopic(topic, 2)
	day := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	next := day.AddDate(0, 0, 1)
	var recs []winRec
	for p := int32(0); p < 2; p++ {
		tss := append(winAround(day), day.Add(6*time.Hour))
		if p == 0 { // partition 1's day is still open: nothing at or after its end yet
			tss = append(tss, winAround(next)...)
		} else {
			tss = append(tss, next.Add(-time.Millisecond))
		}
		recs = append(recs, s.winProduceAt(topic, p, tss...)...)
	}
	job := s.winJobYAML(fmt.Sprintf(winOSSYAML, s.brokers[0], s.oss.URL))
	res := s.winMustRun(job, day, next)
	const prefix = "demo/2024/01/01"
	require.Equal(t, prefix, res.Destination)
	want := winIn(recs, day, next)
	require.Len(t, want, 8)
	require.Equal(t, int64(len(want)), res.Records)

	read := func() (map[string]int, []string) {
		got := map[string]int{}
		var keys []string
		for _, o := range s.winOSSObjects(prefix) {
			keys = append(keys, o.Key)
			require.True(t, strings.HasSuffix(o.Key, ".jsonl.gz") || strings.Contains(o.Key, "partition_"), "key %s", o.Key)
			for _, l := range winLines(t, o.Body, true) {
				var e winEnvelope
				require.NoError(t, json.Unmarshal([]byte(l), &e), "line %q of %s", l, o.Key)
				require.Equal(t, topic, e.Topic)
				ts, err := time.Parse(time.RFC3339Nano, e.Timestamp)
				require.NoError(t, err)
				got[winRecKey(int64(e.Partition), e.Offset, e.Value, ts.UnixMilli())]++
			}
		}
		return got, keys
	}
	exp := map[string]int{}
	first, end := map[int32]int64{}, map[int32]int64{}
	for _, r := range want {
		exp[winRecKey(int64(r.Partition), r.Offset, r.Value, r.TS.UnixMilli())]++
		if f, ok := first[r.Partition]; !ok || r.Offset < f {
			first[r.Partition] = r.Offset
		}
		end[r.Partition] = max(end[r.Partition], r.Offset+1)
	}
	got, keys := read()
	winRequireCounts(t, got, exp, "objects under "+prefix)

	requireSuccess := func() winSuccess {
		t.Helper()
		succ, ok := s.winOSSSuccess(prefix)
		require.True(t, ok, "%s/_SUCCESS", prefix)
		require.Equal(t, job.Name(), succ.Job)
		require.Equal(t, topic, succ.Topic)
		require.True(t, succ.Begin.Equal(day) && succ.End.Equal(next), "window %s..%s", succ.Begin, succ.End)
		require.Equal(t, int64(len(want)), succ.Records)
		var listed []string
		require.Len(t, succ.Partitions, 2)
		for _, p := range succ.Partitions {
			require.Equal(t, first[p.Partition], p.First, "partition %d first", p.Partition)
			require.Equal(t, end[p.Partition], p.End, "partition %d end", p.Partition)
			require.Equal(t, p.End-p.First, p.Records)
			at, n := p.First, int64(0)
			for _, o := range p.Objects {
				require.Equal(t, at, o.First, "objects of partition %d tile its range", p.Partition)
				require.Greater(t, o.End, o.First)
				at, n = o.End, n+o.Records
				listed = append(listed, o.Key)
			}
			require.Equal(t, p.End, at, "objects of partition %d cover its range", p.Partition)
			require.Equal(t, p.Records, n)
		}
		slices.Sort(listed)
		require.Equal(t, keys, listed, "_SUCCESS lists every data object under the prefix")
		return succ
	}
	succ := requireSuccess()

	// A re-run finds _SUCCESS and does nothing (OSS has no atomic
	// replace: a published window stays as published), even after a late
	// record of the day reached partition 1.
	late := s.winProduceAt(topic, 1, next.Add(-time.Millisecond), next)
	for range 2 {
		again := s.winMustRun(job, day, next)
		require.True(t, again.AlreadyLoaded, "a re-run of a published window is a no-op")
		require.Zero(t, again.Records)
		got2, keys2 := read()
		require.Equal(t, keys, keys2, "a re-run leaves the object names")
		winRequireCounts(t, got2, exp, "objects under "+prefix+" after a re-run")
		require.Equal(t, succ.Partitions, requireSuccess().Partitions)
	}

	// A run that fails before it publishes leaves objects and no
	// _SUCCESS. The next run of the window, whose ranges have grown since
	// (late records), clears them first: the prefix then holds exactly
	// the window's records as the second run resolved them, each once.
	day2, next2 := next, next.AddDate(0, 0, 1)
	prefix2 := "demo/2024/01/02"
	var recs2 []winRec
	recs2 = append(recs2, s.winProduceAt(topic, 0, day2.Add(time.Hour), day2.Add(2*time.Hour))...)
	bad := s.winProduceValues(topic, 1, day2.Add(3*time.Hour), string([]byte{0xff, 0xfe}))
	recs2 = append(recs2, s.winProduceAt(topic, 1, day2.Add(4*time.Hour))...)
	strict := s.winJobYAML(strings.Replace(fmt.Sprintf(winOSSYAML, s.brokers[0], s.oss.URL), "  topic: demo\n", "  topic: demo\n  valueType: STRING\n", 1))
	_, err := s.winRun(strict, day2, next2)
	require.Error(t, err, "the invalid UTF-8 value fails the run (errorLimit.record 0)")
	require.Contains(t, winErrTypes(err), "ErrorLimitExceeded", "%v", err)
	_, published := s.winOSSSuccess(prefix2)
	require.False(t, published, "a failed run publishes nothing")
	left := s.winOSSObjects(prefix2)
	require.NotEmpty(t, left, "partition 0's objects are left by the failed run")
	// Someone else's object under the prefix is not the job's to clear.
	const foreign = "demo/2024/01/02/notes.txt"
	require.NoError(t, s.exBucket().PutObject(foreign, strings.NewReader("not dumpflow's")))
	recs2 = append(recs2, s.winProduceAt(topic, 0, day2.Add(5*time.Hour))...) // partition 0's range grows
	res2 := s.winMustRun(job, day2, next2)                                    // BYTEARRAY: the value no longer fails
	require.False(t, res2.AlreadyLoaded)
	want2 := winIn(slices.Concat(recs, late, recs2, bad), day2, next2) // the first day's producing reached into the second
	// Compared by (partition, offset): the formerly bad value is not
	// UTF-8, so its envelope does not carry it as text.
	exp2 := map[string]int{}
	for _, r := range want2 {
		exp2[fmt.Sprintf("%d/%d", r.Partition, r.Offset)]++
	}
	got4 := map[string]int{}
	var kept bool
	for _, o := range s.winOSSObjects(prefix2) {
		if o.Key == foreign {
			kept = string(o.Body) == "not dumpflow's"
			continue
		}
		for _, l := range winLines(t, o.Body, true) {
			var e struct {
				Partition int32 `json:"partition"`
				Offset    int64 `json:"offset"`
			}
			require.NoError(t, json.Unmarshal([]byte(l), &e), "line %q of %s", l, o.Key)
			got4[fmt.Sprintf("%d/%d", e.Partition, e.Offset)]++
		}
	}
	winRequireCounts(t, got4, exp2, "objects under "+prefix2+" after a failed run and a re-run")
	require.True(t, kept, "the clear left %s alone", foreign)
	succ4, ok := s.winOSSSuccess(prefix2)
	require.True(t, ok)
	require.Equal(t, int64(len(want2)), succ4.Records)
}

// TestWindowWorkerKilledMidWindow SIGKILLs a worker process while its
// LoadWindowRange activities are inside their ranges (slowed down by
// settings.speed.bytes; the kill waits for a heartbeat reporting an offset
// past the range's first), starts another worker, and requires the window
// to complete on it — the lost attempts retried after their heartbeat
// timeout — with the partition holding exactly the window's records, each
// once: blocks the killed worker uploaded into the window's session add no
// row.
func TestWindowWorkerKilledMidWindow(t *testing.T) {
	t.Parallel() // waits out a heartbeat timeout most of the time
	s := newStack(t)
	const topic, table = "stream", "stream_hourly"
	const n, size = 1500, 200
	s.createTopic(topic, 2)
	s.winCreateTable(table)
	begin := winTime(t, "2024-01-02 13:00:00.000")
	end := begin.Add(time.Hour)
	var recs []winRec
	for p := int32(0); p < 2; p++ {
		recs = append(recs, s.winProduceAt(topic, p, begin.Add(-time.Millisecond))...)
	}
	recs = append(recs, s.winProduceSpread(topic, 2, n, size, begin, end)...)
	for p := int32(0); p < 2; p++ {
		recs = append(recs, s.winProduceAt(topic, p, winAround(end)...)...)
	}
	spec := s.winMCSpec("stream-hourly", topic, table)
	// 20 KiB/s per range: about 15s for a range of 300 KB.
	spec.Settings.Speed.Bytes = connector.ByteSize(40 << 10)
	job := s.winJobOf(spec)

	a := s.startWorkerProcess()
	run := s.winStart(job, workflows.WindowInput{Begin: begin, End: end})
	wid := run.GetID()
	onA := func(acts []winActivity) []winActivity {
		var out []winActivity
		for _, act := range acts {
			if act.Type == activities.LoadWindowRangeName && strings.HasPrefix(act.Identity, fmt.Sprintf("%d@", a.cmd.Process.Pid)) {
				out = append(out, act)
			}
		}
		return out
	}
	var midRange *winActivity
	deadline := time.Now().Add(3 * time.Minute)
	for midRange == nil && time.Now().Before(deadline) {
		for _, act := range onA(s.winStarted(wid)) {
			var hb activities.WindowProgress
			if act.Heartbeat != "" && json.Unmarshal([]byte(act.Heartbeat), &hb) == nil && hb.Offset > 1 && hb.Offset < n+1 {
				midRange = &act
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.NotNil(t, midRange, "no LoadWindowRange reported progress inside its range on the worker; pending: %s", s.winPending(wid))
	a.kill()
	t.Logf("killed worker %d while %s was at %s", a.cmd.Process.Pid, midRange.ActivityID, midRange.Heartbeat)
	time.Sleep(500 * time.Millisecond) // answers sent just before the kill land first
	lost := onA(s.winStarted(wid))
	require.NotEmpty(t, lost, "the killed worker's ranges are still pending (lost with it)")
	prog, err := s.winProgress(wid)
	if err == nil {
		t.Logf("progress at the kill: %+v", prog.Partitions)
	}

	b := s.startWorkerProcess()
	res, err := s.winWait(run)
	require.NoError(t, err)
	want := winIn(recs, begin, end)
	require.Len(t, want, 2*(n+1))
	require.Equal(t, int64(len(want)), res.Records)
	require.Equal(t, []string{"pt=2024010213"}, s.winMCPartitions(table))
	winRequireRows(t, s.winMCRows(table, "pt=2024010213"), want, "after the kill")

	// The lost ranges completed on the other worker, in a later attempt.
	scheduled := map[int64]string{}
	retried := 0
	it := s.client.GetWorkflowHistory(context.Background(), wid, run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		if sa := ev.GetActivityTaskScheduledEventAttributes(); sa != nil {
			scheduled[ev.GetEventId()] = sa.GetActivityType().GetName()
		}
		if st := ev.GetActivityTaskStartedEventAttributes(); st != nil && scheduled[st.GetScheduledEventId()] == activities.LoadWindowRangeName {
			if st.GetAttempt() > 1 {
				require.True(t, strings.HasPrefix(st.GetIdentity(), fmt.Sprintf("%d@", b.cmd.Process.Pid)), "attempt %d ran on %s", st.GetAttempt(), st.GetIdentity())
				retried++
			}
		}
	}
	require.GreaterOrEqual(t, retried, len(lost), "every lost range was retried on the other worker")
}
