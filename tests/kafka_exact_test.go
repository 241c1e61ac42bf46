package tests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"go.temporal.io/sdk/client"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/deploy/localstack/ossfake"
	"github.com/dumpflow/dumpflow/starter/verify"
	"github.com/dumpflow/dumpflow/workflows"
)

// This file tests the Kafka side of the exactly-once promise end to end
// (docs/exactly-once.md): broker faults in the middle of a range, the
// retention race, partitions added later, transactions, and that fetch
// errors are visible without stalling the healthy partitions.

// useKafka replaces the stack's single-broker cluster with one built from
// opts (more brokers, SASL); clientOpts are added to the test's producer
// and admin clients (e.g. SASL as a superuser).
func (s *stack) useKafka(clientOpts []kgo.Opt, opts ...kfake.Opt) *kfake.Cluster {
	s.t.Helper()
	kc, err := kfake.NewCluster(append([]kfake.Opt{kfake.AllowAutoTopicCreation()}, opts...)...)
	require.NoError(s.t, err)
	s.t.Cleanup(kc.Close)
	s.kafka, s.brokers = kc, kc.ListenAddrs()
	s.producer, err = kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(8 << 20)}, clientOpts...)...)
	require.NoError(s.t, err)
	s.t.Cleanup(s.producer.Close)
	return kc
}

// admin is an admin client over the test's producer connection.
func (s *stack) admin() *kadm.Client { return kadm.NewClient(s.producer) }

// startInput starts spec's connector with a workflow input of our own
// (DiscoveryInterval, HistoryLimit).
func (s *stack) startInput(spec *connector.Spec, in workflows.ConnectorInput) {
	s.t.Helper()
	_, err := s.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: spec.WorkflowID(), TaskQueue: workflows.TaskQueue,
	}, workflows.ConnectorName, in)
	require.NoError(s.t, err)
}

// partitionStatus is partition p's row of st, or nil.
func partitionStatus(st workflows.Status, p int32) *workflows.PartitionStatus {
	for i := range st.Partitions {
		if st.Partitions[i].Partition == p {
			return &st.Partitions[i]
		}
	}
	return nil
}

// midRange watches the fetches of a partition whose ranges are
// [k*batch, (k+1)*batch), each larger than one fetch response, so that a
// fetch at an offset that is not a multiple of batch continues a range
// already partly read. Point i fires at the first such fetch past
// points[i] (after point i-1 fired) and runs onArm(i, offset) in a goroutine
// of its own. The first point also opens the fault window: as a kfake
// Fault's When, m fails every fetch of the partition from that fetch on,
// for window.
type midRange struct {
	batch   int64
	window  time.Duration
	points  []int64 // default: one point, at 0
	onArm   func(i int, offset int64)
	fired   atomic.Int32
	armedAt atomic.Int64 // unix nanos when the first point fired, 0 before
	offset  atomic.Int64 // the fetch offset that fired the first point
}

func (m *midRange) when(req kmsg.Request) bool {
	m.observe(req)
	at := m.armedAt.Load()
	return at != 0 && time.Since(time.Unix(0, at)) < m.window
}

func (m *midRange) observe(req kmsg.Request) {
	points := m.points
	if points == nil {
		points = []int64{0}
	}
	i := int(m.fired.Load())
	fr, ok := req.(*kmsg.FetchRequest)
	if !ok || i >= len(points) {
		return
	}
	for _, t := range fr.Topics {
		for _, p := range t.Partitions {
			o := p.FetchOffset
			if o <= points[i] || o%m.batch == 0 || !m.fired.CompareAndSwap(int32(i), int32(i+1)) {
				continue
			}
			if i == 0 {
				m.offset.Store(o)
				m.armedAt.Store(time.Now().UnixNano())
			}
			if m.onArm != nil {
				go m.onArm(i, o) // When must not call back into the cluster
			}
			return
		}
	}
}

func (m *midRange) armed() bool { return m.armedAt.Load() != 0 }

