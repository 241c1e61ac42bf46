package maxcompute_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/deploy/localstack/odpsemu"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/sink/maxcompute"
	"github.com/dumpflow/dumpflow/transform"
)

const groupPart = "pt=11-17-2020 14" // every group test record lands here

// span is one member's range for groupBatch: n records of partition p
// from offset first.
type span struct {
	p     int32
	first int64
	n     int
}

// groupBatch is the group batch of spans by writer and its records, in
// Group's order.
func groupBatch(writer string, spans ...span) (sink.BatchID, []*transform.Record) {
	id := sink.BatchID{Connector: "mc-test", Topic: topic, Writer: writer}
	var rs []*transform.Record
	for _, sp := range spans {
		id.Group = append(id.Group, sink.Member{Partition: sp.p, Start: 0, First: sp.first, End: sp.first + int64(sp.n)})
		for _, r := range textRecords(sp.first, sp.n, at(6, 0, 0)) {
			r.Partition = sp.p
			rs = append(rs, r)
		}
	}
	id.Partition, id.Start, id.First, id.End = id.Group[0].Partition, id.Group[0].Start, id.Group[0].First, id.Group[0].End
	return id, rs
}

// spans32 are 32 members, partition p from offset first+p, n records each.
func spans32(first int64, n int) []span {
	out := make([]span, 32)
	for i := range out {
		out[i] = span{p: int32(i), first: first + int64(i), n: n}
	}
	return out
}

func prepareGroup(t testing.TB, s *maxcompute.Sink, id sink.BatchID, keep []sink.Session) *sink.Prepared {
	t.Helper()
	p, err := s.Prepare(context.Background(), id, []string{groupPart}, keep)
	require.NoError(t, err)
	return p
}

// writeGroup runs Begin/Add/Commit of a group batch.
func writeGroup(s *maxcompute.Sink, id sink.BatchID, p *sink.Prepared, rs []*transform.Record) (sink.Written, error) {
	ctx := context.Background()
	b, err := s.Begin(ctx, id, p)
	if err != nil {
		return sink.Written{}, err
	}
	for _, r := range rs {
		if err := b.Add(ctx, r); err != nil {
			b.Abort(ctx)
			return sink.Written{}, err
		}
	}
	w, err := b.Commit(ctx)
	if err != nil {
		b.Abort(ctx)
	}
	return w, err
}

// count arms a fault that serves every op request on table as usual and
// counts it.
func (e *emulator) count(t testing.TB, table string, op odpsemu.Op) *odpsemu.Injection {
	inj := e.srv.InjectFault(odpsemu.Fault{Match: odpsemu.Match{Ops: []odpsemu.Op{op}, Table: table}, Action: odpsemu.Delay})
	t.Cleanup(inj.Remove)
	return inj
}

// failCommits makes every data commit on table fail until removed, as a
// worker that dies between its intent and its commit.
func (e *emulator) failCommits(table string) *odpsemu.Injection {
	return e.srv.InjectFault(odpsemu.Fault{Match: odpsemu.Match{Ops: []odpsemu.Op{odpsemu.OpCommitUploadSession}, Table: table},
		Status: http.StatusForbidden, Code: "NoPermission", Message: "the worker is gone"})
}

func groupSpec(t *testing.T, emu *emulator, table string) *connector.Spec {
	return emu.spec(t, table, func(mc *connector.MaxComputeSpec) { mc.CreateTable = true })
}

// requireTiled checks that the table holds every offset of want once.
func requireTiled(t *testing.T, spec *connector.Spec, want map[int32][]maxcompute.Range) {
	t.Helper()
	l, err := maxcompute.ReadLedger(context.Background(), spec, creds)
	require.NoError(t, err)
	require.Empty(t, l.Duplicates, "offsets in the table twice")
	for p, rs := range want {
		require.Equal(t, rs, l.Ranges(p), "partition %d", p)
	}
	require.Len(t, l.Offsets, len(want))
}

