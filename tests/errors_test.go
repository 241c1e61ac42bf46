package tests

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/workflows"
)

// producePoison writes n records of size bytes to partition 0, with the
// record at offset poisonAt made bigger than maxRecordBytes.
func (s *stack) producePoison(topic string, n, size, poisonAt, poisonSize int) string {
	s.t.Helper()
	recs := make([]*kgo.Record, 0, n)
	var poison string
	for i := 0; i < n; i++ {
		v := value(topic, 0, i, size)
		if i == poisonAt {
			v = value(topic, 0, i, poisonSize)
			poison = string(v)
		}
		recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Value: v})
	}
	require.NoError(s.t, s.producer.ProduceSync(context.Background(), recs...).FirstErr())
	return poison
}

// deadLetters reads every record of the dead-letter topic.
func (s *stack) deadLetters(topic string, want int) []*kgo.Record {
	s.t.Helper()
	kc, err := kafka.NewClient(kgo.SeedBrokers(s.brokers...))
	require.NoError(s.t, err)
	defer kc.Close()
	var out []*kgo.Record
	require.Eventually(s.t, func() bool {
		b, err := kc.Bounds(context.Background(), topic)
		return err == nil && b[0].End >= int64(want)
	}, 30*time.Second, 100*time.Millisecond, "dead-letter topic %s should get %d records", topic, want)
	b, err := kc.Bounds(context.Background(), topic)
	require.NoError(s.t, err)
	require.NoError(s.t, kc.ReadRange(context.Background(), topic, 0, b[0].Start, b[0].End, kafka.ReadOptions{}, func(r *kgo.Record) (bool, error) {
		out = append(out, r)
		return true, nil
	}))
	return out
}

func headers(r *kgo.Record) map[string]string {
	h := map[string]string{}
	for _, kv := range r.Headers {
		h[kv.Key] = string(kv.Value)
	}
	return h
}

// TestPoisonRecordGoesToDeadLetterTopic: under tolerance continue, a record
// over errors.maxRecordBytes goes to the dead-letter topic with context
// headers, and the rest of the partition is dumped.
func TestPoisonRecordGoesToDeadLetterTopic(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, n, size, poisonAt = "events", 3000, 100, 1234
	s.createTopic(topic, 1)
	poison := s.producePoison(topic, n, size, poisonAt, 4096)

	spec := s.ossSpec("events-oss", topic)
	spec.Errors.MaxRecordBytes = 1024
	s.start(spec, 0)
	st := s.waitFor(spec.Name, time.Minute, "all records", caughtUp(n))
	require.Equal(t, int64(1), st.Partitions[0].DeadLetters)
	require.Equal(t, int64(n-1), st.Partitions[0].Records)

	dl := s.deadLetters(spec.Errors.DeadLetterTopic, 1)
	require.Len(t, dl, 1)
	require.Equal(t, poison, string(dl[0].Value))
	h := headers(dl[0])
	require.Equal(t, topic, h[kafka.HeaderTopic])
	require.Equal(t, "0", h[kafka.HeaderPartition])
	require.Equal(t, strconv.Itoa(poisonAt), h[kafka.HeaderOffset])
	require.Equal(t, spec.Name, h[kafka.HeaderConnector])
	require.Equal(t, "size", h[kafka.HeaderStage])
	require.Contains(t, h[kafka.HeaderError], "over errors.maxRecordBytes")

	s.verifyLedger(spec)
	requireEachOnce(t, s.readValues(topic+"/"), topic, 1, n, size, map[string]bool{string(value(topic, 0, poisonAt, size)): true})
	require.Zero(t, s.readValues(topic + "/")[poison])
}

// TestStopToleranceParksUntilResume: under tolerance stop the partition
// parks visibly at the poison record; resume sends it to the dead-letter
// topic and the partition goes on. The workflow never fails.
func TestStopToleranceParksUntilResume(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, n, size, poisonAt = "payments", 2000, 100, 700
	s.createTopic(topic, 1)
	poison := s.producePoison(topic, n, size, poisonAt, 4096)

	spec := s.ossSpec("payments-oss", topic)
	spec.Errors.MaxRecordBytes = 1024
	spec.Errors.Tolerance = connector.ToleranceStop
	s.start(spec, 0)
	st := s.waitFor(spec.Name, time.Minute, "the partition to stop", func(st workflows.Status) bool {
		return len(st.Partitions) == 1 && st.Partitions[0].State == workflows.StateStopped
	})
	p := st.Partitions[0]
	require.Equal(t, int64(poisonAt), p.Next, "everything before the poison record is written")
	require.NotNil(t, p.Poison)
	require.Equal(t, int64(poisonAt), p.Poison.Offset)
	require.Contains(t, p.LastError, "signal resume")
	require.Zero(t, p.DeadLetters)

	// Still stopped a moment later: it does not skip on its own.
	time.Sleep(time.Second) // a state that must not change has no condition to wait on
	st2, err := s.status(spec.Name)
	require.NoError(t, err)
	require.Equal(t, workflows.StateStopped, st2.Partitions[0].State)
	require.Equal(t, int64(poisonAt), st2.Partitions[0].Next)

	require.NoError(t, s.client.SignalWorkflow(context.Background(), spec.WorkflowID(), "", workflows.SignalResume, nil))
	st = s.waitFor(spec.Name, time.Minute, "all records after resume", caughtUp(n))
	require.Equal(t, int64(1), st.Partitions[0].DeadLetters)
	require.Equal(t, workflows.StateRunning, st.Partitions[0].State)
	dl := s.deadLetters(spec.Errors.DeadLetterTopic, 1)
	require.Equal(t, poison, string(dl[0].Value))
	s.verifyLedger(spec)
	requireEachOnce(t, s.readValues(topic+"/"), topic, 1, n, size, map[string]bool{string(value(topic, 0, poisonAt, size)): true})
}

