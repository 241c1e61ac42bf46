package tests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/deploy/localstack/odpsemu"
	"github.com/dumpflow/dumpflow/deploy/localstack/ossfake"
	"github.com/dumpflow/dumpflow/sink/maxcompute"
	"github.com/dumpflow/dumpflow/starter/verify"
	"github.com/dumpflow/dumpflow/workflows"
)

// The fault suite of the exactly-once issue (docs/exactly-once.md): one
// connector per sink runs on worker processes against a three-broker kfake
// cluster while a producer writes without pause — plain records and
// transactions, most committed, some aborted — and, one after another,
// fetches of one partition fail for several seconds, a partition leader
// moves, workers are killed with SIGKILL, a worker is frozen with SIGSTOP
// past the activities' heartbeat timeout and woken again, records of a
// partition are deleted (DeleteRecords) while the connector is paused and
// behind, and the destination fails (OSS: 503 on PutObject, a connection
// dropped during UploadPart; MaxCompute: FlowExceeded and a lost answer on
// commits). Then production stops, the connector catches up to every
// partition's last stable offset, and the test asserts that verify and
// verify --deep are exact, that the deleted range is a declared gap, that no
// record of an aborted transaction reached the sink, and that every other
// record produced is there exactly once.
//
// It also asserts (without stopping the run) that partition 2, which shares
// a partition loop with partition 0 (concurrency 2), keeps dumping while
// partition 0's fetches fail: a partition that cannot be read must not hold
// up the others.
//
// Run it with: go test ./tests -run '^TestFault' (-run Fault also selects
// TestKafkaExactBrokerErrorsMidRange, whose name contains "Fault").

// TestFaultSuiteOSS is the fault suite for the OSS sink (see above). Batches
// larger than the 100 KiB part size go up in multipart uploads, so both
// PutObject and UploadPart meet injected failures. It would fail on any
// duplicate (a frozen or killed worker's write landing next to its retry's,
// a range cut differently on a retry), any loss (a short read during the
// fetch errors or the leader move, an offset reset past deleted records), a
// silent gap, or an aborted record read read_uncommitted.
func TestFaultSuiteOSS(t *testing.T) {
	runFaultSuite(t, faultSink{
		name: "oss",
		spec: func(s *stack, name, topic string) *connector.Spec {
			spec := s.ossSpec(name, topic)
			spec.Sink.OSS.PartSize = 100 << 10 // multipart for batches over 100 KiB
			require.NoError(t, spec.Validate())
			return spec
		},
		arm: func(s *stack, spec *connector.Spec) []faultInjection {
			data := regexp.MustCompile(`/partition_\d+_offset_\d+_[0-9a-f]{8}$`)
			put := ossfake.ServiceUnavailable(ossfake.Match{Ops: []ossfake.Op{ossfake.OpPutObject}, Path: data})
			put.Skip, put.Times = 8, 3
			part := ossfake.DropConnection(ossfake.Match{Ops: []ossfake.Op{ossfake.OpUploadPart}})
			part.ConsumeBody, part.Skip, part.Times = true, 1, 1
			return []faultInjection{
				{"503 ServiceUnavailable on PutObject of a data object", 3, s.ossFake.InjectFault(put)},
				{"connection dropped during UploadPart", 1, s.ossFake.InjectFault(part)},
			}
		},
		contents: func(t *testing.T, s *stack, spec *connector.Spec) map[string]int {
			return s.readValues(spec.Kafka.Topic + "/")
		},
		rangesFrom: func(t *testing.T, s *stack, spec *connector.Spec, p int32, from int64) int {
			n := 0
			for _, o := range s.ossObjects(spec) {
				if o.Partition == p && o.First >= from {
					n++
				}
			}
			return n
		},
	})
}

// TestFaultSuiteMaxCompute is the fault suite for the MaxCompute sink (see
// above), with the emulator answering FlowExceeded to a data commit and
// losing the answer of another data commit and of a ledger-table commit (the
// intent row), so retries meet sessions and ledger rows already committed.
// Besides the values it checks every row's (partition, offset) against the
// producer's and that the table holds no offset twice.
func TestFaultSuiteMaxCompute(t *testing.T) {
	const table = "kafka_faults"
	runFaultSuite(t, faultSink{
		name: "mc",
		spec: func(s *stack, name, topic string) *connector.Spec {
			return s.mcSpec(name, topic, table)
		},
		arm: func(s *stack, spec *connector.Spec) []faultInjection {
			flow := odpsemu.FlowExceeded(odpsemu.Match{Table: table, Ops: []odpsemu.Op{odpsemu.OpCommitUploadSession}})
			flow.Skip, flow.Times = 4, 1
			lost := odpsemu.CommitAnswerLost(odpsemu.Match{Table: table})
			lost.Skip, lost.Times = 12, 1
			lostIntent := odpsemu.CommitAnswerLost(odpsemu.Match{Table: "dumpflow_ledger"})
			lostIntent.Skip, lostIntent.Times = 20, 1
			return []faultInjection{
				{"FlowExceeded on a data commit", 1, s.mcEmu.InjectFault(flow)},
				{"answer lost of a data commit", 1, s.mcEmu.InjectFault(lost)},
				{"answer lost of a ledger commit", 1, s.mcEmu.InjectFault(lostIntent)},
			}
		},
		contents: func(t *testing.T, s *stack, spec *connector.Spec) map[string]int {
			l := s.mcLedger(spec)
			require.Empty(t, l.Duplicates, "offsets present more than once in the table")
			require.Equal(t, l.Rows, l.Distinct(), "count(*) = count(distinct topic, partition, offset)")
			counts := map[string]int{}
			for _, part := range s.mcPartitions(spec) {
				for _, row := range s.mcRows(spec, part) {
					require.Equal(t, spec.Kafka.Topic, row[0])
					v := row[4].(string)
					counts[v]++
					counts[faultCoordKey(int32(row[1].(int64)), row[2].(int64), v)]++
				}
			}
			return counts
		},
		coords: true,
		rangesFrom: func(t *testing.T, s *stack, spec *connector.Spec, p int32, from int64) int {
			es, err := maxcompute.ReadLedgerEntries(context.Background(), spec, s.mcCreds())
			require.NoError(t, err)
			seen := map[[2]int64]bool{}
			for _, e := range es[p] {
				if e.First >= from {
					seen[[2]int64{e.First, e.End}] = true
				}
			}
			return len(seen)
		},
	})
}

