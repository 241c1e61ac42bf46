package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadOptions tune ReadRange.
type ReadOptions struct {
	// IdleGap is how long a read waits for more records once it has seen
	// the high watermark pass the end of the range; offsets still missing
	// then are gaps (compacted records, transaction markers).
	// Optional. Default: 2s.
	IdleGap time.Duration
	// FetchMaxPartitionBytes bounds one fetch response per partition.
	// Optional. Default: 8MiB.
	FetchMaxPartitionBytes int32
}

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
// Each call has a direct consumer of the partition to itself. When the call
// ends cleanly the consumer is paused and kept, with the records it already
// fetched past the end, and the next call on the partition that starts where
// this one ended continues with it: consecutive batches then cost neither a
// new connection nor a refetch of what was read ahead.
func (c *Client) ReadRange(ctx context.Context, topic string, partition int32, from, to int64, opt ReadOptions, fn func(*kgo.Record) (bool, error)) error {
	if from >= to {
		return nil
	}
	if opt.IdleGap == 0 {
		opt.IdleGap = 2 * time.Second
	}
	if opt.FetchMaxPartitionBytes == 0 {
		opt.FetchMaxPartitionBytes = 8 << 20
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
	if err := r.read(ctx, from, to, opt.IdleGap, fn); err != nil {
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
	// pos is where the reader's stream continues: left, then what the
	// client fetches next, hold every record of the log at or past pos
	// in offset order (records below pos may follow and are skipped).
	pos    int64
	left   []*kgo.Record
	hwm    int64 // highest high watermark seen; only ever grows
	paused bool

	idleSeq uint64      // release order, for evicting the oldest idle reader
	timer   *time.Timer // closes the reader once idle for readerIdleTTL
}

// read passes the records of [from, to) to fn; r.pos must be from.
func (r *rangeReader) read(ctx context.Context, from, to int64, idleGap time.Duration, fn func(*kgo.Record) (bool, error)) error {
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

	idleSince := time.Time{}
	for next < to {
		r.resume()
		pollCtx, cancel := context.WithTimeout(ctx, idleGap)
		fs := r.cl.PollFetches(pollCtx)
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		var fetchErr error
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && fetchErr == nil {
				fetchErr = fmt.Errorf("fetch %s[%d] at %d: %w", t, p, next, err)
			}
		})
		if fetchErr != nil {
			return fetchErr
		}
		var recs []*kgo.Record
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if p.Topic != topic || p.Partition != partition {
				return
			}
			if p.HighWatermark > r.hwm {
				r.hwm = p.HighWatermark
			}
			if recs == nil {
				recs = p.Records
			} else {
				recs = append(recs[:len(recs):len(recs)], p.Records...)
			}
		})
		// Once the polled records reach the end of the range, fetching
		// further would only read ahead: pause before the client sends
		// its next fetch (one already in flight stays buffered for the
		// next call).
		if len(recs) > 0 && recs[len(recs)-1].Offset >= to-1 {
			r.pause()
		}
		got := len(recs) > 0 && recs[len(recs)-1].Offset >= next
		done, err := r.feed(recs, &next, to, fn)
		if err != nil || done {
			return err
		}
		if got {
			idleSince = time.Time{}
			continue
		}
		// Nothing new: if the log has moved past the range, the offsets still
		// missing are gaps (compaction, transaction markers).
		if idleSince.IsZero() {
			idleSince = time.Now()
		} else if r.hwm >= to && time.Since(idleSince) >= idleGap {
			next = to
			return nil
		} else if time.Since(idleSince) >= 30*time.Second {
			return fmt.Errorf("read %s[%d] [%d,%d): no records past offset %d for 30s (high watermark %d)", topic, partition, from, to, next, r.hwm)
		}
	}
	return nil
}

// feed passes recs from *next on to fn, advancing *next. It reports done
// when the range is complete or fn stopped; the records fn has not seen are
// then kept in r.left for the next call.
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
		more, err := fn(rec)
		if err != nil {
			return true, err
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
		kgo.FetchMaxPartitionBytes(key.partBytes),
		kgo.FetchMaxBytes(4*key.partBytes),
		kgo.FetchMaxWait(250*time.Millisecond),
	)...)
	if err != nil {
		return nil, err
	}
	p.opened.Add(1)
	return &rangeReader{key: key, cl: cl, pos: from, hwm: -1}, nil
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
