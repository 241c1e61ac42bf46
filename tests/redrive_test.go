package tests

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/deploy/localstack/ossfake"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/sink"
	ossink "github.com/dumpflow/dumpflow/sink/oss"
	"github.com/dumpflow/dumpflow/starter/dlq"
	"github.com/dumpflow/dumpflow/starter/verify"
	"github.com/dumpflow/dumpflow/transform"
	"github.com/dumpflow/dumpflow/workflows"
)

// redrive runs a Redrive workflow as starter dlq redrive does (its id is
// a function of the request) and returns its result.
func (s *stack) redrive(in workflows.RedriveInput) workflows.RedriveResult {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run, err := s.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: workflows.RedriveWorkflowID(in), TaskQueue: workflows.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}, workflows.RedriveName, in)
	require.NoError(s.t, err)
	var res workflows.RedriveResult
	require.NoError(s.t, run.Get(ctx, &res))
	return res
}

// TestRedriveOSS: records over errors.maxRecordBytes go to the dead-letter
// topic. Re-driven unchanged they fail again and come back with attempt 2;
// re-driven with a higher limit (by origin offsets, then by dead-letter
// offsets) they land in the bucket once; the same re-drive again writes
// nothing; verify and verify --deep stay exact and account for them.
func TestRedriveOSS(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	ctx := context.Background()
	const topic, n, size, big = "orders", 3000, 100, 4096
	poisonAt := []int{500, 1500, 2500}
	s.createTopic(topic, 1)
	recs := make([]*kgo.Record, 0, n)
	poison := map[int]bool{}
	for _, i := range poisonAt {
		poison[i] = true
	}
	for i := 0; i < n; i++ {
		v := value(topic, 0, i, size)
		if poison[i] {
			v = value(topic, 0, i, big)
		}
		recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Key: []byte("k" + strconv.Itoa(i)), Value: v,
			Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("t" + strconv.Itoa(i))}}})
	}
	require.NoError(t, s.producer.ProduceSync(ctx, recs...).FirstErr())

	spec := s.ossSpec("orders-oss", topic)
	spec.Errors.MaxRecordBytes = 1024
	s.start(spec, 0)
	s.waitFor(spec.Name, time.Minute, "all records, three dead letters", func(st workflows.Status) bool {
		return caughtUp(n)(st) && st.Partitions[0].DeadLetters == 3
	})
	s.verifyLedger(spec)
	dlqTopic := spec.Errors.DeadLetterTopic

	l, err := dlq.List(ctx, spec)
	require.NoError(t, err)
	require.Equal(t, int64(3), l.Letters)
	require.Len(t, l.Groups, 1)
	require.Equal(t, "size", l.Groups[0].Stage)
	require.Equal(t, int64(3), l.Groups[0].Records)
	require.Zero(t, l.Groups[0].Redriven)

	// 1. Unchanged, every letter fails again: back with attempt 2.
	all := activities.RedriveSelection{All: true}
	res := s.redrive(workflows.RedriveInput{Connector: spec.Name, Selection: all})
	t.Logf("re-drive 1: %+v", res)
	require.Equal(t, int64(3), res.Letters)
	require.Equal(t, int64(3), res.DeadLetters)
	require.Zero(t, res.Records)
	dls := s.deadLetters(dlqTopic, 6)
	require.Len(t, dls, 6)
	for i, r := range dls {
		h := headers(r)
		require.Equal(t, strconv.Itoa(poisonAt[i%3]), h[kafka.HeaderOffset])
		require.Equal(t, "size", h[kafka.HeaderStage])
		require.Equal(t, "t"+strconv.Itoa(poisonAt[i%3]), h["trace"], "the record's own headers are kept")
		require.Equal(t, "k"+strconv.Itoa(poisonAt[i%3]), string(r.Key))
		require.True(t, bytes.Equal(value(topic, 0, poisonAt[i%3], big), r.Value))
		if i < 3 {
			require.NotContains(t, h, kafka.HeaderAttempt)
		} else {
			require.Equal(t, "2", h[kafka.HeaderAttempt], "a letter that failed again has its attempt incremented")
		}
	}
	s.verifyDeep(spec)

	// 2. With a higher limit, by origin offsets [0, 2000): 500 and 1500.
	fixed := activities.RedriveOverrides{MaxRecordBytes: 8 << 10}
	p0 := int32(0)
	byOrigin := workflows.RedriveInput{Connector: spec.Name, Selection: activities.RedriveSelection{Partition: &p0, From: 0, To: 2000}, Overrides: fixed}
	// The first PUT of its object is served but its answer lost: the
	// retried batch finds its own object and counts it.
	lost := ossfake.AnswerLost(ossfake.Match{Ops: []ossfake.Op{ossfake.OpPutObject}, Path: regexp.MustCompile(`/redrive_0_offset_3_`)})
	lost.Times = 1
	inj := s.ossFake.InjectFault(lost)
	defer inj.Remove()
	res = s.redrive(byOrigin)
	require.Equal(t, 1, inj.Fired(), "the re-drive object's first PUT lost its answer")
	t.Logf("re-drive 2: %+v", res)
	require.Equal(t, int64(2), res.Letters)
	require.Equal(t, int64(2), res.Records)
	require.Zero(t, res.DeadLetters)
	require.Equal(t, int64(4), res.Selected)
	require.Equal(t, int64(2), res.AlreadyDone, "the attempt-1 letters were re-driven (and failed) by the first re-drive")

	// The same request again finds everything done and writes nothing.
	res = s.redrive(byOrigin)
	require.Zero(t, res.Letters)
	require.Zero(t, res.Batches)
	require.Equal(t, int64(4), res.AlreadyDone)

	// 3. By dead-letter offsets 0..5: only 2500's attempt-2 letter is left.
	res = s.redrive(workflows.RedriveInput{Connector: spec.Name, Selection: activities.RedriveSelection{DeadLetterOffsets: []sink.Range{{First: 0, End: 6}}}, Overrides: fixed})
	t.Logf("re-drive 3: %+v", res)
	require.Equal(t, int64(1), res.Letters)
	require.Equal(t, int64(1), res.Records)
	res = s.redrive(workflows.RedriveInput{Connector: spec.Name, Selection: all, Overrides: fixed})
	require.Zero(t, res.Letters, "everything is re-driven")

	// Every record once: the small ones from the connector's ranges, the
	// big ones from the re-drives; no new dead letters.
	counts := s.readValues(topic + "/")
	except := map[string]bool{}
	for _, i := range poisonAt {
		except[string(value(topic, 0, i, size))] = true
		require.Equal(t, 1, counts[string(value(topic, 0, i, big))], "re-driven record %d once", i)
	}
	requireEachOnce(t, counts, topic, 1, n, size, except)
	require.Len(t, s.deadLetters(dlqTopic, 6), 6)

	rep := s.verifyLedger(spec)
	require.Len(t, rep.Redriven, 3, "three re-drive ranges: [0,3) failed again, [3,5) and [5,6) written")
	require.Equal(t, int64(3), rep.Partitions[0].Redriven)
	require.Equal(t, 3, rep.Partitions[0].RedrivenChecked)

	l, err = dlq.List(ctx, spec)
	require.NoError(t, err)
	require.Equal(t, int64(6), l.Letters)
	require.Equal(t, int64(6), l.Groups[0].Redriven)
	require.Equal(t, 2, l.Groups[0].MaxAttempt)
	var out bytes.Buffer
	dlq.Print(&out, l)
	t.Logf("dlq list:\n%s", out.String())
	require.Contains(t, out.String(), "dead letters of connector orders-oss in topic "+dlqTopic+": 6")
	require.Regexp(t, `size\s+-\s+6\s+3\s+≤2\s+6\s+0\s+500\.\.2500\s+0\.\.5\s+record orders\[N\]@N is N bytes, over errors.maxRecordBytes`, out.String())
}