// TestKafkaExactBrokerErrorsMidRange dumps a backlog whose ranges each span
// more than one fetch while the broker refuses every fetch of the partition
// for several seconds, starting in the middle of a range: with
// NOT_LEADER_FOR_PARTITION (franz-go retries it), with UNKNOWN_SERVER_ERROR
// (not retryable, yet transient), and through leader moves between three
// brokers with an election window in which no broker leads. Every value
// reaches OSS exactly once and verify --deep is exact. The first build
// ended a read after 2s without a new record and committed the short range
// as if it were complete: the records after the fault were lost.
func TestKafkaExactBrokerErrorsMidRange(t *testing.T) {
	// 300 records of 32 KiB per batch: a range is 9.6 MB. A fetch
	// returns at most one of the producer's 8 MiB record batches (255
	// records) past the reader's 1 MiB limit, so a read takes at least
	// two fetches.
	const batch, n, size = 300, 1200, 32 << 10
	const topic = "faults"
	run := func(t *testing.T, s *stack, setup func(kc *kfake.Cluster) (*kfake.FaultHandle, *midRange)) {
		s.startWorker()
		s.createTopic(topic, 1)
		s.produce(topic, 1, n, size, time.Time{})
		h, m := setup(s.kafka)
		spec := s.ossSpec(topic+"-oss", topic)
		spec.Batch.MaxRecords = batch
		s.start(spec, 0)
		st := s.waitFor(spec.Name, 3*time.Minute, "the whole backlog", caughtUp(n))
		require.True(t, m.armed(), "the fault never armed: no fetch in the middle of a range")
		require.Greater(t, h.Hits(), 0, "no fetch was refused")
		t.Logf("fault armed at offset %d, %d fetches refused", m.offset.Load(), h.Hits())
		p := st.Partitions[0]
		require.Equal(t, int64(n), p.Records)
		require.Equal(t, int64(n/batch), p.Objects, "one object per planned batch: no short range")
		s.verifyLedger(spec)
		requireEachOnce(t, s.readValues(topic+"/"), topic, 1, n, size, nil)
	}
	for _, e := range []*kerr.Error{kerr.NotLeaderForPartition, kerr.UnknownServerError} {
		t.Run(e.Message, func(t *testing.T) {
			s := newStack(t)
			run(t, s, func(kc *kfake.Cluster) (*kfake.FaultHandle, *midRange) {
				m := &midRange{batch: batch, window: 6 * time.Second}
				h := kc.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: topic, Partitions: []int32{0}, Err: e, Count: -1, When: m.when})
				t.Cleanup(h.Remove)
				return h, m
			})
		})
	}
	t.Run("leader moves", func(t *testing.T) {
		s := newStack(t)
		s.useKafka(nil, kfake.NumBrokers(3))
		var moved atomic.Int32
		var lastMoveAt atomic.Int64 // the connector's cursor after the last move
		run(t, s, func(kc *kfake.Cluster) (*kfake.FaultHandle, *midRange) {
			// In the middle of the first range: an election window of
			// 3s in which every broker answers NOT_LEADER_FOR_PARTITION,
			// then the leader moves. It moves again in the middle of
			// the second and of the third range.
			m := &midRange{batch: batch, window: 3 * time.Second, points: []int64{0, batch, 2 * batch}}
			first := make(chan struct{})
			m.onArm = func(i int, _ int64) {
				if i == 0 {
					time.Sleep(m.window) // the election window
					defer close(first)
				} else {
					<-first
				}
				leader := kc.LeaderFor(topic, 0)
				if err := kc.MoveTopicPartition(topic, 0, (leader+1)%3); err != nil {
					t.Error(err)
					return
				}
				if moved.Add(1) == 3 {
					if st, err := s.status(topic + "-oss"); err == nil && len(st.Partitions) == 1 {
						lastMoveAt.Store(st.Partitions[0].Next)
					} else {
						lastMoveAt.Store(-1)
					}
				}
			}
			h := kc.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: topic, Partitions: []int32{0}, Err: kerr.NotLeaderForPartition, Count: -1, When: m.when})
			t.Cleanup(h.Remove)
			return h, m
		})
		require.Eventually(t, func() bool { return moved.Load() == 3 }, 10*time.Second, 50*time.Millisecond, "the leader should have moved three times")
		require.GreaterOrEqual(t, lastMoveAt.Load(), int64(0))
		require.Less(t, lastMoveAt.Load(), int64(n), "the last move should land before the dump is done")
	})
}

var (
	starterOnce sync.Once
	starterBin  string
	starterErr  error
)

// starterBinary builds ./starter once per test binary.
func starterBinary(t *testing.T) string {
	t.Helper()
	starterOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dumpflow-starter")
		if err != nil {
			starterErr = err
			return
		}
		starterBin = filepath.Join(dir, "starter")
		out, err := exec.Command("go", "build", "-o", starterBin, "github.com/dumpflow/dumpflow/starter").CombinedOutput()
		if err != nil {
			starterErr = fmt.Errorf("%w: %s", err, out)
		}
	})
	require.NoError(t, starterErr, "go build ./starter")
	return starterBin
}

// starter runs the starter CLI against this stack's Temporal server.
func (s *stack) starter(cmd string, args ...string) string {
	s.t.Helper()
	all := append([]string{cmd, "-temporal", s.temporal.GetFrontendHostPort(), "-namespace", s.temporal.GetDefaultNamespace()}, args...)
	out, err := exec.Command(starterBinary(s.t), all...).CombinedOutput()
	require.NoError(s.t, err, "starter %v: %s", all, out)
	return string(out)
}

// deleteRecords moves the log start of topic's partitions to offset.
func (s *stack) deleteRecords(topic string, offset int64, partitions ...int32) {
	s.t.Helper()
	var os kadm.Offsets
	for _, p := range partitions {
		os.Add(kadm.Offset{Topic: topic, Partition: p, At: offset})
	}
	resp, err := s.admin().DeleteRecords(context.Background(), os)
	if err == nil {
		err = resp.Error()
	}
	require.NoError(s.t, err)
}

func allInState(state string) func(workflows.Status) bool {
	return func(st workflows.Status) bool {
		for _, p := range st.Partitions {
			if p.State != state {
				return false
			}
		}
		return len(st.Partitions) > 0
	}
}

