package maxcompute

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dumpflow/dumpflow/sink"
)

// TestLatestAfterRewind: a rewind row supersedes every row written before
// it, so the writer check and Resume continue at its first offset, and a
// batch of the new epoch from there passes the check.
func TestLatestAfterRewind(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	const w = "ns/connector-x/run"
	es := []LedgerEntry{
		{First: 0, End: 1000, Kind: KindData, Writer: w, Written: at(1)},
		{First: 1000, End: 2000, Kind: KindData, Writer: w, Written: at(2)},
		{First: 500, End: 2000, Kind: sink.MarkRewind, Writer: w, Written: at(3)},
	}
	last, ok := latest(es)
	require.True(t, ok)
	require.Equal(t, sink.MarkRewind, last.Kind)
	require.EqualValues(t, 500, last.End, "the partition continues at the rewind's first offset")
	_, err := checkLast(sink.BatchID{Partition: 0, First: 500, End: 1500, Writer: w}, es)
	require.NoError(t, err, "the new epoch's first batch passes the writer check")

	es = append(es, LedgerEntry{First: 500, End: 1500, Kind: KindData, Writer: w, Written: at(4)})
	last, _ = latest(es)
	require.EqualValues(t, 1500, last.End)
	_, err = checkLast(sink.BatchID{Partition: 0, First: 1500, End: 2500, Writer: w}, es)
	require.NoError(t, err)
	_, err = checkLast(sink.BatchID{Partition: 0, First: 1000, End: 2000, Writer: w}, es)
	require.Error(t, err, "a batch of the earlier epoch is refused")
}
