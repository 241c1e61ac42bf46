package tests

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aliyun/aliyun-odps-go-sdk/odps/tunnel"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/deploy/localstack/odpsemu"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/sink/maxcompute"
	"github.com/dumpflow/dumpflow/starter/verify"
	"github.com/dumpflow/dumpflow/workflows"
)

// End-to-end tests of the MaxCompute side of the exactly-once promise
// (docs/exactly-once.md): session expiry, a workflow lost mid-commit, starter
// delete, routing, dead letters, hostile content and throttling. Every test
// ends with verify --deep and, where the table has offset columns, count(*)
// against count(distinct topic, partition, offset).

// ---------------------------------------------------------------------------
// Helpers

// mcxStack is newStack with the MaxCompute emulator rebuilt with opt
// applied to its options (a clock, quotas). newStack's cleanup closes the
// replacement.
func mcxStack(t *testing.T, opt func(*odpsemu.Options)) *stack {
	t.Helper()
	s := newStack(t)
	s.mc.Close()
	require.NoError(t, s.mcEmu.Close())
	o := odpsemu.Options{Dir: t.TempDir(), Projects: []string{mcProject}, AccessKeyID: "dumpflow", AccessKeySecret: "dumpflow-secret"}
	opt(&o)
	emu, err := odpsemu.New(o)
	require.NoError(t, err)
	s.mcDir, s.mcEmu = o.Dir, emu
	s.mc = httptest.NewServer(emu)
	return s
}

// mcxHourSpec is an HOUR-partitioned MaxCompute spec at GMT+08:00.
func (s *stack) mcxHourSpec(name, topic, table string) *connector.Spec {
	s.t.Helper()
	spec := s.mcSpec(name, topic, table)
	spec.Sink.MaxCompute.Partition = connector.GranularityHour
	spec.Sink.MaxCompute.TimeZone = "GMT+08:00"
	require.NoError(s.t, spec.Validate())
	return spec
}

// mcxHour is 30 minutes past hour h of 11-17-2020 at GMT+08:00 (h may pass
// 23 into the next days).
func mcxHour(h int) time.Time {
	return time.Date(2020, 11, 17, 0, 30, 0, 0, gmt8).Add(time.Duration(h) * time.Hour)
}

// mcxPt is the table partition of timestamp ts, computed here independently
// of the sink.
func mcxPt(ts time.Time) string { return "pt=" + ts.In(gmt8).Format("01-02-2006 15") }

// mcxStart starts spec's connector and returns its run.
func (s *stack) mcxStart(spec *connector.Spec) client.WorkflowRun {
	s.t.Helper()
	run, err := s.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: spec.WorkflowID(), TaskQueue: workflows.TaskQueue,
	}, workflows.ConnectorName, workflows.NewInput(spec))
	require.NoError(s.t, err)
	return run
}

// mcxRunID is the run id of the connector's latest run.
func (s *stack) mcxRunID(spec *connector.Spec) string {
	s.t.Helper()
	d, err := s.client.DescribeWorkflowExecution(context.Background(), spec.WorkflowID(), "")
	require.NoError(s.t, err)
	return d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
}

// mcxTaskFailures are the distinct failure messages of a run's failed
// workflow tasks (a panic, a nondeterminism or deadlock error).
func (s *stack) mcxTaskFailures(wid, runID string) []string {
	s.t.Helper()
	it := s.client.GetWorkflowHistory(context.Background(), wid, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var out []string
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(s.t, err)
		if f := ev.GetWorkflowTaskFailedEventAttributes().GetFailure(); f != nil && !slices.Contains(out, f.GetMessage()) {
			out = append(out, f.GetMessage())
		}
	}
	return out
}

// mcxDecode decodes an activity's single input or result.
func mcxDecode[T any](t *testing.T, p *commonpb.Payloads) T {
	t.Helper()
	var v T
	require.NotNil(t, p, "payload")
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(p, &v))
	return v
}

// calls returns the inputs (and results, zero when not completed) of the
// activities named name.
func mcxCalls[In, Out any](t *testing.T, all []*historyActivity, name string) (ins []In, outs []Out) {
	t.Helper()
	for _, c := range all {
		if c.Name != name {
			continue
		}
		ins = append(ins, mcxDecode[In](t, c.Input))
		var out Out
		if c.Result != nil {
			out = mcxDecode[Out](t, c.Result)
		}
		outs = append(outs, out)
	}
	return ins, outs
}

// mcxObserve calls fn for every request of the emulator matching m and lets
// it through unchanged: an armed fault whose predicate never fires. Arm it
// before faults that act on the same requests.
func mcxObserve(emu *odpsemu.Server, m odpsemu.Match, fn func(*http.Request)) *odpsemu.Injection {
	inner := m.Func
	m.Func = func(r *http.Request) bool {
		if inner == nil || inner(r) {
			fn(r)
		}
		return false
	}
	return emu.InjectFault(odpsemu.Fault{Match: m})
}

// mcxCounter counts strings, safe for concurrent use.
type mcxCounter struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *mcxCounter) add(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[k]++
}

func (c *mcxCounter) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[k]
}

// mcxPartitionParam is a tunnel request's partition, unquoted as the sink
// names partitions ("pt=11-17-2020 14").
func mcxPartitionParam(r *http.Request) string {
	return strings.ReplaceAll(strings.ReplaceAll(r.URL.Query().Get("partition"), "'", ""), "\"", "")
}

// mcxLedgerEntries reads the ledger table rows of spec's connector.
func (s *stack) mcxLedgerEntries(spec *connector.Spec) map[int32][]maxcompute.LedgerEntry {
	s.t.Helper()
	es, err := maxcompute.ReadLedgerEntries(context.Background(), spec, s.mcCreds())
	require.NoError(s.t, err)
	return es
}

// mcxRequireExact asserts the table holds every offset of [0, n) of each
// of the partitions exactly once (count(*) = count(distinct) = the records)
// and nothing else.
func (s *stack) mcxRequireExact(spec *connector.Spec, partitions int32, n int64) {
	s.t.Helper()
	l := s.mcLedger(spec)
	require.Empty(s.t, l.Duplicates, "rows present more than once")
	require.Equal(s.t, l.Rows, l.Distinct(), "count(*) = count(distinct topic, partition, offset)")
	require.Equal(s.t, int64(partitions)*n, l.Rows, "count(*)")
	for p := int32(0); p < partitions; p++ {
		require.Equal(s.t, []maxcompute.Range{{Start: 0, End: n}}, l.Ranges(p), "offsets of partition %d", p)
	}
}

// mcxDeleteGroup deletes the connector's consumer group, so only the sink can
// say where it resumes.
func (s *stack) mcxDeleteGroup(spec *connector.Spec) {
	s.t.Helper()
	kc, err := kafka.NewClient(kgo.SeedBrokers(s.brokers...))
	require.NoError(s.t, err)
	defer kc.Close()
	resp, err := kc.Admin().DeleteGroup(context.Background(), spec.Group())
	require.NoError(s.t, err)
	require.NoError(s.t, resp.Err)
	cm, err := kc.CommittedOffsets(context.Background(), spec.Group(), spec.Kafka.Topic)
	require.NoError(s.t, err)
	require.Empty(s.t, cm, "the group is gone")
}