// TestGroupBatch writes the ranges of 32 partitions as one group batch:
// one upload session, one block and one commit on the data table, one
// ledger row (one upload session, one commit) and at most two ledger
// download sessions, with the emulator's quotas on.
func TestGroupBatch(t *testing.T) {
	emu := startEmulator(t, func(o *odpsemu.Options) { o.Quotas = &odpsemu.QuotaOptions{} })
	spec := groupSpec(t, emu, "grp")
	table, ledger := spec.Sink.MaxCompute.Table, spec.Sink.MaxCompute.Table+"_ledger"
	s := newSink(t, spec)
	ctx := context.Background()
	require.NoError(t, s.EnsureTable(ctx))
	require.True(t, s.GroupWrites())

	dataUps, blocks, dataCommits := emu.count(t, table, odpsemu.OpCreateUploadSession), emu.count(t, table, odpsemu.OpUploadBlock), emu.count(t, table, odpsemu.OpCommitUploadSession)
	ledgerUps, ledgerCommits, ledgerDowns := emu.count(t, ledger, odpsemu.OpCreateUploadSession), emu.count(t, ledger, odpsemu.OpCommitUploadSession), emu.count(t, ledger, odpsemu.OpCreateDownloadSession)

	const writer = "default/connector-grp/run-a"
	id, rs := groupBatch(writer, spans32(100, 3)...)
	p := prepareGroup(t, s, id, nil)
	w, err := writeGroup(s, id, p, rs)
	require.NoError(t, err)
	require.Equal(t, []string{p.Sessions[0].ID}, w.Objects)
	require.EqualValues(t, 96, w.Records)
	require.Len(t, w.Members, 32)
	var bytes int64
	for i, m := range w.Members {
		require.EqualValues(t, i, m.Partition)
		require.EqualValues(t, 3, m.Records)
		bytes += m.Bytes
	}
	require.Equal(t, w.Bytes, bytes)

	require.Equal(t, 1, dataUps.Fired(), "data upload sessions")
	require.Equal(t, 1, blocks.Fired(), "data blocks")
	require.Equal(t, 1, dataCommits.Fired(), "data commits")
	require.Equal(t, 1, ledgerUps.Fired(), "ledger upload sessions")
	require.Equal(t, 1, ledgerCommits.Fired(), "ledger commits")
	require.LessOrEqual(t, ledgerDowns.Fired(), 2, "ledger download sessions")
	t.Logf("group of 32: ledger download sessions %d", ledgerDowns.Fired())

	want := map[int32][]maxcompute.Range{}
	for _, m := range id.Group {
		want[m.Partition] = []maxcompute.Range{{Start: m.First, End: m.End}}
	}
	requireTiled(t, spec, want)

	es, err := maxcompute.ReadLedgerEntries(ctx, spec, creds, maxcompute.WithLedgerTable(spec.Sink.MaxCompute.Table+"_ledger"))
	require.NoError(t, err)
	require.Len(t, es, 32)
	for _, m := range id.Group {
		require.Len(t, es[m.Partition], 1)
		e := es[m.Partition][0]
		require.Equal(t, maxcompute.KindData, e.Kind)
		require.Equal(t, [2]int64{m.First, m.End}, [2]int64{e.First, e.End})
		require.EqualValues(t, 3, e.Records)
		require.Equal(t, p.Sessions, e.Sessions)
		require.Equal(t, id.Group, e.Group)
		require.Equal(t, writer, e.Writer)
	}

	// Every member resumes at its end, in a couple of download sessions.
	before := ledgerDowns.Fired()
	parts := make([]int32, 33)
	for i := range parts {
		parts[i] = int32(i) // 32 holds nothing
	}
	rps, err := s.ResumeMany(ctx, id.Connector, id.Topic, parts, writer)
	require.NoError(t, err)
	require.LessOrEqual(t, ledgerDowns.Fired()-before, 2, "ResumeMany's ledger download sessions")
	require.Len(t, rps, 32)
	for _, m := range id.Group {
		require.Equal(t, sink.ResumePoint{Start: 0, Next: m.End}, rps[m.Partition], "partition %d", m.Partition)
		rp, ok, err := s.Resume(ctx, id.Connector, id.Topic, m.Partition, writer)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, rps[m.Partition], rp)
	}
	_, ok, err := s.Resume(ctx, id.Connector, id.Topic, 32, writer)
	require.NoError(t, err)
	require.False(t, ok)

	t.Run("a record of another partition fails the batch", func(t *testing.T) {
		id, rs := groupBatch(writer, span{p: 0, first: 103, n: 1}, span{p: 1, first: 104, n: 1})
		b, err := s.Begin(ctx, id, prepareGroup(t, s, id, nil))
		require.NoError(t, err)
		stray := textRecords(9, 1, at(6, 0, 0))[0]
		stray.Partition = 7
		require.NoError(t, b.Add(ctx, rs[0]))
		err = b.Add(ctx, stray)
		require.ErrorContains(t, err, "partition 7 offset 9: partition 7 is not a member of group batch")
		_, isReject := sink.IsReject(err)
		require.False(t, isReject)
		_, err = b.Commit(ctx)
		require.Error(t, err)
		b.Abort(ctx)
	})
	t.Run("a re-drive cannot be a group", func(t *testing.T) {
		id, _ := groupBatch(writer, span{p: 0, first: 103, n: 1})
		id.Redrive = &sink.Redrive{DeadLetterTopic: "dl", DeadLetterPartition: 0}
		_, err := s.Begin(ctx, id, p)
		requirePermanent(t, err, maxcompute.ErrInvalidSpec)
	})
}

