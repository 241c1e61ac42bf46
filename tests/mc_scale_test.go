package tests

import (
	"context"
	"fmt"
	"maps"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/aliyun-odps-go-sdk/odps/tunnel"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/deploy/localstack/odpsemu"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/sink/maxcompute"
)

// tunnelTally counts the tunnel requests that have a quota, per operation
// and table, as they reach the emulator (before its quotas admit them):
// pass-through faults (a Delay of nothing) that count what they match.
type tunnelTally map[string]*odpsemu.Injection // "<op> <table>"

var tallyOps = []odpsemu.Op{odpsemu.OpCreateUploadSession, odpsemu.OpUploadBlock, odpsemu.OpCommitUploadSession, odpsemu.OpCreateDownloadSession}

func armTally(emu *odpsemu.Server, tables ...string) tunnelTally {
	tt := tunnelTally{}
	for _, table := range tables {
		for _, op := range tallyOps {
			tt[string(op)+" "+table] = emu.InjectFault(odpsemu.Fault{Match: odpsemu.Match{Ops: []odpsemu.Op{op}, Table: table}, Action: odpsemu.Delay})
		}
	}
	return tt
}

func (tt tunnelTally) get(op odpsemu.Op, table string) int { return tt[string(op)+" "+table].Fired() }

func (tt tunnelTally) String() string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(tt)) {
		fmt.Fprintf(&b, "%s=%d ", k, tt[k].Fired())
	}
	return strings.TrimSpace(b.String())
}

// TestMaxComputeQuotas256Partitions: one MaxCompute connector at its
// defaults (60 s flush, concurrency 6) over a 256-partition topic that
// receives a steady stream, against the emulator with the tunnel's quotas
// on at the service's values. It stays inside them: not one FlowExceeded
// answer, every record in the table exactly once. A write per Kafka
// partition per flush needed 1280 upload sessions per 5 minutes (quota
// 500); a group batch per loop per flush needs a few dozen.
func TestMaxComputeQuotas256Partitions(t *testing.T) {
	if testing.Short() {
		t.Skip("streams for 2.5 minutes")
	}
	s := mcxStack(t, func(o *odpsemu.Options) { o.Quotas = &odpsemu.QuotaOptions{} })
	sc := &mcxThrottleCounter{next: s.mcEmu}
	front := httptest.NewServer(sc)
	t.Cleanup(front.Close)
	s.startWorker()

	const (
		topic  = "mc-scale"
		table  = "mc_scale"
		parts  = 256
		waves  = 15
		perP   = 10 // records per partition per wave
		every  = 10 * time.Second
		window = 5 * time.Minute
	)
	tally := armTally(s.mcEmu, table, maxcompute.DefaultLedgerTable)
	s.createTopic(topic, parts)
	spec := s.mcSpec("mc-scale", topic, table)
	spec.Batch = connector.BatchSpec{} // the defaults
	spec.Sink.MaxCompute.Endpoint = front.URL + "/api"
	spec.Sink.MaxCompute.TunnelEndpoint = front.URL
	spec.Default()
	require.NoError(t, spec.Validate())
	require.Equal(t, time.Minute, spec.Batch.FlushInterval.D(), "the default flush interval")
	s.start(spec, 0)

	began := time.Now()
	for w := range waves {
		for p := int32(0); p < parts; p++ {
			recs := mcxHourRecords(topic, perP, func(int) int { return 0 })
			for i, r := range recs {
				r.Partition = p
				r.Key = fmt.Appendf(nil, "k%d", w*perP+i)
				r.Value = value(topic, p, w*perP+i, 64)
			}
			s.produceRecords(recs)
		}
		time.Sleep(time.Until(began.Add(time.Duration(w+1) * every)))
	}
	const n = waves * perP
	s.waitFor(spec.Name, 4*time.Minute, "every partition caught up", caughtUp(n))
	elapsed := time.Since(began)
	t.Logf("caught up %.0fs after the first record; tunnel requests: %v", elapsed.Seconds(), tally)

	require.Zero(t, sc.throttled.Load(), "FlowExceeded answers: %v", sc.kinds.m)
	// The whole run fits in one quota window of 5 minutes or a little
	// more: the totals must be inside the 5-minute quotas with room.
	require.Less(t, elapsed, window+2*time.Minute)
	for _, tb := range []string{table, maxcompute.DefaultLedgerTable} {
		require.LessOrEqual(t, tally.get(odpsemu.OpCreateUploadSession, tb), 250, "upload sessions on %s", tb)
		require.LessOrEqual(t, tally.get(odpsemu.OpUploadBlock, tb), 250, "blocks on %s", tb)
		require.LessOrEqual(t, tally.get(odpsemu.OpCreateDownloadSession, tb), 100, "download sessions on %s", tb)
	}
	s.mcxRequireExact(spec, parts, n)
	s.verifyLedger(spec)
}