// mcxGroupOffsets reads the connector group's committed offsets.
func (s *stack) mcxGroupOffsets(spec *connector.Spec) map[int32]kafka.Committed {
	s.t.Helper()
	kc, err := kafka.NewClient(kgo.SeedBrokers(s.brokers...))
	require.NoError(s.t, err)
	defer kc.Close()
	cm, err := kc.CommittedOffsets(context.Background(), spec.Group(), spec.Kafka.Topic)
	require.NoError(s.t, err)
	return cm
}

// mcxHourRecords are n records of partition 0 whose timestamps take hour(i).
func mcxHourRecords(topic string, n int, hour func(i int) int) []*kgo.Record {
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Partition: 0, Key: fmt.Appendf(nil, "k%d", i), Value: value(topic, 0, i, 32), Timestamp: mcxHour(hour(i))}
	}
	return recs
}

// mcxPassRest makes gate pass every data commit it has not seen yet straight
// to the emulator: after the first one is held, no other is.
func (g *commitGate) mcxPassRest() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n = max(g.n, 2)
}

// ---------------------------------------------------------------------------
// 1. Session expiry between upload and commit

// TestMCExactSessionExpiryReprepareOnlyExpired: one batch spans two table
// partitions (14:00 and 15:00 at GMT+08:00) and holds one record format TEXT
// rejects. The 14:00 session commits; at the moment the 15:00 session's
// commit reaches the service, its clock jumps 25 hours, so that session has
// expired (the service answers 409 "The upload session is expired"). The
// write reports 15:00 expired and 14:00 committed; the workflow prepares
// again keeping the committed session, so only 15:00 gets a new session:
// the service sees exactly one session created on 14:00 and two on 15:00,
// the final ledger entry of the range names the original 14:00 session, no
// row is written twice or missed, and the status counts the one dead letter
// once.
//
// Without the keep logic (PrepareWrite replacing every session, or the
// write resending rows of committed sessions) 14:00's rows would be in the
// table twice; a workflow that took a successful write for another expiry
// would prepare and commit 15:00 again and again (its rows several times)
// and finally route the range: verify --deep and count(distinct) fail.
func TestMCExactSessionExpiryReprepareOnlyExpired(t *testing.T) {
	var skew atomic.Int64 // how far the emulator's clock runs ahead
	s := mcxStack(t, func(o *odpsemu.Options) {
		o.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	s.startWorker()
	const topic, table, n, bad = "mc-expiry", "kafka_expiry", 200, 10
	s.createTopic(topic, 1)
	// Even offsets at 14:xx, odd at 15:xx: the batch's sessions are prepared
	// in the order their partitions first appear, 14:00 then 15:00.
	recs := mcxHourRecords(topic, n, func(i int) int { return 14 + i%2 })
	recs[bad].Value = []byte{0xff, 0xfe, 0xfd} // not UTF-8: a dead letter
	s.produceRecords(recs)
	const pt14, pt15 = "pt=11-17-2020 14", "pt=11-17-2020 15"
	require.Equal(t, pt14, mcxPt(mcxHour(14)))
	require.Equal(t, pt15, mcxPt(mcxHour(15)))

	var created, commits mcxCounter
	mcxObserve(s.mcEmu, odpsemu.Match{Table: table, Ops: []odpsemu.Op{odpsemu.OpCreateUploadSession}}, func(r *http.Request) {
		created.add(mcxPartitionParam(r))
	})
	var skewed atomic.Bool
	mcxObserve(s.mcEmu, odpsemu.Match{Table: table, Ops: []odpsemu.Op{odpsemu.OpCommitUploadSession}}, func(r *http.Request) {
		pt := mcxPartitionParam(r)
		commits.add(pt)
		if pt == pt15 && skewed.CompareAndSwap(false, true) {
			skew.Store(int64(25 * time.Hour)) // the session expires just before its commit is served
		}
	})

	spec := s.mcxHourSpec("mc-expiry", topic, table)
	s.start(spec, 0)
	st := s.waitFor(spec.Name, 2*time.Minute, "all records", caughtUp(n))
	require.True(t, skewed.Load(), "the clock jumped at the 15:00 commit")

	// The promise first: every record in the table once (but the dead
	// letter), none routed.
	rows := map[string][][]any{pt14: s.mcRows(spec, pt14), pt15: s.mcRows(spec, pt15)}
	require.Equal(t, n/2, len(rows[pt15]), "rows in %s (sessions created there: %d)", pt15, created.get(pt15))
	require.Equal(t, n/2-1, len(rows[pt14]), "rows in %s", pt14)
	for pt, parity := range map[string]int64{pt14: 0, pt15: 1} {
		for _, r := range rows[pt] {
			require.Equal(t, parity, r[2].(int64)%2, "offset %d in %s", r[2], pt)
		}
	}
	require.Zero(t, st.Partitions[0].ErrorRecords, "nothing routed; status %+v", st.Partitions[0])
	l := s.mcLedger(spec)
	require.Empty(t, l.Duplicates)
	require.Equal(t, int64(n-1), l.Rows)
	require.Equal(t, l.Rows, l.Distinct())
	require.Equal(t, []maxcompute.Range{{Start: 0, End: bad}, {Start: bad + 1, End: n}}, l.Ranges(0))
	s.verifyLedger(spec)
	require.Equal(t, 1, commits.get(pt14), "the 14:00 session was committed once, before the jump")

	// The service: one session on 14:00, two on 15:00 (the expired one and
	// its replacement).
	require.Equal(t, 1, created.get(pt14), "sessions created on 14:00")
	require.Equal(t, 2, created.get(pt15), "sessions created on 15:00")

	// History: the write reported 15:00 expired and 14:00 committed; the
	// second prepare kept the 14:00 session and replaced only 15:00.
	all := s.historyActivities(spec.WorkflowID(), "")
	preps, prepRes := mcxCalls[activities.PrepareInput, activities.PrepareResult](t, all, activities.PrepareWriteName)
	require.Len(t, preps, 2, "PrepareWrite runs twice: the first prepare and the re-prepare of the expired session")
	first, second := prepRes[0].Prepared.Sessions, prepRes[1].Prepared.Sessions
	require.Len(t, first, 2)
	require.Equal(t, []string{pt14, pt15}, []string{first[0].Partition, first[1].Partition})
	require.Len(t, preps[1].Keep, 1, "the re-prepare keeps the committed session")
	require.Equal(t, first[0].ID, preps[1].Keep[0].ID)
	require.Len(t, second, 2)
	require.Equal(t, sink.Session{Partition: pt14, ID: first[0].ID, Committed: true}, second[0], "14:00 keeps its committed session")
	require.Equal(t, pt15, second[1].Partition)
	require.NotEqual(t, first[1].ID, second[1].ID, "15:00 gets a new session")
	writes, writeRes := mcxCalls[activities.WriteInput, activities.WriteResult](t, all, activities.WritePartitionName)
	require.Len(t, writes, 2)
	require.Equal(t, []string{pt15}, writeRes[0].Expired)
	require.Equal(t, []string{pt14}, writeRes[0].Committed)
	require.Equal(t, int64(n), writeRes[1].End)
	require.Equal(t, int64(n-1), writeRes[1].Written.Records, "the second write counts the committed rows and writes the rest")

	// The ledger: the range's final entry names the original 14:00 session
	// and the new 15:00 one; the first entry is the expired intent.
	es := s.mcxLedgerEntries(spec)[0]
	require.Len(t, es, 2, "two intents for the range: before and after the re-prepare")
	for _, e := range es {
		require.Equal(t, maxcompute.KindData, e.Kind)
		require.Equal(t, int64(0), e.First)
		require.Equal(t, int64(n), e.End)
	}
	require.Equal(t, []sink.Session{{Partition: pt14, ID: first[0].ID}, {Partition: pt15, ID: first[1].ID}}, es[0].Sessions)
	require.Equal(t, []sink.Session{{Partition: pt14, ID: first[0].ID}, {Partition: pt15, ID: second[1].ID}}, es[1].Sessions)
	require.Equal(t, int64(n-1), es[1].Records)

	// The status: n-1 rows written, one record dead-lettered. (The record
	// reaches the dead-letter topic once per write attempt, at least once.)
	dl := s.deadLetters(spec.Errors.DeadLetterTopic, 1)
	for _, r := range dl {
		require.Equal(t, strconv.Itoa(bad), headers(r)[kafka.HeaderOffset])
	}
	written, dls := totals(st)
	require.Equal(t, int64(n-1), written, "rows written in the status")
	require.Equal(t, int64(1), dls, "the one rejected record is counted once in the status (the dead-letter topic holds it %d times)", len(dl))
}

// ---------------------------------------------------------------------------
// 2. Resume after the workflow is lost mid-commit

// TestMCExactResumeAfterWorkflowLostMidCommit: a connector has written its
// first batch [0,1000) (the group holds offset 1000); its second batch
// [1000,2000) is between its ledger intent and its data commit, which
// commitGate holds, when the workflow is terminated. The consumer group is
// deleted, so only the ledger can say where to resume, and the connector
// is created again with the same spec.
//
//   - "uncommitted": the held commit never reached the service. The new run
//     must find the pending range in the ledger and finish it with the same
//     upload session: Discover returns it as pending with that session, no
//     PrepareWrite runs for it, the write re-attaches to it and commits it,
//     and the ledger holds one entry for the range. A run that resumed from
//     the group (gone: offset 0) would write [0,1000) again; one that
//     prepared a new session would leave the old one for a late commit.
//   - "committed": the commit was served and only its answer was held. The
//     new run must count the range as written, start at 2000 and create no
//     session for it; writing it again would duplicate 1000 rows.
//   - "partly committed": the batch spans 14:00 and 15:00; the 14:00
//     session's commit was served (answer held), so the 15:00 one was never
//     sent. The new run must finish the range with both sessions, counting
//     14:00's rows without sending them and committing 15:00's session.
//
// In every case the terminated run's activity is still blocked in its
// commit while the new run writes; it is released at the end, retries its
// commit of the same session, and must not add a row.
func TestMCExactResumeAfterWorkflowLostMidCommit(t *testing.T) {
	const pt14, pt15 = "pt=11-17-2020 14", "pt=11-17-2020 15"
	for _, tc := range []struct {
		name      string
		forwarded bool // the held commit was served by the emulator
		split     bool // the second batch spans 14:00 and 15:00
	}{{"uncommitted", false, false}, {"committed", true, false}, {"partly committed", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t)
			s.startWorker()
			gate, gated, released := s.gateCommits(2) // pass every commit until the test arms the gate

			const topic, table, n, batch = "mc-lost", "kafka_lost", 3000, 1000
			s.createTopic(topic, 1)
			produce := func(from, to int) {
				recs := make([]*kgo.Record, 0, to-from)
				for i := from; i < to; i++ {
					h := 14
					if tc.split && i >= batch && i%2 == 1 {
						h = 15
					}
					recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Value: value(topic, 0, i, 64), Timestamp: mcxHour(h)})
				}
				s.produceRecords(recs)
			}
			var sessionCommits mcxCounter // commit POSTs per upload id, as the emulator sees them
			mcxObserve(s.mcEmu, odpsemu.Match{Table: table, Ops: []odpsemu.Op{odpsemu.OpCommitUploadSession}}, func(r *http.Request) {
				sessionCommits.add(r.URL.Query().Get("uploadid"))
			})
			var created atomic.Int64
			mcxObserve(s.mcEmu, odpsemu.Match{Table: table, Ops: []odpsemu.Op{odpsemu.OpCreateUploadSession}}, func(*http.Request) { created.Add(1) })

			spec := s.mcxHourSpec("mc-lost", topic, table)
			spec.Sink.MaxCompute.Endpoint = gated.URL + "/api"
			spec.Sink.MaxCompute.TunnelEndpoint = gated.URL
			spec.Batch.MaxRecords = batch
			require.NoError(t, spec.Validate())
			produce(0, batch)
			firstRun := s.mcxStart(spec)
			s.waitFor(spec.Name, time.Minute, "the first batch", caughtUp(batch))
			s.requireGroupOffsets(spec, batch)

			// Arm the gate: the next data commit is held unserved, or served
			// with its answer held.
			gate.mu.Lock()
			gate.n = 0
			if tc.forwarded {
				gate.n = 1
			}
			gate.mu.Unlock()
			produce(batch, n)
			var held heldCommit
			select {
			case held = <-gate.held:
			case <-time.After(2 * time.Minute):
				t.Fatal("timed out waiting for the second batch's data commit")
			}
			require.Equal(t, tc.forwarded, held.forwarded)
			gate.mcxPassRest() // the only loop is blocked in this commit: no other is pending

			// The batch is between its intent and its commits: the ledger's
			// last entry is [1000,2000) with the held session (and, split, the
			// 15:00 one, never committed).
			es := s.mcxLedgerEntries(spec)[0]
			require.Len(t, es, 2, "the first batch's entry and the second's intent")
			last := es[len(es)-1]
			require.Equal(t, maxcompute.KindData, last.Kind)
			require.Equal(t, []int64{batch, 2 * batch}, []int64{last.First, last.End})
			sessions := []sink.Session{{Partition: pt14, ID: held.uploadID}}
			if tc.split {
				require.Len(t, last.Sessions, 2)
				sessions = append(sessions, sink.Session{Partition: pt15, ID: last.Sessions[1].ID})
			}
			require.Equal(t, sessions, last.Sessions)
			up := s.mcUploadSession(table, pt14, held.uploadID)
			rowsAtKill := s.mcLedger(spec).Rows
			switch {
			case tc.split:
				require.Equal(t, tunnel.UploadStatusClosed, up.Status(), "the emulator committed the 14:00 session")
				other := s.mcUploadSession(table, pt15, sessions[1].ID)
				require.Equal(t, tunnel.UploadStatusNormal, other.Status(), "the 15:00 session is not committed")
				require.NotEmpty(t, other.BlockIds(), "its blocks are uploaded")
				require.Equal(t, int64(batch+batch/2), rowsAtKill, "the table holds the first batch and the second's 14:00 half")
			case tc.forwarded:
				require.Equal(t, tunnel.UploadStatusClosed, up.Status(), "the emulator committed the held session")
				require.Equal(t, http.StatusOK, held.status)
				require.Equal(t, int64(2*batch), rowsAtKill)
			default:
				require.Equal(t, tunnel.UploadStatusNormal, up.Status(), "the held session is not committed")
				require.NotEmpty(t, up.BlockIds(), "its blocks are uploaded")
				require.Equal(t, int64(batch), rowsAtKill, "only the first batch is in the table")
			}

			ctx := context.Background()
			require.NoError(t, s.client.TerminateWorkflow(ctx, spec.WorkflowID(), firstRun.GetRunID(), "test: workflow lost mid-commit"))
			s.mcxDeleteGroup(spec)
			createdBefore := created.Load()

			s.start(spec, 0)
			st := s.waitFor(spec.Name, 2*time.Minute, "all records after the new run", caughtUp(n))
			p := st.Partitions[0]
			require.Equal(t, "sink", p.From, "the new run resumes from the ledger")
			require.Equal(t, int64(0), p.Start)

			newRun := s.mcxRunID(spec)
			require.NotEqual(t, firstRun.GetRunID(), newRun)
			all := s.historyActivities(spec.WorkflowID(), newRun)
			// The first Discover that resolves where partitions start (a new
			// connector first lists its partitions, ListOnly, to decide
			// whether to shard).
			discIn, discOut := mcxCalls[activities.DiscoverInput, activities.DiscoverResult](t, all, activities.DiscoverName)
			var disc []activities.DiscoverResult
			for i, in := range discIn {
				if !in.ListOnly {
					disc = append(disc, discOut[i])
				}
			}
			require.NotEmpty(t, disc)
			require.Len(t, disc[0].Partitions, 1)
			ps := disc[0].Partitions[0]
			preps, prepRes := mcxCalls[activities.PrepareInput, activities.PrepareResult](t, all, activities.PrepareWriteName)
			writes, _ := mcxCalls[activities.WriteInput, activities.WriteResult](t, all, activities.WritePartitionName)
			for _, in := range preps {
				require.GreaterOrEqual(t, in.First, int64(2*batch), "the new run prepares no session for [0,%d)", 2*batch)
			}
			for _, in := range writes {
				require.GreaterOrEqual(t, in.First, int64(batch), "the new run does not write the first batch again")
			}
			var newSessions int64
			for _, r := range prepRes {
				newSessions += int64(len(r.Prepared.Sessions))
			}
			require.Equal(t, newSessions, created.Load()-createdBefore, "the only sessions created after the terminate are the new run's prepares of new ranges")
			if tc.forwarded && !tc.split {
				require.Nil(t, ps.Pending, "the committed range is not pending")
				require.Equal(t, int64(2*batch), ps.Next, "the new run starts after the committed range")
				require.Equal(t, int64(n-2*batch), p.Records, "the new run writes only the last range")
				for _, in := range writes {
					require.GreaterOrEqual(t, in.First, int64(2*batch), "the committed range is not written again")
				}
				require.Equal(t, 1, sessionCommits.get(held.uploadID), "the new run does not commit the held session again")
			} else {
				want := slices.Clone(sessions)
				want[0].Committed = tc.split // the 14:00 session is known committed
				require.NotNil(t, ps.Pending, "the ledger's intent comes back as a pending range")
				require.Equal(t, []int64{batch, 2 * batch}, []int64{ps.Pending.First, ps.Pending.End})
				require.Equal(t, want, ps.Pending.Sessions)
				require.NotEmpty(t, writes)
				require.Equal(t, []int64{batch, 2 * batch}, []int64{writes[0].First, writes[0].End})
				require.NotNil(t, writes[0].Prepared)
				require.Equal(t, want, writes[0].Prepared.Sessions, "the pending range is finished with the same sessions")
				for _, sess := range sessions {
					require.Equal(t, tunnel.UploadStatusClosed, s.mcUploadSession(table, sess.Partition, sess.ID).Status())
				}
				require.Equal(t, int64(n-batch), p.Records)
				if tc.split {
					require.Equal(t, 1, sessionCommits.get(held.uploadID), "the new run does not commit the committed session again")
				}
			}
			// The range has one ledger entry, naming the held sessions.
			var forRange []maxcompute.LedgerEntry
			for _, e := range s.mcxLedgerEntries(spec)[0] {
				if e.First == batch {
					forRange = append(forRange, e)
				}
			}
			require.Len(t, forRange, 1, "the range is recorded once")
			require.Equal(t, sessions, forRange[0].Sessions)

			s.mcxRequireExact(spec, 1, n)
			s.verifyLedger(spec)

			// The terminated run's activity wakes up: its commit of the same
			// session is retried against a committed session and adds nothing.
			before := sessionCommits.get(held.uploadID)
			released()
			require.Eventually(t, func() bool { return sessionCommits.get(held.uploadID) > before }, time.Minute, 100*time.Millisecond,
				"the terminated run's activity retries its commit")
			s.mcxRequireExact(spec, 1, n)
		})
	}
}

