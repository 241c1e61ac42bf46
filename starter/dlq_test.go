package main

import (
	"reflect"
	"testing"

	"github.com/dumpflow/dumpflow/sink"
)

func TestParseOffsetRanges(t *testing.T) {
	got, err := parseOffsetRanges("3-5, 9,12-12")
	if err != nil {
		t.Fatal(err)
	}
	want := []sink.Range{{First: 3, End: 6}, {First: 9, End: 10}, {First: 12, End: 13}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"", "x", "5-3", "-1", "3-"} {
		if _, err := parseOffsetRanges(bad); err == nil {
			t.Errorf("parseOffsetRanges(%q): want an error", bad)
		}
	}
}
