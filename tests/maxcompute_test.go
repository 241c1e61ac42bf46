package tests

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aliyun/aliyun-odps-go-sdk/odps"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/account"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/tunnel"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/sink/maxcompute"
	"github.com/dumpflow/dumpflow/starter/verify"
	"github.com/dumpflow/dumpflow/workflows"
)

// gmt8 is the seed's default producer time zone, built here independently
// of the sink's own parsing so the tests check it rather than repeat it.
var gmt8 = time.FixedZone("GMT+08:00", 8*3600)

// mcCreds are the stack's MaxCompute credentials, resolved the way workers
// resolve them.
func (s *stack) mcCreds() connector.Credentials {
	s.t.Helper()
	c, err := connector.ResolveCredentials(credName)
	require.NoError(s.t, err)
	return c
}

// mcRows reads one table partition ("pt=11-17-2020 14") through a tunnel
// download session.
func (s *stack) mcRows(spec *connector.Spec, part string) [][]any {
	s.t.Helper()
	var out [][]any
	err := maxcompute.ReadRows(context.Background(), spec, s.mcCreds(), part, func(row []any) error {
		out = append(out, row)
		return nil
	})
	require.NoError(s.t, err, "read rows of %s", part)
	return out
}

func (s *stack) mcPartitions(spec *connector.Spec) []string {
	s.t.Helper()
	ps, err := maxcompute.ListPartitions(context.Background(), spec, s.mcCreds())
	require.NoError(s.t, err)
	return ps
}

func (s *stack) mcLedger(spec *connector.Spec) *maxcompute.Ledger {
	s.t.Helper()
	l, err := maxcompute.ReadLedger(context.Background(), spec, s.mcCreds())
	require.NoError(s.t, err)
	return l
}

// mcODPS is an SDK client on the emulator, as a user's odpscmd would be.
func (s *stack) mcODPS() *odps.Odps {
	c := s.mcCreds()
	o := odps.NewOdps(account.NewAliyunAccount(c.AccessKeyID, c.AccessKeySecret), s.mc.URL+"/api")
	o.SetDefaultProjectName(mcProject)
	return o
}

// mcExec runs DDL through the SDK.
func (s *stack) mcExec(sql string) {
	s.t.Helper()
	ins, err := s.mcODPS().ExecSQl(sql)
	require.NoError(s.t, err)
	require.NoError(s.t, ins.WaitForSuccess(), "%s", sql)
}

// mcUploadSession attaches to an upload session through the SDK to read its
// status and uploaded blocks.
func (s *stack) mcUploadSession(table, part, id string) *tunnel.UploadSession {
	s.t.Helper()
	tt := tunnel.NewTunnel(s.mcODPS(), s.mc.URL)
	up, err := tt.AttachToExistedUploadSession(mcProject, table, id, tunnel.SessionCfg.WithPartitionKey(part))
	require.NoError(s.t, err, "attach upload session %s on %s", id, part)
	return up
}

func (s *stack) produceRecords(recs []*kgo.Record) {
	s.t.Helper()
	require.NoError(s.t, s.producer.ProduceSync(context.Background(), recs...).FirstErr())
}

func totals(st workflows.Status) (records, deadLetters int64) {
	for _, p := range st.Partitions {
		records += p.Records
		deadLetters += p.DeadLetters
	}
	return records, deadLetters
}

// boundaryTS is record i's timestamp: records cycle over two boundaries at
// GMT+08:00 — 14:00 on 11-17-2020 (hour) and 00:00 on 11-18-2020 (hour and
// day) — one record just before and one at or just after each, moving away
// from the boundary by 1ms per cycle. The first records sit on the edges:
// 13:59:59.999, 14:00:00.000, 23:59:59.999, 00:00:00.000.
//
// The dates are the seed's. Old timestamps are fine here: kfake applies
// retention only to topics configured with it.
func boundaryTS(i int) time.Time {
	edges := []struct {
		at  time.Time
		dir time.Duration
	}{
		{time.Date(2020, 11, 17, 13, 59, 59, 999e6, gmt8), -time.Millisecond},
		{time.Date(2020, 11, 17, 14, 0, 0, 0, gmt8), time.Millisecond},
		{time.Date(2020, 11, 17, 23, 59, 59, 999e6, gmt8), -time.Millisecond},
		{time.Date(2020, 11, 18, 0, 0, 0, 0, gmt8), time.Millisecond},
	}
	e := edges[i%len(edges)]
	return e.at.Add(time.Duration(i/len(edges)) * e.dir)
}