// faultSink is what the suite needs to know of one sink.
type faultSink struct {
	name string
	spec func(s *stack, name, topic string) *connector.Spec
	// arm injects the sink's faults and returns them, to check they fired.
	arm func(s *stack, spec *connector.Spec) []faultInjection
	// contents reads the sink: count per value (and, with coords, per
	// faultCoordKey).
	contents func(t *testing.T, s *stack, spec *connector.Spec) map[string]int
	coords   bool
	// rangesFrom counts the distinct data ranges of partition p the sink
	// holds at or past offset from.
	rangesFrom func(t *testing.T, s *stack, spec *connector.Spec, p int32, from int64) int
}

// faultInjection is an armed destination fault and how often it must fire.
type faultInjection struct {
	what  string
	times int
	inj   interface {
		Wait(context.Context, int) error
		Fired() int
	}
}

func faultCoordKey(p int32, off int64, v string) string {
	return fmt.Sprintf("@%d/%d=%s", p, off, v)
}

const (
	faultTopic      = "faults"
	faultPartitions = 3
	faultValueSize  = 400
	faultLostPart   = int32(2) // the partition whose records are deleted
	faultFetchPart  = int32(0) // the partition whose fetches fail
	faultMovePart   = int32(1) // the partition whose leader moves
	faultAckBy      = "fault-suite"
)

// faultTS is every record's timestamp: one OSS folder, one table partition.
var faultTS = time.Date(2020, 11, 17, 14, 30, 0, 0, gmt8)