// ---------------------------------------------------------------------------
// 3. starter delete semantics

// TestMCExactDeleteCancelsAfterInFlightWrites cancels a running connector
// (SDK CancelWorkflow, which is what starter delete does) while a write's
// commit is in flight (delayed 3s by the emulator). The workflow must let
// the write finish, commit the cursors to the group and end as canceled:
// the group offsets equal the final cursors, which equal the ledger's last
// complete ranges, and the delayed commit's range is inside them. Created
// again with the same spec and more data, the connector resumes where the
// ledger says and writes no row twice. A cancel that abandoned the write, or
// ended without committing the cursors, would leave the group behind the
// table; a partition loop that went on looping after the cancel would keep
// the workflow from ever ending (its tasks fail as a deadlock); a resume
// from anywhere but the ledger would duplicate or skip rows.
func TestMCExactDeleteCancelsAfterInFlightWrites(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, table, parts, n1, n2 = "mc-delete", "kafka_delete", 2, 4000, 6000
	s.createTopic(topic, parts)
	ts := mcxHour(14)
	s.produce(topic, parts, n1, 64, ts)
	spec := s.mcSpec("mc-delete", topic, table)
	spec.Batch.MaxRecords = 250
	require.NoError(t, spec.Validate())

	// The fault's predicate sees every data commit until the fault fires
	// (and is then disarmed): the last id it stores is the delayed one's.
	var inFlight atomic.Value
	slow := s.mcEmu.InjectFault(odpsemu.Fault{
		Match: odpsemu.Match{Table: table, Ops: []odpsemu.Op{odpsemu.OpCommitUploadSession}, Func: func(r *http.Request) bool {
			inFlight.Store(r.URL.Query().Get("uploadid"))
			return true
		}},
		Action: odpsemu.Delay, Delay: 3 * time.Second, Skip: 4, Times: 1,
	})
	run := s.mcxStart(spec)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, slow.Wait(ctx, 1), "a commit is in flight")
	slowID := inFlight.Load().(string)
	require.NoError(t, s.client.CancelWorkflow(ctx, spec.WorkflowID(), run.GetRunID()))

	err := run.Get(ctx, nil)
	require.Error(t, err)
	require.True(t, temporal.IsCanceledError(err), "the workflow ends canceled within a minute of the cancel: %v; its workflow tasks failed with: %v",
		err, s.mcxTaskFailures(spec.WorkflowID(), run.GetRunID()))

	d, err := s.client.DescribeWorkflowExecution(ctx, spec.WorkflowID(), run.GetRunID())
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, d.GetWorkflowExecutionInfo().GetStatus())

	// The closed run's cursors (its status query, replayed) equal the group
	// offsets and the ledger's last complete range.
	v, err := s.client.QueryWorkflow(ctx, spec.WorkflowID(), run.GetRunID(), workflows.QueryStatus)
	require.NoError(t, err)
	var st workflows.Status
	require.NoError(t, v.Get(&st))
	require.Len(t, st.Partitions, parts)
	group := s.mcxGroupOffsets(spec)
	entries := s.mcxLedgerEntries(spec)
	behind := false
	slowCovered := false
	for _, p := range st.Partitions {
		require.Nil(t, p.Pending, "partition %d: no range is left half written", p.Partition)
		g, ok := group[p.Partition]
		require.True(t, ok, "partition %d has a group offset", p.Partition)
		require.Equal(t, p.Next, g.Offset, "partition %d: group offset = last cursor", p.Partition)
		require.Equal(t, p.Start, g.Start, "partition %d: group start", p.Partition)
		es := entries[p.Partition]
		require.NotEmpty(t, es)
		last := es[len(es)-1]
		require.Equal(t, p.Next, last.End, "partition %d: the cursor is the end of the ledger's last range", p.Partition)
		for _, e := range es {
			for _, sess := range e.Sessions {
				if sess.ID == slowID {
					slowCovered = true
					require.LessOrEqual(t, e.End, p.Next, "the in-flight write finished and its range is within the cursor")
				}
			}
		}
		behind = behind || p.Next < n1
	}
	require.True(t, slowCovered, "the delayed commit's range is in the ledger")
	require.True(t, behind, "the cancel landed mid-run")
	cl := s.mcLedger(spec)
	require.Empty(t, cl.Duplicates)
	for _, p := range st.Partitions {
		want := []maxcompute.Range(nil)
		if p.Next > 0 {
			want = []maxcompute.Range{{Start: 0, End: p.Next}}
		}
		require.Equal(t, want, cl.Ranges(p.Partition), "partition %d: the table holds exactly [0, cursor)", p.Partition)
	}

	// Created again, with more data.
	s.produce2(topic, parts, n1, n2, 64)
	s.start(spec, 0)
	st2 := s.waitFor(spec.Name, 2*time.Minute, "all records after create", caughtUp(n2))
	for _, p := range st2.Partitions {
		require.Equal(t, "sink", p.From, "partition %d resumes from the ledger", p.Partition)
		var was int64
		for _, q := range st.Partitions {
			if q.Partition == p.Partition {
				was = q.Next
			}
		}
		require.Equal(t, int64(n2)-was, p.Records, "partition %d: the new run writes only what the old one did not", p.Partition)
	}
	s.mcxRequireExact(spec, parts, n2)
	s.verifyLedger(spec)
}