// TestKafkaExactRetentionRace pauses a connector, produces more, and
// deletes records past its cursor (DeleteRecords, as retention does) before
// it resumes. Each partition parks as data-lost, naming the lost range and
// the acknowledgement command, and dumps nothing past the hole: verify
// shows no declared gap. Partition 0 is acknowledged with the
// acknowledge-data-loss signal, partition 1 with starter ack-data-loss
// while partition 1 stays parked; each then declares the gap (verify lists
// it with who acknowledged it) and continues at the log start, and every
// record after the hole is dumped exactly once. Without the data-lost check
// the reads would restart at the log start on their own (franz-go's offset
// reset) and the gap would be silent; without the declared gap verify would
// report it as loss.
//
// In "records dumped before the hole" the connector had dumped [0,1000)
// before retention deleted it from Kafka with the hole: the ledger must
// stay exact, and verify --deep must still be able to check the ranges
// Kafka still holds.
func TestKafkaExactRetentionRace(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before int // records dumped before the pause
	}{
		{"nothing dumped before the hole", 0},
		{"records dumped before the hole", 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t)
			s.startWorker()
			const topic, parts, size, hole, total = "retention", 2, 100, 1000, 3000
			s.createTopic(topic, parts)
			if tc.before > 0 {
				s.produce(topic, parts, tc.before, size, time.Time{})
			}
			spec := s.ossSpec("retention-oss", topic)
			s.start(spec, 0)
			s.waitFor(spec.Name, time.Minute, "caught up before the pause", func(st workflows.Status) bool {
				return len(st.Partitions) == parts && caughtUp(int64(tc.before))(st) && allInState(workflows.StateRunning)(st)
			})

			ctx := context.Background()
			require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalPause, nil))
			s.waitFor(spec.Name, 30*time.Second, "paused", allInState(workflows.StatePaused))
			cursor := int64(tc.before)
			lostEnd := cursor + hole
			s.produce2(topic, parts, tc.before, total, size)
			s.deleteRecords(topic, lostEnd, 0, 1)
			require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalResume, nil))

			st := s.waitFor(spec.Name, time.Minute, "data-lost", allInState(workflows.StateDataLost))
			for _, p := range st.Partitions {
				require.Equal(t, cursor, p.Next, "partition %d moved past the hole", p.Partition)
				require.NotNil(t, p.DataLost)
				require.Equal(t, cursor, p.DataLost.First)
				require.Equal(t, lostEnd, p.DataLost.End)
				require.Contains(t, p.LastError, fmt.Sprintf("[%d,%d)", cursor, lostEnd))
				require.Contains(t, p.LastError, fmt.Sprintf("starter ack-data-loss %s --partition %d", spec.Name, p.Partition))
				require.Contains(t, p.LastError, workflows.SignalAckDataLoss)
				require.Empty(t, p.Gaps)
			}
			// Parked: nothing past the hole is dumped while nobody
			// acknowledged it. Proving an absence needs a wait.
			time.Sleep(3 * spec.Batch.FlushInterval.D())
			st, err := s.status(spec.Name)
			require.NoError(t, err)
			for _, p := range st.Partitions {
				require.Equal(t, workflows.StateDataLost, p.State)
				require.Equal(t, cursor, p.Next, "partition %d advanced while data-lost", p.Partition)
			}
			requireNoneOf(t, s.readValues(topic+"/"), topic, parts, tc.before, total, size)
			rep, err := verify.Run(ctx, spec, s.cursors(spec))
			require.NoError(t, err)
			require.True(t, rep.OK, "ledger before the acknowledgement: %+v", rep)
			for _, p := range rep.Partitions {
				require.Empty(t, p.Declared, "partition %d has a declared gap before anyone acknowledged it", p.Partition)
			}

			// Partition 0, by signal; partition 1 stays parked.
			p0 := int32(0)
			require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalAckDataLoss, workflows.AckDataLoss{Partition: &p0, By: "test"}))
			st = s.waitFor(spec.Name, time.Minute, "partition 0 past the hole", func(st workflows.Status) bool {
				p := partitionStatus(st, 0)
				return p != nil && p.Next == total
			})
			p1 := partitionStatus(st, 1)
			require.Equal(t, workflows.StateDataLost, p1.State, "partition 1 was not acknowledged")
			require.Equal(t, cursor, p1.Next)
			require.Empty(t, p1.Gaps)

			// Partition 1, with the CLI.
			out := s.starter("ack-data-loss", "-partition", "1", "-by", "cli-test", spec.Name)
			require.Contains(t, out, "data loss acknowledged")
			st = s.waitFor(spec.Name, time.Minute, "every partition past the hole", caughtUp(total))
			by := map[int32]string{0: "test", 1: "cli-test (starter ack-data-loss)"}
			for _, p := range st.Partitions {
				require.Equal(t, workflows.StateRunning, p.State)
				require.Empty(t, p.LastError)
				require.Nil(t, p.DataLost)
				require.Len(t, p.Gaps, 1, "partition %d", p.Partition)
				require.Equal(t, cursor, p.Gaps[0].First)
				require.Equal(t, lostEnd, p.Gaps[0].End)
				require.Equal(t, by[p.Partition], p.Gaps[0].By)
				require.Equal(t, int64(total)-lostEnd+cursor, p.Records, "partition %d: the records before and after the hole", p.Partition)
			}
			rep = s.verifyLedger(spec)
			for _, p := range rep.Partitions {
				require.Len(t, p.Declared, 1, "partition %d", p.Partition)
				require.Equal(t, cursor, p.Declared[0].First)
				require.Equal(t, lostEnd, p.Declared[0].End)
				require.Contains(t, p.Declared[0].Note, "acknowledged by "+by[p.Partition])
			}
			counts := s.readValues(topic + "/")
			requireNoneOf(t, counts, topic, parts, int(cursor), int(lostEnd), size)
			except := map[string]bool{}
			for p := int32(0); p < parts; p++ {
				for i := cursor; i < lostEnd; i++ {
					except[string(value(topic, p, int(i), size))] = true
				}
			}
			requireEachOnce(t, counts, topic, parts, total, size, except)
		})
	}
}

