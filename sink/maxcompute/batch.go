package maxcompute

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/aliyun/aliyun-odps-go-sdk/odps/data"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/tunnel"

	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/transform"
)

// batch streams the rows of one batch into the blocks of its sessions.
type batch struct {
	s       *Sink
	id      sink.BatchID
	conv    *converter         // the table's, as PartitionOf uses it
	streams map[string]*stream // by partition spec
	order   []*stream          // as prepared
	err     error              // sticky: the batch failed
	// origins counts the rows per origin offset of a re-drive batch
	// (id.Redrive set; nil otherwise).
	origins map[int64]int64
	// member is the index in id.Group of each member's Kafka partition, and
	// mrows and mbytes count the rows and bytes per member, of a group
	// batch (id.Group set; nil otherwise).
	member        map[int32]int
	mrows, mbytes []int64
}

// stream is one session's share of a batch. Blocks are numbered 0, 1, 2…
// in the order rows arrive, so a retry of the same batch rewrites the same
// block ids.
type stream struct {
	id, part string
	up       *tunnel.UploadSession
	conv     *converter
	done     bool // committed (by this or another attempt): rows are counted, not sent
	expired  bool // can never be committed: rows are dropped, Commit reports it

	w      *tunnel.RecordProtocWriter // the open block, or nil
	next   int                        // id of the open block, else of the next one
	limit  int                        // block ids must stay below it (0: MaxBlocks)
	fill   int64                      // row bytes in the open block
	blocks []int                      // blocks this attempt uploaded

	rows, bytes int64
}

// Add converts r and streams it into the open block of its partition's
// session, opening a new block every block size. Conversion failures are
// *sink.RejectError; a record whose partition has no session is a bug in the
// caller and fails the batch.
//
// Its answers are those of PartitionOf (the table's converter) followed by
// the conversion with the session's converter, but a record is converted
// once: the session's converter is the table's (Sink.attach) unless the
// table changed, and only then, or for a record without a session, does
// the table's check run on its own.
func (b *batch) Add(ctx context.Context, r *transform.Record) error {
	if b.err != nil {
		return b.err
	}
	mi := -1
	if b.member != nil {
		i, ok := b.member[r.Partition]
		if !ok {
			b.err = fmt.Errorf("add topic %s partition %d offset %d: partition %d is not a member of group batch %s (members %s)",
				r.Topic, r.Partition, r.Offset, r.Partition, b.id, groupString(b.id.Group))
			return b.err
		}
		mi = i
	}
	if r.Timestamp.IsZero() {
		return noTimestamp(r)
	}
	part := b.s.part.spec(r.Timestamp)
	st := b.streams[part]
	if st == nil || st.conv != b.conv {
		if b.conv != nil {
			if err := b.conv.accept(r); err != nil {
				return err
			}
		}
		if st == nil {
			return fmt.Errorf("add topic %s partition %d offset %d: destination %s has no prepared session in batch %s",
				r.Topic, r.Partition, r.Offset, part, b.id)
		}
	}
	row, size, err := st.conv.row(r)
	if err != nil {
		return err
	}
	if st.expired {
		return nil
	}
	st.rows++
	st.bytes += r.Size()
	if mi >= 0 {
		b.mrows[mi]++
		b.mbytes[mi] += r.Size()
	}
	if b.origins != nil {
		b.origins[r.Offset]++
	}
	if st.done {
		return nil
	}
	if err := b.write(ctx, st, row, size); err != nil {
		b.err = err
		return err
	}
	return nil
}

func (b *batch) write(ctx context.Context, st *stream, row data.Record, size int64) error {
	if st.w == nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		if limit := cmp.Or(st.limit, MaxBlocks); st.next >= limit {
			return sink.Permanent(ErrTooManyBlocks, fmt.Errorf("upload session %s on %s: block id %d is past this writer's last one (%d); raise the block size or lower the batch size",
				st.id, st.part, st.next, limit-1))
		}
		w, err := st.up.OpenRecordWriter(st.next)
		if err != nil {
			return b.failed(ctx, st, fmt.Sprintf("open block %d of upload session %s", st.next, st.id), err)
		}
		if st.done || st.expired {
			_ = w.Close()
			return nil
		}
		st.w = w
	}
	if err := st.w.Write(row); err != nil {
		// The pipe to the tunnel broke; the HTTP answer says why.
		if cerr := st.w.Close(); cerr != nil {
			err = cerr
		}
		st.w = nil
		return b.failed(ctx, st, fmt.Sprintf("write block %d of upload session %s", st.next, st.id), err)
	}
	st.fill += size
	if st.fill >= b.s.c.opts.blockSize {
		return b.closeBlock(ctx, st)
	}
	return nil
}

