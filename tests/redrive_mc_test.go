package tests

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/aliyun-odps-go-sdk/odps/tunnel"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/client"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/deploy/localstack/odpsemu"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/sink/maxcompute"
	"github.com/dumpflow/dumpflow/starter/dlq"
	"github.com/dumpflow/dumpflow/starter/verify"
	"github.com/dumpflow/dumpflow/transform"
	"github.com/dumpflow/dumpflow/workflows"
)

// TestRedriveMaxCompute: TestRedriveOSS on a MaxCompute connector. Records
// over errors.maxRecordBytes go to the dead-letter topic. Re-driven
// unchanged they fail again and come back with attempt 2; re-driven with a
// higher limit (by origin offsets — the answer of the re-drive session's
// commit lost, and of its ledger row's — then by dead-letter offsets, a
// commit refused once so the batch is retried in the same sessions) their
// rows land in the connector's table once, at their origin offsets; the
// same re-drive again writes nothing; verify and verify --deep stay exact
// and count the rows as re-driven. A second write of letters already
// re-driven fails verify.
func TestRedriveMaxCompute(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	ctx := context.Background()
	const topic, table, n, size, big = "events", "events_mc", 300, 64, 4096
	poisonAt := []int{50, 150, 250}
	poison := map[int]bool{}
	for _, i := range poisonAt {
		poison[i] = true
	}
	s.createTopic(topic, 1)
	recs := make([]*kgo.Record, n)
	for i := range recs {
		v := value(topic, 0, i, size)
		if poison[i] {
			v = value(topic, 0, i, big)
		}
		hour := 14
		if i >= 200 {
			hour = 15
		}
		recs[i] = &kgo.Record{Topic: topic, Partition: 0, Key: []byte("k" + strconv.Itoa(i)), Value: v, Timestamp: mcxHour(hour),
			Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("t" + strconv.Itoa(i))}}}
	}
	s.produceRecords(recs)

	spec := s.mcSpec("events-mc", topic, table)
	spec.Errors.MaxRecordBytes = 1024
	require.NoError(t, spec.Validate())
	s.start(spec, 0)
	s.waitFor(spec.Name, 2*time.Minute, "all records, three dead letters", func(st workflows.Status) bool {
		return caughtUp(n)(st) && st.Partitions[0].DeadLetters == 3
	})
	s.verifyLedger(spec)
	dlqTopic := spec.Errors.DeadLetterTopic

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
		require.Equal(t, "t"+strconv.Itoa(poisonAt[i%3]), h["trace"])
		if i < 3 {
			require.NotContains(t, h, kafka.HeaderAttempt)
		} else {
			require.Equal(t, "2", h[kafka.HeaderAttempt], "a letter that failed again has its attempt incremented")
		}
	}
	l := s.mcLedger(spec)
	require.Equal(t, int64(n-3), l.Rows, "a re-drive whose letters all fail again writes no row")
	s.verifyDeep(spec)

	// 2. With a higher limit, by origin offsets [0, 200): 50 and 150. The
	// re-drive session's commit is served but its answer lost, and so is
	// the commit of its ledger row: the batch finds both committed and
	// counts them once.
	fixed := activities.RedriveOverrides{MaxRecordBytes: 8 << 10}
	p0 := int32(0)
	byOrigin := workflows.RedriveInput{Connector: spec.Name, Selection: activities.RedriveSelection{Partition: &p0, From: 0, To: 200}, Overrides: fixed}
	lostFault := odpsemu.CommitAnswerLost(odpsemu.Match{Table: table})
	lostFault.Times = 1
	lostLedgerFault := odpsemu.CommitAnswerLost(odpsemu.Match{Table: "dumpflow_ledger"})
	lostLedgerFault.Times = 1
	lost := s.mcEmu.InjectFault(lostFault)
	lostLedger := s.mcEmu.InjectFault(lostLedgerFault)
	res = s.redrive(byOrigin)
	lost.Remove()
	lostLedger.Remove()
	t.Logf("re-drive 2: %+v", res)
	require.Equal(t, 1, lost.Fired(), "the re-drive session's commit lost its answer")
	require.Equal(t, 1, lostLedger.Fired(), "the re-drive's ledger row lost its answer")
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

	// 3. By dead-letter offsets 0..5: only 250's attempt-2 letter is left.
	// Its session's first commit is refused (FlowExceeded): the activity
	// fails and its retry writes the batch again into the same session.
	flow := odpsemu.FlowExceeded(odpsemu.Match{Table: table, Ops: []odpsemu.Op{odpsemu.OpCommitUploadSession}})
	flow.Times = 1
	inj := s.mcEmu.InjectFault(flow)
	res = s.redrive(workflows.RedriveInput{Connector: spec.Name, Selection: activities.RedriveSelection{DeadLetterOffsets: []sink.Range{{First: 0, End: 6}}}, Overrides: fixed})
	inj.Remove()
	t.Logf("re-drive 3: %+v", res)
	require.Equal(t, 1, inj.Fired())
	require.Equal(t, int64(1), res.Letters)
	require.Equal(t, int64(1), res.Records)
	res = s.redrive(workflows.RedriveInput{Connector: spec.Name, Selection: all, Overrides: fixed})
	require.Zero(t, res.Letters, "everything is re-driven")

	// Every record once, at its origin offset; no new dead letters.
	l = s.mcLedger(spec)
	require.Equal(t, int64(n), l.Rows)
	require.Equal(t, l.Rows, l.Distinct())
	require.Empty(t, l.Duplicates)
	require.Len(t, s.deadLetters(dlqTopic, 6), 6)

	es, err := maxcompute.ReadRedriveEntries(ctx, spec, s.mcCreds())
	require.NoError(t, err)
	require.Len(t, es, 3, "three redriven ledger rows: [0,3) failed again, [3,5) and [5,6) written")
	for _, e := range es {
		require.True(t, e.Committed)
		require.Equal(t, sink.KindRedriven, e.Kind)
	}
	entries := s.mcxLedgerEntries(spec)
	require.Len(t, entries, 1, "the connector's own ledger partitions are untouched")

	rep := s.verifyLedger(spec)
	require.Len(t, rep.Redriven, 3)
	require.Equal(t, int64(3), rep.Partitions[0].Redriven)
	rep = s.verifyDeep(spec)
	require.Equal(t, 3, rep.Partitions[0].RedrivenChecked)

	dl, err := dlq.List(ctx, spec)
	require.NoError(t, err)
	require.Equal(t, int64(6), dl.Letters)
	require.Equal(t, int64(6), dl.Groups[0].Redriven)

	// A second writer re-driving letters 3 and 4 again (outside any plan)
	// is caught: its rows are in the table twice.
	rspec, err := fixed.Apply(spec)
	require.NoError(t, err)
	sk, err := maxcompute.New(spec, s.mcCreds())
	require.NoError(t, err)
	plan := activities.RedrivePlan{DeadLetterPartition: 0, First: 3, End: 5, OriginPartition: 0}
	id := activities.RedriveBatchID(spec, plan, "", fixed.Hash())
	id.Writer = "rogue"
	pt, err := sk.PartitionOf(&transform.Record{Topic: topic, Partition: 0, Offset: 150, Timestamp: mcxHour(14), Value: value(topic, 0, 150, big)})
	require.NoError(t, err)
	prep, err := sk.Prepare(ctx, id, []string{pt}, nil)
	require.NoError(t, err)
	b, err := sk.Begin(ctx, id, prep)
	require.NoError(t, err)
	kc, err := kafka.NewClient(kgo.SeedBrokers(s.brokers...))
	require.NoError(t, err)
	defer kc.Close()
	require.NoError(t, kc.ReadRange(ctx, dlqTopic, 0, plan.First, plan.End, kafka.ReadOptions{}, func(r *kgo.Record) (bool, error) {
		_, _, err := activities.RedriveRecord(ctx, rspec, nil, b, plan, r)
		return true, err
	}))
	_, err = b.Commit(ctx)
	require.Error(t, err, "the sink refuses letters another re-drive committed")
	require.Contains(t, err.Error(), "another re-drive")
	// A copy of letter 4 (as a write retried after producing its dead
	// letters leaves) re-driven by hand past the planner, which takes one
	// letter per record and attempt: the record's rows are in the table
	// twice.
	var copied *kafka.DeadLetter
	require.NoError(t, kc.ReadRange(ctx, dlqTopic, 0, 4, 5, kafka.ReadOptions{}, func(r *kgo.Record) (bool, error) {
		l, ok := kafka.ParseLetter(r)
		require.True(t, ok)
		copied = &kafka.DeadLetter{Record: kafka.OriginalRecord(r, l), Connector: spec.Name, Stage: l.Stage, Err: errors.New(l.Error), Attempt: l.Attempt}
		return true, nil
	}))
	require.NoError(t, kc.ProduceDeadLetters(ctx, dlqTopic, []kafka.DeadLetter{*copied}, 1<<20))
	plan = activities.RedrivePlan{DeadLetterPartition: 0, First: 6, End: 7, OriginPartition: 0}
	id = activities.RedriveBatchID(spec, plan, "", fixed.Hash())
	id.Writer = "rogue"
	prep, err = sk.Prepare(ctx, id, []string{pt}, nil)
	require.NoError(t, err)
	b, err = sk.Begin(ctx, id, prep)
	require.NoError(t, err)
	require.NoError(t, kc.ReadRange(ctx, dlqTopic, 0, plan.First, plan.End, kafka.ReadOptions{}, func(r *kgo.Record) (bool, error) {
		_, _, err := activities.RedriveRecord(ctx, rspec, nil, b, plan, r)
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
		t.Logf("deep %v: %s", deep, strings.Join(problems, "; "))
		require.Contains(t, strings.Join(problems, "\n"), "re-driven into the sink twice")
	}
}

// TestRecordRedriveMaxComputeHistory records
// testdata/redrive-maxcompute.history.json, which
// TestReplayRecordedHistories replays: a MaxCompute Redrive run that reads
// the connector's spec, plans, prepares a batch's sessions (the
// redrive-prepare-sessions version marker) and writes it. Run it alone with
// -update-histories.
func TestRecordRedriveMaxComputeHistory(t *testing.T) {
	if !*updateHistories {
		t.Skip("records testdata/redrive-maxcompute.history.json with -update-histories")
	}
	s := newStack(t)
	s.startWorker()
	const topic, n, size = "replay", 300, 64
	s.createTopic(topic, 1)
	recs := make([]*kgo.Record, n)
	for i := range recs {
		v := value(topic, 0, i, size)
		if i == 100 {
			v = value(topic, 0, i, 4096)
		}
		recs[i] = &kgo.Record{Topic: topic, Partition: 0, Value: v, Timestamp: mcxHour(14)}
	}
	s.produceRecords(recs)
	spec := s.mcSpec("replay-mc", topic, "replay_mc")
	spec.Errors.MaxRecordBytes = 1024
	require.NoError(t, spec.Validate())
	s.start(spec, 0)
	s.waitFor(spec.Name, 2*time.Minute, "all records, one dead letter", func(st workflows.Status) bool {
		return caughtUp(n)(st) && st.Partitions[0].DeadLetters == 1
	})
	in := workflows.RedriveInput{Connector: spec.Name, Selection: activities.RedriveSelection{All: true}, Overrides: activities.RedriveOverrides{MaxRecordBytes: 8 << 10}}
	res := s.redrive(in)
	require.Equal(t, int64(1), res.Records)
	saveRedriveHistory(t, s, workflows.RedriveWorkflowID(in), "redrive-maxcompute.history.json")
}

// TestRedriveMaxComputeSIGKILL kills the worker process with SIGKILL just
// after a re-drive batch's upload session committed and before the answer
// reached it (commitGate passes the commit on and holds its answer). After
// the restart, the RedriveBatch retry re-attaches to the session
// PrepareRedrive recorded in history, finds it committed, and counts its
// rows instead of writing them again: the re-driven record is in the table
// once, and verify --deep is exact.
func TestRedriveMaxComputeSIGKILL(t *testing.T) {
	s := newStack(t)
	gate, gated, released := s.gateCommits(1) // the first data commit is passed on, its answer held

	const topic, table, n, size = "mc-redrive-kill", "kafka_redrive_kill", 200, 64
	s.createTopic(topic, 1)
	recs := make([]*kgo.Record, n)
	for i := range recs {
		v := value(topic, 0, i, size)
		if i == 77 {
			v = value(topic, 0, i, 4096)
		}
		recs[i] = &kgo.Record{Topic: topic, Partition: 0, Value: v, Timestamp: mcxHour(14)}
	}
	s.produceRecords(recs)
	spec := s.mcSpec("mc-redrive-kill", topic, table)
	spec.Errors.MaxRecordBytes = 1024
	require.NoError(t, spec.Validate())
	w := s.startWorkerProcess()
	s.start(spec, 0)
	s.waitFor(spec.Name, 2*time.Minute, "all records, one dead letter", func(st workflows.Status) bool {
		return caughtUp(n)(st) && st.Partitions[0].DeadLetters == 1
	})
	require.Equal(t, int64(n-1), s.mcLedger(spec).Rows)

	// The re-drive talks to the emulator through the gate.
	gspec := *spec
	mc := *spec.Sink.MaxCompute
	mc.Endpoint, mc.TunnelEndpoint = gated.URL+"/api", gated.URL
	gspec.Sink.MaxCompute = &mc
	in := workflows.RedriveInput{Connector: spec.Name, Spec: &gspec, Selection: activities.RedriveSelection{All: true},
		Overrides: activities.RedriveOverrides{MaxRecordBytes: 8 << 10}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run, err := s.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.RedriveWorkflowID(in), TaskQueue: workflows.TaskQueue}, workflows.RedriveName, in)
	require.NoError(t, err)
	var held heldCommit
	select {
	case held = <-gate.held:
	case <-time.After(2 * time.Minute):
		t.Fatal("timed out waiting for the re-drive session's commit")
	}
	w.kill()
	killed := time.Now()
	require.True(t, held.forwarded)
	require.Equal(t, http.StatusOK, held.status, "the emulator committed the re-drive session")
	part, err := maxcompute.New(spec, s.mcCreds())
	require.NoError(t, err)
	pt, err := part.PartitionOf(&transform.Record{Topic: topic, Offset: 77, Timestamp: mcxHour(14), Value: value(topic, 0, 77, 4096)})
	require.NoError(t, err)
	require.Equal(t, tunnel.UploadStatusClosed, s.mcUploadSession(table, pt, held.uploadID).Status())
	require.Equal(t, int64(n), s.mcLedger(spec).Rows, "at the kill the table holds the re-driven row")
	released()

	s.startWorkerProcess()
	var res workflows.RedriveResult
	require.NoError(t, run.Get(ctx, &res))
	t.Logf("re-drive after the kill (%s): %+v", time.Since(killed).Round(100*time.Millisecond), res)
	require.Equal(t, int64(1), res.Letters)
	require.Equal(t, int64(1), res.Records, "the retry counts the committed session's row")
	require.Equal(t, []string{held.uploadID}, res.Objects, "the retry re-attached to the prepared session")
	var prepares, batches int
	for _, a := range s.historyActivities(workflows.RedriveWorkflowID(in), run.GetRunID()) {
		switch a.Name {
		case activities.PrepareRedriveName:
			prepares++
		case activities.RedriveBatchName:
			batches++
		}
	}
	require.Equal(t, 1, prepares, "the sessions were prepared once")
	require.Equal(t, 1, batches)

	l := s.mcLedger(spec)
	require.Equal(t, int64(n), l.Rows)
	require.Equal(t, l.Rows, l.Distinct())
	require.Empty(t, l.Duplicates)
	es, err := maxcompute.ReadRedriveEntries(context.Background(), spec, s.mcCreds())
	require.NoError(t, err)
	require.Len(t, es, 1)
	require.True(t, es[0].Committed)
	require.Equal(t, [][2]int64{{77, 1}}, es[0].Origins)
	rep := s.verifyDeep(spec)
	require.Equal(t, int64(1), rep.Partitions[0].Redriven)
	require.Equal(t, 1, rep.Partitions[0].RedrivenChecked)
	res = s.redrive(workflows.RedriveInput{Connector: spec.Name, Spec: spec, Selection: activities.RedriveSelection{All: true}, Overrides: in.Overrides})
	require.Zero(t, res.Letters, "a second re-drive writes nothing")
}

