package kafka

import (
	"context"
	"errors"
	"fmt"
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

// ReadRange reads topic[partition] from offset from (inclusive) to offset to
// (exclusive), calling fn for each record in offset order. fn returns
// false to stop early (the byte cut of a batch). Records at or past to are
// never passed to fn. The read is direct (no consumer group), so retries and
// concurrent reads of other ranges do not interfere.
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
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), c.opts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(from)}}),
		kgo.FetchMaxPartitionBytes(opt.FetchMaxPartitionBytes),
		kgo.FetchMaxBytes(4*opt.FetchMaxPartitionBytes),
		kgo.FetchMaxWait(250*time.Millisecond),
	)...)
	if err != nil {
		return fmt.Errorf("read %s[%d] [%d,%d): %w", topic, partition, from, to, err)
	}
	defer cl.Close()

	next := from // next offset we expect to see
	hwm := int64(-1)
	idleSince := time.Time{}
	for next < to {
		pollCtx, cancel := context.WithTimeout(ctx, opt.IdleGap)
		fs := cl.PollFetches(pollCtx)
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
		got := false
		stop := false
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if p.HighWatermark > hwm {
				hwm = p.HighWatermark
			}
			for _, r := range p.Records {
				if stop || r.Offset < next {
					continue
				}
				got = true
				if r.Offset >= to {
					next = to
					stop = true
					continue
				}
				next = r.Offset + 1
				more, err := fn(r)
				if err != nil {
					fetchErr = err
					stop = true
					continue
				}
				if !more {
					stop = true
				}
			}
		})
		if fetchErr != nil {
			return fetchErr
		}
		if stop {
			return nil
		}
		if got {
			idleSince = time.Time{}
			continue
		}
		// Nothing new: if the log has moved past the range, the offsets still
		// missing are gaps (compaction, transaction markers).
		if idleSince.IsZero() {
			idleSince = time.Now()
		} else if hwm >= to && time.Since(idleSince) >= opt.IdleGap {
			return nil
		} else if time.Since(idleSince) >= 30*time.Second {
			return fmt.Errorf("read %s[%d] [%d,%d): no records past offset %d for 30s (high watermark %d)", topic, partition, from, to, next, hwm)
		}
	}
	return nil
}