// TestRedriveTransformFix: records that fail a transform step (plain text
// where the step wants a JSON object) go to the dead-letter topic; re-driven
// with a fixed chain (the step only for objects) they land in the bucket as
// they are, once. verify --deep replays them with the fixed chain, which the
// re-drive kept beside the objects.
func TestRedriveTransformFix(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	ctx := context.Background()
	const topic, n = "clicks", 1000
	bad := map[int]bool{10: true, 400: true, 990: true}
	s.createTopic(topic, 1)
	recs := make([]*kgo.Record, 0, n)
	for i := 0; i < n; i++ {
		v := `{"id":` + strconv.Itoa(i) + `}`
		if bad[i] {
			v = "plain text " + strconv.Itoa(i)
		}
		recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(v)})
	}
	require.NoError(t, s.producer.ProduceSync(ctx, recs...).FirstErr())
	spec := s.ossSpec("clicks-oss", topic)
	step := transform.StepSpec{Name: "parity", Type: transform.StepSet, Field: "parity", Expr: `value.id % 2 == 0 ? "even" : "odd"`}
	spec.Transforms = []transform.StepSpec{step}
	s.start(spec, 0)
	s.waitFor(spec.Name, time.Minute, "all records, three dead letters", func(st workflows.Status) bool {
		return caughtUp(n)(st) && st.Partitions[0].DeadLetters == 3
	})
	dls := s.deadLetters(spec.Errors.DeadLetterTopic, 3)
	require.Equal(t, "transform", headers(dls[0])[kafka.HeaderStage])
	require.Equal(t, "parity", headers(dls[0])[kafka.HeaderExecuting])

	step.If = `type(value) == "map"`
	fixed := []transform.StepSpec{step}
	in := workflows.RedriveInput{Connector: spec.Name, Selection: activities.RedriveSelection{All: true}, Overrides: activities.RedriveOverrides{Transforms: &fixed}}
	res := s.redrive(in)
	require.Equal(t, int64(3), res.Letters)
	require.Equal(t, int64(3), res.Records)
	require.Zero(t, res.DeadLetters)
	require.Len(t, res.Transform, 1)
	require.Equal(t, int64(3), res.Transform[0].In)
	res = s.redrive(in)
	require.Zero(t, res.Letters, "the same re-drive again writes nothing")

	counts := s.readValues(topic + "/")
	for i := 0; i < n; i++ {
		want := `{"id":` + strconv.Itoa(i) + `,"parity":"` + map[bool]string{true: "even", false: "odd"}[i%2 == 0] + `"}`
		if bad[i] {
			want = "plain text " + strconv.Itoa(i)
		}
		require.Equal(t, 1, counts[want], "record %d once", i)
	}
	rep := s.verifyLedger(spec)
	require.Equal(t, int64(3), rep.Partitions[0].Redriven)
	require.Equal(t, 1, rep.Partitions[0].RedrivenChecked)

	// A second writer re-driving letters 1 and 2 again (outside any plan)
	// is caught: the dead-letter ranges overlap, and the records are in
	// the bucket twice.
	rspec, err := in.Overrides.Apply(spec)
	require.NoError(t, err)
	chain, err := transform.Compile(rspec.Transforms, transform.Options{})
	require.NoError(t, err)
	run, err := chain.Begin(ctx)
	require.NoError(t, err)
	defer run.Close(ctx)
	sk, err := ossink.New(spec, connector.Credentials{AccessKeyID: "dumpflow", AccessKeySecret: "dumpflow-secret"})
	require.NoError(t, err)
	plan := activities.RedrivePlan{DeadLetterPartition: 0, First: 1, End: 3, OriginPartition: 0}
	b, err := sk.Begin(ctx, activities.RedriveBatchID(spec, plan, chain.Hash(), in.Overrides.Hash()), nil)
	require.NoError(t, err)
	kc, err := kafka.NewClient(kgo.SeedBrokers(s.brokers...))
	require.NoError(t, err)
	defer kc.Close()
	require.NoError(t, kc.ReadRange(ctx, spec.Errors.DeadLetterTopic, 0, plan.First, plan.End, kafka.ReadOptions{}, func(r *kgo.Record) (bool, error) {
		_, _, err := activities.RedriveRecord(ctx, rspec, run, b, plan, r)
		return true, err
	}))
	_, err = b.Commit(ctx)
	require.NoError(t, err)
	for _, deep := range []bool{false, true} {
		rep, err = verify.Run(ctx, spec, s.cursors(spec), verify.Options{Deep: deep})
		require.NoError(t, err)
		require.False(t, rep.OK, "deep %v: a letter re-driven twice fails verify", deep)
		var problems []string
		for _, m := range rep.Partitions[0].Mismatches {
			problems = append(problems, m.Problem)
		}
		require.Contains(t, strings.Join(problems, "\n"), "overlaps the one before it")
		if deep {
			require.Contains(t, strings.Join(problems, "\n"), "re-driven into the sink twice")
		}
	}
}

