package activities

import (
	"testing"

	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/sink"
)

func TestPickLetters(t *testing.T) {
	// l is letter at dead-letter offset off of record (p, o), attempt a.
	l := func(off int64, p int32, o int64, a int) kafka.Letter {
		return kafka.Letter{Offset: off, OriginPartition: p, OriginOffset: o, Attempt: a}
	}
	all := func(kafka.Letter) bool { return true }
	for _, tc := range []struct {
		name    string
		letters []kafka.Letter
		done    []RedrivenRange
		sel     func(kafka.Letter) bool
		want    []int64 // dead-letter offsets taken
	}{
		{"every letter once", []kafka.Letter{l(0, 0, 5, 1), l(1, 0, 9, 1), l(2, 1, 5, 1)}, nil, all, []int64{0, 1, 2}},
		{"a retried write's duplicate letter is left out", []kafka.Letter{l(0, 0, 5, 1), l(1, 0, 5, 1)}, nil, all, []int64{0}},
		{"a re-driven letter is done", []kafka.Letter{l(0, 0, 5, 1), l(1, 0, 9, 1)}, []RedrivenRange{{First: 0, End: 1}}, all, []int64{1}},
		{"a letter that failed again is taken at its new attempt",
			[]kafka.Letter{l(0, 0, 5, 1), l(1, 0, 5, 2)}, []RedrivenRange{{First: 0, End: 1}}, all, []int64{1}},
		{"the highest attempt only", []kafka.Letter{l(0, 0, 5, 1), l(1, 0, 5, 2), l(2, 0, 5, 2)}, nil, all, []int64{1}},
		{"an older attempt of a record re-driven later is done",
			[]kafka.Letter{l(0, 0, 5, 1), l(1, 0, 5, 2)}, []RedrivenRange{{First: 1, End: 2}}, all, nil},
		{"the selection", []kafka.Letter{l(0, 0, 5, 1), l(1, 0, 9, 1)}, nil, func(x kafka.Letter) bool { return x.OriginOffset == 9 }, []int64{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := PickLetters(tc.letters, tc.done, tc.sel)
			if len(got) != len(tc.want) {
				t.Fatalf("took %v, want %v", got, tc.want)
			}
			for _, off := range tc.want {
				if !got[letterKey{0, off}] {
					t.Fatalf("took %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestRedriveSelectionValidate(t *testing.T) {
	p := int32(0)
	for _, tc := range []struct {
		name string
		sel  RedriveSelection
		ok   bool
	}{
		{"all", RedriveSelection{All: true}, true},
		{"origin range", RedriveSelection{Partition: &p, From: 10, To: 20}, true},
		{"origin from on", RedriveSelection{Partition: &p, From: 10}, true},
		{"dead-letter offsets", RedriveSelection{DeadLetterOffsets: []sink.Range{{First: 3, End: 6}}}, true},
		{"none", RedriveSelection{}, false},
		{"two", RedriveSelection{All: true, Partition: &p}, false},
		{"empty origin range", RedriveSelection{Partition: &p, From: 20, To: 20}, false},
		{"empty dead-letter range", RedriveSelection{DeadLetterOffsets: []sink.Range{{First: 6, End: 6}}}, false},
	} {
		if err := tc.sel.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestRedriveOverridesHash(t *testing.T) {
	if h := (RedriveOverrides{}).Hash(); h != "" {
		t.Fatalf("empty overrides hash %q, want none", h)
	}
	a, b := RedriveOverrides{MaxRecordBytes: 16 << 20}, RedriveOverrides{MaxRecordBytes: 16 << 20}
	if a.Hash() != b.Hash() || a.Hash() == (RedriveOverrides{MaxRecordBytes: 1 << 20}).Hash() {
		t.Fatal("the hash must be a function of the overrides")
	}
}
