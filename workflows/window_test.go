package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dumpflow/dumpflow/window"
)

// A year of hourly windows is 8760 windows that tile the year, which a
// WindowBackfill loads in 44 runs of at most backfillBatch windows each
// (Temporal's own schedule backfill buffers at most 1000).
func TestBackfillWindowsOfAYear(t *testing.T) {
	spec, err := window.Parse([]byte(`
name: year
reader: {brokers: ["127.0.0.1:9092"], topic: t}
writer:
  maxcompute: {endpoint: "http://127.0.0.1:9400/api", project: p, table: t, credentials: local, partition: "pt=${yyyyMMddHH}", truncate: true}
schedule: {cron: "0 * * * *", timeZone: GMT+08:00}
`))
	require.NoError(t, err)
	gmt8 := time.FixedZone("GMT+08:00", 8*3600)
	from, to := time.Date(2023, 1, 1, 0, 0, 0, 0, gmt8), time.Date(2024, 1, 1, 0, 0, 0, 0, gmt8)
	ws, err := backfillWindows(spec, from, to)
	require.NoError(t, err)
	require.Len(t, ws, 8760)
	require.True(t, ws[0][0].Equal(from) && ws[len(ws)-1][1].Equal(to))
	for i := 1; i < len(ws); i++ {
		require.True(t, ws[i][0].Equal(ws[i-1][1]), "window %d begins where %d ends", i, i-1)
		require.Equal(t, time.Hour, ws[i][1].Sub(ws[i][0]))
	}
	require.Equal(t, 44, (len(ws)+backfillBatch-1)/backfillBatch)
	require.Greater(t, len(ws), window.TemporalBufferSize)
}
