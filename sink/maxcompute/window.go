package maxcompute

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/aliyun/aliyun-odps-go-sdk/odps/tunnel"

	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/transform"
)

// A window load writes one time window of a topic into one partition of a
// table, visible all at once: one upload session on the partition (created
// with overwrite to replace its rows, or to append), into which every Kafka
// partition of the window streams its rows in blocks of an id range of its
// own; one commit of every block then publishes the window. The session's
// id is recorded in workflow history by PrepareWindow, every writer's block
// ids are a pure function of its place in the window and its rows, so a
// retried writer uploads the same blocks again, and CommitWindow of a
// session already committed counts as done.

// PrepareWindow creates the window's upload session on partition part
// (created when missing), with overwrite when the load truncates.
func (s *Sink) PrepareWindow(ctx context.Context, part string, overwrite bool) (sink.Session, error) {
	if _, err := s.ensureTable(ctx); err != nil {
		return sink.Session{}, err
	}
	part, err := normalizeSpec(part)
	if err != nil {
		return sink.Session{}, sink.Permanent(ErrInvalidSpec, err)
	}
	mc := s.c.mc
	opts := []tunnel.Option{tunnel.SessionCfg.WithPartitionKey(part), tunnel.SessionCfg.WithCreatePartition()}
	if overwrite {
		opts = append(opts, tunnel.SessionCfg.Overwrite())
	}
	up, err := s.c.tunnel.CreateUploadSession(mc.Project, mc.Table, opts...)
	if err != nil && errorCode(err) == "NoSuchPartition" {
		if aerr := s.c.odps.Table(mc.Table).AddPartition(true, part); aerr != nil {
			return sink.Session{}, classify(fmt.Sprintf("add partition %s to %s", part, s.c.name()), aerr)
		}
		up, err = s.c.tunnel.CreateUploadSession(mc.Project, mc.Table, opts...)
	}
	if err != nil {
		return sink.Session{}, classify(fmt.Sprintf("create upload session on %s %s", s.c.name(), part), err)
	}
	return sink.Session{Partition: part, ID: up.Id}, nil
}

// WindowWriter streams one Kafka partition's rows of a window into its
// block range of the window's session. It is a sink.Batch whose Commit
// only finishes the last block: CommitWindow publishes.
type WindowWriter struct {
	b  *batch
	st *stream
}

var _ sink.Batch = (*WindowWriter)(nil)

// WindowWriter attaches to the window's session and returns a writer whose
// blocks are firstBlock, firstBlock+1, ... below firstBlock+span. A session
// already committed (a retried writer after the window was published)
// takes no rows and reports none as uploaded.
func (s *Sink) WindowWriter(ctx context.Context, sess sink.Session, firstBlock, span int) (*WindowWriter, error) {
	if _, err := s.ensureTable(ctx); err != nil {
		return nil, err
	}
	st, err := s.attach(ctx, sess.ID, sess.Partition)
	if err != nil {
		return nil, err
	}
	st.next, st.limit = firstBlock, firstBlock+span
	b := &batch{s: s, streams: map[string]*stream{st.part: st}, order: []*stream{st}}
	return &WindowWriter{b: b, st: st}, nil
}

// Add converts r and streams it into the writer's blocks. A record that
// does not convert is a *sink.RejectError.
func (w *WindowWriter) Add(ctx context.Context, r *transform.Record) error {
	if w.b.err != nil {
		return w.b.err
	}
	row, size, err := w.st.conv.row(r)
	if err != nil {
		return err
	}
	w.st.rows++
	w.st.bytes += r.Size()
	if w.st.done || w.st.expired {
		return nil
	}
	if err := w.b.write(ctx, w.st, row, size); err != nil {
		w.b.err = err
		return err
	}
	return nil
}

// Commit finishes the writer's last block. Written.Objects lists its
// blocks as "block <id>"; see Blocks.
func (w *WindowWriter) Commit(ctx context.Context) (sink.Written, error) {
	if w.b.err != nil {
		return sink.Written{}, w.b.err
	}
	if w.st.w != nil && !w.st.done && !w.st.expired {
		if err := w.b.closeBlock(ctx, w.st); err != nil {
			return sink.Written{}, err
		}
	}
	if w.st.expired {
		return sink.Written{}, sink.Permanent(ErrSessionExpired, fmt.Errorf("upload session %s on %s expired before the window was published: load it again", w.st.id, w.st.part))
	}
	return sink.Written{Records: w.st.rows, Bytes: w.st.bytes}, nil
}