func runFaultSuite(t *testing.T, sk faultSink) {
	began := time.Now()
	phase := func(format string, args ...any) {
		t.Logf("[%6.1fs] %s", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}
	s := faultStack(t)
	ctx := context.Background()
	s.createTopic(faultTopic, faultPartitions)
	spec := sk.spec(s, "faults-"+sk.name, faultTopic)
	spec.Concurrency = 2 // loop 0 serves partitions 0 and 2, loop 1 partition 1
	spec.Batch.MaxRecords = 1000
	require.NoError(t, spec.Validate())
	injections := sk.arm(s, spec)

	prod := newFaultProducer(t, s, sk.name)
	go prod.run()
	t.Cleanup(prod.halt)

	w := s.startWorkerProcess()
	in := workflows.NewInput(spec)
	in.HistoryLimit = 1500 // continue as new a few times under the faults
	_, err := s.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: spec.WorkflowID(), TaskQueue: workflows.TaskQueue}, workflows.ConnectorName, in)
	require.NoError(t, err)
	s.waitFor(spec.Name, 2*time.Minute, "every partition dumping", func(st workflows.Status) bool {
		return len(st.Partitions) == faultPartitions && caughtUp(200)(st)
	})
	phase("dumping; %d records produced", prod.count())

	// 1. Fetches of partition 0 fail for several seconds. Reads must wait
	// them out (a read ends only on a seen offset) and the partition in the
	// other loop keeps dumping.
	fetchFault := s.kafka.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: faultTopic, Partitions: []int32{faultFetchPart},
		Err: kerr.UnknownServerError, Count: -1})
	t.Cleanup(fetchFault.Remove)
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	require.NoError(t, fetchFault.Wait(waitCtx, 1), "no fetch of partition %d was refused", faultFetchPart)
	cancel()
	refusedAt := faultStatus(t, s, spec)
	// The fault window is a duration by nature: at least several seconds of
	// refusals, longer while the other partitions have not moved yet (a
	// write of theirs may be backing off from an injected sink fault).
	faultSince := time.Now()
	time.Sleep(6 * time.Second)
	during := faultStatus(t, s, spec)
	for time.Since(faultSince) < 45*time.Second &&
		(faultPart(during, faultMovePart).Next <= faultPart(refusedAt, faultMovePart).Next ||
			faultPart(during, faultLostPart).Next <= faultPart(refusedAt, faultLostPart).Next) {
		time.Sleep(time.Second)
		during = faultStatus(t, s, spec)
	}
	fetchFault.Remove()
	phase("fetch fault on partition %d removed after %s and %d refused fetches; meanwhile partition %d (same loop) went %d -> %d, partition %d (other loop) %d -> %d; run %d, history %d -> run %d, history %d (limit %d)",
		faultFetchPart, time.Since(faultSince).Round(100*time.Millisecond), fetchFault.Hits(), faultLostPart, faultPart(refusedAt, faultLostPart).Next, faultPart(during, faultLostPart).Next,
		faultMovePart, faultPart(refusedAt, faultMovePart).Next, faultPart(during, faultMovePart).Next,
		refusedAt.Run, refusedAt.HistoryLength, during.Run, during.HistoryLength, in.HistoryLimit)
	// Neither the partition of the other loop nor partition 2, which
	// shares partition 0's loop, may wait for partition 0's reads
	// (non-fatal, so the rest of the suite runs). The other loop also
	// stops when the run continues as new meanwhile: the run first waits
	// for every loop, partition 0's too.
	assert.Greater(t, faultPart(during, faultMovePart).Next, faultPart(refusedAt, faultMovePart).Next,
		"partition %d (another loop) stalled while partition %d's fetches failed", faultMovePart, faultFetchPart)
	assert.Greater(t, faultPart(during, faultLostPart).Next, faultPart(refusedAt, faultLostPart).Next,
		"partition %d (same loop as %d) stalled while partition %d's fetches failed", faultLostPart, faultFetchPart, faultFetchPart)
	require.GreaterOrEqual(t, fetchFault.Hits(), 2)

	// 2. The leader of partition 1 moves, and the worker is killed while
	// its activities are in flight; a new worker takes over after their
	// heartbeat timeout.
	leader := s.kafka.LeaderFor(faultTopic, faultMovePart)
	require.NoError(t, s.kafka.MoveTopicPartition(faultTopic, faultMovePart, (leader+1)%3))
	moveEnd := faultEnds(t, s)[faultMovePart]
	_, killed1 := faultKillBusy(t, s, spec, w)
	phase("leader of partition %d moved %d -> %d at end offset %d; worker SIGKILLed (1) during %v", faultMovePart, leader, (leader+1)%3, moveEnd, killed1)
	w2 := s.startWorkerProcess()
	s.waitFor(spec.Name, 3*time.Minute, "the moved partition past its end at the move", func(st workflows.Status) bool {
		p := faultPart(st, faultMovePart)
		return p != nil && p.Next >= moveEnd
	})
	phase("partition %d past %d after the move and the kill", faultMovePart, moveEnd)

	// 3. A second worker joins; one worker is frozen (SIGSTOP) while it
	// runs an activity, until Temporal retried that activity on the other
	// after its heartbeat timeout; then it is woken (SIGCONT), its stale
	// activity goes on, and later one of the two is killed while it
	// writes (the woken one if it runs an activity within 10s).
	w3 := s.startWorkerProcess()
	// A run that starts draining before the frozen activity's heartbeat
	// timeout cancels it (a discovery, a read waiting for data) and
	// continues as new without it: nothing to retry, so freeze again.
	var frozen *workerProcess
	for freeze := 1; ; freeze++ {
		var act faultActivity
		frozen, act = faultFreezeBusy(t, s, spec, w2, w3)
		phase("worker %d frozen during %s (activity %s, attempt %d)", frozen.cmd.Process.Pid, act.activityType, act.activityID, act.attempt)
		retry, ok := faultAwaitHeartbeatRetry(t, s, spec, act, 3*time.Minute)
		if ok {
			phase("%s retried on %s after a heartbeat timeout", act.activityType, retry)
			break
		}
		require.NoError(t, syscall.Kill(frozen.cmd.Process.Pid, syscall.SIGCONT))
		phase("%s cancelled by its run's continue-as-new before its heartbeat timeout; woken, to freeze again", act.activityType)
		require.Less(t, freeze, 3, "every frozen activity was cancelled by its run before its heartbeat timeout")
	}
	require.NoError(t, syscall.Kill(frozen.cmd.Process.Pid, syscall.SIGCONT))
	thawEnds := faultEnds(t, s)
	s.waitFor(spec.Name, 3*time.Minute, "every partition past its end at the wake-up", func(st workflows.Status) bool {
		for p, end := range thawEnds {
			if ps := faultPart(st, p); ps == nil || ps.Next < end {
				return false
			}
		}
		return true
	})
	other := w3
	if frozen == w3 {
		other = w2
	}
	victim, killed2 := faultKillBusy(t, s, spec, frozen, other)
	phase("worker %d SIGKILLed (2) during %v (the woken worker is %d)", victim.cmd.Process.Pid, killed2, frozen.cmd.Process.Pid)
	s.startWorkerProcess()

	// 4. Paused and behind, partition 2 loses records to DeleteRecords:
	// after resume it parks as data-lost, and goes on once acknowledged.
	require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalPause, nil))
	st := s.waitFor(spec.Name, time.Minute, "paused", func(st workflows.Status) bool {
		return st.Paused && faultAllState(st, workflows.StatePaused)
	})
	pausedAt := faultPart(st, faultLostPart).Next
	require.Eventually(t, func() bool { return faultEnds(t, s)[faultLostPart] >= pausedAt+300 }, time.Minute, 100*time.Millisecond,
		"partition %d should fall 300 records behind while paused", faultLostPart)
	deletedTo := prod.deleteRecords(faultLostPart)
	phase("paused at %d; records of partition %d deleted up to %d", pausedAt, faultLostPart, deletedTo)
	require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalResume, nil))
	st = s.waitFor(spec.Name, 3*time.Minute, "partition 2 data-lost", func(st workflows.Status) bool {
		p := faultPart(st, faultLostPart)
		return p != nil && p.State == workflows.StateDataLost
	})
	lost := faultPart(st, faultLostPart)
	require.NotNil(t, lost.DataLost)
	require.Equal(t, lost.Next, lost.DataLost.First, "the lost range starts at the cursor")
	require.GreaterOrEqual(t, lost.Next, pausedAt)
	require.Less(t, lost.Next, deletedTo, "the cursor was behind the deleted records")
	require.Equal(t, deletedTo, lost.DataLost.End, "the lost range ends at the new log start")
	require.Contains(t, lost.LastError, fmt.Sprintf("[%d,%d)", lost.Next, deletedTo))
	require.Contains(t, lost.LastError, workflows.SignalAckDataLoss)
	require.Empty(t, lost.Gaps)
	gapFirst := lost.Next
	lp := faultLostPart
	require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalAckDataLoss, workflows.AckDataLoss{Partition: &lp, By: faultAckBy}))
	ackEnds := faultEnds(t, s)
	s.waitFor(spec.Name, 3*time.Minute, "partition 2 past the gap", func(st workflows.Status) bool {
		p := faultPart(st, faultLostPart)
		return p != nil && len(p.Gaps) == 1 && p.State == workflows.StateRunning && p.Next >= ackEnds[faultLostPart]
	})
	phase("data loss [%d,%d) acknowledged; partition %d goes on", gapFirst, deletedTo, faultLostPart)

	// 5. Production stops; the connector catches up to every partition's
	// last stable offset.
	prod.halt()
	require.NoError(t, prod.err, "producer")
	final := faultBounds(t, s)
	for p, b := range final {
		require.Equal(t, b.end, b.stable, "partition %d: no transaction is open after the producer stopped", p)
	}
	st = s.waitFor(spec.Name, 3*time.Minute, "caught up to the last stable offsets", func(st workflows.Status) bool {
		if len(st.Partitions) != faultPartitions {
			return false
		}
		for _, p := range st.Partitions {
			if p.Next != final[p.Partition].stable || p.Pending != nil || p.State != workflows.StateRunning {
				return false
			}
		}
		return true
	})
	phase("caught up: %d records produced (%d transactions committed, %d aborted)", prod.count(), prod.commits, prod.aborts)

	// The destination faults fired.
	for _, f := range injections {
		waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := f.inj.Wait(waitCtx, f.times)
		cancel()
		require.NoError(t, err, "%s: fired %d of %d times", f.what, f.inj.Fired(), f.times)
	}
	require.True(t, len(killed1)+len(killed2) > 0, "neither SIGKILL landed while the worker ran an activity")
	require.GreaterOrEqual(t, prod.commits, 5, "committed transactions")
	require.GreaterOrEqual(t, prod.aborts, 2, "aborted transactions")

	// The workflow's view.
	if lp := faultPart(st, faultLostPart); lp != nil && len(lp.Gaps) == 1 && lp.Gaps[0].First > gapFirst && lp.Gaps[0].First < deletedTo {
		phase("the gap starts at %d, where the sink's data ends, past the cursor %d the loss was found at", lp.Gaps[0].First, gapFirst)
		gapFirst = lp.Gaps[0].First
	}
	expect, absent := prod.expectation(faultLostPart, gapFirst, deletedTo)
	var records int64
	for _, p := range st.Partitions {
		require.Empty(t, p.LastError, "partition %d", p.Partition)
		require.Nil(t, p.DataLost, "partition %d", p.Partition)
		require.Zero(t, p.ErrorRecords, "partition %d routed records", p.Partition)
		require.Zero(t, p.DeadLetters, "partition %d dead letters", p.Partition)
		records += p.Records
		if p.Partition == faultLostPart {
			require.Len(t, p.Gaps, 1)
			// The gap starts where the sink's data ends: past the cursor
			// the workflow had when the loss was found if a write of the
			// killed worker committed after it (DeclareGap asks the sink).
			require.GreaterOrEqual(t, p.Gaps[0].First, gapFirst)
			require.Less(t, p.Gaps[0].First, deletedTo)
			require.Equal(t, deletedTo, p.Gaps[0].End)
			require.Equal(t, faultAckBy, p.Gaps[0].By)
		} else {
			require.Empty(t, p.Gaps, "partition %d", p.Partition)
		}
	}
	require.Equal(t, int64(len(expect)), records, "records the workflow counts as written")

	// The sink's contents against what was produced.
	counts := sk.contents(t, s, spec)
	missing, dup := 0, 0
	var examples []string
	for _, r := range expect {
		switch c := counts[r.value]; {
		case c == 0:
			missing++
			if len(examples) < 5 {
				examples = append(examples, fmt.Sprintf("missing %d@%d %s", r.p, r.off, r.kind))
			}
		case c > 1:
			dup++
			if len(examples) < 5 {
				examples = append(examples, fmt.Sprintf("%dx %d@%d %s", c, r.p, r.off, r.kind))
			}
		}
		if sk.coords {
			require.Equal(t, counts[r.value], counts[faultCoordKey(r.p, r.off, r.value)], "record %d@%d is in the table under other coordinates", r.p, r.off)
		}
	}
	require.Zerof(t, missing+dup, "%d committed records missing, %d duplicated (of %d): %v", missing, dup, len(expect), examples)
	for _, r := range absent {
		require.Zerof(t, counts[r.value], "%s record %d@%d is in the sink", r.kind, r.p, r.off)
	}
	known := map[string]bool{}
	for _, r := range prod.snapshot() {
		known[r.value] = true
	}
	for v := range counts {
		if !strings.HasPrefix(v, "@") {
			require.True(t, known[v], "the sink holds a value nobody produced: %.60q", v)
		}
	}
	phase("sink holds %d records exactly once, %d absent (aborted or deleted)", len(expect), len(absent))

	// verify and verify --deep (the data itself, range by range, against
	// Kafka) are exact, with the deleted range declared. The ranges of
	// partition 2 below the new log start are gone from Kafka and cannot be
	// compared; every range Kafka still holds is.
	rep := s.verifyLedger(spec)
	faultRequireDeclared(t, rep, gapFirst, deletedTo)
	for _, p := range rep.Partitions {
		if p.Partition != faultLostPart {
			require.Empty(t, p.Gone, "partition %d: verify --deep could not compare ranges Kafka still holds", p.Partition)
			continue
		}
		for _, g := range p.Gone {
			require.LessOrEqual(t, g.End, deletedTo, "partition %d: range %v is past the log start, yet not compared", p.Partition, g)
		}
		held := sk.rangesFrom(t, s, spec, faultLostPart, deletedTo)
		require.NotZero(t, held)
		require.GreaterOrEqual(t, p.Checked, held, "verify --deep compared every range of partition %d that Kafka still holds", p.Partition)
	}
	phase("done")
}

