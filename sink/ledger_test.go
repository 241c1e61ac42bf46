package sink

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTile(t *testing.T) {
	r := func(a, b int64) Range { return Range{First: a, End: b} }
	tests := []struct {
		name           string
		start, commit  int64
		ranges         []Range
		gaps, overlaps []Range
		ahead          int
		ok             bool
	}{
		{name: "exact", start: 0, commit: 30, ranges: []Range{r(10, 20), r(0, 10), r(20, 30)}, ok: true},
		{name: "empty range is nothing", start: 0, commit: 0, ok: true},
		{name: "starts later", start: 100, commit: 150, ranges: []Range{r(100, 150)}, ok: true},
		{name: "gap in middle", start: 0, commit: 30, ranges: []Range{r(0, 10), r(15, 30)}, gaps: []Range{r(10, 15)}},
		{name: "gap at end", start: 0, commit: 30, ranges: []Range{r(0, 10)}, gaps: []Range{r(10, 30)}},
		{name: "gap at start", start: 0, commit: 30, ranges: []Range{r(5, 30)}, gaps: []Range{r(0, 5)}},
		{name: "duplicate object", start: 0, commit: 20, ranges: []Range{r(0, 10), r(0, 10), r(10, 20)}, overlaps: []Range{r(0, 10)}},
		{name: "partial overlap", start: 0, commit: 20, ranges: []Range{r(0, 12), r(10, 20)}, overlaps: []Range{r(10, 12)}},
		{name: "written ahead of commit", start: 0, commit: 10, ranges: []Range{r(0, 10), r(10, 20)}, ahead: 1, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Tile(tt.start, tt.commit, tt.ranges)
			require.Equal(t, tt.ok, got.OK())
			require.Equal(t, tt.gaps, got.Gaps)
			for i := range got.Overlaps {
				got.Overlaps[i].Object = ""
			}
			require.Equal(t, tt.overlaps, got.Overlaps)
			require.Len(t, got.Ahead, tt.ahead)
		})
	}
}