// TestMaxComputeHourPartitionsAcrossBoundary dumps 3 Kafka partitions into
// HOUR partitions at GMT+08:00 with records on both sides of an hour and a
// day boundary, interleaved so every batch spans four table partitions (four
// upload sessions per batch). Every row must land in the partition of its
// own Kafka timestamp, the table must have exactly those partitions, and the
// ledger must be exact.
func TestMaxComputeHourPartitionsAcrossBoundary(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, parts, n = "mc-hours", 3, 1200
	s.createTopic(topic, parts)
	for p := int32(0); p < parts; p++ {
		recs := make([]*kgo.Record, n)
		for i := range recs {
			recs[i] = &kgo.Record{Topic: topic, Partition: p, Key: fmt.Appendf(nil, "k%d", i), Value: value(topic, p, i, 0), Timestamp: boundaryTS(i)}
		}
		s.produceRecords(recs)
	}
	wantParts := []string{"pt=11-17-2020 13", "pt=11-17-2020 14", "pt=11-17-2020 23", "pt=11-18-2020 00"}
	expectedPT := func(i int) string { return "pt=" + boundaryTS(i).In(gmt8).Format("01-02-2006 15") }
	for i, want := range wantParts { // records 0..3 sit on the four edges
		require.Equal(t, want, expectedPT(i), "the test's own timestamps")
	}

	spec := s.mcSpec("mc-hours", topic, "kafka_hours")
	spec.Sink.MaxCompute.Partition = connector.GranularityHour
	spec.Sink.MaxCompute.TimeZone = "GMT+08:00"
	spec.Batch.MaxRecords = 500 // 3 batches per partition, each spanning all four hours
	s.start(spec, 0)
	st := s.waitFor(spec.Name, time.Minute, "all records", caughtUp(n))
	recs, dls := totals(st)
	require.Equal(t, int64(parts*n), recs)
	require.Zero(t, dls)

	require.Equal(t, wantParts, s.mcPartitions(spec), "show partitions")
	seen := map[[2]int64]int{}
	perPart := map[string]int{}
	for _, part := range wantParts {
		for _, row := range s.mcRows(spec, part) {
			require.Len(t, row, 6, "topic, partition, offset, key, value, pt")
			p, off := row[1].(int64), row[2].(int64)
			i := int(off) // one producer per partition from an empty topic: offset i is record i
			require.Equal(t, topic, row[0])
			require.Equal(t, fmt.Sprintf("k%d", i), row[3], "key of %d@%d", p, off)
			require.Equal(t, string(value(topic, int32(p), i, 0)), row[4], "value of %d@%d", p, off)
			require.Equal(t, part, "pt="+row[5].(string), "pt column of %d@%d", p, off)
			require.Equal(t, expectedPT(i), part, "record %d@%d (timestamp %s) is in the wrong partition",
				p, off, boundaryTS(i).In(gmt8).Format("2006-01-02 15:04:05.000 MST"))
			seen[[2]int64{p, off}]++
			perPart[part]++
		}
	}
	require.Len(t, seen, parts*n, "every record is in the table")
	for k, c := range seen {
		require.Equal(t, 1, c, "record %d@%d is in the table %d times", k[0], k[1], c)
	}
	for _, part := range wantParts {
		require.Equal(t, parts*n/len(wantParts), perPart[part], "rows in %s", part)
	}
	s.verifyLedger(spec)
	l := s.mcLedger(spec)
	require.Equal(t, int64(parts*n), l.Rows, "count(*)")
	require.Equal(t, l.Rows, l.Distinct(), "count(*) = count(distinct topic, partition, offset)")
}