// Abort stops the open block.
func (w *WindowWriter) Abort(ctx context.Context) { w.b.Abort(ctx) }

// Blocks are the block ids the writer uploaded; Done reports the session
// was found committed (the window is published already).
func (w *WindowWriter) Blocks() []int { return slices.Clone(w.st.blocks) }

// Done reports that the window's session is committed already.
func (w *WindowWriter) Done() bool { return w.st.done }

// CommitWindow publishes the window: it commits the session with exactly
// blocks (the final uploads of every writer; blocks an abandoned attempt
// uploaded beyond them are emptied first, so they add no rows). A session
// already committed counts as done.
func (s *Sink) CommitWindow(ctx context.Context, sess sink.Session, blocks []int) error {
	st, err := s.attach(ctx, sess.ID, sess.Partition)
	if err != nil {
		return err
	}
	if st.done {
		return nil
	}
	b := &batch{s: s, streams: map[string]*stream{st.part: st}, order: []*stream{st}}
	st.blocks = slices.Clone(blocks)
	if err := b.commit(ctx, st); err != nil {
		return err
	}
	if st.expired {
		return sink.Permanent(ErrSessionExpired, fmt.Errorf("upload session %s on %s expired before the window was published: load it again", st.id, st.part))
	}
	return nil
}

// WindowSessionOpen reports whether the window's session can still take
// blocks: neither committed nor expired.
func (s *Sink) WindowSessionOpen(ctx context.Context, sess sink.Session) (bool, error) {
	done, err := s.sessionState(ctx, sess)
	if permanentTypeOf(err) == ErrSessionExpired {
		return false, nil
	}
	return !done && err == nil, err
}

// WindowCommitted reports whether the window's session is committed.
func (s *Sink) WindowCommitted(ctx context.Context, sess sink.Session) (bool, error) {
	done, err := s.sessionState(ctx, sess)
	if permanentTypeOf(err) == ErrSessionExpired {
		return false, nil
	}
	return done, err
}

// Window ledger rows: a window load records its window in the ledger table
// (kind "window", in the ledger partition of the job, its topic and
// kafka_partition "window"; first_offset and end_offset hold the window's
// bounds in Unix milliseconds, sessions its session) before it commits, so
// an append re-run of the same window finds it and does nothing, and a run
// that crashed between its record and its commit is finished with its
// session.
const (
	KindWindow          = "window"
	windowLedgerPartion = -1 // kafka_partition "window": see ledgerPartitionKey
)

// RecordWindow appends the window's row to the ledger (before the commit).
func (s *Sink) RecordWindow(ctx context.Context, job, topic string, begin, end time.Time, sess sink.Session, records int64, note string) error {
	if err := s.ensureLedger(ctx); err != nil {
		return err
	}
	return s.c.appendLedger(ctx, LedgerEntry{Connector: job, Topic: topic, Partition: windowLedgerPartion,
		First: begin.UnixMilli(), End: end.UnixMilli(), Kind: KindWindow, Records: records, Target: s.c.name(),
		Sessions: []sink.Session{sess}, Writer: "window/" + job, Note: note, Written: time.Now().UTC()})
}

// LoadedWindow returns the ledger's last row for the window [begin, end) of
// job, if any; committed tells whether its session is committed (the
// window is loaded).
func (s *Sink) LoadedWindow(ctx context.Context, job, topic string, begin, end time.Time) (entry LedgerEntry, found, committed bool, err error) {
	if err := s.ensureLedger(ctx); err != nil {
		return LedgerEntry{}, false, false, err
	}
	if _, err := s.ensureTable(ctx); err != nil {
		return LedgerEntry{}, false, false, err
	}
	tail, err := s.c.ledgerTail(ctx, job, topic, windowLedgerPartion, 256)
	if err != nil {
		return LedgerEntry{}, false, false, err
	}
	for i := len(tail) - 1; i >= 0; i-- {
		e := tail[i]
		if e.Kind != KindWindow || e.First != begin.UnixMilli() || e.End != end.UnixMilli() || len(e.Sessions) != 1 {
			continue
		}
		done, err := s.WindowCommitted(ctx, e.Sessions[0])
		return e, true, done, err
	}
	return LedgerEntry{}, false, false, nil
}
