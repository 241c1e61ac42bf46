package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/sink/oss"
	"github.com/dumpflow/dumpflow/transform"
)

// diagStep times one batch the way WritePartition does it, outside
// Temporal: ReadRange up to the byte cut, Add every record, Commit.
type diagStep struct {
	Read, Add, Commit time.Duration
	Records, Bytes    int64
}

// diagnose writes -max-bytes batches of each partition through the same
// kafka and sink/oss code the activities use, first one partition alone,
// then every partition at once, and prints how long each step took. It
// writes under a separate path, as a separate connector, so it does not
// touch the benchmark's objects.
func diagnose(ctx context.Context, w io.Writer, e *env, cfg dumpConfig, hwm map[int32]int64) error {
	spec, err := e.spec(cfg)
	if err != nil {
		return err
	}
	creds, err := connector.ResolveCredentials(spec.Sink.OSS.Credentials)
	if err != nil {
		return err
	}
	s, err := oss.New(spec, creds)
	if err != nil {
		return err
	}
	kc, err := kafka.NewClient(kgo.SeedBrokers(cfg.Brokers...))
	if err != nil {
		return err
	}
	defer kc.Close()

	one := func(p int32, first int64) (diagStep, error) {
		var d diagStep
		var recs []*kgo.Record
		to := min(hwm[p], first+int64(spec.Batch.MaxRecords))
		end := to
		t0 := time.Now()
		err := kc.ReadRange(ctx, spec.Kafka.Topic, p, first, to, kafka.ReadOptions{}, func(r *kgo.Record) (bool, error) {
			recs = append(recs, r)
			d.Bytes += int64(len(r.Key) + len(r.Value))
			if d.Bytes >= int64(spec.Batch.MaxBytes) {
				end = r.Offset + 1
				return false, nil
			}
			return true, nil
		})
		if err != nil {
			return d, err
		}
		d.Read = time.Since(t0)
		d.Records = int64(len(recs))
		t0 = time.Now()
		b, err := s.Begin(ctx, sink.BatchID{Connector: spec.Name, Topic: spec.Kafka.Topic, Partition: p, First: first, End: end}, nil)
		if err != nil {
			return d, err
		}
		for _, r := range recs {
			tr := transform.Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp, Key: r.Key, Value: r.Value}
			if err := b.Add(ctx, &tr); err != nil {
				return d, err
			}
		}
		d.Add = time.Since(t0)
		t0 = time.Now()
		if _, err := b.Commit(ctx); err != nil {
			return d, err
		}
		d.Commit = time.Since(t0)
		return d, nil
	}
	show := func(label string, ds []diagStep, wall time.Duration) {
		var r, a, c time.Duration
		var bytes int64
		for _, d := range ds {
			r, a, c, bytes = r+d.Read, a+d.Add, c+d.Commit, bytes+d.Bytes
		}
		n := time.Duration(len(ds))
		fmt.Fprintf(w, "diag %-28s %d batches of %.1f MiB: read %4.0f ms, add %4.0f ms, commit (upload + meta) %4.0f ms per batch; %.1f MB/s overall\n",
			label, len(ds), mib(bytes)/float64(len(ds)), float64((r / n).Milliseconds()), float64((a / n).Milliseconds()), float64((c / n).Milliseconds()), float64(bytes)/1e6/wall.Seconds())
	}

	// One partition alone, a few batches in a row.
	var ds []diagStep
	first := int64(0)
	t0 := time.Now()
	for i := 0; i < 3 && first < hwm[0]; i++ {
		d, err := one(0, first)
		if err != nil {
			return err
		}
		ds = append(ds, d)
		first += d.Records
	}
	show("1 partition, sequential:", ds, time.Since(t0))

	// Every partition at once, as the connector's loops do.
	var mu sync.Mutex
	var all []diagStep
	var firstErr error
	var wg sync.WaitGroup
	t0 = time.Now()
	for p := range hwm {
		wg.Go(func() {
			start := int64(0)
			if p == 0 {
				start = first
			}
			for i := 0; i < 3 && start < hwm[p]; i++ {
				d, err := one(p, start)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					all = append(all, d)
				}
				mu.Unlock()
				if err != nil {
					return
				}
				start += d.Records
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	show(fmt.Sprintf("%d partitions in parallel:", len(hwm)), all, time.Since(t0))

	// The OSS fake alone: the same batch committed again and again under
	// new ranges, no Kafka involved.
	var recs []*kgo.Record
	var size int64
	err = kc.ReadRange(ctx, spec.Kafka.Topic, 0, 0, hwm[0], kafka.ReadOptions{}, func(r *kgo.Record) (bool, error) {
		recs = append(recs, r)
		size += int64(len(r.Value))
		return size < int64(spec.Batch.MaxBytes), nil
	})
	if err != nil {
		return err
	}
	upload := func(p int32, i int) (time.Duration, error) {
		first := 1_000_000_000 + int64(i)*int64(len(recs))
		b, err := s.Begin(ctx, sink.BatchID{Connector: spec.Name, Topic: spec.Kafka.Topic, Partition: p + 100, First: first, End: first + int64(len(recs))}, nil)
		if err != nil {
			return 0, err
		}
		for _, r := range recs {
			if err := b.Add(ctx, &transform.Record{Value: r.Value}); err != nil {
				return 0, err
			}
		}
		t0 := time.Now()
		_, err = b.Commit(ctx)
		return time.Since(t0), err
	}
	for _, par := range []int{1, len(hwm)} {
		var mu sync.Mutex
		var commit time.Duration
		var n int
		var firstErr error
		t0 := time.Now()
		var wg sync.WaitGroup
		for p := 0; p < par; p++ {
			wg.Go(func() {
				for i := 0; i < 3; i++ {
					d, err := upload(int32(p), 10*par+i)
					mu.Lock()
					commit += d
					n++
					if err != nil && firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if firstErr != nil {
			return firstErr
		}
		fmt.Fprintf(w, "diag OSS commit only, %d in parallel:  %d batches of %.1f MiB: commit %4.0f ms per batch; %.1f MB/s of values overall\n",
			par, n, mib(size), float64((commit / time.Duration(n)).Milliseconds()), float64(size)*float64(n)/1e6/time.Since(t0).Seconds())
	}
	return nil
}