// requireNoneOf asserts no value [from, to) of any partition is in counts.
func requireNoneOf(t *testing.T, counts map[string]int, topic string, partitions int32, from, to, size int) {
	t.Helper()
	for p := int32(0); p < partitions; p++ {
		for i := from; i < to; i++ {
			require.Zero(t, counts[string(value(topic, p, i, size))], "value %d of partition %d is in the sink", i, p)
		}
	}
}

// requireRangeOnce asserts values [from, to) of partition p are each in
// counts exactly once.
func requireRangeOnce(t *testing.T, counts map[string]int, topic string, p int32, from, to, size int) {
	t.Helper()
	missing, dup := 0, 0
	for i := from; i < to; i++ {
		switch counts[string(value(topic, p, i, size))] {
		case 0:
			missing++
		case 1:
		default:
			dup++
		}
	}
	require.Zero(t, missing, "values of partition %d in [%d,%d) missing from the sink", p, from, to)
	require.Zero(t, dup, "values of partition %d in [%d,%d) present more than once", p, from, to)
}

// produceRange produces values [from, to) to partition p of topic with cl.
func produceRange(t *testing.T, cl *kgo.Client, topic string, p int32, from, to, size int) {
	t.Helper()
	recs := make([]*kgo.Record, 0, to-from)
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: value(topic, p, i, size)})
	}
	require.NoError(t, cl.ProduceSync(context.Background(), recs...).FirstErr())
}

// TestKafkaExactNewPartitions starts a connector with initialPosition
// latest on a one-partition topic and a discovery interval of 2s; while it
// runs, a partition is added and records are produced to it before the
// connector can discover it (the connector's metadata requests for the
// topic are refused meanwhile, so the order is certain). Every record of
// the new partition, including those produced before it was discovered, is
// dumped exactly once: a partition found later starts at its earliest
// offset, not at initialPosition. The first build started new partitions at
// latest (losing what was produced before discovery) and only looked for
// them at continue-as-new.
func TestKafkaExactNewPartitions(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, size = "growing", 100
	s.createTopic(topic, 1)
	produceRange(t, s.producer, topic, 0, 0, 100, size) // before the start: skipped (latest)

	spec := s.ossSpec("growing-oss", topic)
	spec.Kafka.InitialPosition = "latest"
	in := workflows.NewInput(spec)
	in.DiscoveryInterval = connector.Duration(2 * time.Second)
	s.startInput(spec, in)
	st := s.waitFor(spec.Name, time.Minute, "partition 0 at latest", func(st workflows.Status) bool {
		return len(st.Partitions) == 1 && st.Partitions[0].Next == 100 && st.Partitions[0].State == workflows.StateRunning
	})
	require.Equal(t, "latest", st.Partitions[0].From)
	produceRange(t, s.producer, topic, 0, 100, 200, size)
	s.waitFor(spec.Name, time.Minute, "partition 0 dumping", caughtUp(200))

	// The test's own clients ask with auto topic creation on; the
	// connector's do not: their metadata requests for the topic are
	// refused until the new partition has records.
	gen, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.AllowAutoTopicCreation())
	require.NoError(t, err)
	defer gen.Close()
	hidden := s.kafka.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Metadata}, Topic: topic, Count: -1, When: func(r kmsg.Request) bool {
		return !r.(*kmsg.MetadataRequest).AllowAutoTopicCreation
	}})
	ctx := context.Background()
	resp, err := kadm.NewClient(gen).CreatePartitions(ctx, 1, topic)
	require.NoError(t, err)
	require.NoError(t, resp.Error())
	produceRange(t, gen, topic, 1, 0, 500, size)
	st, err = s.status(spec.Name)
	require.NoError(t, err)
	require.Len(t, st.Partitions, 1, "the new partition was discovered before its records were produced")
	hidden.Remove()

	st = s.waitFor(spec.Name, time.Minute, "the new partition", func(st workflows.Status) bool { return len(st.Partitions) == 2 })
	p1 := partitionStatus(st, 1)
	require.Equal(t, int64(0), p1.Start, "the new partition starts at its earliest offset")
	require.Equal(t, "earliest", p1.From)
	produceRange(t, gen, topic, 1, 500, 600, size)
	produceRange(t, gen, topic, 0, 200, 300, size)
	st = s.waitFor(spec.Name, time.Minute, "both partitions dumped", func(st workflows.Status) bool {
		p0, p1 := partitionStatus(st, 0), partitionStatus(st, 1)
		return p0 != nil && p1 != nil && p0.Next == 300 && p1.Next == 600
	})
	require.Zero(t, st.Run, "discovered without continuing as new")
	s.verifyLedger(spec)
	counts := s.readValues(topic + "/")
	requireNoneOf(t, counts, topic, 1, 0, 100, size)
	requireRangeOnce(t, counts, topic, 0, 100, 300, size)
	requireRangeOnce(t, counts, topic, 1, 0, 600, size)
}

