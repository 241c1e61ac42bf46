package maxcompute_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/transform"
)

// benchRecords are n records of 512-byte text values at ts, offsets 0…n-1,
// cycled through by the benchmarks.
func benchRecords(n int, ts time.Time) []*transform.Record {
	value := bytes.Repeat([]byte("0123456789abcdef"), 32)
	rs := make([]*transform.Record, n)
	for i := range rs {
		rs[i] = rec(int64(i), ts.Add(time.Duration(i)*time.Millisecond), []byte("key"), value)
	}
	return rs
}

// BenchmarkPartitionOf is the cut's per-record check (sink.Rejecter and
// sink.Preparer) on a loaded table: format TEXT, partition HOUR.
func BenchmarkPartitionOf(b *testing.B) {
	emu := startEmulator(b)
	spec := emu.spec(b, "bench_partition_of", func(mc *connector.MaxComputeSpec) { mc.CreateTable = true })
	s := newSink(b, spec)
	require.NoError(b, s.EnsureTable(context.Background()))
	rs := benchRecords(1024, at(6, 0, 0))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := rs[i%len(rs)]
		if err := s.Reject(r); err != nil {
			b.Fatal(err)
		}
		if _, err := s.PartitionOf(r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkBatchAdd is WritePartition's per-record path: Add of 512-byte
// text records into one prepared session of the emulator (in process, so
// its decoding of the stream counts too), format TEXT, partition HOUR.
func BenchmarkBatchAdd(b *testing.B) {
	emu := startEmulator(b)
	spec := emu.spec(b, "bench_add", func(mc *connector.MaxComputeSpec) { mc.CreateTable = true })
	s := newSink(b, spec)
	ctx := context.Background()
	rs := benchRecords(1024, at(6, 0, 0))
	p := prepare(b, s, rs)
	bt, err := s.Begin(ctx, batchID(rs), p)
	require.NoError(b, err)
	b.ReportAllocs()
	b.SetBytes(int64(len(rs[0].Value)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := bt.Add(ctx, rs[i%len(rs)]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	bt.Abort(ctx)
}

// BenchmarkBatchAddCounted is Add without the tunnel: the session is
// marked committed (a retried batch), so Add finds the partition, converts
// the record and counts it, and sends nothing. It is dumpflow's own share
// of BenchmarkBatchAdd.
func BenchmarkBatchAddCounted(b *testing.B) {
	emu := startEmulator(b)
	spec := emu.spec(b, "bench_add_counted", func(mc *connector.MaxComputeSpec) { mc.CreateTable = true })
	s := newSink(b, spec)
	ctx := context.Background()
	rs := benchRecords(1024, at(6, 0, 0))
	p := prepare(b, s, rs)
	for i := range p.Sessions {
		p.Sessions[i].Committed = true
	}
	bt, err := s.Begin(ctx, batchID(rs), p)
	require.NoError(b, err)
	b.ReportAllocs()
	b.SetBytes(int64(len(rs[0].Value)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := bt.Add(ctx, rs[i%len(rs)]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	bt.Abort(ctx)
}
