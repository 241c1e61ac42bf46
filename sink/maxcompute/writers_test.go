package maxcompute_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dumpflow/dumpflow/connector"
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