// txnWriter writes to partition 0 of a topic with a transactional and a
// plain producer, and remembers what it wrote.
type txnWriter struct {
	t          *testing.T
	topic      string
	txn, plain *kgo.Client
	values     map[string][]string // by kind: committed, aborted, open, plain
	open       []string
	openFirst  int64 // offset of the open transaction's first record
	last       int64
}

func (w *txnWriter) produce(cl *kgo.Client, v string) int64 {
	w.t.Helper()
	r := &kgo.Record{Topic: w.topic, Partition: 0, Value: []byte(v)}
	require.NoError(w.t, cl.ProduceSync(context.Background(), r).FirstErr())
	w.last = r.Offset
	return r.Offset
}

// plainRecords writes n non-transactional records.
func (w *txnWriter) plainRecords(n int) {
	for range n {
		v := fmt.Sprintf("%s-plain-%04d", w.topic, len(w.values["plain"]))
		w.produce(w.plain, v)
		w.values["plain"] = append(w.values["plain"], v)
	}
}

func (w *txnWriter) begin() {
	w.t.Helper()
	require.NoError(w.t, w.txn.BeginTransaction())
	w.open, w.openFirst = nil, -1
}

// txnRecords writes n records in the open transaction.
func (w *txnWriter) txnRecords(n int) {
	for range n {
		v := fmt.Sprintf("%s-txn-%04d", w.topic, len(w.values["committed"])+len(w.values["aborted"])+len(w.open))
		o := w.produce(w.txn, v)
		if w.openFirst < 0 {
			w.openFirst = o
		}
		w.open = append(w.open, v)
	}
}

func (w *txnWriter) end(commit bool) {
	w.t.Helper()
	require.NoError(w.t, w.txn.EndTransaction(context.Background(), kgo.TransactionEndTry(commit)))
	kind := "aborted"
	if commit {
		kind = "committed"
	}
	w.values[kind] = append(w.values[kind], w.open...)
	w.open = nil
}

// TestKafkaExactTransactions dumps a partition written by a transactional
// and a plain producer, interleaved: a committed transaction with plain
// records inside its span, an aborted one with plain records inside its
// span, and a transaction left open while the connector runs, followed by
// plain records. No aborted record ever reaches OSS; while the transaction
// is open the connector's cursor stops at the last stable offset (the open
// transaction's first record) and neither its records nor the plain ones
// after it are dumped; once it commits they all are, each once, and verify
// --deep (which reads Kafka read_committed) is exact. A read_uncommitted
// read would dump the aborted records and the open transaction's; a plan to
// the high watermark instead of the last stable offset would stall on the
// open transaction (or, with the first build's 2s read timeout, commit a
// short range).
func TestKafkaExactTransactions(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic = "txns"
	s.createTopic(topic, 1)
	txn, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionalID("dumpflow-test-txn"), kgo.ProducerLinger(time.Millisecond), kgo.TransactionTimeout(5*time.Minute))
	require.NoError(t, err)
	defer txn.Close()
	w := &txnWriter{t: t, topic: topic, txn: txn, plain: s.producer, values: map[string][]string{}}

	w.plainRecords(10)
	w.begin() // committed, with plain records inside its span
	w.txnRecords(10)
	w.plainRecords(5)
	w.txnRecords(10)
	w.end(true)
	w.begin() // aborted, with plain records inside its span
	w.txnRecords(10)
	w.plainRecords(5)
	w.txnRecords(10)
	w.end(false)
	w.plainRecords(10)

	spec := s.ossSpec("txns-oss", topic)
	s.start(spec, 0)
	s.waitFor(spec.Name, time.Minute, "the decided records", func(st workflows.Status) bool {
		return len(st.Partitions) == 1 && st.Partitions[0].Next > w.last && st.Partitions[0].Lag == 0
	})

	// An open transaction, then plain records past it, and another
	// aborted transaction while the first is still open.
	w.begin()
	w.txnRecords(10)
	openFirst, open := w.openFirst, w.open
	w.plainRecords(10)
	w.txnRecords(5)
	st := s.waitFor(spec.Name, time.Minute, "the cursor at the last stable offset", func(st workflows.Status) bool {
		p := st.Partitions[0]
		return p.Stable == openFirst && p.Next == openFirst && p.HighWatermark > w.last
	})
	// Nothing past the last stable offset is dumped while the
	// transaction is open. Proving an absence needs a wait.
	time.Sleep(3 * spec.Batch.FlushInterval.D())
	st, err = s.status(spec.Name)
	require.NoError(t, err)
	p := st.Partitions[0]
	require.Equal(t, openFirst, p.Stable)
	require.LessOrEqual(t, p.Next, p.Stable, "the cursor passed the last stable offset")
	require.Equal(t, workflows.StateRunning, p.State)
	require.Empty(t, p.LastError)
	counts := s.readValues(topic + "/")
	for _, v := range append(append(append([]string(nil), open...), w.values["plain"][30:]...), w.values["aborted"]...) {
		require.Zero(t, counts[v], "%q is in the sink while its transaction is open or aborted", v)
	}
	rep := s.verifyLedger(spec)
	require.Equal(t, openFirst, rep.Partitions[0].Committed)

	w.end(true)
	s.waitFor(spec.Name, time.Minute, "everything after the commit", func(st workflows.Status) bool {
		p := st.Partitions[0]
		return p.Next > w.last && p.Lag == 0 && p.Stable == p.HighWatermark
	})
	counts = s.readValues(topic + "/")
	for _, v := range w.values["aborted"] {
		require.Zero(t, counts[v], "aborted record %q is in the sink", v)
	}
	for _, kind := range []string{"committed", "plain"} {
		for _, v := range w.values[kind] {
			require.Equal(t, 1, counts[v], "%s record %q", kind, v)
		}
	}
	require.Len(t, w.values["committed"], 35)
	require.Len(t, w.values["aborted"], 20)
	require.Len(t, w.values["plain"], 40)
	s.verifyLedger(spec)
}