// TestMCGroupResumeAfterWorkflowLost: a MaxCompute connector whose one loop
// writes two partitions as a group batch loses its workflow (terminated)
// while the group's data commit is held unserved: the intent row names
// both members and the shared session, whose blocks are uploaded and not
// committed. The connector created again resumes both partitions from one
// ledger read, writes that group again whole with the same session, and
// the table holds every record exactly once; the terminated run's commit,
// released at the end, adds nothing.
func TestMCGroupResumeAfterWorkflowLost(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	gate, gated, released := s.gateCommits(2) // pass every commit until the test arms the gate

	const topic, table, batch = "mc-group-lost", "kafka_group_lost", 500
	s.createTopic(topic, 2)
	produce := func(from, to int) {
		var recs []*kgo.Record
		for p := int32(0); p < 2; p++ {
			for i := from; i < to; i++ {
				recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: value(topic, p, i, 64), Timestamp: mcxHour(14)})
			}
		}
		s.produceRecords(recs)
	}
	spec := s.mcxHourSpec("mc-group-lost", topic, table)
	spec.Sink.MaxCompute.Endpoint = gated.URL + "/api"
	spec.Sink.MaxCompute.TunnelEndpoint = gated.URL
	spec.Batch.MaxRecords = batch
	spec.Concurrency = 1 // one loop: both partitions in every group
	require.NoError(t, spec.Validate())
	produce(0, batch)
	firstRun := s.mcxStart(spec)
	s.waitFor(spec.Name, time.Minute, "the first group", caughtUp(batch))

	// Hold the next data commit unserved.
	gate.mu.Lock()
	gate.n = 0
	gate.mu.Unlock()
	produce(batch, 2*batch)
	var held heldCommit
	select {
	case held = <-gate.held:
	case <-time.After(2 * time.Minute):
		t.Fatal("timed out waiting for the second group's data commit")
	}
	gate.mcxPassRest()
	es := s.mcxLedgerEntries(spec)
	for p := int32(0); p < 2; p++ {
		last := es[p][len(es[p])-1]
		require.Equal(t, []int64{batch, 2 * batch}, []int64{last.First, last.End}, "partition %d's intent", p)
		require.Len(t, last.Group, 2, "partition %d's intent is the group's", p)
		require.Equal(t, held.uploadID, last.Sessions[0].ID)
	}
	require.Equal(t, tunnel.UploadStatusNormal, s.mcUploadSession(table, mcxPt(mcxHour(14)), held.uploadID).Status(), "the held session is not committed")
	require.Equal(t, int64(2*batch), s.mcLedger(spec).Rows, "only the first group is in the table")

	ctx := context.Background()
	require.NoError(t, s.client.TerminateWorkflow(ctx, spec.WorkflowID(), firstRun.GetRunID(), "test: workflow lost mid-commit"))
	s.mcxDeleteGroup(spec)
	s.start(spec, 0)
	st := s.waitFor(spec.Name, 2*time.Minute, "all records after the new run", caughtUp(2*batch))
	for _, p := range st.Partitions {
		require.Equal(t, "sink", p.From, "partition %d resumes from the ledger", p.Partition)
	}
	all := s.historyActivities(spec.WorkflowID(), s.mcxRunID(spec))
	writes, _ := mcxCalls[activities.WriteInput, activities.WriteResult](t, all, activities.WritePartitionName)
	require.NotEmpty(t, writes)
	require.Equal(t, []sink.Member{{Partition: 0, First: batch, End: 2 * batch}, {Partition: 1, First: batch, End: 2 * batch}}, writes[0].Group,
		"the new run writes the lost group again, whole")
	require.Equal(t, held.uploadID, writes[0].Prepared.Sessions[0].ID, "with its session")
	require.Equal(t, tunnel.UploadStatusClosed, s.mcUploadSession(table, mcxPt(mcxHour(14)), held.uploadID).Status())
	s.mcxRequireExact(spec, 2, 2*batch)
	s.verifyLedger(spec)

	released()
	time.Sleep(2 * time.Second) // the terminated run's activity retries its commit against a committed session
	s.mcxRequireExact(spec, 2, 2*batch)
}