// TestRedriveMaxComputeTransformFix: records that fail a transform step go
// to the dead-letter topic; re-driven into the table with a fixed chain
// they land once, as they are. verify --deep replays the connector's
// ranges with its chain and the re-drive with the fixed chain, which the
// redriven ledger row kept.
func TestRedriveMaxComputeTransformFix(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, n = "clicks-mc", 400
	bad := map[int]bool{10: true, 200: true, 390: true}
	s.createTopic(topic, 1)
	recs := make([]*kgo.Record, n)
	for i := range recs {
		v := `{"id":` + strconv.Itoa(i) + `}`
		if bad[i] {
			v = "plain text " + strconv.Itoa(i)
		}
		recs[i] = &kgo.Record{Topic: topic, Partition: 0, Value: []byte(v), Timestamp: mcxHour(14)}
	}
	s.produceRecords(recs)
	spec := s.mcSpec("clicks-mc", topic, "clicks_mc")
	step := transform.StepSpec{Name: "parity", Type: transform.StepSet, Field: "parity", Expr: `value.id % 2 == 0 ? "even" : "odd"`}
	spec.Transforms = []transform.StepSpec{step}
	require.NoError(t, spec.Validate())
	s.start(spec, 0)
	s.waitFor(spec.Name, 2*time.Minute, "all records, three dead letters", func(st workflows.Status) bool {
		return caughtUp(n)(st) && st.Partitions[0].DeadLetters == 3
	})
	step.If = `type(value) == "map"`
	fixed := []transform.StepSpec{step}
	in := workflows.RedriveInput{Connector: spec.Name, Selection: activities.RedriveSelection{All: true}, Overrides: activities.RedriveOverrides{Transforms: &fixed}}
	res := s.redrive(in)
	require.Equal(t, int64(3), res.Letters)
	require.Equal(t, int64(3), res.Records)
	require.Zero(t, res.DeadLetters)
	require.Len(t, res.Transform, 1)
	res = s.redrive(in)
	require.Zero(t, res.Letters, "the same re-drive again writes nothing")

	l := s.mcLedger(spec)
	require.Equal(t, int64(n), l.Rows)
	require.Equal(t, l.Rows, l.Distinct())
	rep := s.verifyDeep(spec)
	require.Equal(t, int64(3), rep.Partitions[0].Redriven)
	require.Equal(t, 1, rep.Partitions[0].RedrivenChecked)
}