// anyError is every error the status shows, joined.
func anyError(st workflows.Status) string {
	msg := st.Error
	for _, p := range st.Partitions {
		msg += "\n" + fmt.Sprintf("partition %d (%s): %s", p.Partition, p.State, p.LastError)
	}
	return msg
}

func (s *stack) requireRunning(spec *connector.Spec) {
	s.t.Helper()
	desc, err := s.client.DescribeWorkflowExecution(context.Background(), spec.WorkflowID(), "")
	require.NoError(s.t, err)
	require.Equal(s.t, "Running", desc.GetWorkflowExecutionInfo().GetStatus().String(), "the connector keeps running")
}

// verifyMeta checks the ledger from the sink's metadata only (no Kafka
// reads: for a topic that is gone).
func (s *stack) verifyMeta(spec *connector.Spec) verify.Report {
	s.t.Helper()
	rep, err := verify.Run(context.Background(), spec, s.cursors(spec))
	require.NoError(s.t, err)
	require.Truef(s.t, rep.OK, "ledger not exact: %+v", rep)
	return rep
}

// scramRefusal, as a kfake Fault's When on SASLAuthenticate, picks the
// final step (the proof) of user's SCRAM authentications: the fault then
// answers it as Kafka answers a wrong password.
type scramRefusal struct {
	user   string
	mu     sync.Mutex
	nonces []string // client nonces of user's first messages
}

func (r *scramRefusal) when(req kmsg.Request) bool {
	msg := string(req.(*kmsg.SASLAuthenticateRequest).SASLAuthBytes)
	r.mu.Lock()
	defer r.mu.Unlock()
	if first, ok := strings.CutPrefix(msg, "n,,n="+r.user+",r="); ok {
		r.nonces = append(r.nonces, first)
		return false
	}
	if final, ok := strings.CutPrefix(msg, "c=biws,r="); ok {
		for _, n := range r.nonces {
			if strings.HasPrefix(final, n) {
				return true
			}
		}
	}
	return false
}

