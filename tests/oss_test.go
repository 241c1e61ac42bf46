package tests

import (
	"context"
	"strings"
	"testing"
	"time"

	alioss "github.com/aliyun/aliyun-oss-go-sdk/oss"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/starter/verify"
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
	s.start(spec, 40)
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

// TestMultipartUpload: a batch larger than one part is uploaded with
// multipart upload, and reads back whole.
func TestMultipartUpload(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, n, size = "big", 1500, 1000
	s.createTopic(topic, 1)
	s.produce(topic, 1, n, size, time.Time{})
	spec := s.ossSpec("big-oss", topic)
	spec.Batch.MaxRecords = 500        // ~500 KB objects
	spec.Sink.OSS.PartSize = 100 << 10 // 100 KiB parts: 5 per object
	s.start(spec, 0)
	st := s.waitFor(spec.Name, time.Minute, "all records", caughtUp(n))
	require.Equal(t, int64(3), st.Partitions[0].Objects)
	require.GreaterOrEqual(t, s.ossParts.Load(), int64(15), "each object should go up in at least 5 parts")
	s.verifyLedger(spec)
	requireEachOnce(t, s.readValues(topic+"/"), topic, 1, n, size, nil)
}

// TestResumeFromMetaAfterWorkflowLost: the connector's workflow is
// terminated and its group offsets are gone; a new workflow resumes from the
// partition meta objects in OSS, with no duplicate. Then a planted duplicate
// object makes verify fail.
func TestResumeFromMetaAfterWorkflowLost(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, parts, size = "audit", 2, 100
	s.createTopic(topic, parts)
	s.produce(topic, parts, 1000, size, time.Time{})
	spec := s.ossSpec("audit-oss", topic)
	s.start(spec, 0)
	s.waitFor(spec.Name, time.Minute, "first 1000", caughtUp(1000))
	ctx := context.Background()
	require.NoError(t, s.client.TerminateWorkflow(ctx, spec.WorkflowID(), "", "test: workflow lost"))
	kc, err := kafka.NewClient(kgo.SeedBrokers(s.brokers...))
	require.NoError(t, err)
	defer kc.Close()
	_, err = kc.Admin().DeleteGroup(ctx, spec.Group())
	require.NoError(t, err)

	s.produce2(topic, parts, 1000, 2000, size)
	s.start(spec, 0)
	st := s.waitFor(spec.Name, time.Minute, "caught up after the restart", caughtUp(2000))
	for _, p := range st.Partitions {
		require.Equal(t, "sink", p.From, "partition %d resumed from %s", p.Partition, p.From)
		require.Equal(t, int64(0), p.Start)
		require.Equal(t, int64(1000), p.Records, "the new workflow writes only the new records")
	}
	s.verifyLedger(spec)
	requireEachOnce(t, s.readValues(topic+"/"), topic, parts, 2000, size, nil)

	// Plant a copy of an object under another name: verify must see the
	// overlap.
	objs := s.ossObjects(spec)
	cl, err := alioss.New(s.oss.URL, "dumpflow", "dumpflow-secret", alioss.ForcePathStyle(true))
	require.NoError(t, err)
	b, err := cl.Bucket(bucket)
	require.NoError(t, err)
	src := objs[0]
	h, err := b.GetObjectDetailedMeta(src.Key)
	require.NoError(t, err)
	var opts []alioss.Option
	for k, v := range h {
		if strings.HasPrefix(k, alioss.HTTPHeaderOssMetaPrefix) {
			opts = append(opts, alioss.Meta(strings.TrimPrefix(k, alioss.HTTPHeaderOssMetaPrefix), v[0]))
		}
	}
	dup := strings.TrimSuffix(src.Key, src.Key[len(src.Key)-8:]) + "00000000"
	require.NoError(t, b.PutObject(dup, strings.NewReader("copy\n"), opts...))
	rep, err := verify.Run(ctx, spec, s.cursors(spec))
	require.NoError(t, err)
	require.False(t, rep.OK, "verify must report the planted duplicate")
	require.Len(t, rep.Partitions[src.Partition].Overlaps, 1)
	require.Equal(t, src.First, rep.Partitions[src.Partition].Overlaps[0].First)
}