// ---------------------------------------------------------------------------
// 4. Routing keeps committed rows out of the error topic

// TestMCExactRouteKeepsCommittedRowsOutOfErrorTopic: under tolerance
// continue, one batch spans 14:00 and 15:00; every commit of a 15:00
// session fails (500), so the write fails after its retries and the range
// is routed. The 14:00 session committed on the first attempt: its rows are
// in the table and must not also go to the error-data topic. The error-data
// topic must hold exactly the 15:00 records (once each, stage "write"), the
// ledger must end the range with a routed row, and verify --deep checks that
// every record of the range is in the table or the error topic, once; a
// committed record planted in the error topic afterwards makes it fail.
//
// This takes about 3.5 minutes: the write activity's retry policy (8
// attempts, backoff 1s doubling to 1m) and the ODPS SDK's own commit retries
// (1s, 2s, 8s per attempt) are the workflow's, not the test's.
func TestMCExactRouteKeepsCommittedRowsOutOfErrorTopic(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, table, n = "mc-route", "kafka_route", 100
	const pt14, pt15 = "pt=11-17-2020 14", "pt=11-17-2020 15"
	s.createTopic(topic, 1)
	s.produceRecords(mcxHourRecords(topic, n, func(i int) int { return 14 + i%2 }))

	fail := s.mcEmu.InjectFault(odpsemu.InternalServerError(odpsemu.Match{Table: table, Ops: []odpsemu.Op{odpsemu.OpCommitUploadSession},
		Func: func(r *http.Request) bool { return mcxPartitionParam(r) == pt15 }}))
	spec := s.mcxHourSpec("mc-route", topic, table)
	spec.Errors.ErrorDataTopic = "mc-route-errors"
	require.NoError(t, spec.Validate())
	start := time.Now()
	s.start(spec, 0)
	st := s.waitFor(spec.Name, 8*time.Minute, "the range to be routed", caughtUp(n))
	t.Logf("routed after %s", time.Since(start).Round(time.Second))
	fail.Remove()
	require.Greater(t, fail.Fired(), 8, "every attempt's commit of the 15:00 session failed")
	p := st.Partitions[0]
	require.Equal(t, int64(n/2), p.ErrorRecords, "only the 15:00 records are routed")

	errs := s.deadLetters(spec.Errors.ErrorDataTopic, n/2)
	require.Len(t, errs, n/2, "the error-data topic holds exactly the uncommitted partition's records")
	seen := map[int64]bool{}
	for _, r := range errs {
		h := headers(r)
		off, err := strconv.ParseInt(h[kafka.HeaderOffset], 10, 64)
		require.NoError(t, err)
		require.Equal(t, int64(1), off%2, "offset %d is a 14:00 record, already in the table", off)
		require.False(t, seen[off], "offset %d routed twice", off)
		seen[off] = true
		require.Equal(t, "write", h[kafka.HeaderStage])
		require.Equal(t, string(value(topic, 0, int(off), 32)), string(r.Value))
	}
	require.Len(t, s.mcRows(spec, pt14), n/2, "the committed 14:00 rows")
	require.Empty(t, s.mcRows(spec, pt15), "no 15:00 row")

	es := s.mcxLedgerEntries(spec)[0]
	require.NotEmpty(t, es)
	last := es[len(es)-1]
	require.Equal(t, sink.MarkRouted, last.Kind, "the range ends with a routed row")
	require.Equal(t, []int64{0, n}, []int64{last.First, last.End})
	require.Equal(t, int64(n/2), last.Records)

	// The connector goes on: new records in 14:00 are written.
	more := make([]*kgo.Record, 20)
	for i := range more {
		more[i] = &kgo.Record{Topic: topic, Partition: 0, Value: value(topic, 0, n+i, 32), Timestamp: mcxHour(14)}
	}
	s.produceRecords(more)
	s.waitFor(spec.Name, time.Minute, "the records after the routed range", caughtUp(n+20))
	l := s.mcLedger(spec)
	require.Empty(t, l.Duplicates)
	require.Equal(t, int64(n/2+20), l.Rows)
	s.verifyLedger(spec)

	// The oracle itself: a committed 14:00 record planted in the error-data
	// topic as if it had been routed too is a record delivered twice, and
	// verify --deep must say so.
	s.produceRecords([]*kgo.Record{{Topic: spec.Errors.ErrorDataTopic, Partition: 0, Value: value(topic, 0, 0, 32), Headers: []kgo.RecordHeader{
		{Key: kafka.HeaderTopic, Value: []byte(topic)}, {Key: kafka.HeaderPartition, Value: []byte("0")}, {Key: kafka.HeaderOffset, Value: []byte("0")},
		{Key: kafka.HeaderConnector, Value: []byte(spec.Name)}, {Key: kafka.HeaderStage, Value: []byte("write")}, {Key: kafka.HeaderError, Value: []byte("planted")},
	}}})
	rep, err := verify.Run(context.Background(), spec, s.cursors(spec), verify.Options{Deep: true})
	require.NoError(t, err)
	require.False(t, rep.OK, "verify --deep must report a routed record that is also in the table")
	require.Len(t, rep.Partitions, 1)
	require.Len(t, rep.Partitions[0].Mismatches, 1)
	require.Equal(t, int64(0), rep.Partitions[0].Mismatches[0].First)
	require.Contains(t, rep.Partitions[0].Mismatches[0].Problem, "1 records are both in the table and in the error-data topic")
}