// TestRedriveMaxComputeConcurrent: another re-drive (a hand-made writer)
// has recorded its redriven row over a letter and uploaded its rows, but
// its session is not committed yet (its commits are refused). A re-drive
// of the same letters is refused before it commits anything
// (ConcurrentRedrive), and the table holds no re-driven row.
func TestRedriveMaxComputeConcurrent(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	ctx := context.Background()
	const topic, table, n, size = "events-cc", "events_cc", 100, 64
	s.createTopic(topic, 1)
	recs := make([]*kgo.Record, n)
	for i := range recs {
		v := value(topic, 0, i, size)
		if i == 30 || i == 60 {
			v = value(topic, 0, i, 4096)
		}
		recs[i] = &kgo.Record{Topic: topic, Partition: 0, Value: v, Timestamp: mcxHour(14)}
	}
	s.produceRecords(recs)
	spec := s.mcSpec("events-cc", topic, table)
	spec.Errors.MaxRecordBytes = 1024
	require.NoError(t, spec.Validate())
	s.start(spec, 0)
	s.waitFor(spec.Name, 2*time.Minute, "all records, two dead letters", func(st workflows.Status) bool {
		return caughtUp(n)(st) && st.Partitions[0].DeadLetters == 2
	})
	fixed := activities.RedriveOverrides{MaxRecordBytes: 8 << 10}
	rspec, err := fixed.Apply(spec)
	require.NoError(t, err)

	sk, err := maxcompute.New(spec, s.mcCreds())
	require.NoError(t, err)
	plan := activities.RedrivePlan{DeadLetterPartition: 0, First: 0, End: 1, OriginPartition: 0}
	id := activities.RedriveBatchID(spec, plan, "", fixed.Hash())
	id.Writer = "another-redrive"
	pt, err := sk.PartitionOf(&transform.Record{Topic: topic, Offset: 30, Timestamp: mcxHour(14), Value: value(topic, 0, 30, 4096)})
	require.NoError(t, err)
	prep, err := sk.Prepare(ctx, id, []string{pt}, nil)
	require.NoError(t, err)
	b, err := sk.Begin(ctx, id, prep)
	require.NoError(t, err)
	kc, err := kafka.NewClient(kgo.SeedBrokers(s.brokers...))
	require.NoError(t, err)
	defer kc.Close()
	require.NoError(t, kc.ReadRange(ctx, spec.Errors.DeadLetterTopic, 0, plan.First, plan.End, kafka.ReadOptions{}, func(r *kgo.Record) (bool, error) {
		_, _, err := activities.RedriveRecord(ctx, rspec, nil, b, plan, r)
		return true, err
	}))
	refuse := s.mcEmu.InjectFault(odpsemu.FlowExceeded(odpsemu.Match{Table: table, Ops: []odpsemu.Op{odpsemu.OpCommitUploadSession}}))
	_, err = b.Commit(ctx)
	refuse.Remove()
	require.Error(t, err, "the other re-drive's commit is refused: its row is recorded, its session open")
	es, err := maxcompute.ReadRedriveEntries(ctx, spec, s.mcCreds())
	require.NoError(t, err)
	require.Len(t, es, 1)
	require.False(t, es[0].Committed)

	in := workflows.RedriveInput{Connector: spec.Name, Selection: activities.RedriveSelection{All: true}, Overrides: fixed}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	run, err := s.client.ExecuteWorkflow(cctx, client.StartWorkflowOptions{ID: workflows.RedriveWorkflowID(in), TaskQueue: workflows.TaskQueue}, workflows.RedriveName, in)
	require.NoError(t, err)
	err = run.Get(cctx, nil)
	require.Error(t, err)
	require.Contains(t, err.Error(), "its upload sessions still open")
	l := s.mcLedger(spec)
	require.Equal(t, int64(n-2), l.Rows, "no re-driven row is committed")
}