// TestMaxComputeCSVValueMode writes CSV values into a typed table created
// beforehand through the SDK. Records that do not convert (wrong field
// count, bad BIGINT, null value) go to the dead-letter topic with stage
// "convert" and their origin in the headers; every other record is one row
// with typed values. A CSV table has no offset columns, so instead of the
// ledger the rows and dead letters must add up to the records produced.
func TestMaxComputeCSVValueMode(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	s.mcExec("CREATE TABLE csv_t(id BIGINT, name STRING, amount DOUBLE) PARTITIONED BY (pt STRING);")
	const topic, n = "mc-csv", 40
	s.createTopic(topic, 1)
	ts := time.Date(2020, 11, 17, 14, 5, 0, 0, gmt8)
	bad := map[int64]string{
		3:  "has 2 comma-separated fields, table dumpflow.csv_t has 3 columns",
		7:  `value field 0 "x" for column id BIGINT`,
		11: "has 4 comma-separated fields",
		19: "value is null",
	}
	type row struct {
		id     int64
		name   string
		amount any // float64 or nil
	}
	want := map[int64]row{}
	recs := make([]*kgo.Record, n)
	for i := range recs {
		var v []byte
		switch i {
		case 3:
			v = []byte("3,bob") // too few fields
		case 7:
			v = []byte("x,carol,1.0") // bad BIGINT
		case 11:
			v = []byte("11,erin,1.5,extra") // too many fields
		case 19:
			v = nil // null value
		case 15:
			v = []byte("15,dave,") // empty DOUBLE: NULL
			want[15] = row{15, "dave", nil}
		case 0:
			v = []byte("7,alice,3.5")
			want[7] = row{7, "alice", 3.5}
		default:
			v = fmt.Appendf(nil, "%d,name-%d,%d.25", 100+i, i, i)
			want[int64(100+i)] = row{int64(100 + i), fmt.Sprintf("name-%d", i), float64(i) + 0.25}
		}
		recs[i] = &kgo.Record{Topic: topic, Partition: 0, Key: fmt.Appendf(nil, "k%d", i), Value: v, Timestamp: ts}
	}
	// The bad BIGINT is the only record of the next hour: its partition must
	// not be created, since no row lands there.
	recs[7].Timestamp = ts.Add(time.Hour)
	s.produceRecords(recs)

	spec := s.mcSpec("mc-csv", topic, "csv_t")
	spec.Sink.MaxCompute.CreateTable = false
	spec.Sink.MaxCompute.Mode = connector.ModeValue
	spec.Sink.MaxCompute.Format = connector.FormatCSV
	spec.Batch.MaxRecords = 10 // four batches, two with dead letters
	require.NoError(t, spec.Validate())
	s.start(spec, 0)
	st := s.waitFor(spec.Name, time.Minute, "all records", caughtUp(n))
	written, dlCount := totals(st)
	require.Equal(t, int64(len(bad)), dlCount, "dead letters in the status")
	require.Equal(t, int64(n), written+dlCount, "rows + dead letters = records produced")

	require.Equal(t, []string{"pt=11-17-2020 14"}, s.mcPartitions(spec))
	got := s.mcRows(spec, "pt=11-17-2020 14")
	require.Len(t, got, n-len(bad), "rows in the table")
	require.Len(t, want, n-len(bad))
	for _, r := range got {
		require.Len(t, r, 4, "id, name, amount, pt")
		id, ok := r[0].(int64)
		require.True(t, ok, "id is a BIGINT: %#v", r)
		w, ok := want[id]
		require.True(t, ok, "unexpected or duplicate row %#v", r)
		delete(want, id)
		require.Equal(t, w.name, r[1], "name of %d", id)
		require.Equal(t, w.amount, r[2], "amount of %d", id)
		require.Equal(t, "11-17-2020 14", r[3])
	}
	require.Empty(t, want, "rows missing from the table")

	dl := s.deadLetters(spec.Errors.DeadLetterTopic, len(bad))
	require.Len(t, dl, len(bad), "records in the dead-letter topic")
	for _, r := range dl {
		h := headers(r)
		off, err := strconv.ParseInt(h[kafka.HeaderOffset], 10, 64)
		require.NoError(t, err)
		msg, ok := bad[off]
		require.True(t, ok, "offset %d should not be a dead letter: %v", off, h)
		require.Equal(t, "convert", h[kafka.HeaderStage])
		require.Equal(t, topic, h[kafka.HeaderTopic])
		require.Equal(t, "0", h[kafka.HeaderPartition])
		require.Equal(t, spec.Name, h[kafka.HeaderConnector])
		require.Contains(t, h[kafka.HeaderError], msg)
		require.Equal(t, recs[off].Value, r.Value, "the dead letter carries the original value")
		delete(bad, off)
	}
	require.Empty(t, bad, "records missing from the dead-letter topic")

	_, err := verify.Run(context.Background(), spec, map[int32]verify.Cursor{0: {Start: 0, Committed: n}})
	require.ErrorContains(t, err, "CSV", "verify explains that a CSV table has no ledger")
}