// TestGroupRetry: a group batch written again with the same Prepared —
// after it committed, and after its data commit failed — leaves every row
// once and one ledger row.
func TestGroupRetry(t *testing.T) {
	t.Parallel() // the SDK retries the refused commit for about 11 s
	emu := startEmulator(t)
	spec := groupSpec(t, emu, "grpretry")
	ctx := context.Background()
	// Tiny blocks: every row is a block, so a retry rewrites many block ids.
	s := newSink(t, spec, maxcompute.WithBlockSize(1))
	const writer = "default/connector-grpretry/run-a"

	id, rs := groupBatch(writer, span{0, 0, 4}, span{1, 10, 3}, span{2, 5, 5})
	p := prepareGroup(t, s, id, nil)
	first, err := writeGroup(s, id, p, rs)
	require.NoError(t, err)
	again, err := writeGroup(newSink(t, spec), id, p, rs)
	require.NoError(t, err)
	require.Equal(t, first, again, "a retry reports what the first write did")

	// The next group's data commit fails; its retry with the same sessions
	// completes it.
	next, nrs := groupBatch(writer, span{0, 4, 2}, span{1, 13, 2}, span{2, 10, 2})
	np := prepareGroup(t, s, next, nil)
	inj := emu.failCommits(spec.Sink.MaxCompute.Table)
	_, err = writeGroup(s, next, np, nrs)
	require.Error(t, err)
	require.Positive(t, inj.Fired())
	inj.Remove()
	w, err := writeGroup(s, next, np, nrs)
	require.NoError(t, err)
	require.EqualValues(t, 6, w.Records)
	_, err = writeGroup(s, next, np, nrs)
	require.NoError(t, err)

	requireTiled(t, spec, map[int32][]maxcompute.Range{0: {{Start: 0, End: 6}}, 1: {{Start: 10, End: 15}}, 2: {{Start: 5, End: 12}}})
	es, err := maxcompute.ReadLedgerEntries(ctx, spec, creds, maxcompute.WithLedgerTable(spec.Sink.MaxCompute.Table+"_ledger"))
	require.NoError(t, err)
	for p, n := range map[int32]int{0: 2, 1: 2, 2: 2} {
		require.Len(t, es[p], n, "partition %d: one ledger row per group batch", p)
	}
}

