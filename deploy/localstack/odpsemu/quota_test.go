package odpsemu_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/aliyun/aliyun-odps-go-sdk/odps/data"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/tunnel"
	"github.com/stretchr/testify/require"

	"github.com/dumpflow/dumpflow/deploy/localstack/odpsemu"
)

func requireFlowExceeded(t *testing.T, err error) {
	t.Helper()
	he := requireAnswer(t, err, http.StatusTooManyRequests, "FlowExceeded")
	require.Contains(t, he.ErrorMessage.Message, "Your flow quota is exceeded")
}

func TestQuotaUploadSessionsBlocksAndDownloads(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	e := newEnv(t, odpsemu.Options{Now: clock.Now,
		Quotas: &odpsemu.QuotaOptions{UploadSessions: 2, Blocks: 3, DownloadSessions: 1}})
	e.mustSQL("CREATE TABLE a (v STRING)")
	e.mustSQL("CREATE TABLE b (v STRING)")
	rec := []data.Record{{data.String("x")}}

	s1, err := e.tunnel.CreateUploadSession(testProject, "a")
	require.NoError(t, err)
	_, err = e.tunnel.CreateUploadSession(testProject, "a")
	require.NoError(t, err)
	_, err = e.tunnel.CreateUploadSession(testProject, "a")
	requireFlowExceeded(t, err)
	_, err = e.tunnel.CreateUploadSession(testProject, "b") // per table
	require.NoError(t, err)

	// Blocks: three per window, rewrites included; a refused block is not stored.
	writeBlock(t, s1, 0, rec)
	writeBlock(t, s1, 1, rec)
	writeBlock(t, s1, 0, rec)
	requireFlowExceeded(t, tryWriteBlock(s1, 2, rec))
	require.ElementsMatch(t, []int{0, 1}, e.uploadedBlocks(s1))

	// Sliding windows: 5 minutes later both admit again.
	clock.Advance(5*time.Minute + time.Second)
	writeBlock(t, s1, 2, rec)
	_, err = e.tunnel.CreateUploadSession(testProject, "a")
	require.NoError(t, err)
	require.NoError(t, s1.Commit([]int{0, 1, 2}))

	_, err = e.tunnel.CreateDownloadSession(testProject, "a")
	require.NoError(t, err)
	_, err = e.tunnel.CreateDownloadSession(testProject, "a")
	requireFlowExceeded(t, err)
}

func TestQuotaCommitRate(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	e := newEnv(t, odpsemu.Options{Now: clock.Now, Quotas: &odpsemu.QuotaOptions{Commits: 2}})
	e.mustSQL("CREATE TABLE a (v STRING)")
	var sessions []*tunnel.UploadSession
	for i := range 3 {
		s, err := e.tunnel.CreateUploadSession(testProject, "a")
		require.NoError(t, err)
		writeBlock(t, s, 0, []data.Record{{data.String(string(rune('x' + i)))}})
		sessions = append(sessions, s)
	}
	require.NoError(t, sessions[0].Commit([]int{0}))
	clock.Advance(10 * time.Second)
	require.NoError(t, sessions[1].Commit([]int{0}))

	requireFlowExceeded(t, commitOnce(context.Background(), sessions[2]))
	require.NoError(t, sessions[2].Load())
	require.Equal(t, tunnel.UploadStatusNormal, sessions[2].Status(), "a refused commit committed")

	// 15s after the first commit one slot of the window is free again.
	clock.Advance(5*time.Second + time.Millisecond)
	require.NoError(t, sessions[2].Commit([]int{0}))
	require.Len(t, e.download("a", "", nil), 3)
}

// The concurrent-commit quota counts commits in progress; an injected delay keeps them there.
func TestQuotaConcurrentCommits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, odpsemu.Options{Quotas: &odpsemu.QuotaOptions{ConcurrentCommits: 2}})
	e.mustSQL("CREATE TABLE a (v STRING)")
	e.mustSQL("CREATE TABLE b (v STRING)")
	session := func(table string) *tunnel.UploadSession {
		s, err := e.tunnel.CreateUploadSession(testProject, table)
		require.NoError(t, err)
		writeBlock(t, s, 0, []data.Record{{data.String(table)}})
		return s
	}
	slow := odpsemu.Slow(odpsemu.Match{Ops: []odpsemu.Op{odpsemu.OpCommitUploadSession}, Table: "a"}, time.Hour)
	slow.Times = 2
	inj := e.srv.InjectFault(slow)

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 2)
	for range 2 {
		s := session("a")
		go func() { errc <- commitOnce(ctx, s) }()
	}
	waitFired(t, inj, 2)

	third := session("a")
	requireFlowExceeded(t, commitOnce(context.Background(), third))
	require.NoError(t, commitOnce(context.Background(), session("b")), "per table")

	// The stalled clients give up; their slots free up once the server sees that.
	cancel()
	for range 2 {
		require.ErrorIs(t, <-errc, context.Canceled)
	}
	require.Eventually(t, func() bool { return commitOnce(context.Background(), third) == nil },
		10*time.Second, 10*time.Millisecond)
	require.Equal(t, [][]any{{"a"}}, e.download("a", "", nil), "only the third session committed")
}

func TestQuotasOffByDefault(t *testing.T) {
	t.Parallel()
	e := newEnv(t, odpsemu.Options{})
	e.mustSQL("CREATE TABLE a (v STRING)")
	for range 3 {
		s, err := e.tunnel.CreateUploadSession(testProject, "a")
		require.NoError(t, err)
		require.NoError(t, commitOnce(context.Background(), s))
	}
	// Negative limits disable one quota only.
	e2 := newEnv(t, odpsemu.Options{Quotas: &odpsemu.QuotaOptions{UploadSessions: -1, Commits: 1}})
	e2.mustSQL("CREATE TABLE a (v STRING)")
	var last error
	for range 3 {
		s, err := e2.tunnel.CreateUploadSession(testProject, "a")
		require.NoError(t, err)
		last = commitOnce(context.Background(), s)
	}
	requireFlowExceeded(t, last)
}