// ---------------------------------------------------------------------------
// 5. Dead letters

// TestMCExactDeadLetters:
//
//   - "2MiB": a 2 MiB value that is not UTF-8 (format TEXT rejects it) with
//     errors.maxRecordBytes 8MiB reaches the dead-letter topic whole, with
//     its context headers. The first build's dead-letter producer refused
//     records over 1 MB forever, so the partition never moved.
//   - "before commit": the batch's dead letter is in the dead-letter topic
//     while the batch's data commit is still held (commitGate): a crash
//     after the commit cannot lose it.
func TestMCExactDeadLetters(t *testing.T) {
	t.Run("2MiB", func(t *testing.T) {
		s := newStack(t)
		s.startWorker()
		const topic, n, bad = "mc-dl-big", 10, 4
		kc, err := kafka.NewClient(kgo.SeedBrokers(s.brokers...))
		require.NoError(t, err)
		mmb := strconv.Itoa(16 << 20)
		resp, err := kc.Admin().CreateTopic(context.Background(), 1, -1, map[string]*string{"max.message.bytes": &mmb}, topic)
		require.NoError(t, err)
		require.NoError(t, resp.Err)
		kc.Close()
		big := bytes.Repeat([]byte{0xff, 0xfe, 'x', 'y'}, (2<<20)/4)
		recs := make([]*kgo.Record, n)
		for i := range recs {
			v := value(topic, 0, i, 32)
			var hs []kgo.RecordHeader
			if i == bad {
				v = big
				hs = []kgo.RecordHeader{{Key: "origin", Value: []byte("producer-7")}, {Key: kafka.HeaderStage, Value: []byte("forged")}}
			}
			recs[i] = &kgo.Record{Topic: topic, Partition: 0, Key: fmt.Appendf(nil, "k%d", i), Value: v, Headers: hs, Timestamp: mcxHour(14)}
		}
		s.produceRecords(recs)
		spec := s.mcSpec("mc-dl-big", topic, "kafka_dl_big")
		spec.Sink.MaxCompute.Mode = connector.ModeValue
		spec.Errors.MaxRecordBytes = 8 << 20
		require.NoError(t, spec.Validate())
		s.start(spec, 0)
		st := s.waitFor(spec.Name, 2*time.Minute, "all records", caughtUp(n))
		recsWritten, dls := totals(st)
		require.Equal(t, int64(1), dls)
		require.Equal(t, int64(n-1), recsWritten)

		dl := s.deadLetters(spec.Errors.DeadLetterTopic, 1)
		require.Len(t, dl, 1)
		require.True(t, bytes.Equal(big, dl[0].Value), "the dead letter carries the whole 2 MiB value (got %d bytes)", len(dl[0].Value))
		require.Equal(t, []byte("k4"), dl[0].Key)
		h := headers(dl[0])
		require.Equal(t, topic, h[kafka.HeaderTopic])
		require.Equal(t, "0", h[kafka.HeaderPartition])
		require.Equal(t, strconv.Itoa(bad), h[kafka.HeaderOffset])
		require.Equal(t, spec.Name, h[kafka.HeaderConnector])
		require.Equal(t, "convert", h[kafka.HeaderStage], "the incoming forged stage header is replaced")
		require.Contains(t, h[kafka.HeaderError], "not valid UTF-8")
		require.LessOrEqual(t, len(h[kafka.HeaderError]), kafka.MaxErrorHeaderBytes+len("…"))
		require.Equal(t, "producer-7", h["origin"], "the record's own headers are kept")
		l := s.mcLedger(spec)
		require.Equal(t, int64(n-1), l.Rows)
		require.Equal(t, l.Rows, l.Distinct())
		s.verifyLedger(spec)
	})

	t.Run("before commit", func(t *testing.T) {
		s := newStack(t)
		s.startWorker()
		gate, gated, released := s.gateCommits(0)

		const topic, table, n, bad = "mc-dl-order", "kafka_dl_order", 50, 17
		s.createTopic(topic, 1)
		recs := make([]*kgo.Record, n)
		for i := range recs {
			v := value(topic, 0, i, 32)
			if i == bad {
				v = []byte{0xc3, 0x28, 'n', 'o'}
			}
			recs[i] = &kgo.Record{Topic: topic, Partition: 0, Value: v, Timestamp: mcxHour(14)}
		}
		s.produceRecords(recs)
		spec := s.mcSpec("mc-dl-order", topic, table)
		spec.Sink.MaxCompute.Endpoint = gated.URL + "/api"
		spec.Sink.MaxCompute.TunnelEndpoint = gated.URL
		spec.Sink.MaxCompute.Mode = connector.ModeValue
		require.NoError(t, spec.Validate())
		s.start(spec, 0)
		var held heldCommit
		select {
		case held = <-gate.held:
		case <-time.After(2 * time.Minute):
			t.Fatal("timed out waiting for the data commit")
		}
		gate.mcxPassRest() // the only batch is blocked in this commit
		// The commit is held: nothing is in the table, the dead letter is
		// already in its topic.
		require.Equal(t, tunnel.UploadStatusNormal, s.mcUploadSession(table, "pt=11-17-2020 14", held.uploadID).Status())
		require.Zero(t, s.mcLedger(spec).Rows, "the batch is not committed")
		dl := s.deadLetters(spec.Errors.DeadLetterTopic, 1)
		require.Len(t, dl, 1, "the dead letter is produced before the commit")
		require.Equal(t, strconv.Itoa(bad), headers(dl[0])[kafka.HeaderOffset])
		require.Equal(t, "convert", headers(dl[0])[kafka.HeaderStage])

		released()
		st := s.waitFor(spec.Name, 2*time.Minute, "all records", caughtUp(n))
		_, dls := totals(st)
		require.Equal(t, int64(1), dls)
		require.Len(t, s.deadLetters(spec.Errors.DeadLetterTopic, 1), 1, "the dead letter is produced once")
		l := s.mcLedger(spec)
		require.Equal(t, int64(n-1), l.Rows)
		require.Equal(t, l.Rows, l.Distinct())
		s.verifyLedger(spec)
	})
}

