package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadOptions tune ReadRange.
type ReadOptions struct {
	// FetchMaxPartitionBytes bounds one fetch response per partition: a
	// reader holds about two responses at a time (the one being read and
	// the next, fetched meanwhile). Optional. Default: 1MiB (Kafka's and
	// franz-go's default).
	FetchMaxPartitionBytes int32
	// StallTimeout is how long a read may go without seeing a new offset
	// before it fails with a *StallError. Fetch errors that franz-go retries
	// (leader moves, unavailable brokers) do not end a read before it.
	// Optional. Default: 30s.
	StallTimeout time.Duration
	// ErrorStallTimeout, when positive and shorter than StallTimeout, is
	// how long a read may go without a new offset while franz-go reports
	// fetch errors for the partition: a read that must not wait out a
	// failing broker for long (a scan planning several partitions at once)
	// fails with a *StallError carrying the error sooner. Optional.
	// Default: StallTimeout.
	ErrorStallTimeout time.Duration
}

// DefaultStallTimeout is ReadOptions.StallTimeout's default.
const DefaultStallTimeout = 30 * time.Second

// Bounds of the pool of idle range readers a Client keeps (see readerPool).
const (
	readerIdleMax          = 16
	readerIdlePerPartition = 2
	readerIdleTTL          = time.Minute
)

// ReadRange reads topic[partition] from offset from (inclusive) to offset to
// (exclusive), calling fn for each record in offset order. fn returns
// false to stop early (the byte cut of a batch). Records at or past to are
// never passed to fn. The read is direct (no consumer group), so retries and
// concurrent reads of other ranges do not interfere.
//
// Reads are read_committed: records of aborted transactions are never passed
// to fn, and records past the last stable offset are not returned by the
// broker until their transaction ends, so ranges are planned to the last
// stable offset (Bounds.Stable). Control records (transaction markers) are
// never passed to fn either, but count as seen.
//
// ReadRange returns nil only when it has seen an offset at or past to-1 (a
// record passed to fn, or a control record), or fn returned false. Offsets
// the broker skips between two offsets it returns are absent from the log
// (aborted records, compaction, markers); elapsed time never counts as
// proof of a gap. Otherwise it returns:
//   - a *DataLostError when the log start moved past the first offset not
//     yet read (retention or DeleteRecords deleted it); the read never skips
//     to the log start by itself;
//   - a *StallError when no new offset was seen for opt.StallTimeout;
//   - an authentication or authorization failure promptly, wrapped;
//   - fn's error as is, or ctx's error.
//
// Each call has a direct consumer of the partition to itself. When the call
// ends cleanly the consumer is paused and kept, with the records it already
// fetched past the end, and the next call on the partition that starts where
// this one ended continues with it: consecutive batches then cost neither a
// new connection nor a refetch of what was read ahead. After an error the
// consumer is closed.
func (c *Client) ReadRange(ctx context.Context, topic string, partition int32, from, to int64, opt ReadOptions, fn func(*kgo.Record) (bool, error)) error {
	if from >= to {
		return nil
	}
	if opt.StallTimeout <= 0 {
		opt.StallTimeout = DefaultStallTimeout
	}
	if opt.FetchMaxPartitionBytes == 0 {
		opt.FetchMaxPartitionBytes = 1 << 20
	}
	r, err := c.reads.acquire(c.opts, readerKey{topic, partition, opt.FetchMaxPartitionBytes}, from)
	if err != nil {
		return fmt.Errorf("read %s[%d] [%d,%d): %w", topic, partition, from, to, err)
	}
	kept := false
	defer func() {
		// After an error (or a panic in fn) the reader's position is
		// unknown: records may have been polled and dropped. It is not kept.
		if !kept {
			r.cl.Close()
		}
	}()
	if opt.ErrorStallTimeout <= 0 || opt.ErrorStallTimeout > opt.StallTimeout {
		opt.ErrorStallTimeout = opt.StallTimeout
	}
	if err := r.read(ctx, from, to, opt.StallTimeout, opt.ErrorStallTimeout, fn); err != nil {
		return err
	}
	kept = true
	c.reads.release(r)
	return nil
}