// TestMaxComputeModes checks modes KEY and VALUE (format TEXT) and DEFAULT
// (format BINARY) on one stack, three connectors at once, with null keys and
// values and bytes that are not UTF-8: TEXT sends a record whose used key or
// value is not UTF-8 to the dead-letter topic, BINARY writes the raw bytes;
// a Kafka null is a NULL column, the unused column is always NULL.
func TestMaxComputeModes(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	ts := time.Date(2020, 11, 17, 14, 5, 0, 0, gmt8)
	input := []struct{ key, value []byte }{
		{[]byte("k0"), []byte("v0")},
		{nil, []byte("v1")},
		{[]byte("k2"), nil},
		{[]byte("k3"), []byte{0xff, 0xfe}},   // value not UTF-8
		{[]byte{0xc3, 0x28}, []byte("v4")},   // key not UTF-8
		{[]byte("键5"), []byte("值,5\n\"x\"")}, // UTF-8, comma, newline and quotes are just text
	}
	str := func(b []byte) any {
		if b == nil {
			return nil
		}
		return string(b)
	}
	tests := []struct {
		name, mode, format string
		rejected           []int64 // offsets sent to the dead-letter topic
		key, value         bool    // which columns are filled
	}{
		{"key", connector.ModeKey, connector.FormatText, []int64{4}, true, false},
		{"value", connector.ModeValue, connector.FormatText, []int64{3}, false, true},
		{"default-binary", connector.ModeDefault, connector.FormatBinary, nil, true, true},
	}
	specs := make([]*connector.Spec, len(tests))
	for i, tc := range tests {
		topic := "mc-mode-" + tc.name
		s.createTopic(topic, 1)
		recs := make([]*kgo.Record, len(input))
		for j, in := range input {
			recs[j] = &kgo.Record{Topic: topic, Key: in.key, Value: in.value, Timestamp: ts}
		}
		s.produceRecords(recs)
		spec := s.mcSpec("mc-mode-"+tc.name, topic, "kafka_mode_"+tc.name[:3])
		spec.Sink.MaxCompute.Mode = tc.mode
		spec.Sink.MaxCompute.Format = tc.format
		require.NoError(t, spec.Validate())
		s.start(spec, 0)
		specs[i] = spec
	}
	// The stack's helpers fail the top-level test, so the cases are checked
	// in a loop rather than as subtests; messages name the case.
	for i, tc := range tests {
		spec := specs[i]
		st := s.waitFor(spec.Name, time.Minute, "all records of "+tc.name, caughtUp(int64(len(input))))
		_, dls := totals(st)
		require.Equal(t, int64(len(tc.rejected)), dls, tc.name)
		got := s.mcRows(spec, "pt=11-17-2020 14")
		require.Len(t, got, len(input)-len(tc.rejected), tc.name)
		for _, r := range got {
			require.Len(t, r, 6)
			off := r[2].(int64)
			require.NotContains(t, tc.rejected, off, tc.name)
			in := input[off]
			var wantKey, wantValue any
			if tc.key {
				wantKey = str(in.key)
			}
			if tc.value {
				wantValue = str(in.value)
			}
			require.Equal(t, spec.Kafka.Topic, r[0])
			require.Equal(t, int64(0), r[1])
			require.Equal(t, wantKey, r[3], "%s: key at offset %d", tc.name, off)
			require.Equal(t, wantValue, r[4], "%s: value at offset %d", tc.name, off)
			require.Equal(t, "11-17-2020 14", r[5])
		}
		if len(tc.rejected) > 0 {
			dl := s.deadLetters(spec.Errors.DeadLetterTopic, len(tc.rejected))
			require.Len(t, dl, len(tc.rejected), tc.name)
			for j, r := range dl {
				h := headers(r)
				require.Equal(t, "convert", h[kafka.HeaderStage], tc.name)
				require.Equal(t, strconv.FormatInt(tc.rejected[j], 10), h[kafka.HeaderOffset], tc.name)
				require.Contains(t, h[kafka.HeaderError], "not valid UTF-8", tc.name)
			}
		}
		s.verifyLedger(spec) // rows and dead letters together tile [0, 6)
	}
}

