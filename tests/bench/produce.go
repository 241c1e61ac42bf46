package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dumpflow/dumpflow/kafka"
)

// pool is incompressible printable filler for record values (no '\n', so a
// value is exactly one line in the dump).
var pool = func() []byte {
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 4<<20)
	for i := range b {
		b[i] = chars[r.IntN(len(chars))]
	}
	return b
}()

// fillValue writes record i of partition p into v: "p<p>-<i>|" followed by
// filler, exactly len(v) bytes.
func fillValue(v []byte, p int32, i int) {
	n := copy(v, fmt.Sprintf("p%d-%010d|", p, i))
	off := (i * 7919) % (len(pool) - len(v))
	copy(v[n:], pool[off:off+len(v)-n])
}

// perPartition is how many of n records partition p gets when record i goes
// to partition i % parts.
func perPartition(n, parts int, p int32) int64 {
	c := n / parts
	if int(p) < n%parts {
		c++
	}
	return int64(c)
}

// produce creates topic with parts partitions and writes n records of size
// bytes, record i to partition i % parts, uncompressed. It returns each
// partition's high watermark.
func produce(ctx context.Context, brokers []string, topic string, parts, n, size int) (map[int32]int64, error) {
	kc, err := kafka.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	defer kc.Close()
	if err := kc.EnsureTopic(ctx, topic, int32(parts)); err != nil {
		return nil, err
	}

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(1<<20),
		kgo.MaxBufferedRecords(100_000),
		kgo.ProducerLinger(5*time.Millisecond),
	)
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	defer cl.Close()

	var failed atomic.Int64
	var firstErr atomic.Value
	onDone := func(_ *kgo.Record, err error) {
		if err != nil && failed.Add(1) == 1 {
			firstErr.Store(err)
		}
	}
	const slabRecords = 8192
	var slab []byte
	for i := 0; i < n; i++ {
		if i%slabRecords == 0 {
			slab = make([]byte, slabRecords*size)
		}
		v := slab[(i%slabRecords)*size : (i%slabRecords+1)*size : (i%slabRecords+1)*size]
		p := int32(i % parts)
		fillValue(v, p, i/parts)
		cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: p, Value: v}, onDone)
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, fmt.Errorf("flush: %w", err)
	}
	if f := failed.Load(); f > 0 {
		return nil, fmt.Errorf("%d records failed to produce, first: %v", f, firstErr.Load())
	}

	bounds, err := kc.Bounds(ctx, topic)
	if err != nil {
		return nil, err
	}
	hwm := map[int32]int64{}
	for p := int32(0); p < int32(parts); p++ {
		b := bounds[p]
		if want := perPartition(n, parts, p); b.Start != 0 || b.End != want {
			return nil, fmt.Errorf("partition %d holds [%d,%d), want [0,%d)", p, b.Start, b.End, want)
		}
		hwm[p] = b.End
	}
	return hwm, nil
}