// rangeReader is a direct consumer of one partition. It belongs to one
// ReadRange call at a time; between calls it sits paused in the pool.
type rangeReader struct {
	key readerKey
	cl  *kgo.Client
	adm *kadm.Client // admin requests over cl, for lookups while stalled
	// pos is where the reader's stream continues: left, then what the
	// client fetches next, hold every record of the log at or past pos
	// in offset order (records below pos may follow and are skipped).
	pos    int64
	left   []*kgo.Record
	hwm    int64 // high watermark last seen, -1 if none
	lso    int64 // last stable offset last seen, -1 if none
	paused bool

	// start is the offset the reader was built at, and started is set
	// once a fetch of the partition succeeded: franz-go bounds a new
	// consumer's exact start offset into the log, so the first fetch
	// shows whether the log start had already passed start.
	start   int64
	started bool

	idleSeq uint64      // release order, for evicting the oldest idle reader
	timer   *time.Timer // closes the reader once idle for readerIdleTTL
}

// read passes the records of [from, to) to fn; r.pos must be from.
func (r *rangeReader) read(ctx context.Context, from, to int64, quietStall, errorStall time.Duration, fn func(*kgo.Record) (bool, error)) error {
	topic, partition := r.key.topic, r.key.partition
	next := from // next offset we expect to see
	defer func() { r.pos = next }()

	// Records polled by the previous call past its end come first.
	left := r.left
	r.left = nil
	done, err := r.feed(left, &next, to, fn)
	if err != nil || done {
		return err
	}

	// While no new offset arrives, the reader looks the partition up
	// itself every probeEvery: that is how it learns of a log start that
	// moved past next while it waited, of a failing authentication (which
	// franz-go only retries) and of the current watermarks.
	probeEvery := min(max(quietStall/4, 100*time.Millisecond), 2*time.Second)
	probeTimeout := min(max(quietStall/4, 500*time.Millisecond), 5*time.Second)
	var (
		lastProgress = time.Now()
		nextProbe    = lastProgress.Add(probeEvery)
		lastErr      error // last fetch error franz-go reported
		lookupErr    error // last error of our own lookups
		failing      bool  // a fetch failed since the last progress
		backoff      time.Duration
	)
	for {
		stall := quietStall
		if failing {
			stall = errorStall
		}
		r.resume()
		wait := min(time.Until(nextProbe), time.Until(lastProgress.Add(stall)))
		pollCtx, cancel := context.WithTimeout(ctx, max(wait, 10*time.Millisecond))
		fs := r.cl.PollFetches(pollCtx)
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}

		var fatal, outOfRange error
		gotErr := false
		fs.EachError(func(t string, p int32, err error) {
			if fatal != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			if (t != "" && t != topic) || (p >= 0 && p != partition) {
				return
			}
			gotErr = true
			failing = true
			switch {
			case errors.Is(err, kerr.OffsetOutOfRange):
				// Records polled with it (from a fetch before
				// it) come first; the cursor does not move.
				outOfRange = err
			case isAuthErr(err), errors.Is(err, kgo.ErrClientClosed):
				fatal = fmt.Errorf("read %s[%d] [%d,%d): fetch at %d: %w", topic, partition, from, to, next, err)
			case isFatalFetchErr(err):
				// The client moved or stopped the partition's
				// cursor: going on would skip or stall for good.
				fatal = fmt.Errorf("read %s[%d] [%d,%d): fetch at %d: %w", topic, partition, from, to, next, err)
			default:
				// franz-go retries these itself (leader moves,
				// unavailable or failing brokers, unknown topic).
				lastErr = err
			}
		})
		if fatal != nil {
			return fatal
		}

		var recs []*kgo.Record
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if fatal != nil || p.Topic != topic || p.Partition != partition || p.Err != nil {
				return
			}
			r.hwm, r.lso = p.HighWatermark, p.LastStableOffset
			if !r.started {
				r.started = true
				if p.LogStartOffset > r.start && (len(p.Records) == 0 || p.Records[0].Offset > r.start) {
					// The consumer was started at the log
					// start instead of at r.start.
					fatal = r.dataLost(ctx, next, p.LogStartOffset, probeTimeout)
					return
				}
			}
			if recs == nil {
				recs = p.Records
			} else {
				recs = append(recs[:len(recs):len(recs)], p.Records...)
			}
		})
		if fatal != nil {
			return fatal
		}
		// Once the polled records reach the end of the range, fetching
		// further would only read ahead: pause before the client sends
		// its next fetch (one already in flight stays buffered for the
		// next call).
		if len(recs) > 0 && recs[len(recs)-1].Offset >= to-1 {
			r.pause()
		}
		before := next
		done, err := r.feed(recs, &next, to, fn)
		if err != nil || done {
			return err
		}
		if outOfRange != nil {
			return r.outOfRange(ctx, from, to, next, probeTimeout, outOfRange)
		}
		if next > before {
			failing = false
			lastProgress = time.Now()
			nextProbe = lastProgress.Add(probeEvery)
			backoff = 0
			continue
		}

		if now := time.Now(); !now.Before(nextProbe) || !now.Before(lastProgress.Add(stall)) {
			if _, _, err := r.probe(ctx, next, probeTimeout, &lookupErr); err != nil {
				return err
			}
			nextProbe = time.Now().Add(probeEvery)
			if stalled := time.Since(lastProgress); stalled >= stall {
				return &StallError{
					Topic: topic, Partition: partition, From: from, To: to, Next: next,
					HighWatermark: r.hwm, LastStable: r.lso, Stalled: stalled,
					LastErr: lastErr, LookupErr: lookupErr,
				}
			}
		}
		if gotErr {
			// A fetch that failed is answered at once, and the
			// client fetches again as soon as it is polled: pace
			// the retries.
			backoff = min(max(2*backoff, 50*time.Millisecond), time.Second)
			t := time.NewTimer(min(backoff, max(time.Until(lastProgress.Add(stall)), 0)))
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
	}
}

