package tests

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/workflows"
)

// TestDumpThreePartitionsExactlyOnce dumps 3 partitions × 10k records
// through small batches and a short history limit (so the connector
// continues as new several times), then checks the ledger and that every
// value is in OSS exactly once.
func TestDumpThreePartitionsExactlyOnce(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, parts, n, size = "orders", 3, 10000, 100
	s.createTopic(topic, parts)
	s.produce(topic, parts, n/2, size, time.Time{})

	spec := s.ossSpec("orders-oss", topic)
	s.start(spec, 80)
	// More data while it runs.
	s.produce2(topic, parts, n/2, n, size)
	st := s.waitFor(spec.Name, 3*time.Minute, "all 30k records", caughtUp(n))

	require.Greater(t, st.Run, 0, "the connector should have continued as new")
	var recs int64
	for _, p := range st.Partitions {
		require.Equal(t, int64(0), p.Start)
		require.Equal(t, int64(n), p.Next)
		require.Equal(t, workflows.StateRunning, p.State)
		recs += p.Records
	}
	require.Equal(t, int64(parts*n), recs)
	rep := s.verifyLedger(spec)
	require.Len(t, rep.Partitions, parts)
	requireEachOnce(t, s.readValues(topic+"/"), topic, parts, n, size, nil)

	// The group offsets mirror the cursors.
	s.requireGroupOffsets(spec, n)
}

// produce2 produces values [from, to) on every partition.
func (s *stack) produce2(topic string, partitions int32, from, to, size int) {
	s.t.Helper()
	for p := int32(0); p < partitions; p++ {
		recs := make([]*kgo.Record, 0, to-from)
		for i := from; i < to; i++ {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: value(topic, p, i, size)})
		}
		require.NoError(s.t, s.producer.ProduceSync(context.Background(), recs...).FirstErr())
	}
}

func (s *stack) requireGroupOffsets(spec *connector.Spec, want int64) {
	s.t.Helper()
	kc, err := kafka.NewClient(kgo.SeedBrokers(s.brokers...))
	require.NoError(s.t, err)
	defer kc.Close()
	require.Eventually(s.t, func() bool {
		cm, err := kc.CommittedOffsets(context.Background(), spec.Group(), spec.Kafka.Topic)
		if err != nil || len(cm) == 0 {
			return false
		}
		for _, c := range cm {
			if c.Offset != want || c.Start != 0 {
				return false
			}
		}
		return true
	}, 30*time.Second, 100*time.Millisecond, "group %s should have committed %d on every partition", spec.Group(), want)
}

// TestWorkerSIGKILLMidRun runs the worker as a separate process, kills it
// with SIGKILL while batches are being written, starts a new one, and checks
// that nothing was lost or duplicated.
func TestWorkerSIGKILLMidRun(t *testing.T) {
	s := newStack(t)
	const topic, parts, n, size = "clicks", 3, 20000, 200
	s.createTopic(topic, parts)
	s.produce(topic, parts, n, size, time.Time{})

	spec := s.ossSpec("clicks-oss", topic)
	spec.Batch.MaxRecords = 500
	spec.Concurrency = 2 // 3 partitions over 2 loops: one loop serves two
	w := s.startWorkerProcess()
	s.start(spec, 0)
	// Kill it once some, but not all, batches are in.
	mid := s.waitFor(spec.Name, 2*time.Minute, "first batches", func(st workflows.Status) bool {
		var recs int64
		for _, p := range st.Partitions {
			recs += p.Records
		}
		return recs >= 3000
	})
	w.kill()
	behind := false
	for _, p := range mid.Partitions {
		behind = behind || p.Next < int64(n)
	}
	require.True(t, behind, "the kill should land mid-run")

	s.startWorkerProcess()
	s.waitFor(spec.Name, 3*time.Minute, "all records after restart", caughtUp(n))
	s.verifyLedger(spec)
	requireEachOnce(t, s.readValues(topic+"/"), topic, parts, n, size, nil)
}