// TestGroupResumeDeadIntent: a group batch's intent is in the ledger but
// its data commit never happened. Resume and ResumeMany return every
// member Pending with the shared sessions, uncommitted, and the whole
// group; written again with them, the group completes exactly once.
func TestGroupResumeDeadIntent(t *testing.T) {
	t.Parallel() // the SDK retries the refused commit for about 11 s
	emu := startEmulator(t)
	spec := groupSpec(t, emu, "grpdead")
	ledger := spec.Sink.MaxCompute.Table + "_ledger"
	ctx := context.Background()
	s := newSink(t, spec)
	const writer = "default/connector-grpdead/run-a"

	id, rs := groupBatch(writer, spans32(0, 2)...)
	p := prepareGroup(t, s, id, nil)
	inj := emu.failCommits(spec.Sink.MaxCompute.Table)
	_, err := writeGroup(s, id, p, rs)
	require.Error(t, err)
	inj.Remove()
	require.Empty(t, rows(t, spec, groupPart), "nothing of the dead write is in the table")

	// A fresh worker resumes.
	r := newSink(t, spec)
	downs := emu.count(t, ledger, odpsemu.OpCreateDownloadSession)
	parts := make([]int32, 32)
	for i := range parts {
		parts[i] = int32(i)
	}
	rps, err := r.ResumeMany(ctx, id.Connector, id.Topic, parts, writer)
	require.NoError(t, err)
	require.LessOrEqual(t, downs.Fired(), 2, "ResumeMany's ledger download sessions")
	t.Logf("ResumeMany over 32 partitions: %d ledger download sessions", downs.Fired())
	require.Len(t, rps, 32)
	uncommitted := []sink.Session{{Partition: groupPart, ID: p.Sessions[0].ID}}
	for _, m := range id.Group {
		rp := rps[m.Partition]
		require.Equal(t, m.First, rp.Next, "partition %d", m.Partition)
		require.NotNil(t, rp.Pending)
		require.Equal(t, sink.Pending{First: m.First, End: m.End, Sessions: uncommitted, Group: id.Group}, *rp.Pending)
		one, ok, err := r.Resume(ctx, id.Connector, id.Topic, m.Partition, writer)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, rp, one)
	}

	// The connector writes the pending group again with its sessions.
	pend := rps[0].Pending
	again, ars := groupBatch(writer, spans32(0, 2)...)
	require.Equal(t, pend.Group, again.Group)
	ap := prepareGroup(t, r, again, pend.Sessions)
	require.Equal(t, pend.Sessions[0].ID, ap.Sessions[0].ID, "the open session is kept")
	w, err := writeGroup(r, again, ap, ars)
	require.NoError(t, err)
	require.EqualValues(t, 64, w.Records)
	want := map[int32][]maxcompute.Range{}
	for _, m := range id.Group {
		want[m.Partition] = []maxcompute.Range{{Start: m.First, End: m.End}}
	}
	requireTiled(t, spec, want)
	rps, err = r.ResumeMany(ctx, id.Connector, id.Topic, parts, writer)
	require.NoError(t, err)
	for _, m := range id.Group {
		require.Equal(t, sink.ResumePoint{Next: m.End}, rps[m.Partition])
	}
	es, err := maxcompute.ReadLedgerEntries(ctx, spec, creds, maxcompute.WithLedgerTable(spec.Sink.MaxCompute.Table+"_ledger"))
	require.NoError(t, err)
	require.Len(t, es[5], 1, "the intent is recorded once")
}

// TestGroupSecondWriterRefused is TestSecondWriterRefused for group
// batches: two writers write the same members' ranges into sessions of
// their own; at least one is refused with ConcurrentWriter and no offset
// is in the table twice.
func TestGroupSecondWriterRefused(t *testing.T) {
	for _, order := range []string{"one after the other", "intents first"} {
		t.Run(order, func(t *testing.T) {
			emu := startEmulator(t)
			spec := groupSpec(t, emu, "grpwriters")
			ctx := context.Background()
			begin := func(writer string) sink.Batch {
				s := newSink(t, spec)
				id, rs := groupBatch(writer, span{0, 0, 5}, span{1, 0, 5}, span{2, 0, 5})
				b, err := s.Begin(ctx, id, prepareGroup(t, s, id, nil))
				require.NoError(t, err)
				for _, r := range rs {
					require.NoError(t, b.Add(ctx, r))
				}
				return b
			}
			b1, b2 := begin("default/connector-grpwriters/run-a"), begin("default/connector-grpwriters/run-b")
			var err1, err2 error
			switch order {
			case "one after the other":
				_, err1 = b1.Commit(ctx)
				_, err2 = b2.Commit(ctx)
				require.NoError(t, err1)
			case "intents first":
				done := make(chan error)
				go func() { _, err := b2.Commit(ctx); done <- err }()
				_, err1 = b1.Commit(ctx)
				err2 = <-done
			}
			refused := 0
			for _, err := range []error{err1, err2} {
				if err != nil {
					requirePermanent(t, err, sink.ErrConcurrentWriter)
					require.ErrorContains(t, err, "another writer")
					refused++
				}
			}
			require.GreaterOrEqual(t, refused, 1, "two writers of one group both committed")
			l, err := maxcompute.ReadLedger(ctx, spec, creds)
			require.NoError(t, err)
			require.Empty(t, l.Duplicates, "offsets in the table twice")
			require.LessOrEqual(t, l.Rows, int64(15))
		})
	}
}