// isFatalFetchErr reports whether err means franz-go stopped or moved the
// partition's cursor on its own.
func isFatalFetchErr(err error) bool {
	var loss *kgo.ErrDataLoss
	var tooLarge *kgo.ErrDecompressTooLarge
	return errors.As(err, &loss) || errors.As(err, &tooLarge)
}

// probe looks up the partition's log start and watermarks. It returns a
// *DataLostError when the log start passed next and an error for a failed
// authentication; otherwise it records the watermarks it learned in r, the
// last failed lookup in *lookupErr, and reports the log start (ok false if
// that lookup failed).
func (r *rangeReader) probe(ctx context.Context, next int64, timeout time.Duration, lookupErr *error) (start int64, ok bool, err error) {
	topic, partition := r.key.topic, r.key.partition
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if r.adm == nil {
		r.adm = kadm.NewClient(r.cl)
	}
	lookup := func(what string, list func(context.Context, ...string) (kadm.ListedOffsets, error)) (int64, bool) {
		l, err := list(pctx, topic)
		if err == nil {
			o, ok := l.Lookup(topic, partition)
			if !ok {
				o, ok = l.Lookup(topic, -1) // the whole topic failed
			}
			switch {
			case !ok:
				err = errors.New("no answer for the partition")
			case o.Err != nil:
				err = o.Err
			default:
				return o.Offset, true
			}
		}
		if ctx.Err() == nil {
			*lookupErr = fmt.Errorf("list %s offset of %s[%d]: %w", what, topic, partition, err)
		}
		return 0, false
	}
	start, ok = lookup("start", r.adm.ListStartOffsets)
	if ok && start > next {
		return start, ok, &DataLostError{Topic: topic, Partition: partition, From: next, LogStart: start}
	}
	if e := *lookupErr; !ok && e != nil && isAuthErr(e) {
		return start, ok, fmt.Errorf("read %s[%d] at %d: %w", topic, partition, next, e)
	}
	if hwm, ok := lookup("end", r.adm.ListEndOffsets); ok {
		r.hwm = hwm
	}
	if lso, ok := lookup("last stable", r.adm.ListCommittedOffsets); ok {
		r.lso = lso
	}
	return start, ok, ctx.Err()
}