// commitGate sits in front of the MaxCompute emulator and holds the first
// two upload-session commits it sees, so a test can kill the worker while
// a batch is exactly between upload and commit:
//
//   - the first commit is never passed on: at the kill its session has its
//     blocks uploaded but is not committed;
//   - the second is passed on and committed, but its answer is held: at the
//     kill the session is committed and the activity that committed it has
//     not finished (the "commit succeeded, answer lost" case).
//
// Everything else, and every commit after those two, goes straight to the
// emulator. The emulator itself is unchanged: this is fault injection on
// the wire, like a network partition at the worst moment.
type commitGate struct {
	next    http.Handler
	mu      sync.Mutex
	n       int
	held    chan heldCommit
	release chan struct{}
}

type heldCommit struct {
	uploadID  string
	forwarded bool
	status    int // the emulator's answer when forwarded
}

func newCommitGate(next http.Handler) *commitGate {
	return &commitGate{next: next, held: make(chan heldCommit, 2), release: make(chan struct{})}
}

// gateCommits serves the stack's MaxCompute emulator through a commitGate
// that lets the first n data commits be held (n = 2: none until the test
// arms it). released lets the held commits go; the test's cleanup calls
// it too.
func (s *stack) gateCommits(n int) (gate *commitGate, gated *httptest.Server, released func()) {
	gate = newCommitGate(s.mcEmu)
	gate.n = n
	gated = httptest.NewServer(gate)
	released = sync.OnceFunc(func() { close(gate.release) })
	s.t.Cleanup(func() { released(); gated.Close() })
	return gate, gated, released
}

func (g *commitGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	// Only data commits (POST ?uploadid=ID), not the ledger table's.
	if r.Method != http.MethodPost || !q.Has("uploadid") || strings.Contains(r.URL.Path, "/tables/"+maxcompute.DefaultLedgerTable) {
		g.next.ServeHTTP(w, r)
		return
	}
	g.mu.Lock()
	i := g.n
	g.n++
	g.mu.Unlock()
	if i >= 2 {
		g.next.ServeHTTP(w, r)
		return
	}
	h := heldCommit{uploadID: q.Get("uploadid"), forwarded: i == 1}
	if h.forwarded {
		rec := httptest.NewRecorder()
		g.next.ServeHTTP(rec, r)
		h.status = rec.Code
	}
	g.held <- h
	<-g.release
	// The worker that sent this is dead by now: nobody reads the answer.
	http.Error(w, "commit gate released", http.StatusServiceUnavailable)
}