// TestKafkaExactFetchErrorsVisible checks that fetch errors show in the
// status after a few attempts and that one bad partition does not stall the
// others (issue item 9):
//   - a topic deleted under a running connector shows in the status, naming
//     the topic, within a minute;
//   - credentials that stop working (the SASL user's password changed)
//     show as an authentication error;
//   - one offline partition of three (ListOffsets and Fetch refused for it)
//     is in state "error" with its error while the other two, served by the
//     same partition loop, keep dumping; it catches up once it is back;
//   - a topic deleted and recreated under the same name stops the
//     partitions with TopicRecreated, and nothing of the new topic is
//     written under the old topic's offsets;
//   - an idle connector writes nothing to history while it waits (its
//     FetchRanges waits for data, its discovery long-polls); pauses and
//     resumes while idle make it continue as new, and it keeps dumping
//     exactly.
func TestKafkaExactFetchErrorsVisible(t *testing.T) {
	ctx := context.Background()
	t.Run("topic deleted", func(t *testing.T) {
		s := newStack(t)
		s.startWorker()
		const topic, parts, size = "doomed", 2, 100
		s.createTopic(topic, parts)
		s.produce(topic, parts, 500, size, time.Time{})
		spec := s.ossSpec(topic+"-oss", topic)
		s.start(spec, 0)
		s.waitFor(spec.Name, time.Minute, "caught up", caughtUp(500))
		s.verifyLedger(spec)

		resp, err := s.admin().DeleteTopic(ctx, topic)
		require.NoError(t, err)
		require.NoError(t, resp.Err)
		st := s.waitFor(spec.Name, time.Minute, "the deleted topic in the status", func(st workflows.Status) bool {
			for _, p := range st.Partitions {
				if !strings.Contains(p.LastError, `"`+topic+`"`) {
					return false
				}
			}
			return true
		})
		t.Log(anyError(st))
		for _, p := range st.Partitions {
			require.Contains(t, p.LastError, "does not exist")
			require.Equal(t, int64(500), p.Next)
		}
		s.requireRunning(spec)
		s.verifyMeta(spec)
	})

	t.Run("SASL credentials expired", func(t *testing.T) {
		// The connector's user, dumpflow, is not the test's (admin).
		t.Setenv("DUMPFLOW_CRED_KAFKA_SASL_ACCESS_KEY_ID", "dumpflow")
		t.Setenv("DUMPFLOW_CRED_KAFKA_SASL_ACCESS_KEY_SECRET", "first-password")
		s := newStack(t)
		s.useKafka([]kgo.Opt{kgo.SASL(scram.Auth{User: "admin", Pass: "admin-secret"}.AsSha256Mechanism())},
			kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "admin", "admin-secret"), kfake.User("SCRAM-SHA-256", "dumpflow", "first-password"),
			// Sessions last 3s: connections authenticate again.
			kfake.BrokerConfigs(map[string]string{"connections.max.reauth.ms": "3000"}))
		s.startWorker()
		const topic, parts, size = "secured", 2, 100
		cr, err := s.admin().CreateTopic(ctx, parts, -1, nil, topic)
		require.NoError(t, err)
		require.NoError(t, cr.Err)
		s.produce(topic, parts, 500, size, time.Time{})
		spec := s.ossSpec(topic+"-oss", topic)
		spec.Kafka.SASL = &connector.SASLSpec{Mechanism: "SCRAM-SHA-256", Credentials: "kafka-sasl"}
		s.start(spec, 0)
		s.waitFor(spec.Name, time.Minute, "caught up", caughtUp(500))
		s.verifyLedger(spec)

		// The password changes: the connector's credentials no longer
		// work. kfake closes the connection on a failed SCRAM proof;
		// Kafka answers SASL_AUTHENTICATION_FAILED first, which the
		// fault reproduces for the connector's user.
		altered, err := s.admin().AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "dumpflow", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "second-password"}})
		require.NoError(t, err)
		require.NoError(t, altered.Error())
		refused := &scramRefusal{user: "dumpflow"}
		h := s.kafka.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.SASLAuthenticate}, Err: kerr.SaslAuthenticationFailed, Count: -1, When: refused.when})
		defer h.Remove()
		s.produce2(topic, parts, 500, 1000, size)
		st := s.waitFor(spec.Name, 2*time.Minute, "an authentication error in the status", func(st workflows.Status) bool {
			return strings.Contains(anyError(st), "SASL_AUTHENTICATION_FAILED")
		})
		t.Log(anyError(st))
		require.Greater(t, h.Hits(), 0)
		s.requireRunning(spec)
		// What was written is exact (verify with the new password).
		h.Remove()
		t.Setenv("DUMPFLOW_CRED_KAFKA_SASL_ACCESS_KEY_SECRET", "second-password")
		s.verifyLedger(spec)
	})

	t.Run("offline partition", func(t *testing.T) {
		s := newStack(t)
		s.startWorker()
		const topic, parts, size = "offline", 3, 100
		s.createTopic(topic, parts)
		s.produce(topic, parts, 300, size, time.Time{})
		spec := s.ossSpec(topic+"-oss", topic)
		spec.Concurrency = 1        // one loop serves the three partitions
		spec.Batch.MaxRecords = 100 // 12 batches each to catch up: a stall per batch adds up
		s.start(spec, 0)
		s.waitFor(spec.Name, time.Minute, "caught up", caughtUp(300))

		h := s.kafka.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.ListOffsets, kmsg.Fetch}, Topic: topic, Partitions: []int32{1},
			Err: kerr.NotLeaderForPartition, Count: -1})
		defer h.Remove()
		s.produce2(topic, parts, 300, 1500, size)
		faulted := time.Now()
		st := s.waitFor(spec.Name, time.Minute, "partition 1 in error, 0 and 2 dumping", func(st workflows.Status) bool {
			p0, p1, p2 := partitionStatus(st, 0), partitionStatus(st, 1), partitionStatus(st, 2)
			return p1.State == workflows.StateError && p0.Next == 1500 && p2.Next == 1500
		})
		p1 := partitionStatus(st, 1)
		t.Logf("after %v: %s", time.Since(faulted), anyError(st))
		require.Equal(t, int64(300), p1.Next)
		require.Contains(t, p1.LastError, "NOT_LEADER")
		require.Contains(t, p1.LastError, topic+"[1]")
		for _, p := range []int32{0, 2} {
			ps := partitionStatus(st, p)
			require.Equal(t, workflows.StateRunning, ps.State)
			require.Empty(t, ps.LastError)
		}
		require.Greater(t, h.Hits(), 0)

		h.Remove()
		st = s.waitFor(spec.Name, time.Minute, "partition 1 back", caughtUp(1500))
		for _, p := range st.Partitions {
			require.Equal(t, workflows.StateRunning, p.State)
			require.Empty(t, p.LastError)
		}
		s.verifyLedger(spec)
		requireEachOnce(t, s.readValues(topic+"/"), topic, parts, 1500, size, nil)
	})

	t.Run("topic recreated", func(t *testing.T) {
		s := newStack(t)
		s.startWorker()
		const topic, parts, size = "reborn", 2, 100
		s.createTopic(topic, parts)
		s.produce(topic, parts, 500, size, time.Time{})
		spec := s.ossSpec(topic+"-oss", topic)
		s.start(spec, 0)
		s.waitFor(spec.Name, time.Minute, "caught up", caughtUp(500))
		s.verifyLedger(spec)

		// Deleted and recreated at once, with more records than
		// before: offsets past the old cursors exist again.
		resp, err := s.admin().DeleteTopic(ctx, topic)
		require.NoError(t, err)
		require.NoError(t, resp.Err)
		s.createTopic(topic, parts)
		np, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		require.NoError(t, err)
		defer np.Close()
		for p := int32(0); p < parts; p++ {
			produceRange(t, np, topic, p, 0, 1500, size+1) // other values than before
		}
		// Well within the 30s a read of the new topic through a reader
		// of the old one stalls for.
		st := s.waitFor(spec.Name, 15*time.Second, "every partition stopped on the recreated topic", allInState(workflows.StateStopped))
		t.Log(anyError(st))
		for _, p := range st.Partitions {
			require.Contains(t, p.LastError, "TopicRecreated")
			require.Equal(t, int64(500), p.Next)
		}
		requireNoneOf(t, s.readValues(topic+"/"), topic, parts, 0, 1500, size+1)
		requireEachOnce(t, s.readValues(topic+"/"), topic, parts, 500, size, nil)
		s.requireRunning(spec)
		s.verifyMeta(spec)
	})

	t.Run("topic recreated between plan and write", func(t *testing.T) {
		s := newStack(t)
		s.startWorker()
		const topic, size = "reborn-late", 100
		s.createTopic(topic, 1)
		produceRange(t, s.producer, topic, 0, 0, 500, size)
		spec := s.ossSpec(topic+"-oss", topic)
		s.start(spec, 0)
		s.waitFor(spec.Name, time.Minute, "caught up", caughtUp(500))
		s.verifyLedger(spec)

		// The range [500,1000) is cut and recorded, then its write
		// fails until the topic has been recreated: the retry runs
		// on the new topic.
		inj := s.ossFake.InjectFault(ossfake.InternalError(ossfake.Match{Ops: []ossfake.Op{ossfake.OpPutObject}, Path: regexp.MustCompile(`/partition_0_offset_500_`)}))
		defer inj.Remove()
		produceRange(t, s.producer, topic, 0, 500, 1000, size)
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		require.NoError(t, inj.Wait(wctx, 1))
		resp, err := s.admin().DeleteTopic(ctx, topic)
		require.NoError(t, err)
		require.NoError(t, resp.Err)
		s.createTopic(topic, 1)
		np, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		require.NoError(t, err)
		defer np.Close()
		produceRange(t, np, topic, 0, 0, 1500, size+1) // other values than before
		inj.Remove()

		st := s.waitFor(spec.Name, time.Minute, "the partition stopped on the recreated topic", allInState(workflows.StateStopped))
		t.Log(anyError(st))
		counts := s.readValues(topic + "/")
		requireNoneOf(t, counts, topic, 1, 0, 1500, size+1)
		requireRangeOnce(t, counts, topic, 0, 0, 500, size)
		require.Contains(t, st.Partitions[0].LastError, "TopicRecreated")
		require.Equal(t, int64(500), st.Partitions[0].Next, "the range cut on the old topic is not written from the new one")
		s.requireRunning(spec)
		s.verifyMeta(spec)
	})

	t.Run("continue-as-new while idle", func(t *testing.T) {
		s := newStack(t)
		s.startWorker()
		const topic, parts, size = "idle", 2, 100
		s.createTopic(topic, parts)
		s.produce(topic, parts, 100, size, time.Time{})
		spec := s.ossSpec(topic+"-oss", topic)
		in := workflows.NewInput(spec)
		in.HistoryLimit = 60
		in.DiscoveryInterval = connector.Duration(time.Second)
		s.startInput(spec, in)
		s.waitFor(spec.Name, time.Minute, "caught up", caughtUp(100))
		// Idle: discovery looks every second and FetchRanges polls the
		// offsets four times a second, inside their activities.
		time.Sleep(3 * time.Second)
		before, err := s.status(spec.Name)
		require.NoError(t, err)
		time.Sleep(10 * time.Second)
		after, err := s.status(spec.Name)
		require.NoError(t, err)
		require.Equal(t, before.Run, after.Run)
		require.Equal(t, before.HistoryLength, after.HistoryLength, "an idle connector adds no history events")
		// Pauses and resumes while idle: each cancels the waiting
		// FetchRanges, and the run continues as new at its limit.
		ctx := context.Background()
		runs := func() int {
			st, err := s.status(spec.Name)
			require.NoError(t, err)
			return st.Run
		}
		for i := 0; i < 40 && runs() < 2; i++ {
			require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalPause, nil))
			s.waitFor(spec.Name, time.Minute, "paused", func(st workflows.Status) bool { return st.Paused })
			require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalResume, nil))
			s.waitFor(spec.Name, time.Minute, "resumed", func(st workflows.Status) bool { return !st.Paused })
		}
		st, err := s.status(spec.Name)
		require.NoError(t, err)
		require.GreaterOrEqual(t, st.Run, 2, "two runs continued as new while idle")
		for _, p := range st.Partitions {
			require.Equal(t, int64(100), p.Next)
			require.Equal(t, workflows.StateRunning, p.State)
		}
		s.produce2(topic, parts, 100, 600, size)
		st = s.waitFor(spec.Name, time.Minute, "caught up after idling", caughtUp(600))
		s.produce2(topic, parts, 600, 1000, size)
		st = s.waitFor(spec.Name, time.Minute, "caught up again", caughtUp(1000))
		require.Empty(t, st.Error)
		for _, p := range st.Partitions {
			require.Equal(t, workflows.StateRunning, p.State)
			require.Empty(t, p.LastError)
		}
		s.requireRunning(spec)
		s.verifyLedger(spec)
		requireEachOnce(t, s.readValues(topic+"/"), topic, parts, 1000, size, nil)
	})
}