// TestPauseResume: a paused connector stops advancing while data keeps
// arriving, reports paused, and catches up after resume.
func TestPauseResume(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, parts, size = "logs", 3, 100
	s.createTopic(topic, parts)
	s.produce(topic, parts, 1000, size, time.Time{})
	spec := s.ossSpec("logs-oss", topic)
	spec.Concurrency = 1 // one loop serves all three partitions
	s.start(spec, 0)
	s.waitFor(spec.Name, time.Minute, "first 1000", caughtUp(1000))

	ctx := context.Background()
	require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalPause, nil))
	s.waitFor(spec.Name, 30*time.Second, "paused", func(st workflows.Status) bool {
		for _, p := range st.Partitions {
			if p.State != workflows.StatePaused {
				return false
			}
		}
		return st.Paused
	})
	s.produce2(topic, parts, 1000, 3000, size)
	// Paused: the high watermark moves on, the cursors do not. Give it more
	// than a flush interval to prove nothing is written.
	time.Sleep(3 * spec.Batch.FlushInterval.D()) // proving an absence needs a wait
	st, err := s.status(spec.Name)
	require.NoError(t, err)
	for _, p := range st.Partitions {
		require.Equal(t, int64(1000), p.Next, "partition %d advanced while paused", p.Partition)
	}

	require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalResume, nil))
	st = s.waitFor(spec.Name, time.Minute, "caught up after resume", caughtUp(3000))
	require.False(t, st.Paused)
	for _, p := range st.Partitions {
		require.Equal(t, int64(3000), p.HighWatermark, "partition %d high watermark", p.Partition)
		require.Zero(t, p.Lag)
	}
	s.verifyLedger(spec)
	requireEachOnce(t, s.readValues(topic+"/"), topic, parts, 3000, size, nil)
}

// TestUnreachableKafkaIsVisible: a connector whose brokers cannot be
// reached does not fail; its status says why, naming the brokers, and it
// keeps retrying.
func TestUnreachableKafkaIsVisible(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	spec := s.ossSpec("nowhere-oss", "nowhere")
	spec.Kafka.Brokers = []string{"127.0.0.1:1"}
	s.start(spec, 0)
	st := s.waitFor(spec.Name, 2*time.Minute, "a discovery error in the status", func(st workflows.Status) bool { return st.Error != "" })
	require.Contains(t, st.Error, "discover")
	require.Contains(t, st.Error, "127.0.0.1:1")
	require.Empty(t, st.Partitions)
	desc, err := s.client.DescribeWorkflowExecution(context.Background(), spec.WorkflowID(), "")
	require.NoError(t, err)
	require.Equal(t, "Running", desc.GetWorkflowExecutionInfo().GetStatus().String(), "the connector keeps retrying")
}

// TestResumeWakesWaitingLoop: a loop whose other partition is idle waits
// in its FetchRanges for that partition's data (up to two minutes).
// Resuming the loop's partition stopped on a poison record cancels that
// wait, so the partition goes on at once; runs before the fetch-wakes
// change left it waiting until the idle partition had data.
func TestResumeWakesWaitingLoop(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, n = "wake", 200
	s.createTopic(topic, 2)
	s.producePoison(topic, n, 64, 100, 4096)
	spec := s.ossSpec("wake", topic)
	spec.Concurrency = 1 // one loop: partition 1 (empty) shares partition 0's loop
	spec.Errors.MaxRecordBytes = 1024
	spec.Errors.Tolerance = connector.ToleranceStop
	require.NoError(t, spec.Validate())
	s.start(spec, 0)
	s.waitFor(spec.Name, time.Minute, "stopped on the poison record", func(st workflows.Status) bool {
		return len(st.Partitions) == 2 && st.Partitions[0].State == workflows.StateStopped && st.Partitions[0].Next == 100
	})
	// The loop is now waiting in a FetchRanges for partition 1 alone.
	time.Sleep(2 * time.Second)
	require.NoError(t, s.client.SignalWorkflow(context.Background(), spec.WorkflowID(), "", workflows.SignalResume, nil))
	s.waitFor(spec.Name, 30*time.Second, "partition 0 past the poison record, well before the idle wait (2m) ends", func(st workflows.Status) bool {
		return st.Partitions[0].Next == n
	})
	require.Len(t, s.deadLetters(spec.Errors.DeadLetterTopic, 1), 1)
}
