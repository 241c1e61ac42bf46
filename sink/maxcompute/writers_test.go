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
)

// TestSecondWriterRefused: two writers (two run chains under one connector
// name, e.g. two workflows started by hand) cut the same range and write it
// in lockstep, each into sessions of its own. Whatever the interleaving,
// the range's rows are in the table once: a writer that finds another
// writer's intent over its range, with other sessions, is refused with
// ConcurrentWriter before it commits.
func TestSecondWriterRefused(t *testing.T) {
	for _, order := range []string{"one after the other", "intents first"} {
		t.Run(order, func(t *testing.T) {
			emu := startEmulator(t)
			spec := emu.spec(t, "writers", func(mc *connector.MaxComputeSpec) { mc.CreateTable = true })
			rs := textRecords(0, 5, at(6, 0, 0))
			ctx := context.Background()
			begin := func(writer string) sink.Batch {
				s := newSink(t, spec)
				id := batchID(rs)
				id.Writer = writer
				p := prepare(t, s, rs)
				b, err := s.Begin(ctx, id, p)
				require.NoError(t, err)
				for _, r := range rs {
					require.NoError(t, b.Add(ctx, r))
				}
				return b
			}
			b1, b2 := begin("default/connector-writers/run-a"), begin("default/connector-writers/run-b")
			var err1, err2 error
			switch order {
			case "one after the other":
				_, err1 = b1.Commit(ctx)
				_, err2 = b2.Commit(ctx)
			case "intents first":
				// Both commit at once, in whatever interleaving of
				// checks, intents and commits the emulator gives.
				done := make(chan error)
				go func() { _, err := b2.Commit(ctx); done <- err }()
				_, err1 = b1.Commit(ctx)
				err2 = <-done
			}
			refused := 0
			for _, err := range []error{err1, err2} {
				if err != nil {
					var perm *sink.PermanentError
					require.ErrorAs(t, err, &perm)
					require.Equal(t, sink.ErrConcurrentWriter, perm.Type, "%v", err)
					refused++
				}
			}
			require.GreaterOrEqual(t, refused, 1, "two writers of one range both committed")
			l, err := maxcompute.ReadLedger(ctx, spec, creds)
			require.NoError(t, err)
			require.Empty(t, l.Duplicates, "offsets in the table twice")
			require.LessOrEqual(t, l.Rows, int64(5))
		})
	}
}

// TestGapOverDeadIntent: a worker dies after a range's intent row is in the
// ledger and before its sessions commit; retention then deletes the range
// from Kafka and an operator acknowledges the loss from the range's first
// offset. The declaration is accepted, supersedes the dead intent, and the
// partition goes on after it: when the log start is past the intent's end,
// and when it is inside the intent (the rest of the range still in Kafka is
// written again, once).
func TestGapOverDeadIntent(t *testing.T) {
	for _, tc := range []struct {
		name     string
		logStart int64 // the gap is [0, logStart)
	}{
		{"log start past the intent", 30},
		{"log start inside the intent", 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // the SDK retries the refused commit for about 11 s
			emu := startEmulator(t)
			spec := emu.spec(t, "deadintent", func(mc *connector.MaxComputeSpec) { mc.CreateTable = true })
			ctx := context.Background()
			s := newSink(t, spec)
			rs := textRecords(0, 20, at(6, 0, 0))
			id := batchID(rs)
			id.Writer = "default/connector-deadintent/run-a"

			// The write dies between its intent and its commit.
			inj := emu.srv.InjectFault(odpsemu.Fault{Match: odpsemu.Match{Ops: []odpsemu.Op{odpsemu.OpCommitUploadSession}, Table: spec.Sink.MaxCompute.Table},
				Status: http.StatusForbidden, Code: "NoPermission", Message: "the worker is gone"})
			b, err := s.Begin(ctx, id, prepare(t, s, rs))
			require.NoError(t, err)
			for _, r := range rs {
				require.NoError(t, b.Add(ctx, r))
			}
			_, err = b.Commit(ctx)
			require.Error(t, err)
			require.Positive(t, inj.Fired())
			inj.Remove()
			b.Abort(ctx)
			require.Empty(t, rows(t, spec, "pt=11-17-2020 14"), "nothing of the dead write is in the table")
			rp, ok, err := s.Resume(ctx, id.Connector, id.Topic, id.Partition, id.Writer)
			require.NoError(t, err)
			require.True(t, ok)
			require.NotNil(t, rp.Pending, "the intent is in the ledger, uncommitted")

			// The loss is acknowledged from the intent's first offset.
			gap := id
			gap.End = tc.logStart
			_, err = s.Mark(ctx, sink.Mark{ID: gap, Kind: sink.MarkGap, Reason: "deleted from Kafka before it was dumped", At: time.Now().UTC()})
			require.NoError(t, err, "a gap over an intent that never committed")
			rp, ok, err = s.Resume(ctx, id.Connector, id.Topic, id.Partition, id.Writer)
			require.NoError(t, err)
			require.True(t, ok)
			require.Nil(t, rp.Pending, "the gap supersedes the dead intent")
			require.Equal(t, tc.logStart, rp.Next)

			// The partition goes on from the log start.
			rest := textRecords(tc.logStart, 5, at(6, 0, 0))
			next := batchID(rest)
			next.Writer = id.Writer
			nb, err := s.Begin(ctx, next, prepare(t, s, rest))
			require.NoError(t, err)
			for _, r := range rest {
				require.NoError(t, nb.Add(ctx, r))
			}
			w, err := nb.Commit(ctx)
			require.NoError(t, err)
			require.Equal(t, int64(5), w.Records)

			// The table holds each offset of the log start's range once,
			// and nothing of the gap.
			got := rows(t, spec, "pt=11-17-2020 14")
			require.Len(t, got, 5)
			for i, row := range got {
				require.Equal(t, tc.logStart+int64(i), row[2])
			}
			l, err := maxcompute.ReadLedger(ctx, spec, creds)
			require.NoError(t, err)
			require.Empty(t, l.Duplicates)
			rp, _, err = s.Resume(ctx, id.Connector, id.Topic, id.Partition, id.Writer)
			require.NoError(t, err)
			require.Equal(t, tc.logStart+5, rp.Next)
		})
	}
}

// TestGapAfterCommittedIntent: when the range's sessions did commit, its
// rows are in the table and a gap from its first offset is refused, naming
// where the loss begins.
func TestGapAfterCommittedIntent(t *testing.T) {
	emu := startEmulator(t)
	spec := emu.spec(t, "committedintent", func(mc *connector.MaxComputeSpec) { mc.CreateTable = true })
	ctx := context.Background()
	s := newSink(t, spec)
	rs := textRecords(0, 20, at(6, 0, 0))
	write(t, s, prepare(t, s, rs), rs)
	gap := batchID(rs)
	gap.End = 30
	_, err := s.Mark(ctx, sink.Mark{ID: gap, Kind: sink.MarkGap, At: time.Now().UTC()})
	requirePermanent(t, err, "ObjectConflict")
	require.Len(t, rows(t, spec, "pt=11-17-2020 14"), 20)
}