// faultRequireDeclared asserts the report lists [first, end) of the lost
// partition as a declared gap, acknowledged by the suite, and nothing else
// as declared or routed.
func faultRequireDeclared(t *testing.T, rep verify.Report, first, end int64) {
	t.Helper()
	require.Len(t, rep.Partitions, faultPartitions)
	for _, p := range rep.Partitions {
		require.Empty(t, p.Routed, "partition %d", p.Partition)
		if p.Partition != faultLostPart {
			require.Empty(t, p.Declared, "partition %d", p.Partition)
			continue
		}
		require.Len(t, p.Declared, 1, "the deleted range is declared")
		require.Equal(t, first, p.Declared[0].First)
		require.Equal(t, end, p.Declared[0].End)
		require.Contains(t, p.Declared[0].Note, "acknowledged by "+faultAckBy)
	}
}

// faultStack is newStack with a three-broker kfake cluster.
func faultStack(t *testing.T) *stack {
	s := newStack(t)
	kc, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.AllowAutoTopicCreation())
	require.NoError(t, err)
	t.Cleanup(kc.Close)
	s.kafka, s.brokers = kc, kc.ListenAddrs()
	s.producer, err = kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(8<<20))
	require.NoError(t, err)
	t.Cleanup(s.producer.Close)
	return s
}