// ---------------------------------------------------------------------------
// 6. Hostile content

// TestMCExactHostileContent:
//
//   - "30 hours": one planned range whose record timestamps spread over 30
//     distinct hours is cut so that no batch opens more than
//     activities.MaxDestinationPartitions (24) table partitions: every data
//     entry of the ledger names at most 24 sessions (the first exactly 24,
//     so the cap did cut), and the dump is exact. Without the cut one batch
//     would hold 30 sessions and commits, against the service's per-table
//     limits.
//   - "10KB field": in a CSV table, a record whose BIGINT field is a 10 KB
//     string fails conversion. The partition's LastError (tolerance stop)
//     and the dead letter's error header quote at most a short prefix of
//     it, never the whole 10 KB (status and history would balloon with
//     every such record).
func TestMCExactHostileContent(t *testing.T) {
	t.Run("30 hours", func(t *testing.T) {
		s := newStack(t)
		s.startWorker()
		const topic, table, hours, n = "mc-hours30", "kafka_hours30", 30, 60
		s.createTopic(topic, 1)
		s.produceRecords(mcxHourRecords(topic, n, func(i int) int { return i % hours }))
		spec := s.mcxHourSpec("mc-hours30", topic, table)
		s.start(spec, 0)
		s.waitFor(spec.Name, 2*time.Minute, "all records", caughtUp(n))

		es := s.mcxLedgerEntries(spec)[0]
		var data []maxcompute.LedgerEntry
		for _, e := range es {
			if e.Kind == maxcompute.KindData {
				data = append(data, e)
			}
			require.LessOrEqual(t, len(e.Sessions), activities.MaxDestinationPartitions, "ledger entry [%d,%d)", e.First, e.End)
		}
		require.GreaterOrEqual(t, len(data), 3, "60 records over 30 hours need at least 3 batches of at most 24 partitions")
		require.Equal(t, []int64{0, activities.MaxDestinationPartitions}, []int64{data[0].First, data[0].End},
			"the first batch is cut at the record that would open a 25th partition")
		require.Len(t, data[0].Sessions, activities.MaxDestinationPartitions)
		for _, e := range data {
			pts := map[string]bool{}
			for _, sess := range e.Sessions {
				pts[sess.Partition] = true
			}
			require.Len(t, pts, len(e.Sessions), "one session per partition")
			for off := e.First; off < e.End; off++ {
				require.True(t, pts[mcxPt(mcxHour(int(off)%hours))], "offset %d's partition has a session in its batch", off)
			}
		}
		require.Len(t, s.mcPartitions(spec), hours)
		s.mcxRequireExact(spec, 1, n)
		s.verifyLedger(spec)
	})

	t.Run("10KB field", func(t *testing.T) {
		s := newStack(t)
		s.startWorker()
		s.mcExec("CREATE TABLE csv_hostile(id BIGINT, name STRING) PARTITIONED BY (pt STRING);")
		const topic, n, bad = "mc-csv-hostile", 10, 5
		s.createTopic(topic, 1)
		huge := strings.Repeat("Z", 10<<10)
		recs := make([]*kgo.Record, n)
		for i := range recs {
			v := fmt.Sprintf("%d,name-%d", i, i)
			if i == bad {
				v = huge + ",hostile"
			}
			recs[i] = &kgo.Record{Topic: topic, Partition: 0, Value: []byte(v), Timestamp: mcxHour(14)}
		}
		s.produceRecords(recs)
		spec := s.mcSpec("mc-csv-hostile", topic, "csv_hostile")
		spec.Sink.MaxCompute.CreateTable = false
		spec.Sink.MaxCompute.Mode = connector.ModeValue
		spec.Sink.MaxCompute.Format = connector.FormatCSV
		spec.Errors.Tolerance = connector.ToleranceStop
		require.NoError(t, spec.Validate())
		s.start(spec, 0)
		st := s.waitFor(spec.Name, time.Minute, "the partition to stop on the record", func(st workflows.Status) bool {
			return len(st.Partitions) == 1 && st.Partitions[0].State == workflows.StateStopped
		})
		p := st.Partitions[0]
		require.Equal(t, int64(bad), p.Next)
		require.NotNil(t, p.Poison)
		const short = 1024
		require.Contains(t, p.LastError, "ZZZZZZZZ", "the error quotes a prefix of the field")
		require.NotContains(t, p.LastError, strings.Repeat("Z", short), "LastError quotes at most a short prefix")
		require.Less(t, len(p.LastError), short, "LastError: %d bytes", len(p.LastError))
		require.Less(t, len(p.Poison.Error), short, "Poison.Error: %d bytes", len(p.Poison.Error))

		require.NoError(t, s.client.SignalWorkflow(context.Background(), spec.WorkflowID(), "", workflows.SignalResume, nil))
		st = s.waitFor(spec.Name, time.Minute, "caught up after resume", caughtUp(n))
		_, dls := totals(st)
		require.Equal(t, int64(1), dls)
		dl := s.deadLetters(spec.Errors.DeadLetterTopic, 1)
		require.Len(t, dl, 1)
		h := headers(dl[0])
		require.Equal(t, strconv.Itoa(bad), h[kafka.HeaderOffset])
		require.Equal(t, "convert", h[kafka.HeaderStage])
		require.Contains(t, h[kafka.HeaderError], "ZZZZZZZZ")
		require.NotContains(t, h[kafka.HeaderError], strings.Repeat("Z", short), "the error header quotes at most a short prefix")
		require.Less(t, len(h[kafka.HeaderError]), short)
		require.Equal(t, huge+",hostile", string(dl[0].Value), "the dead letter itself carries the whole record")

		rows := s.mcRows(spec, "pt=11-17-2020 14")
		require.Len(t, rows, n-1)
		ids := map[int64]bool{}
		for _, r := range rows {
			id := r[0].(int64)
			require.False(t, ids[id], "row %d twice", id)
			ids[id] = true
			require.NotEqual(t, int64(bad), id)
		}
	})
}

