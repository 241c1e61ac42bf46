package wasm

import (
	"context"
	"testing"

	"github.com/dumpflow/dumpflow/transform"
)

// BenchmarkConvertAndFilter is one record per op through the seed's
// function, in a warm instance: records/s, and the host's allocations per
// record (the guest's own allocations live in its linear memory).
func BenchmarkConvertAndFilter(b *testing.B) {
	for _, lang := range []struct {
		name   string
		module func(testing.TB) string
	}{
		{"go", func(t testing.TB) string { return goModule(t, goExample, "c-shared") }},
		{"assemblyscript", asModule},
	} {
		b.Run(lang.name, func(b *testing.B) {
			in := instance(b, load(b, transform.FunctionSpec{Module: lang.module(b)}))
			ctx := context.Background()
			rec := seedRecord(1, seedSource)
			b.ReportAllocs()
			b.SetBytes(int64(len(rec.Value)))
			for b.Loop() {
				outs, err := in.Call(ctx, rec)
				if err != nil || len(outs) != 1 {
					b.Fatal(outs, err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkInstance is the cost a batch pays for its fresh sandbox: a new
// instance of the Go function, initialised, one record, closed.
func BenchmarkInstance(b *testing.B) {
	f := load(b, transform.FunctionSpec{Module: goModule(b, goExample, "c-shared")})
	ctx := context.Background()
	rec := seedRecord(1, seedSource)
	b.ReportAllocs()
	for b.Loop() {
		in, err := f.NewInstance(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := in.Call(ctx, rec); err != nil {
			b.Fatal(err)
		}
		in.Close(ctx)
	}
}

// BenchmarkIdentity is the host's own cost per record: a hand-assembled
// module that copies its input to its output.
func BenchmarkIdentity(b *testing.B) {
	identity := ops(
		i32Const(0), localGet(0), callFn(fnReadInput), opDrop,
		i32Const(0), localGet(0), callFn(fnWrite), opDrop,
		i32Const(0))
	in := instance(b, load(b, transform.FunctionSpec{Module: writeModule(b, abiModule(identity))}))
	ctx := context.Background()
	rec := seedRecord(1, seedSource)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := in.Call(ctx, rec); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
