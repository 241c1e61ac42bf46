package odpsemu

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The zero QuotaOptions has the service's documented limits.
func TestQuotaDefaults(t *testing.T) {
	require.Equal(t, QuotaOptions{
		UploadSessions: 500, UploadSessionWindow: 5 * time.Minute,
		Blocks: 500, BlockWindow: 5 * time.Minute,
		Commits: 75, CommitWindow: 15 * time.Second,
		ConcurrentCommits: 32,
		DownloadSessions:  200, DownloadSessionWindow: 5 * time.Minute,
	}, QuotaOptions{}.withDefaults())
	require.Nil(t, newQuotas(nil, time.Now))
	require.Nil(t, (*quotas)(nil).admit("p", "t", quotaBlocks))
}

func TestQuotaSlidingWindow(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	q := newQuotas(&QuotaOptions{}, func() time.Time { return now })
	for i := range 75 {
		require.Nil(t, q.admit("p", "T", quotaCommits), "commit %d", i)
		now = now.Add(100 * time.Millisecond) // 75 commits in 7.5s
	}
	require.NotNil(t, q.admit("p", "t", quotaCommits), "table names are case-insensitive")
	require.Nil(t, q.admit("p", "u", quotaCommits))
	now = now.Add(15*time.Second - 75*100*time.Millisecond) // the first one leaves the window
	require.Nil(t, q.admit("p", "t", quotaCommits))
	require.NotNil(t, q.admit("p", "t", quotaCommits))

	releases := make([]func(), 0, 32)
	for range 32 {
		release, aerr := q.beginCommit("p", "t")
		require.Nil(t, aerr)
		releases = append(releases, release)
	}
	_, aerr := q.beginCommit("p", "t")
	require.NotNil(t, aerr)
	require.Equal(t, 429, aerr.Status)
	require.Equal(t, "FlowExceeded", aerr.Code)
	releases[0]()
	releases[0]() // idempotent
	release, aerr := q.beginCommit("p", "t")
	require.Nil(t, aerr)
	release()
	_, aerr = q.beginCommit("p", "t")
	require.Nil(t, aerr)
}
