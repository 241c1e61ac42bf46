package tests

import (
	"context"
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/client"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/workflows"
)

func (s *stack) updateSpec(name string, spec *connector.Spec) (workflows.UpdateSpecResult, error) {
	var res workflows.UpdateSpecResult
	raw, _ := json.Marshal(spec)
	h, err := s.client.UpdateWorkflow(context.Background(), client.UpdateWorkflowOptions{
		WorkflowID: "connector-" + name, UpdateName: workflows.UpdateSpec,
		Args: []any{workflows.UpdateSpecRequest{Spec: raw, By: "test"}}, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return res, err
	}
	return res, h.Get(context.Background(), &res)
}

// TestUpdateSpecLive changes a running OSS connector's batch size and
// concurrency with the update-spec Update (through starter update --set),
// without a restart and across continue-as-new (a history limit of 60
// events makes the runs continue as new meanwhile): the objects written
// after the change hold at most the new maxRecords, every record is in the
// sink once and verify --deep is exact. Updates that fail the spec's own
// validation or change a field that cannot change are rejected, naming the
// field, and change nothing.
func TestUpdateSpecLive(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, parts, size = "live", 2, 50
	s.createTopic(topic, parts)
	s.produce2(topic, parts, 0, 3000, size)
	spec := s.ossSpec("live-oss", topic)
	spec.Concurrency = 1
	s.start(spec, 60)
	s.waitFor(spec.Name, time.Minute, "caught up", caughtUp(3000))

	bad := *spec
	bad.Batch.MaxRecords = 0
	bad.Batch.MaxBytes = 1
	_, err := s.updateSpec(spec.Name, &bad)
	require.ErrorContains(t, err, "batch.maxBytes")
	bad = *spec
	bad.Kafka.Topic = "other"
	_, err = s.updateSpec(spec.Name, &bad)
	require.ErrorContains(t, err, "kafka.topic cannot change on a running connector")
	bad = *spec
	bad.Sink.OSS = &connector.OSSSpec{}
	*bad.Sink.OSS = *spec.Sink.OSS
	bad.Sink.OSS.Bucket = "elsewhere"
	_, err = s.updateSpec(spec.Name, &bad)
	require.ErrorContains(t, err, "sink.oss.bucket cannot change")

	bad = *spec
	bad.Batch.MaxRecords = 2000000
	raw, _ := json.Marshal(workflows.UpdateSpecRequest{Spec: mustJSON(&bad), By: "temporal CLI"})
	out, ok := s.temporalCLI("workflow", "update", "execute", "--workflow-id", spec.WorkflowID(), "--name", workflows.UpdateSpec, "--input", string(raw))
	require.False(t, ok, "%s", out)
	require.Contains(t, out, "update-spec rejected")
	require.Contains(t, out, "batch.maxRecords")
	require.Contains(t, out, "must be 1..1000000")

	args := []string{"update", "-temporal", s.temporal.GetFrontendHostPort(), "-namespace", s.temporal.GetDefaultNamespace(),
		"--set", "batch.maxRecords=300", "--set", "concurrency=2", spec.Name}
	cli, err := exec.Command(starterBinary(t), args...).CombinedOutput()
	require.NoError(t, err, "%s", cli)
	require.Contains(t, string(cli), "changed batch.maxRecords, concurrency")

	s.produce2(topic, parts, 3000, 6000, size)
	st := s.waitFor(spec.Name, 2*time.Minute, "caught up after the update", caughtUp(6000))
	require.Greater(t, st.Run, 0, "the runs continued as new meanwhile")
	got, err := querySpecOf(s, spec.Name)
	require.NoError(t, err)
	require.Equal(t, 300, got.Batch.MaxRecords)
	require.Equal(t, 2, got.Concurrency)
	var small, large int
	for _, o := range s.ossObjects(spec) {
		switch {
		case o.First >= 3000 && o.Records > 300:
			t.Fatalf("object %s [%d,%d) holds %d records, past the updated maxRecords 300", o.Key, o.First, o.End, o.Records)
		case o.First >= 3000 && o.Records == 300:
			small++
		case o.First < 3000 && o.Records == 1000:
			large++
		}
	}
	require.Positive(t, small, "objects of 300 records after the update")
	require.Positive(t, large, "objects of 1000 records before it")
	updated := *spec
	updated.Batch.MaxRecords, updated.Concurrency = 300, 2
	s.verifyLedger(&updated)
	requireEachOnce(t, s.readValues(topic+"/"), topic, parts, 6000, size, nil)
}

func querySpecOf(s *stack, name string) (*connector.Spec, error) {
	var spec connector.Spec
	v, err := s.client.QueryWorkflow(context.Background(), connector.WorkflowID(name), "", workflows.QuerySpec)
	if err != nil {
		return nil, err
	}
	return &spec, v.Get(&spec)
}

// TestUpdateSpecWorkerRestart changes a connector's batch size with
// update-spec while it runs on a worker process, kills that process
// (SIGKILL) and starts another: the new worker rebuilds the workflow from
// history, update included, and its activities use the changed spec.
func TestUpdateSpecWorkerRestart(t *testing.T) {
	s := newStack(t)
	w := s.startWorkerProcess()
	const topic, parts, size = "live-restart", 1, 50
	s.createTopic(topic, parts)
	s.produce2(topic, parts, 0, 2000, size)
	spec := s.ossSpec("live-restart", topic)
	s.start(spec, 0)
	s.waitFor(spec.Name, time.Minute, "caught up", caughtUp(2000))
	changed := *spec
	changed.Batch.MaxRecords = 300
	res, err := s.updateSpec(spec.Name, &changed)
	require.NoError(t, err)
	require.Equal(t, []string{"batch.maxRecords"}, res.Changed)
	w.kill()
	s.startWorkerProcess()
	s.produce2(topic, parts, 2000, 4000, size)
	s.waitFor(spec.Name, 2*time.Minute, "caught up on the new worker", caughtUp(4000))
	small := 0
	for _, o := range s.ossObjects(spec) {
		require.Falsef(t, o.First >= 2000 && o.Records > 300, "object %s [%d,%d) holds %d records, past the updated maxRecords 300", o.Key, o.First, o.End, o.Records)
		if o.First >= 2000 {
			small++
		}
	}
	require.GreaterOrEqual(t, small, 7)
	s.verifyLedger(&changed)
}

// TestNewPartitionWithinAMinute adds a partition to a running connector's
// topic with the default discovery interval (no DiscoveryInterval in the
// input): it is picked up and dumped within a minute, not only at
// continue-as-new.
func TestNewPartitionWithinAMinute(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, size = "grows", 50
	s.createTopic(topic, 1)
	s.produce2(topic, 1, 0, 100, size)
	spec := s.ossSpec("grows-oss", topic)
	s.start(spec, 0)
	s.waitFor(spec.Name, time.Minute, "caught up", caughtUp(100))
	resp, err := s.admin().CreatePartitions(context.Background(), 1, topic)
	require.NoError(t, err)
	require.NoError(t, resp.Error())
	added := time.Now()
	fresh, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err) // its metadata knows the new partition
	defer fresh.Close()
	produceRange(t, fresh, topic, 1, 0, 100, size)
	st := s.waitFor(spec.Name, 65*time.Second, "partition 1 dumped", func(st workflows.Status) bool {
		p := partitionStatus(st, 1)
		return p != nil && p.Next == 100
	})
	took := time.Since(added)
	t.Logf("partition 1 picked up and dumped %s after it was added", took.Round(time.Second))
	require.Less(t, took, time.Minute)
	require.Zero(t, st.Run, "picked up by the running run, not at continue-as-new")
	s.verifyLedger(spec)
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