// closeBlock finishes the open block's upload.
func (b *batch) closeBlock(ctx context.Context, st *stream) error {
	err := st.w.Close()
	st.w, st.fill = nil, 0
	if err != nil {
		return b.failed(ctx, st, fmt.Sprintf("upload block %d of upload session %s", st.next, st.id), err)
	}
	st.blocks = append(st.blocks, st.next)
	st.next++
	return nil
}

// failed handles a failed upload or commit on st. When the session turns out
// to be committed, another attempt of this same batch (a timed-out activity
// still running) committed the same rows: st is done and the error is
// dropped. When it can never be committed, st is expired (Commit reports
// it) and the error is dropped too. Otherwise err is classified.
func (b *batch) failed(ctx context.Context, st *stream, op string, err error) error {
	if lerr := st.up.Load(); lerr == nil {
		done, serr := b.s.settled(ctx, st)
		switch {
		case serr == nil && done:
			b.dropWriter(st)
			st.done = true
			return nil
		case permanentTypeOf(serr) == ErrSessionExpired:
			b.dropWriter(st)
			st.expired = true
			return nil
		}
	} else if permanentType(lerr) == ErrSessionExpired || isNotFound(lerr) {
		b.dropWriter(st)
		st.expired = true
		return nil
	}
	return classify(op, err)
}

func (b *batch) dropWriter(st *stream) {
	if st.w != nil {
		_ = st.w.Close()
		st.w = nil
	}
}

// Commit finishes the open blocks, records the range in the ledger table
// with its sessions (an intent: every block is uploaded, no session is
// committed yet), then commits every session not committed before. A
// session the service already committed counts as done. When sessions have
// expired it returns a *sink.ExpiredError naming them and the committed
// ones: the caller prepares new sessions for the expired partitions only.
// Written lists the session ids in prepared order, the rows written and the
// key plus value bytes of their records, and for a group batch the same
// counts per member in Group's order; a retry reports the same.
func (b *batch) Commit(ctx context.Context) (sink.Written, error) {
	if b.err != nil {
		return sink.Written{}, b.err
	}
	for _, st := range b.order {
		if st.w != nil && !st.done && !st.expired {
			if err := b.closeBlock(ctx, st); err != nil {
				b.err = err
				return sink.Written{}, err
			}
		}
	}
	if err := b.expiredError(nil); err != nil {
		return sink.Written{}, err
	}
	record := b.recordIntent
	switch {
	case b.id.Redrive != nil:
		record = b.recordRedriveIntent
	case b.member != nil:
		record = b.recordGroupIntent
	}
	if err := record(ctx); err != nil {
		b.err = err
		return sink.Written{}, err
	}
	w := sink.Written{Objects: make([]string, 0, len(b.order))}
	for _, st := range b.order {
		if !st.done && !st.expired {
			if err := b.commit(ctx, st); err != nil {
				b.err = err
				return sink.Written{}, err
			}
		}
		w.Objects = append(w.Objects, st.id)
		w.Records += st.rows
		w.Bytes += st.bytes
	}
	if err := b.expiredError(nil); err != nil {
		return sink.Written{}, err
	}
	if b.member != nil {
		w.Members = make([]sink.MemberWritten, len(b.id.Group))
		for i, m := range b.id.Group {
			w.Members[i] = sink.MemberWritten{Partition: m.Partition, Records: b.mrows[i], Bytes: b.mbytes[i]}
		}
	}
	return w, nil
}

// expiredError is a *sink.ExpiredError when a stream expired, else nil.
func (b *batch) expiredError(cause error) error {
	var e sink.ExpiredError
	for _, st := range b.order {
		switch {
		case st.expired:
			e.Expired = append(e.Expired, st.part)
		case st.done:
			e.Committed = append(e.Committed, st.part)
		}
	}
	if len(e.Expired) == 0 {
		return nil
	}
	if cause == nil {
		cause = fmt.Errorf("batch %s", b.id)
	}
	e.Err = cause
	return &e
}