// faultProducer writes to every partition without pause, through a plain
// and a transactional producer, and remembers every record with its offset
// and fate.
type faultProducer struct {
	t          *testing.T
	s          *stack
	plain, txn *kgo.Client
	rng        *rand.Rand
	txnMu      sync.Mutex // held while a transaction is open

	mu              sync.Mutex
	recs            []faultRecord
	seq             int
	commits, aborts int
	err             error

	stop     chan struct{}
	done     chan struct{}
	haltOnce sync.Once
}

// faultRecord is one record produced: kind is plain, committed or aborted.
type faultRecord struct {
	p     int32
	off   int64
	value string
	kind  string
}

func newFaultProducer(t *testing.T, s *stack, name string) *faultProducer {
	txn, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionalID("fault-suite-"+name), kgo.TransactionTimeout(time.Minute), kgo.ProducerLinger(time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(txn.Close)
	return &faultProducer{t: t, s: s, plain: s.producer, txn: txn, rng: rand.New(rand.NewPCG(20260918, 4)),
		stop: make(chan struct{}), done: make(chan struct{})}
}

// run produces until halt: every 20ms a plain record per partition, and
// every third round a transaction with records on every partition and
// plain records inside its span; one transaction in four is aborted.
func (f *faultProducer) run() {
	defer close(f.done)
	tick := time.NewTicker(20 * time.Millisecond) // a production rate, not a wait
	defer tick.Stop()
	for round := 0; ; round++ {
		select {
		case <-f.stop:
			return
		case <-tick.C:
		}
		err := f.produce(f.plain, "plain", 1)
		if err == nil && round%3 == 0 {
			err = f.transaction(f.rng.IntN(4) != 0)
		}
		if err != nil {
			f.mu.Lock()
			f.err = err
			f.mu.Unlock()
			return
		}
	}
}

// produce writes n records of kind per partition with cl and records them.
// Transactional records are recorded as pending until their end.
func (f *faultProducer) produce(cl *kgo.Client, kind string, n int) error {
	var recs []*kgo.Record
	f.mu.Lock()
	for p := int32(0); p < faultPartitions; p++ {
		for range n {
			f.seq++
			v := fmt.Sprintf("%s-p%d-%s-%07d", faultTopic, p, kind, f.seq)
			v += strings.Repeat(".", faultValueSize-len(v))
			recs = append(recs, &kgo.Record{Topic: faultTopic, Partition: p, Key: []byte(kind), Value: []byte(v), Timestamp: faultTS})
		}
	}
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("produce %s: %w", kind, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range recs {
		f.recs = append(f.recs, faultRecord{p: r.Partition, off: r.Offset, value: string(r.Value), kind: kind})
	}
	return nil
}

// transaction writes a transaction and commits or aborts it. The values of
// a transaction to be aborted say so ("txa"), so such a record in the sink
// is recognisable even without the bookkeeping.
func (f *faultProducer) transaction(commit bool) error {
	f.txnMu.Lock()
	defer f.txnMu.Unlock()
	kind := "txa"
	if commit {
		kind = "txc"
	}
	if err := f.txn.BeginTransaction(); err != nil {
		return err
	}
	from := f.mark()
	err := f.produce(f.txn, kind, 2)
	if err == nil {
		err = f.produce(f.plain, "plain", 1) // inside the transaction's span
	}
	if err == nil {
		err = f.produce(f.txn, kind, 1)
	}
	if err != nil {
		commit = false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if eerr := f.txn.EndTransaction(ctx, kgo.TransactionEndTry(commit)); eerr != nil {
		return fmt.Errorf("end transaction (commit %v): %w (produce error: %v)", commit, eerr, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := from; i < len(f.recs); i++ {
		if r := &f.recs[i]; r.kind == kind {
			r.kind = map[bool]string{true: "committed", false: "aborted"}[commit]
		}
	}
	if commit {
		f.commits++
	} else {
		f.aborts++
	}
	return err
}

func (f *faultProducer) mark() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.recs)
}

// deleteRecords deletes partition p's records up to its high watermark,
// between transactions, and returns the new log start.
func (f *faultProducer) deleteRecords(p int32) int64 {
	f.t.Helper()
	f.txnMu.Lock()
	defer f.txnMu.Unlock()
	end := faultEnds(f.t, f.s)[p]
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: faultTopic, Partition: p, At: end})
	resp, err := kadm.NewClient(f.s.producer).DeleteRecords(context.Background(), os)
	if err == nil {
		err = resp.Error()
	}
	require.NoError(f.t, err)
	starts, err := kadm.NewClient(f.s.producer).ListStartOffsets(context.Background(), faultTopic)
	require.NoError(f.t, err)
	o, ok := starts.Lookup(faultTopic, p)
	require.True(f.t, ok)
	require.Equal(f.t, end, o.Offset, "log start after DeleteRecords")
	return end
}

// halt stops producing and waits for the producer to finish.
func (f *faultProducer) halt() {
	f.haltOnce.Do(func() { close(f.stop) })
	<-f.done
}

func (f *faultProducer) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.recs)
}