// TestMaxComputeSIGKILLMidSession kills the worker process with SIGKILL
// while batches are between upload and commit, restarts it, and checks that
// nothing was lost or duplicated.
//
// How the kill is made to land mid-session: the worker talks to the
// emulator through commitGate, which holds the first two commit requests.
// Both Kafka partitions run in their own loop, so the two held commits are
// the first batch of each. The test waits until both are held, then kills:
// one batch's session has uploaded blocks and is not committed (asserted
// through the SDK: status normal, blocks present, none of its rows in the
// table), the other's session is committed in the emulator while its
// WritePartition activity never completed (asserted: status closed). After
// the restart, the activity retries re-attach to the same sessions (ids
// from PrepareWrite in workflow history): the first is uploaded again and
// committed, the second is found committed and counted as done.
func TestMaxComputeSIGKILLMidSession(t *testing.T) {
	s := newStack(t)
	gate, gated, released := s.gateCommits(0)

	const topic, parts, n, size, table = "mc-kill", 2, 3000, 100, "kafka_kill"
	s.createTopic(topic, parts)
	ts := time.Date(2020, 11, 17, 14, 30, 0, 0, gmt8) // one table partition: one session per batch
	for p := int32(0); p < parts; p++ {
		recs := make([]*kgo.Record, n)
		for i := range recs {
			recs[i] = &kgo.Record{Topic: topic, Partition: p, Value: value(topic, p, i, size), Timestamp: ts}
		}
		s.produceRecords(recs)
	}
	spec := s.mcSpec("mc-kill", topic, table)
	spec.Sink.MaxCompute.Endpoint = gated.URL + "/api"
	spec.Sink.MaxCompute.TunnelEndpoint = gated.URL
	spec.Batch.MaxRecords = 1000
	require.NoError(t, spec.Validate())

	w := s.startWorkerProcess()
	s.start(spec, 0)
	var held []heldCommit
	deadline := time.After(2 * time.Minute)
	for len(held) < 2 {
		select {
		case h := <-gate.held:
			held = append(held, h)
		case <-deadline:
			t.Fatalf("timed out waiting for two commits; got %+v", held)
		}
	}
	w.kill()
	killed := time.Now()

	// Assert the kill landed mid-session.
	const part = "pt=11-17-2020 14"
	pending, committed := held[0], held[1]
	require.NotEqual(t, pending.uploadID, committed.uploadID)
	up := s.mcUploadSession(table, part, pending.uploadID)
	require.Equal(t, tunnel.UploadStatusNormal, up.Status(), "the first held session is not committed at the kill")
	require.NotEmpty(t, up.BlockIds(), "the first held session has uploaded blocks at the kill")
	require.Equal(t, http.StatusOK, committed.status, "the emulator committed the second held session")
	require.Equal(t, tunnel.UploadStatusClosed, s.mcUploadSession(table, part, committed.uploadID).Status())
	l := s.mcLedger(spec)
	require.Equal(t, int64(spec.Batch.MaxRecords), l.Rows, "at the kill the table holds exactly the committed session's batch")
	require.Len(t, l.Offsets, 1, "one Kafka partition's first batch is in the table, the other's is not")
	for p := range l.Offsets {
		require.Equal(t, []maxcompute.Range{{Start: 0, End: int64(spec.Batch.MaxRecords)}}, l.Ranges(p))
	}
	released()

	s.startWorkerProcess()
	st := s.waitFor(spec.Name, 2*time.Minute, "all records after restart", caughtUp(n))
	// Most of this is the WritePartition heartbeat timeout (20s) after which
	// Temporal retries the killed worker's activities.
	t.Logf("caught up %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	recs, dls := totals(st)
	require.Equal(t, int64(parts*n), recs)
	require.Zero(t, dls)
	require.Equal(t, tunnel.UploadStatusClosed, s.mcUploadSession(table, part, pending.uploadID).Status(),
		"the retry re-attached to the prepared session and committed it")
	s.verifyLedger(spec)
	l = s.mcLedger(spec)
	require.Equal(t, int64(parts*n), l.Rows, "count(*)")
	require.Equal(t, l.Rows, l.Distinct(), "count(*) = count(distinct topic, partition, offset)")
	require.Empty(t, l.Duplicates)
	for p := int32(0); p < parts; p++ {
		require.Equal(t, []maxcompute.Range{{Start: 0, End: n}}, l.Ranges(p), "partition %d", p)
	}
	require.Equal(t, []string{part}, s.mcPartitions(spec))
}

// TestMaxComputeMissingTableParksPartition: the table disappears under a
// running connector. The write fails with a non-retryable NoSuchTable, so
// even under tolerance continue the partition parks, visibly, instead of
// diverting the topic to the error-data topic; once the table is back, a
// resume writes everything that arrived meanwhile, once.
func TestMaxComputeMissingTableParksPartition(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, table = "mc-drop", "kafka_drop"
	s.createTopic(topic, 1)
	s.produce(topic, 1, 500, 64, time.Time{})
	spec := s.mcSpec("mc-drop", topic, table)
	s.start(spec, 0)
	s.waitFor(spec.Name, time.Minute, "first 500", caughtUp(500))

	s.mcExec("DROP TABLE " + table + ";")
	s.produce2(topic, 1, 500, 1000, 64)
	st := s.waitFor(spec.Name, time.Minute, "the partition to stop", func(st workflows.Status) bool {
		return len(st.Partitions) == 1 && st.Partitions[0].State == workflows.StateStopped
	})
	p := st.Partitions[0]
	require.Equal(t, int64(500), p.Next, "nothing past the last good batch is skipped")
	require.Contains(t, p.LastError, "NoSuchTable")
	require.Contains(t, p.LastError, "signal resume")
	require.Zero(t, p.ErrorRecords, "nothing was diverted to the error-data topic")

	s.mcExec(fmt.Sprintf(maxcompute.DefaultDDL, table) + ";")
	require.NoError(t, s.client.SignalWorkflow(context.Background(), spec.WorkflowID(), "", workflows.SignalResume, nil))
	s.waitFor(spec.Name, time.Minute, "caught up after resume", caughtUp(1000))
	led := s.mcLedger(spec)
	require.Empty(t, led.Duplicates)
	offs := led.Offsets[0]
	require.Len(t, offs, 500, "the recreated table holds the 500 records that arrived while it was gone")
	require.Equal(t, int64(500), offs[0])
	require.Equal(t, int64(999), offs[len(offs)-1])
}

// TestMaxComputeStopOnPoison: under tolerance stop, a record that fails to
// convert parks the partition with everything before it written; no upload
// session, and so no table partition, is opened for the records after it;
// resume sends the record to the dead-letter topic and writes the rest.
func TestMaxComputeStopOnPoison(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, n, poison = "mc-stop", 20, 10
	s.createTopic(topic, 1)
	h14 := time.Date(2020, 11, 17, 14, 5, 0, 0, gmt8)
	recs := make([]*kgo.Record, n)
	for i := range recs {
		ts, v := h14, fmt.Appendf(nil, "v%d", i)
		if i > poison {
			ts = h14.Add(time.Hour) // only records after the poison fall in 15:00
		}
		if i == poison {
			v = []byte{0xff, 0xfe} // not UTF-8: format TEXT rejects it
		}
		recs[i] = &kgo.Record{Topic: topic, Partition: 0, Value: v, Timestamp: ts}
	}
	s.produceRecords(recs)
	spec := s.mcSpec("mc-stop", topic, "kafka_stop")
	spec.Sink.MaxCompute.Mode = connector.ModeValue
	spec.Errors.Tolerance = connector.ToleranceStop
	s.start(spec, 0)
	st := s.waitFor(spec.Name, time.Minute, "the partition to stop", func(st workflows.Status) bool {
		return len(st.Partitions) == 1 && st.Partitions[0].State == workflows.StateStopped
	})
	require.Equal(t, int64(poison), st.Partitions[0].Next)
	require.Equal(t, "convert", st.Partitions[0].Poison.Stage)
	require.Equal(t, []string{"pt=11-17-2020 14"}, s.mcPartitions(spec), "no partition for records past the poison")

	require.NoError(t, s.client.SignalWorkflow(context.Background(), spec.WorkflowID(), "", workflows.SignalResume, nil))
	st = s.waitFor(spec.Name, time.Minute, "caught up after resume", caughtUp(n))
	require.Equal(t, int64(1), st.Partitions[0].DeadLetters)
	require.Equal(t, []string{"pt=11-17-2020 14", "pt=11-17-2020 15"}, s.mcPartitions(spec))
	s.verifyLedger(spec)
}