// recordIntent appends the batch's range and sessions to the ledger table,
// unless its last entry already says exactly that (a retry). It refuses the
// batch when the ledger shows another writer at or past its range.
func (b *batch) recordIntent(ctx context.Context) error {
	last, ok, before, err := b.s.checkWriterTail(ctx, b.id)
	if err != nil {
		return err
	}
	sessions := b.sessions()
	if ok && last.Kind == KindData && last.First == b.id.First && last.End == b.id.End && sameSessions(last.Sessions, sessions) {
		return b.s.checkRivals(ctx, b.id, sessions, before)
	}
	if ok && last.Kind == KindData && last.First == b.id.First && last.End == b.id.End && last.Writer != b.id.Writer {
		// The same range by another writer, in other sessions: a chain
		// this one resumes left it unfinished (go on), or another writer
		// running now committed it already (refuse: its rows are there).
		committed, err := b.s.rangeCommitted(ctx, last)
		if err != nil {
			return err
		}
		if committed {
			return sink.Permanent(sink.ErrConcurrentWriter, fmt.Errorf("partition %d of connector %s [%d,%d) was written by another writer (%s, %s); this writer (%s) stops: one connector name must have one writer",
				b.id.Partition, b.id.Connector, b.id.First, b.id.End, last.Writer, last.Written.Format(time.RFC3339), b.id.Writer))
		}
	}
	var rows int64
	for _, st := range b.order {
		rows += st.rows
	}
	id := b.id
	note := ""
	if id.Transform != "" {
		note = "transform " + id.Transform
	}
	if err := b.s.c.appendLedger(ctx, LedgerEntry{Connector: id.Connector, Topic: id.Topic, Partition: id.Partition, Start: id.Start,
		First: id.First, End: id.End, Kind: KindData, Records: rows, Target: b.s.c.name(), Sessions: sessions, Writer: id.Writer, Note: note, Written: time.Now().UTC()}); err != nil {
		return err
	}
	return b.s.checkRivals(ctx, b.id, sessions, before)
}

func sameSessions(a, b []sink.Session) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Partition != b[i].Partition || a[i].ID != b[i].ID {
			return false
		}
	}
	return true
}

func (b *batch) commit(ctx context.Context, st *stream) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := st.up.Load(); err != nil {
		if permanentType(err) == ErrSessionExpired || isNotFound(err) {
			st.expired = true
			return nil
		}
		return classify(fmt.Sprintf("load upload session %s on %s", st.id, st.part), err)
	}
	done, err := b.s.settled(ctx, st)
	switch {
	case permanentTypeOf(err) == ErrSessionExpired:
		st.expired = true
		return nil
	case err != nil || done:
		st.done = done
		return err
	}
	// An earlier attempt may have uploaded blocks this one did not (it cut
	// blocks differently): empty them so the commit takes only this
	// attempt's rows.
	for _, id := range st.up.BlockIds() {
		if slices.Contains(st.blocks, id) {
			continue
		}
		w, err := st.up.OpenRecordWriter(id)
		if err == nil {
			err = w.Close()
		}
		if err != nil {
			if ferr := b.failed(ctx, st, fmt.Sprintf("empty stale block %d of upload session %s", id, st.id), err); ferr != nil || st.done || st.expired {
				return ferr
			}
		}
		st.blocks = append(st.blocks, id)
	}
	slices.Sort(st.blocks)
	if err := st.up.Commit(st.blocks); err != nil {
		// A commit that raced another attempt's, or whose answer was
		// lost, may have succeeded.
		return b.failed(ctx, st, fmt.Sprintf("commit upload session %s on %s (blocks %s)", st.id, st.part, blockList(st.blocks)), err)
	}
	st.done = true
	return nil
}

// Abort stops the open block uploads. Uploaded blocks are never committed;
// the service drops them when the session expires, and a retry of the batch
// overwrites them.
func (b *batch) Abort(context.Context) {
	for _, st := range b.order {
		if st.w != nil {
			_ = st.w.Close()
			st.w = nil
		}
	}
	if b.err == nil {
		b.err = fmt.Errorf("batch %s aborted", b.id)
	}
}

// settled reads st's loaded session status: true when committed, false
// when open for blocks. It waits while the service is committing, and fails
// permanently with SessionExpired when the session can never be committed.
func (s *Sink) settled(ctx context.Context, st *stream) (bool, error) {
	delay := 100 * time.Millisecond
	for {
		switch status := st.up.Status(); status {
		case tunnel.UploadStatusClosed:
			return true, nil
		case tunnel.UploadStatusNormal:
			return false, nil
		case tunnel.UploadStatusCommitting, tunnel.UploadStatusClosing:
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return false, ctx.Err()
			case <-t.C:
			}
			delay = min(2*delay, 5*time.Second)
			if err := st.up.Load(); err != nil {
				return false, classify(fmt.Sprintf("load upload session %s on %s", st.id, st.part), err)
			}
		case tunnel.UploadStatusExpired, tunnel.UploadStatusCanceled, tunnel.UploadStatusCritical:
			return false, sink.Permanent(ErrSessionExpired, fmt.Errorf("upload session %s on %s is %s: prepare the batch again", st.id, st.part, status))
		default:
			return false, fmt.Errorf("upload session %s on %s has status %s", st.id, st.part, status)
		}
	}
}