// outOfRange handles an OffsetOutOfRange answer to a fetch at next: a
// *DataLostError when the log start passed next, an error naming the
// truncated log end otherwise.
func (r *rangeReader) outOfRange(ctx context.Context, from, to, next int64, timeout time.Duration, ferr error) error {
	topic, partition := r.key.topic, r.key.partition
	var lookupErr error
	start, ok, err := r.probe(ctx, next, timeout, &lookupErr)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("read %s[%d] [%d,%d): fetch at %d: %w (and the log start could not be looked up: %v)", topic, partition, from, to, next, ferr, lookupErr)
	default:
		return fmt.Errorf("read %s[%d] [%d,%d): fetch at %d: %w: the log is [%d,%s), the offset is past its end (truncated)",
			topic, partition, from, to, next, ferr, start, offsetString(r.hwm))
	}
}

// dataLost returns the *DataLostError for a reader whose consumer started
// past next because the log start had moved there; the log start is looked
// up again, with seen as the fallback.
func (r *rangeReader) dataLost(ctx context.Context, next, seen int64, timeout time.Duration) error {
	var lookupErr error
	if _, _, err := r.probe(ctx, next, timeout, &lookupErr); err != nil {
		return err
	}
	return &DataLostError{Topic: r.key.topic, Partition: r.key.partition, From: next, LogStart: seen}
}

// feed passes recs from *next on to fn, advancing *next; control records
// advance it without being passed. It reports done when the range is
// complete or fn stopped; the records not consumed are then kept in r.left
// for the next call.
func (r *rangeReader) feed(recs []*kgo.Record, next *int64, to int64, fn func(*kgo.Record) (bool, error)) (bool, error) {
	for i, rec := range recs {
		if rec.Offset < *next {
			continue
		}
		if rec.Offset >= to {
			*next = to
			r.left = recs[i:]
			return true, nil
		}
		*next = rec.Offset + 1
		more := true
		if !rec.Attrs.IsControl() {
			var err error
			if more, err = fn(rec); err != nil {
				return true, err
			}
		}
		if !more || *next >= to {
			if i+1 < len(recs) {
				r.left = recs[i+1:]
			}
			return true, nil
		}
	}
	return false, nil
}

func (r *rangeReader) pause() {
	if !r.paused {
		r.cl.PauseFetchPartitions(map[string][]int32{r.key.topic: {r.key.partition}})
		r.paused = true
	}
}

func (r *rangeReader) resume() {
	if r.paused {
		r.cl.ResumeFetchPartitions(map[string][]int32{r.key.topic: {r.key.partition}})
		r.paused = false
	}
}

type readerKey struct {
	topic     string
	partition int32
	partBytes int32 // FetchMaxPartitionBytes the reader was built with
}

// readerPool keeps idle range readers for reuse: at most
// readerIdlePerPartition per key and readerIdleMax in all, each for at most
// readerIdleTTL; the oldest go first. A reader in use is not in the pool, so
// no two calls share one. The zero value is ready to use.
type readerPool struct {
	mu     sync.Mutex
	closed bool
	idle   map[readerKey][]*rangeReader // per key, oldest first
	n      int                          // idle readers in all
	seq    uint64

	opened atomic.Int64 // readers built, for tests
	reused atomic.Int64 // calls that continued an idle reader, for tests
}