func (f *faultProducer) snapshot() []faultRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.recs)
}

// expectation splits the records produced into those the sink must hold
// exactly once (plain and committed, less the lost range [from, to) of
// partition lost) and those it must not hold.
func (f *faultProducer) expectation(lost int32, from, to int64) (expect, absent []faultRecord) {
	for _, r := range f.snapshot() {
		switch {
		case r.kind == "aborted":
			absent = append(absent, r)
		case r.kind != "plain" && r.kind != "committed":
			f.t.Fatalf("record %d@%d has no known fate: %s", r.p, r.off, r.kind)
		case r.p == lost && r.off >= from && r.off < to:
			r.kind = "deleted " + r.kind
			absent = append(absent, r)
		default:
			expect = append(expect, r)
		}
	}
	return expect, absent
}

// faultOffsets are a partition's end and last stable offsets.
type faultOffsets struct{ end, stable int64 }

// faultBounds lists the topic's end and last stable offsets.
func faultBounds(t *testing.T, s *stack) map[int32]faultOffsets {
	t.Helper()
	adm := kadm.NewClient(s.producer)
	ends, err := adm.ListEndOffsets(context.Background(), faultTopic)
	require.NoError(t, err)
	require.NoError(t, ends.Error())
	stables, err := adm.ListCommittedOffsets(context.Background(), faultTopic)
	require.NoError(t, err)
	require.NoError(t, stables.Error())
	out := map[int32]faultOffsets{}
	ends.Each(func(o kadm.ListedOffset) {
		st, ok := stables.Lookup(faultTopic, o.Partition)
		require.True(t, ok)
		out[o.Partition] = faultOffsets{end: o.Offset, stable: st.Offset}
	})
	require.Len(t, out, faultPartitions)
	return out
}

// faultEnds are the topic's high watermarks.
func faultEnds(t *testing.T, s *stack) map[int32]int64 {
	t.Helper()
	out := map[int32]int64{}
	for p, b := range faultBounds(t, s) {
		out[p] = b.end
	}
	return out
}

func faultStatus(t *testing.T, s *stack, spec *connector.Spec) workflows.Status {
	t.Helper()
	st, err := s.status(spec.Name)
	require.NoError(t, err)
	return st
}

// faultPart is partition p's row of st, or nil.
func faultPart(st workflows.Status, p int32) *workflows.PartitionStatus {
	for i := range st.Partitions {
		if st.Partitions[i].Partition == p {
			return &st.Partitions[i]
		}
	}
	return nil
}

func faultAllState(st workflows.Status, state string) bool {
	for _, p := range st.Partitions {
		if p.State != state {
			return false
		}
	}
	return len(st.Partitions) > 0
}

// faultActivity is an activity of the connector started on a worker.
type faultActivity struct {
	runID, activityID, activityType, identity string
	attempt                                   int32
}

