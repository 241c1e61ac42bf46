package tests

import (
	"fmt"
	"maps"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/deploy/localstack/odpsemu"
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
