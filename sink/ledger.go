package sink

import "sort"

// Range is a half-open offset range [First, End) present in a sink, with
// the object or session that holds it.
type Range struct {
	First  int64  `json:"first"`
	End    int64  `json:"end"`
	Object string `json:"object,omitempty"`
}

// Tiling is the offset-coverage ledger of one partition: whether the ranges
// in the sink tile [Start, Committed) exactly.
type Tiling struct {
	Start     int64   `json:"start"`
	Committed int64   `json:"committed"`
	Ranges    int     `json:"ranges"`
	Gaps      []Range `json:"gaps,omitempty"`     // offsets missing from the sink: loss
	Overlaps  []Range `json:"overlaps,omitempty"` // offsets present twice: duplicates
	// Ahead are ranges written past Committed: a batch whose offset commit
	// has not happened yet. Not an error; the next commit covers them.
	Ahead []Range `json:"ahead,omitempty"`
}

// OK reports whether the tiling is exact.
func (t Tiling) OK() bool { return len(t.Gaps) == 0 && len(t.Overlaps) == 0 }

// Tile checks that ranges tile [start, committed) with no gap and no
// overlap. ranges need not be sorted; empty ranges are ignored.
func Tile(start, committed int64, ranges []Range) Tiling {
	rs := make([]Range, 0, len(ranges))
	for _, r := range ranges {
		if r.End > r.First {
			rs = append(rs, r)
		}
	}
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].First != rs[j].First {
			return rs[i].First < rs[j].First
		}
		return rs[i].End < rs[j].End
	})
	t := Tiling{Start: start, Committed: committed, Ranges: len(rs)}
	next := start
	for _, r := range rs {
		if r.First >= committed && r.First >= next {
			t.Ahead = append(t.Ahead, r)
			next = max(next, r.End)
			continue
		}
		if r.First > next {
			t.Gaps = append(t.Gaps, Range{First: next, End: min(r.First, committed)})
		}
		if r.First < next {
			t.Overlaps = append(t.Overlaps, Range{First: max(r.First, start), End: min(r.End, next), Object: r.Object})
		}
		next = max(next, r.End)
	}
	if next < committed {
		t.Gaps = append(t.Gaps, Range{First: next, End: committed})
	}
	return t
}