// TestRecordRedriveHistory records testdata/redrive-oss.history.json, which
// TestReplayRecordedHistories replays: a Redrive run that reads the
// connector's spec, plans, and writes one batch. Run it with
// -update-histories.
func TestRecordRedriveHistory(t *testing.T) {
	if !*updateHistories {
		t.Skip("records testdata/redrive-oss.history.json with -update-histories")
	}
	s := newStack(t)
	s.startWorker()
	const topic, n, size = "replay", 300, 64
	s.createTopic(topic, 1)
	s.producePoison(topic, n, size, 100, 4096)
	spec := s.ossSpec("replay-oss", topic)
	spec.Errors.MaxRecordBytes = 1024
	s.start(spec, 0)
	s.waitFor(spec.Name, time.Minute, "all records, one dead letter", func(st workflows.Status) bool {
		return caughtUp(n)(st) && st.Partitions[0].DeadLetters == 1
	})
	in := workflows.RedriveInput{Connector: spec.Name, Selection: activities.RedriveSelection{All: true}, Overrides: activities.RedriveOverrides{MaxRecordBytes: 8 << 10}}
	res := s.redrive(in)
	require.Equal(t, int64(1), res.Records)
	saveRedriveHistory(t, s, workflows.RedriveWorkflowID(in), "redrive-oss.history.json")
}

// saveRedriveHistory writes the history of workflow id to testdata/name.
func saveRedriveHistory(t *testing.T, s *stack, id, name string) {
	saveRun(t, fetchRun(t, s, id, ""), filepath.Join("testdata", name))
}