// ---------------------------------------------------------------------------
// 7. Throttling, 5xx and quotas

// mcxThrottleCounter wraps the emulator and records the answers with
// status 429: their count, and per table the quotas their bodies name.
type mcxThrottleCounter struct {
	next      http.Handler
	throttled atomic.Int64
	kinds     mcxCounter // "<quota> <project.table>"
}

type mcxBodyWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (w *mcxBodyWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }
func (w *mcxBodyWriter) Write(b []byte) (int, error) {
	if w.status == http.StatusTooManyRequests {
		w.body.Write(b)
	}
	return w.ResponseWriter.Write(b)
}
func (w *mcxBodyWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (c *mcxThrottleCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bw := &mcxBodyWriter{ResponseWriter: w, status: http.StatusOK}
	c.next.ServeHTTP(bw, r)
	if bw.status == http.StatusTooManyRequests {
		c.throttled.Add(1)
		body := bw.body.String()
		for _, k := range []string{"upload sessions created", "blocks written", "commits"} {
			for _, table := range []string{maxcompute.DefaultLedgerTable, "kafka_quota_" + strings.Fields(k)[0]} {
				if strings.Contains(body, k) && strings.Contains(body, mcProject+"."+table) {
					c.kinds.add(k + " " + mcProject + "." + table)
				}
			}
		}
	}
}

// TestMCExactThrottlingAnd5xx:
//
//   - "faults": FlowExceeded (429) on block uploads and on commits and 500
//     on upload session creation are retried (by the activity's policy and
//     the SDK's commit retries) and the dump is exact: a retried block or
//     commit adds no row.
//   - "quota/...": with the emulator's tunnel quotas on (a limit of 3 per
//     10 minutes for one kind, on a clock the test controls), the data
//     table hits the quota — upload sessions created, blocks written or
//     commits — and gets 429 FlowExceeded; once the window has moved on (the
//     test advances the clock when it sees a refusal) the connector still
//     ends exact. A refused commit comes after the batch's ledger intent, so
//     its retry must not record or write the range twice.
func TestMCExactThrottlingAnd5xx(t *testing.T) {
	t.Run("faults", func(t *testing.T) {
		s := newStack(t)
		s.startWorker()
		const topic, table, parts, n = "mc-faults", "kafka_faults", 2, 600
		s.createTopic(topic, parts)
		s.produce(topic, parts, n, 64, mcxHour(14))
		m := func(op odpsemu.Op) odpsemu.Match { return odpsemu.Match{Table: table, Ops: []odpsemu.Op{op}} }
		blockFault := odpsemu.FlowExceeded(m(odpsemu.OpUploadBlock))
		blockFault.ConsumeBody, blockFault.Times, blockFault.Skip = true, 2, 1
		blocks := s.mcEmu.InjectFault(blockFault)
		commitFault := odpsemu.FlowExceeded(m(odpsemu.OpCommitUploadSession))
		commitFault.Times, commitFault.Skip = 2, 2
		commits := s.mcEmu.InjectFault(commitFault)
		createFault := odpsemu.InternalServerError(m(odpsemu.OpCreateUploadSession))
		createFault.Times, createFault.Skip = 2, 1
		creates := s.mcEmu.InjectFault(createFault)

		spec := s.mcSpec("mc-faults", topic, table)
		spec.Batch.MaxRecords = 100
		require.NoError(t, spec.Validate())
		s.start(spec, 0)
		st := s.waitFor(spec.Name, 3*time.Minute, "all records", caughtUp(n))
		require.Equal(t, 2, blocks.Fired(), "block uploads throttled")
		require.Equal(t, 2, commits.Fired(), "commits throttled")
		require.Equal(t, 2, creates.Fired(), "session creations failed")
		recs, _ := totals(st)
		require.Equal(t, int64(parts*n), recs)
		for _, p := range st.Partitions {
			require.Zero(t, p.ErrorRecords, "nothing routed")
		}
		s.mcxRequireExact(spec, parts, n)
		s.verifyLedger(spec)
	})

	for _, kind := range []string{"upload sessions created", "blocks written", "commits"} {
		t.Run("quota/"+kind, func(t *testing.T) {
			var clock atomic.Int64 // how far the emulator's clock was moved on
			const window = 10 * time.Minute
			q := &odpsemu.QuotaOptions{
				UploadSessions: -1, UploadSessionWindow: window,
				Blocks: -1, BlockWindow: window,
				Commits: -1, CommitWindow: window,
			}
			switch kind {
			case "upload sessions created":
				q.UploadSessions = 3
			case "blocks written":
				q.Blocks = 3
			case "commits":
				q.Commits = 3
			}
			s := mcxStack(t, func(o *odpsemu.Options) {
				o.Now = func() time.Time { return time.Now().Add(time.Duration(clock.Load())) }
				o.Quotas = q
			})
			sc := &mcxThrottleCounter{next: s.mcEmu}
			front := httptest.NewServer(sc)
			t.Cleanup(front.Close)
			s.startWorker()
			const topic, n = "mc-quota", 1000
			table := "kafka_quota_" + strings.Fields(kind)[0]
			s.createTopic(topic, 1)
			// Two table partitions per batch: two data sessions, blocks and
			// commits for each ledger row, so the data table reaches its
			// limit before the ledger table does.
			s.produceRecords(mcxHourRecords(topic, n, func(i int) int { return 14 + i%2 }))
			spec := s.mcxHourSpec("mc-quota", topic, table)
			spec.Sink.MaxCompute.Endpoint = front.URL + "/api"
			spec.Sink.MaxCompute.TunnelEndpoint = front.URL
			spec.Batch.MaxRecords = 100 // 10 batches
			require.NoError(t, spec.Validate())
			s.start(spec, 0)
			var advancedAt int64
			s.waitFor(spec.Name, 5*time.Minute, "all records through the quota", func(st workflows.Status) bool {
				if refused := sc.throttled.Load(); refused > advancedAt {
					advancedAt = refused
					clock.Add(int64(window)) // the window moves on
				}
				return caughtUp(n)(st)
			})
			require.Positive(t, sc.throttled.Load(), "the connector hit the quota")
			require.Positive(t, sc.kinds.get(kind+" "+mcProject+"."+table), "the data table hit the quota of %s: %v", kind, sc.kinds.m)
			t.Logf("refusals: %v; the clock moved %s", sc.kinds.m, time.Duration(clock.Load()))
			require.LessOrEqual(t, time.Duration(clock.Load()), 12*time.Hour, "the clock stayed well inside the sessions' lifetime")
			s.mcxRequireExact(spec, 1, n)
			s.verifyLedger(spec)
		})
	}
}