// faultFreezeBusy freezes (SIGSTOP) one of the workers while it runs one of
// the connector's activities — a WritePartition if one shows within 15s —
// and returns it with that activity, still pending after the freeze.
func faultFreezeBusy(t *testing.T, s *stack, spec *connector.Spec, workers ...*workerProcess) (*workerProcess, faultActivity) {
	t.Helper()
	prefer := time.Now().Add(15 * time.Second)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		acts := faultStarted(t, s, spec)
		for _, w := range workers {
			on := faultOn(acts, w, time.Now().Before(prefer))
			if len(on) == 0 {
				continue
			}
			require.NoError(t, syscall.Kill(w.cmd.Process.Pid, syscall.SIGSTOP))
			// The activity may have ended just before the signal, its
			// answer on the wire: let that land, then look again.
			time.Sleep(500 * time.Millisecond)
			if on := faultOn(faultStarted(t, s, spec), w, false); len(on) > 0 {
				return w, on[0]
			}
			require.NoError(t, syscall.Kill(w.cmd.Process.Pid, syscall.SIGCONT))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no activity of the connector ran on the workers")
	return nil, faultActivity{}
}

// faultKillBusy kills (SIGKILL) a worker once it runs one of the
// connector's fetches or writes and no activity without a heartbeat
// timeout (see TestFaultWorkerKilledDuringDiscover for why): the first
// worker if it does so within 10s, else any of them. It returns the worker
// and the activities still pending on it after the kill: in flight, lost
// with the worker, to be retried elsewhere after their heartbeat timeout.
func faultKillBusy(t *testing.T, s *stack, spec *connector.Spec, workers ...*workerProcess) (*workerProcess, []faultActivity) {
	t.Helper()
	start := time.Now()
	victim := workers[0]
search:
	for time.Since(start) < time.Minute {
		acts := faultStarted(t, s, spec)
		for i, w := range workers {
			if i > 0 && time.Since(start) < 10*time.Second {
				break
			}
			on := faultOn(acts, w, false)
			if len(on) > 0 && !slices.ContainsFunc(on, func(a faultActivity) bool { return !faultHeartbeats[a.activityType] }) {
				victim = w
				break search
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	victim.kill()
	// Answers sent just before the kill land first.
	time.Sleep(500 * time.Millisecond)
	return victim, faultOn(faultStarted(t, s, spec), victim, false)
}

// faultHeartbeats are the activities with a heartbeat timeout (20s).
var faultHeartbeats = map[string]bool{"FetchRanges": true, "PrepareWrite": true, "WritePartition": true, "RouteRange": true}

// faultStarted lists the connector's started activities.
func faultStarted(t *testing.T, s *stack, spec *connector.Spec) []faultActivity {
	t.Helper()
	desc, err := s.client.DescribeWorkflowExecution(context.Background(), spec.WorkflowID(), "")
	require.NoError(t, err)
	var out []faultActivity
	for _, pa := range desc.GetPendingActivities() {
		if pa.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED {
			out = append(out, faultActivity{runID: desc.GetWorkflowExecutionInfo().GetExecution().GetRunId(), activityID: pa.GetActivityId(),
				activityType: pa.GetActivityType().GetName(), identity: pa.GetLastWorkerIdentity(), attempt: pa.GetAttempt()})
		}
	}
	return out
}

// faultOn are the activities of acts running on w, WritePartition first;
// with writesOnly, only those.
func faultOn(acts []faultActivity, w *workerProcess, writesOnly bool) []faultActivity {
	var out []faultActivity
	for _, a := range acts {
		if strings.HasPrefix(a.identity, fmt.Sprintf("%d@", w.cmd.Process.Pid)) && (!writesOnly || a.activityType == "WritePartition") {
			out = append(out, a)
		}
	}
	rank := func(a faultActivity) int {
		if a.activityType == "WritePartition" {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(out, func(a, b faultActivity) int { return rank(a) - rank(b) })
	return out
}

// faultAwaitHeartbeatRetry waits until the frozen activity, timed out by
// its heartbeat timeout, was retried on another worker and that attempt
// finished; it describes the worker that ran it. It reports false when the
// activity's run cancelled it before any retry (the run continued as new).
func faultAwaitHeartbeatRetry(t *testing.T, s *stack, spec *connector.Spec, act faultActivity, timeout time.Duration) (string, bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	nextDump := time.Now().Add(10 * time.Second)
	sawRetry := false // a later attempt was scheduled after a heartbeat timeout
	for time.Now().Before(deadline) {
		sawRetry = sawRetry || faultRetried(s, spec, act)
		// Discover long-polls (up to 10 minutes): its retry running on
		// another worker after the timeout is the retry.
		if act.activityType == "Discover" {
			if on := faultRetryRunning(s, spec, act); on != "" {
				return on, true
			}
		}
		closed := faultRunClosed(s, spec, act.runID)
		var scheduled int64
		it := s.client.GetWorkflowHistory(context.Background(), spec.WorkflowID(), act.runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			require.NoError(t, err)
			if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityId() == act.activityID {
				scheduled = ev.GetEventId()
			}
			if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && scheduled != 0 && a.GetScheduledEventId() == scheduled {
				// A later attempt that finished on another worker: the
				// frozen attempt can only have ended by timing out.
				if a.GetAttempt() > act.attempt && a.GetIdentity() != act.identity {
					return fmt.Sprintf("%s (attempt %d, after: %.80s)", a.GetIdentity(), a.GetAttempt(), a.GetLastFailure().GetMessage()), true
				}
			}
			// A FetchRanges that waits for data is cancelled when its run
			// continues as new: once it timed out on the frozen worker and
			// was scheduled again, the run may cancel the retry instead of
			// waiting for it.
			if a := ev.GetActivityTaskCancelRequestedEventAttributes(); a != nil && scheduled != 0 && a.GetScheduledEventId() == scheduled && (act.activityType == "FetchRanges" || act.activityType == "Discover") {
				if sawRetry {
					return "none: its retry, scheduled after a heartbeat timeout, was cancelled when its run continued as new", true
				}
				if closed {
					return "", false
				}
			}
		}
		if time.Now().After(nextDump) {
			nextDump = time.Now().Add(10 * time.Second)
			t.Logf("waiting for the retry of %s: %s", act.activityID, faultPending(s, spec))
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("activity %s (%s) was not retried to completion on another worker within %s of a heartbeat timeout; pending: %s",
		act.activityID, act.activityType, timeout, faultPending(s, spec))
	return "", false
}

// faultRunClosed says whether the connector's run has closed.
func faultRunClosed(s *stack, spec *connector.Spec, runID string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	desc, err := s.client.DescribeWorkflowExecution(ctx, spec.WorkflowID(), runID)
	return err == nil && desc.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
}

// faultRetried says whether run act.runID shows act pending in a later
// attempt after a heartbeat timeout.
func faultRetried(s *stack, spec *connector.Spec, act faultActivity) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	desc, err := s.client.DescribeWorkflowExecution(ctx, spec.WorkflowID(), act.runID)
	if err != nil {
		return false
	}
	for _, pa := range desc.GetPendingActivities() {
		if pa.GetActivityId() == act.activityID && pa.GetAttempt() > act.attempt && strings.Contains(pa.GetLastFailure().GetMessage(), "Heartbeat timeout") {
			return true
		}
	}
	return false
}

// faultRetryRunning names the worker running a later attempt of act after
// a heartbeat timeout, if another worker does.
func faultRetryRunning(s *stack, spec *connector.Spec, act faultActivity) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	desc, err := s.client.DescribeWorkflowExecution(ctx, spec.WorkflowID(), act.runID)
	if err != nil {
		return ""
	}
	for _, pa := range desc.GetPendingActivities() {
		if pa.GetActivityId() == act.activityID && pa.GetAttempt() > act.attempt && pa.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED &&
			pa.GetLastWorkerIdentity() != act.identity && strings.Contains(pa.GetLastFailure().GetMessage(), "Heartbeat timeout") {
			return fmt.Sprintf("%s (attempt %d, running, after a heartbeat timeout)", pa.GetLastWorkerIdentity(), pa.GetAttempt())
		}
	}
	return ""
}

// faultPending describes the connector's pending activities, for failure
// messages.
func faultPending(s *stack, spec *connector.Spec) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	desc, err := s.client.DescribeWorkflowExecution(ctx, spec.WorkflowID(), "")
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, pa := range desc.GetPendingActivities() {
		fmt.Fprintf(&b, "\n  %s %s %s attempt %d on %s, last failure: %.200s", pa.GetActivityId(), pa.GetActivityType().GetName(), pa.GetState(),
			pa.GetAttempt(), pa.GetLastWorkerIdentity(), pa.GetLastFailure().GetMessage())
	}
	fmt.Fprintf(&b, "\n  workflow task: %v", desc.GetPendingWorkflowTask())
	return b.String()
}

// TestFaultWorkerKilledDuringDiscover kills (SIGKILL) a worker while it runs
// the connector's partition discovery, with a second worker running and a
// history limit low enough that the connector continues as new every few
// seconds. Once the activities lost with the worker are retried (their
// heartbeat timeout is 20s), no partition's cursor may stand still for more
// than 30s: the producer never stops. Discover has no heartbeat timeout,
// only a 2-minute start-to-close timeout, and a run that continues as new
// first waits for its discovery to end: with the lost Discover the loops
// stop at the history limit and the connector dumps nothing until that
// timeout expires, about two minutes after the kill.
func TestFaultWorkerKilledDuringDiscover(t *testing.T) {
	s := faultStack(t)
	ctx := context.Background()
	s.createTopic(faultTopic, faultPartitions)
	spec := s.ossSpec("discover-kill", faultTopic)
	prod := newFaultProducer(t, s, "discover")
	go prod.run()
	t.Cleanup(prod.halt)

	workers := []*workerProcess{s.startWorkerProcess(), s.startWorkerProcess()}
	in := workflows.NewInput(spec)
	in.DiscoveryInterval = connector.Duration(100 * time.Millisecond)
	in.HistoryLimit = 200
	_, err := s.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: spec.WorkflowID(), TaskQueue: workflows.TaskQueue}, workflows.ConnectorName, in)
	require.NoError(t, err)
	s.waitFor(spec.Name, 2*time.Minute, "every partition dumping", func(st workflows.Status) bool {
		return len(st.Partitions) == faultPartitions && caughtUp(200)(st)
	})

	// Freeze a worker the moment it runs Discover, and kill it if the
	// activity is still pending then (else wake it and try again).
	var lost faultActivity
	var victim *workerProcess
	deadline := time.Now().Add(2 * time.Minute)
	for victim == nil && time.Now().Before(deadline) {
		for _, a := range faultStarted(t, s, spec) {
			if a.activityType != "Discover" {
				continue
			}
			for _, w := range workers {
				if !strings.HasPrefix(a.identity, fmt.Sprintf("%d@", w.cmd.Process.Pid)) {
					continue
				}
				require.NoError(t, syscall.Kill(w.cmd.Process.Pid, syscall.SIGSTOP))
				time.Sleep(300 * time.Millisecond) // an answer already on the wire lands
				for _, b := range faultStarted(t, s, spec) {
					if b.activityType == "Discover" && b.identity == a.identity {
						victim, lost = w, b
					}
				}
				if victim == nil {
					require.NoError(t, syscall.Kill(w.cmd.Process.Pid, syscall.SIGCONT))
				}
			}
			break
		}
		if victim == nil {
			time.Sleep(5 * time.Millisecond)
		}
	}
	require.NotNil(t, victim, "never caught a Discover in flight")
	victim.kill()
	killedAt := time.Now()
	s.startWorkerProcess()
	t.Logf("worker %d killed during Discover (activity %s of run %s)", victim.cmd.Process.Pid, lost.activityID, lost.runID)

	// Watch the cursors for 90s.
	const recovery, stillFor = 25 * time.Second, 30 * time.Second
	last := map[int32]int64{}
	moved := map[int32]time.Time{}
	for time.Since(killedAt) < 90*time.Second {
		st, err := s.status(spec.Name)
		now := time.Now()
		if err == nil {
			for _, p := range st.Partitions {
				if c, ok := last[p.Partition]; !ok || p.Next != c {
					last[p.Partition], moved[p.Partition] = p.Next, now
				}
			}
		}
		if now.Sub(killedAt) > recovery {
			for p, at := range moved {
				if now.Sub(at) > stillFor {
					t.Fatalf("%s after the kill, partition %d has not moved for %s (cursor %d) while records keep coming; pending: %s",
						now.Sub(killedAt).Round(time.Second), p, now.Sub(at).Round(time.Second), last[p], faultPending(s, spec))
				}
			}
		}
		time.Sleep(time.Second)
	}
	require.Len(t, last, faultPartitions)
	t.Logf("every partition kept moving for 90s after the kill: cursors %v", last)
}
