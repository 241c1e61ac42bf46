package transform

import (
	"context"
	"encoding/json"
	"testing"
)

func benchChain(b *testing.B, c *Chain, value string) {
	ctx := context.Background()
	run, err := c.Begin(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer run.Close(ctx)
	rec := testRecord(value)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := run.Apply(ctx, rec); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkEmptyChain: the cost of a connector without transforms.
func BenchmarkEmptyChain(b *testing.B) {
	benchChain(b, nil, seedSource)
}

// BenchmarkFilterSet: a filter and a set-field step on seed 002's record
// (parse, evaluate two expressions, re-encode).
func BenchmarkFilterSet(b *testing.B) {
	benchChain(b, compileYAML(b, `
- {type: filter, if: "value.returnCode != 0"}
- {type: set, field: component, expr: "upper(value.componentName) + '-' + string(partition)"}
`), seedSource)
}

// BenchmarkFilterOnly: a filter that keeps the record passes its bytes
// untouched (parse and evaluate, no encoding).
func BenchmarkFilterOnly(b *testing.B) {
	benchChain(b, compileYAML(b, `[{type: filter, if: "value.returnCode != 0"}]`), seedSource)
}

// BenchmarkSeedChain: seed 002's convertAndFilter as built-in steps.
func BenchmarkSeedChain(b *testing.B) {
	benchChain(b, seedChain(b), seedSource)
}

// BenchmarkParseJSON and BenchmarkStdlibUnmarshal compare the order-keeping
// parser with encoding/json on the same record, a reference point for the
// machine the numbers come from.
func BenchmarkParseJSON(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseJSON([]byte(seedSource)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStdlibUnmarshal(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var v any
		if err := json.Unmarshal([]byte(seedSource), &v); err != nil {
			b.Fatal(err)
		}
	}
}