// acquire returns an idle reader of key positioned at from, or a new one.
func (p *readerPool) acquire(opts []kgo.Opt, key readerKey, from int64) (*rangeReader, error) {
	p.mu.Lock()
	list := p.idle[key]
	for i := len(list) - 1; i >= 0; i-- {
		if r := list[i]; r.pos == from {
			p.remove(key, i)
			p.mu.Unlock()
			r.timer.Stop()
			p.reused.Add(1)
			return r, nil
		}
	}
	p.mu.Unlock()

	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), opts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{key.topic: {key.partition: kgo.NewOffset().At(from)}}),
		// Never move the cursor on OffsetOutOfRange: a log start past
		// it is data loss, reported, not skipped.
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Markers are offsets seen: a range may end on one.
		kgo.KeepControlRecords(),
		// Retryable errors reach the read (for its stall report);
		// franz-go still retries them.
		kgo.KeepRetryableFetchErrors(),
		kgo.FetchMaxPartitionBytes(key.partBytes),
		kgo.FetchMaxBytes(4*key.partBytes),
		kgo.FetchMaxWait(250*time.Millisecond),
	)...)
	if err != nil {
		return nil, err
	}
	p.opened.Add(1)
	return &rangeReader{key: key, cl: cl, pos: from, hwm: -1, lso: -1, start: from}, nil
}

// release pauses r and keeps it for a call that continues at r.pos,
// closing whatever falls out of the pool's bounds.
func (p *readerPool) release(r *rangeReader) {
	r.pause()
	var evict []*rangeReader
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		r.cl.Close()
		return
	}
	if p.idle == nil {
		p.idle = map[readerKey][]*rangeReader{}
	}
	p.seq++
	r.idleSeq = p.seq
	p.idle[r.key] = append(p.idle[r.key], r)
	p.n++
	if len(p.idle[r.key]) > readerIdlePerPartition {
		evict = append(evict, p.remove(r.key, 0))
	}
	for p.n > readerIdleMax {
		var oldest readerKey
		var seq uint64
		for k, l := range p.idle {
			if seq == 0 || l[0].idleSeq < seq {
				oldest, seq = k, l[0].idleSeq
			}
		}
		evict = append(evict, p.remove(oldest, 0))
	}
	r.timer = time.AfterFunc(readerIdleTTL, func() { p.expire(r) })
	p.mu.Unlock()
	for _, e := range evict {
		e.timer.Stop()
		e.cl.Close()
	}
}

// remove takes the i-th idle reader of key out of the pool; p.mu is held.
func (p *readerPool) remove(key readerKey, i int) *rangeReader {
	list := p.idle[key]
	r := list[i]
	list = append(list[:i:i], list[i+1:]...)
	if len(list) == 0 {
		delete(p.idle, key)
	} else {
		p.idle[key] = list
	}
	p.n--
	return r
}

// expire closes r if it is still idle.
func (p *readerPool) expire(r *rangeReader) {
	p.mu.Lock()
	for i, e := range p.idle[r.key] {
		if e == r {
			p.remove(r.key, i)
			p.mu.Unlock()
			r.cl.Close()
			return
		}
	}
	p.mu.Unlock()
}

// close closes every idle reader; readers in use are closed when their
// call ends.
func (p *readerPool) close() {
	p.mu.Lock()
	p.closed = true
	var all []*rangeReader
	for _, l := range p.idle {
		all = append(all, l...)
	}
	p.idle, p.n = nil, 0
	p.mu.Unlock()
	for _, r := range all {
		r.timer.Stop()
		r.cl.Close()
	}
}

// idleReaders returns how many idle readers the pool holds, for tests.
func (p *readerPool) idleReaders() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}