// TestGroupMarksAndLegacyRows: a partition written first by a
// single-partition batch (its own ledger partition), then in groups; a gap
// declared over a group's dead intent for one member and a rewind of
// another. Resume, ResumeMany and ReadLedgerEntries give the merged
// answer, and the table tiles.
func TestGroupMarksAndLegacyRows(t *testing.T) {
	t.Parallel() // the SDK retries the refused commit for about 11 s
	emu := startEmulator(t)
	spec := groupSpec(t, emu, "grpmarks")
	ctx := context.Background()
	s := newSink(t, spec)
	const writer = "default/connector-grpmarks/run-a"

	// A legacy single-partition batch of partition 0: [0,5).
	legacy := textRecords(0, 5, at(6, 0, 0))
	lid := batchID(legacy)
	lid.Writer = writer
	lb, err := s.Begin(ctx, lid, prepare(t, s, legacy))
	require.NoError(t, err)
	for _, r := range legacy {
		require.NoError(t, lb.Add(ctx, r))
	}
	_, err = lb.Commit(ctx)
	require.NoError(t, err)

	// A group over it: 0 [5,10), 1 [0,5), 2 [0,5), 3 [0,5).
	g1, g1rs := groupBatch(writer, span{0, 5, 5}, span{1, 0, 5}, span{2, 0, 5}, span{3, 0, 5})
	_, err = writeGroup(s, g1, prepareGroup(t, s, g1, nil), g1rs)
	require.NoError(t, err)
	// A group that overlaps partition 0's legacy range is refused.
	bad, badrs := groupBatch(writer, span{0, 3, 4}, span{1, 5, 1})
	_, err = writeGroup(s, bad, prepareGroup(t, s, bad, nil), badrs)
	requirePermanent(t, err, "ObjectConflict")

	// The next group dies between its intent and its commit.
	g2, g2rs := groupBatch(writer, span{0, 10, 10}, span{1, 5, 10}, span{2, 5, 10}, span{3, 5, 10})
	p2 := prepareGroup(t, s, g2, nil)
	inj := emu.failCommits(spec.Sink.MaxCompute.Table)
	_, err = writeGroup(s, g2, p2, g2rs)
	require.Error(t, err)
	inj.Remove()

	// Partition 0's range is lost from Kafka: a gap over the dead intent.
	gap := sink.BatchID{Connector: g2.Connector, Topic: g2.Topic, Partition: 0, First: 10, End: 30, Writer: writer}
	_, err = s.Mark(ctx, sink.Mark{ID: gap, Kind: sink.MarkGap, Reason: "deleted from Kafka before it was dumped", At: time.Now().UTC()})
	require.NoError(t, err, "a gap over a group intent that never committed")
	// Partition 3 is rewound to 2.
	rw := sink.BatchID{Connector: g2.Connector, Topic: g2.Topic, Partition: 3, First: 2, End: 15, Writer: writer, Epoch: 1}
	_, err = s.Mark(ctx, sink.Mark{ID: rw, Kind: sink.MarkRewind, Reason: "operator: offsets set to 2", At: time.Now().UTC()})
	require.NoError(t, err)

	rps, err := s.ResumeMany(ctx, g2.Connector, g2.Topic, []int32{0, 1, 2, 3, 4}, writer)
	require.NoError(t, err)
	require.Len(t, rps, 4)
	require.Equal(t, sink.ResumePoint{Next: 30}, rps[0], "the gap supersedes the dead intent")
	require.Equal(t, sink.ResumePoint{Next: 2}, rps[3], "the rewind")
	for _, p := range []int32{1, 2} {
		require.EqualValues(t, 5, rps[p].Next)
		require.NotNil(t, rps[p].Pending)
		require.Equal(t, g2.Group[1:3], rps[p].Pending.Group, "members superseded by a mark are not pending")
	}
	for p, want := range rps {
		got, ok, err := s.Resume(ctx, g2.Connector, g2.Topic, p, writer)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, want, got, "partition %d", p)
	}

	// The pending members are written again with the dead group's session.
	g3, g3rs := groupBatch(writer, span{1, 5, 10}, span{2, 5, 10})
	require.Equal(t, rps[1].Pending.Group, g3.Group)
	_, err = writeGroup(s, g3, prepareGroup(t, s, g3, rps[1].Pending.Sessions), g3rs)
	require.NoError(t, err)
	// Partition 0 goes on from the gap's end, partition 3 from its rewind.
	g4, g4rs := groupBatch(writer, span{0, 30, 3}, span{3, 2, 3})
	g4.Group[1].Epoch = 1
	_, err = writeGroup(s, g4, prepareGroup(t, s, g4, nil), g4rs)
	require.NoError(t, err)

	rps, err = s.ResumeMany(ctx, g2.Connector, g2.Topic, []int32{0, 1, 2, 3}, writer)
	require.NoError(t, err)
	require.Equal(t, map[int32]sink.ResumePoint{0: {Next: 33}, 1: {Next: 15}, 2: {Next: 15}, 3: {Next: 5}}, rps)

	// The ledger, as verify reads it: partition 0's legacy row, then its
	// group rows and the gap, in the order written.
	es, err := maxcompute.ReadLedgerEntries(ctx, spec, creds, maxcompute.WithLedgerTable(spec.Sink.MaxCompute.Table+"_ledger"))
	require.NoError(t, err)
	type rng struct {
		kind        string
		first, end  int64
		group       bool
		records     int64
		note        string
		sessionsSet bool
	}
	got := func(p int32) []rng {
		var out []rng
		for _, e := range es[p] {
			out = append(out, rng{e.Kind, e.First, e.End, e.Group != nil, e.Records, e.Note, len(e.Sessions) > 0})
		}
		return out
	}
	require.Equal(t, []rng{
		{maxcompute.KindData, 0, 5, false, 5, "", true},
		{maxcompute.KindData, 5, 10, true, 5, "", true},
		{maxcompute.KindData, 10, 20, true, 10, "", true},
		{sink.MarkGap, 10, 30, true, 0, "deleted from Kafka before it was dumped", false},
		{maxcompute.KindData, 30, 33, true, 3, "", true},
	}, got(0))
	require.Equal(t, []rng{
		{maxcompute.KindData, 0, 5, true, 5, "", true},
		{maxcompute.KindData, 5, 15, true, 10, "", true},
		{sink.MarkRewind, 2, 15, true, 0, "operator: offsets set to 2", false},
		{maxcompute.KindData, 2, 5, true, 3, "", true},
	}, got(3))
	require.Len(t, es[1], 3) // [0,5), the dead intent [5,15), its retry
	require.Len(t, es[2], 3)

	// The table: partition 0 holds [0,10) and [30,33), nothing of the gap;
	// partition 3 holds [2,5) twice (a rewind writes it again, declared).
	l, err := maxcompute.ReadLedger(ctx, spec, creds)
	require.NoError(t, err)
	require.Equal(t, []maxcompute.Range{{Start: 0, End: 10}, {Start: 30, End: 33}}, l.Ranges(0))
	require.Equal(t, []maxcompute.Range{{Start: 0, End: 15}}, l.Ranges(1))
	require.Equal(t, []maxcompute.Range{{Start: 0, End: 15}}, l.Ranges(2))
	require.Equal(t, []maxcompute.Range{{Start: 0, End: 5}}, l.Ranges(3))
	require.Equal(t, map[int32][]int64{3: {2, 3, 4}}, l.Duplicates)
}
