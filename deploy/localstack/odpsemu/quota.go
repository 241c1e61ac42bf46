package odpsemu

import (
	"net/http"
	"strings"
	"sync"
	"time"
)

// Tunnel quotas. MaxCompute's "Data Transmission Service overview" documents these limits of
// the batch tunnel, per table: 500 upload sessions created per 5 minutes, 500 blocks written
// per 5 minutes, 32 upload sessions committed concurrently, 75 commits per 15 seconds, and 200
// download sessions created per 5 minutes. The answer past a limit is the tunnel's throttling
// answer, 429 FlowExceeded (see FlowExceeded); that the service uses this code for these
// particular limits is not published (*), nor is whether a refused or failed request counts:
// the emulator counts every request it admits (past the checks that answer NoSuchTable,
// NoSuchUpload, StatusConflict and the like) and not the ones it refuses for a quota (*).

// QuotaOptions enables the tunnel quotas. Each limit is per table; a zero limit or window
// takes the service's value, a negative limit disables that quota.
type QuotaOptions struct {
	// UploadSessions created per UploadSessionWindow. Optional. Default: 500 per 5m.
	UploadSessions      int
	UploadSessionWindow time.Duration
	// Blocks written per BlockWindow (rewriting a block id counts again). Optional. Default:
	// 500 per 5m.
	Blocks      int
	BlockWindow time.Duration
	// Commits per CommitWindow. Optional. Default: 75 per 15s.
	Commits      int
	CommitWindow time.Duration
	// ConcurrentCommits is how many commits of a table may be in progress at once; a commit
	// is in progress from the moment its request is admitted until it is answered, injected
	// delays included. Optional. Default: 32.
	ConcurrentCommits int
	// DownloadSessions created per DownloadSessionWindow. Optional. Default: 200 per 5m.
	DownloadSessions      int
	DownloadSessionWindow time.Duration
}

func (q QuotaOptions) withDefaults() QuotaOptions {
	def := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	win := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&q.UploadSessions, 500)
	win(&q.UploadSessionWindow, 5*time.Minute)
	def(&q.Blocks, 500)
	win(&q.BlockWindow, 5*time.Minute)
	def(&q.Commits, 75)
	win(&q.CommitWindow, 15*time.Second)
	def(&q.ConcurrentCommits, 32)
	def(&q.DownloadSessions, 200)
	win(&q.DownloadSessionWindow, 5*time.Minute)
	return q
}

type quotaKind int

const (
	quotaUploadSessions quotaKind = iota
	quotaBlocks
	quotaCommits
	quotaDownloadSessions
	numQuotaKinds
)

var quotaNames = [numQuotaKinds]string{"upload sessions created", "blocks written", "commits", "download sessions created"}

// quotas tracks admitted requests per table in sliding windows. A nil *quotas admits all.
type quotas struct {
	opts QuotaOptions
	now  func() time.Time

	mu       sync.Mutex
	windows  map[string]*[numQuotaKinds][]time.Time // by table key
	inCommit map[string]int                         // commits in progress, by table key
}

func newQuotas(opts *QuotaOptions, now func() time.Time) *quotas {
	if opts == nil {
		return nil
	}
	return &quotas{opts: opts.withDefaults(), now: now,
		windows: map[string]*[numQuotaKinds][]time.Time{}, inCommit: map[string]int{}}
}

func tableKey(project, table string) string { return project + "." + strings.ToLower(table) }

func (q *quotas) limit(k quotaKind) (int, time.Duration) {
	switch k {
	case quotaUploadSessions:
		return q.opts.UploadSessions, q.opts.UploadSessionWindow
	case quotaBlocks:
		return q.opts.Blocks, q.opts.BlockWindow
	case quotaCommits:
		return q.opts.Commits, q.opts.CommitWindow
	default:
		return q.opts.DownloadSessions, q.opts.DownloadSessionWindow
	}
}

// admit counts one request of kind k on the table, or refuses it when the table has had the
// limit within the window.
func (q *quotas) admit(project, table string, k quotaKind) *apiError {
	if q == nil {
		return nil
	}
	limit, window := q.limit(k)
	if limit < 0 {
		return nil
	}
	key := tableKey(project, table)
	now := q.now()
	q.mu.Lock()
	defer q.mu.Unlock()
	w := q.windows[key]
	if w == nil {
		w = new([numQuotaKinds][]time.Time)
		q.windows[key] = w
	}
	ts := w[k]
	i := 0
	for i < len(ts) && !ts[i].After(now.Add(-window)) {
		i++
	}
	ts = ts[i:]
	if len(ts) >= limit {
		w[k] = ts
		return errQuota("%s %s: %d %s within %s (limit %d)", msgFlowExceeded, key, len(ts), quotaNames[k], window, limit)
	}
	w[k] = append(ts, now)
	return nil
}

// beginCommit takes one of the table's concurrent-commit slots; the caller calls the returned
// release when the commit has been answered.
func (q *quotas) beginCommit(project, table string) (release func(), aerr *apiError) {
	if q == nil || q.opts.ConcurrentCommits < 0 {
		return func() {}, nil
	}
	key := tableKey(project, table)
	q.mu.Lock()
	defer q.mu.Unlock()
	if n := q.inCommit[key]; n >= q.opts.ConcurrentCommits {
		return nil, errQuota("%s %s: %d commits in progress (limit %d)", msgFlowExceeded, key, n, q.opts.ConcurrentCommits)
	}
	q.inCommit[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			q.mu.Lock()
			defer q.mu.Unlock()
			if q.inCommit[key]--; q.inCommit[key] == 0 {
				delete(q.inCommit, key)
			}
		})
	}, nil
}

func errQuota(format string, args ...any) *apiError {
	return newAPIError(http.StatusTooManyRequests, codeFlowExceeded, format, args...)
}
