package wasm

import (
	"context"
	"errors"
	"testing"

	"github.com/dumpflow/dumpflow/transform"
)

// TestChain runs the Go convertAndFilter as a function step of a
// transform chain, loaded through Load, over a batch of the seed's records.
func TestChain(t *testing.T) {
	chain, err := transform.Compile([]transform.StepSpec{{
		Type:     transform.StepFunction,
		Name:     "convertAndFilter",
		Function: &transform.FunctionSpec{Module: goModule(t, goExample, "c-shared")},
	}}, transform.Options{Functions: Load})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	run, err := chain.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer run.Close(ctx)

	outs, err := run.Apply(ctx, seedRecord(1, seedSource))
	if err != nil || len(outs) != 1 || string(outs[0].Value) != seedTarget {
		t.Fatalf("source record: got %s, %v", show(outs...), err)
	}
	if outs, err := run.Apply(ctx, seedRecord(2, seedSuccess)); err != nil || len(outs) != 0 {
		t.Errorf("returnCode 0: got %s, %v; want it dropped", show(outs...), err)
	}
	_, err = run.Apply(ctx, seedRecord(3, `{"returnCode":1}`))
	var se *transform.StepError
	if !errors.As(err, &se) || se.Step != "convertAndFilter" || !errors.Is(err, ErrFunction) {
		t.Errorf("bad record: got %v, want a StepError of convertAndFilter wrapping ErrFunction", err)
	}
	want := transform.StepCounts{Step: "convertAndFilter", Type: "function", In: 3, Out: 1, Dropped: 1, Failed: 1}
	if got := run.Counts(); len(got) != 1 || got[0] != want {
		t.Errorf("counts %+v, want %+v", got, want)
	}
}
