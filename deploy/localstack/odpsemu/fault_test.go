package odpsemu_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/aliyun-odps-go-sdk/odps/data"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/restclient"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/tunnel"
	"github.com/stretchr/testify/require"

	"github.com/dumpflow/dumpflow/deploy/localstack/odpsemu"
)

// httpError returns the answer the SDK surfaced in err.
func httpError(t *testing.T, err error) restclient.HttpError {
	t.Helper()
	require.Error(t, err)
	var he restclient.HttpError
	require.True(t, errors.As(err, &he), "not an HttpError: %v", err)
	require.NotNil(t, he.ErrorMessage, "no error body: %s", he.Body)
	return he
}

// requireAnswer checks that err is the service answer status/code.
func requireAnswer(t *testing.T, err error, status int, code string) restclient.HttpError {
	t.Helper()
	he := httpError(t, err)
	require.Equal(t, status, he.StatusCode, "body: %s", he.Body)
	require.Equal(t, code, he.ErrorMessage.ErrorCode)
	require.NotEmpty(t, he.RequestId)
	require.NotEmpty(t, he.ErrorMessage.Message)
	return he
}

// requireNetworkError checks that err is a transport failure, not an answer.
func requireNetworkError(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	var he restclient.HttpError
	require.False(t, errors.As(err, &he), "want a network error, got an answer: %v", err)
}

func waitFired(t *testing.T, inj *odpsemu.Injection, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, inj.Wait(ctx, n))
}

func ops(o ...odpsemu.Op) odpsemu.Match { return odpsemu.Match{Ops: o} }

func once(f odpsemu.Fault) odpsemu.Fault {
	f.Times = 1
	return f
}

// commitOnce sends the commit request UploadSession.Commit sends, through the session's own
// REST client, once: Commit itself retries a failed POST three times over ~11s
// (tunnel/common.go Retry).
func commitOnce(ctx context.Context, s *tunnel.UploadSession) error {
	q := url.Values{}
	q.Set("uploadid", s.Id)
	if p := s.PartitionKey(); p != "" {
		q.Set("partition", p)
	}
	req, err := s.RestClient.NewRequestWithParamsAndHeaders(http.MethodPost, s.ResourceUrl(), nil, q, nil)
	if err != nil {
		return err
	}
	res, err := s.RestClient.Do(req.WithContext(ctx))
	if err == nil {
		_ = res.Body.Close()
	}
	return err
}

// uploadedBlocks attaches to the session and returns its block ids as the server has them.
func (e *env) uploadedBlocks(s *tunnel.UploadSession) []int {
	e.t.Helper()
	a, err := e.tunnel.AttachToExistedUploadSession(testProject, s.TableName, s.Id,
		tunnel.SessionCfg.WithPartitionKey(s.PartitionKey()))
	require.NoError(e.t, err)
	return a.BlockIds()
}

func (e *env) partitionExists(table, part string) bool {
	e.t.Helper()
	values, err := e.odps.Table(table).GetPartitionValues()
	require.NoError(e.t, err)
	for _, v := range values {
		if v == part {
			return true
		}
	}
	return false
}

// Each error answer reaches the SDK as a restclient.HttpError with the service's status and
// code, in the surface's own body, and the refused request changed nothing.
func TestFaultErrorAnswers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, odpsemu.Options{})
	e.mustSQL(defaultDDL)
	const part = "pt=p1"
	withPart := tunnel.SessionCfg.WithPartitionKey(part)
	e.upload("t", map[int][]data.Record{0: kafkaRecords("a", 0, 2)}, withPart, tunnel.SessionCfg.WithCreatePartition())

	for _, tc := range []struct {
		name  string
		fault odpsemu.Fault
		call  func(t *testing.T) error
	}{
		{"create upload session 500", odpsemu.InternalServerError(ops(odpsemu.OpCreateUploadSession)),
			func(t *testing.T) error {
				_, err := e.tunnel.CreateUploadSession(testProject, "t",
					tunnel.SessionCfg.WithPartitionKey("pt=new"), tunnel.SessionCfg.WithCreatePartition())
				require.False(t, e.partitionExists("t", "pt=new"), "the refused session created its partition")
				return err
			}},
		{"upload block 503", withBody(odpsemu.ServiceUnavailable(ops(odpsemu.OpUploadBlock))),
			func(t *testing.T) error {
				s, err := e.tunnel.CreateUploadSession(testProject, "t", withPart)
				require.NoError(t, err)
				err = tryWriteBlock(s, 3, kafkaRecords("b", 0, 2))
				require.Empty(t, e.uploadedBlocks(s), "the refused block was stored")
				return err
			}},
		{"upload block throttled", withBody(odpsemu.FlowExceeded(odpsemu.Match{Query: []string{"blockid"}})),
			func(t *testing.T) error {
				s, err := e.tunnel.CreateUploadSession(testProject, "t", withPart)
				require.NoError(t, err)
				err = tryWriteBlock(s, 0, kafkaRecords("b", 0, 2))
				require.Empty(t, e.uploadedBlocks(s))
				return err
			}},
		{"attach 500", odpsemu.InternalServerError(ops(odpsemu.OpGetUploadSession)),
			func(t *testing.T) error {
				s, err := e.tunnel.CreateUploadSession(testProject, "t", withPart)
				require.NoError(t, err)
				_, err = e.tunnel.AttachToExistedUploadSession(testProject, "t", s.Id, withPart)
				return err
			}},
		{"create download session throttled", odpsemu.FlowExceeded(ops(odpsemu.OpCreateDownloadSession)),
			func(t *testing.T) error {
				_, err := e.tunnel.CreateDownloadSession(testProject, "t", withPart)
				return err
			}},
		{"download data 503", odpsemu.ServiceUnavailable(ops(odpsemu.OpDownloadData)),
			func(t *testing.T) error {
				ds, err := e.tunnel.CreateDownloadSession(testProject, "t", withPart)
				require.NoError(t, err)
				_, err = ds.OpenRecordReader(0, 1, nil)
				return err
			}},
		{"REST table 500 (XML body)", odpsemu.InternalServerError(odpsemu.Match{Ops: []odpsemu.Op{odpsemu.OpGetTable}, Table: "T"}),
			func(t *testing.T) error { return e.odps.Table("t").Load() }},
		{"REST partitions 503", odpsemu.ServiceUnavailable(ops(odpsemu.OpListPartitions)),
			func(t *testing.T) error {
				_, err := e.odps.Table("t").GetPartitions()
				return err
			}},
		{"REST SQL 503", odpsemu.ServiceUnavailable(ops(odpsemu.OpCreateInstance)),
			func(t *testing.T) error {
				err := e.sql("CREATE TABLE refused (a STRING)")
				ok, xerr := e.odps.Table("refused").Exists()
				require.NoError(t, xerr)
				require.False(t, ok, "the refused DDL ran")
				return err
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := once(tc.fault)
			inj := e.srv.InjectFault(f)
			defer inj.Remove()
			he := requireAnswer(t, tc.call(t), f.Status, f.Code)
			require.Equal(t, f.Message, he.ErrorMessage.Message)
			if strings.HasPrefix(tc.name, "REST") {
				require.True(t, strings.HasPrefix(string(he.Body), "<?xml"), "REST error body: %s", he.Body)
			} else {
				require.True(t, strings.HasPrefix(string(he.Body), "{"), "tunnel error body: %s", he.Body)
			}
			require.Equal(t, 1, inj.Fired())
		})
	}
	require.Equal(t, rowsOf(kafkaRecords("a", 0, 2)), e.download("t", part, nil))
}

func withBody(f odpsemu.Fault) odpsemu.Fault {
	f.ConsumeBody = true
	return f
}

// Commit faults, through the SDK's UploadSession.Commit (which retries the POST three times,
// sleeping 1s, 2s and 8s) and through a single POST.
func TestFaultCommit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, odpsemu.Options{})
	e.mustSQL(defaultDDL)
	newSession := func(t *testing.T, part string, recs []data.Record) *tunnel.UploadSession {
		s, err := e.tunnel.CreateUploadSession(testProject, "t",
			tunnel.SessionCfg.WithPartitionKey(part), tunnel.SessionCfg.WithCreatePartition())
		require.NoError(t, err)
		writeBlock(t, s, 0, recs)
		return s
	}
	onPart := func(part string) odpsemu.Match {
		return odpsemu.Match{Ops: []odpsemu.Op{odpsemu.OpCommitUploadSession},
			Func: func(r *http.Request) bool { return r.URL.Query().Get("partition") == part }}
	}

	t.Run("500 once, SDK retries", func(t *testing.T) {
		t.Parallel()
		recs := kafkaRecords("c500", 0, 3)
		s := newSession(t, "pt=c500", recs)
		inj := e.srv.InjectFault(once(odpsemu.InternalServerError(onPart("pt=c500"))))
		require.NoError(t, s.Commit([]int{0}))
		require.Equal(t, 1, inj.Fired())
		require.Equal(t, rowsOf(recs), e.download("t", "pt=c500", nil))
	})

	t.Run("throttled once, single POST", func(t *testing.T) {
		t.Parallel()
		recs := kafkaRecords("c429", 0, 1)
		s := newSession(t, "pt=c429", recs)
		e.srv.InjectFault(once(odpsemu.FlowExceeded(onPart("pt=c429"))))
		requireAnswer(t, commitOnce(context.Background(), s), http.StatusTooManyRequests, "FlowExceeded")
		require.NoError(t, s.Load())
		require.Equal(t, tunnel.UploadStatusNormal, s.Status(), "a refused commit committed")
		require.Empty(t, e.download("t", "pt=c429", nil))
		require.NoError(t, commitOnce(context.Background(), s))
		require.Equal(t, rowsOf(recs), e.download("t", "pt=c429", nil))
	})

	t.Run("dropped before commit, SDK retries", func(t *testing.T) {
		t.Parallel()
		recs := kafkaRecords("cdrop", 0, 2)
		s := newSession(t, "pt=cdrop", recs)
		inj := e.srv.InjectFault(once(odpsemu.DropConnection(onPart("pt=cdrop"))))
		require.NoError(t, s.Commit([]int{0}))
		require.Equal(t, 1, inj.Fired())
		require.Equal(t, rowsOf(recs), e.download("t", "pt=cdrop", nil))
	})

	t.Run("answer lost, single POST", func(t *testing.T) {
		t.Parallel()
		recs := kafkaRecords("lost1", 0, 2)
		s := newSession(t, "pt=lost1", recs)
		e.srv.InjectFault(once(odpsemu.CommitAnswerLost(odpsemu.Match{Table: "t"})))
		requireNetworkError(t, commitOnce(context.Background(), s))
		require.NoError(t, s.Load())
		require.Equal(t, tunnel.UploadStatusClosed, s.Status(), "the commit did not commit")
		require.Equal(t, rowsOf(recs), e.download("t", "pt=lost1", nil))
	})

	// What a caller of Commit sees when the answer to a commit that succeeded is lost: the
	// SDK's retry meets StatusConflict, after ~11s; the rows are there exactly once.
	t.Run("answer lost, SDK retries into StatusConflict", func(t *testing.T) {
		t.Parallel()
		recs := kafkaRecords("lost2", 0, 4)
		s := newSession(t, "pt=lost2", recs)
		inj := e.srv.InjectFault(once(odpsemu.CommitAnswerLost(onPart("pt=lost2"))))
		err := s.Commit([]int{0})
		require.Equal(t, 1, inj.Fired())
		requireAnswer(t, err, http.StatusConflict, codeStatusConflict)
		require.NoError(t, s.Load())
		require.Equal(t, tunnel.UploadStatusClosed, s.Status())
		require.Equal(t, rowsOf(recs), e.download("t", "pt=lost2", nil))
	})
}

// Dropped and lost answers on block uploads.
func TestFaultBlockUpload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, odpsemu.Options{})
	e.mustSQL(defaultDDL)
	const part = "pt=b"
	s, err := e.tunnel.CreateUploadSession(testProject, "t",
		tunnel.SessionCfg.WithPartitionKey(part), tunnel.SessionCfg.WithCreatePartition())
	require.NoError(t, err)
	blockMatch := func(id string) odpsemu.Match {
		return odpsemu.Match{Ops: []odpsemu.Op{odpsemu.OpUploadBlock},
			Func: func(r *http.Request) bool { return r.URL.Query().Get("blockid") == id }}
	}

	// Dropped after the body arrived: nothing stored.
	f := once(odpsemu.DropConnection(blockMatch("1")))
	f.ConsumeBody = true
	e.srv.InjectFault(f)
	requireNetworkError(t, tryWriteBlock(s, 1, kafkaRecords("x", 0, 2)))
	require.Empty(t, e.uploadedBlocks(s))

	// Dropped on arrival: the writer fails one way or another; nothing stored.
	e.srv.InjectFault(once(odpsemu.DropConnection(blockMatch("2"))))
	require.Error(t, tryWriteBlock(s, 2, kafkaRecords("x", 0, 2)))
	require.Empty(t, e.uploadedBlocks(s))

	// Answer lost: the block is stored, the commit publishes it.
	recs := kafkaRecords("y", 0, 3)
	e.srv.InjectFault(once(odpsemu.AnswerLost(blockMatch("3"))))
	requireNetworkError(t, tryWriteBlock(s, 3, recs))
	require.Equal(t, []int{3}, e.uploadedBlocks(s))
	require.NoError(t, s.Commit([]int{3}))
	require.Equal(t, rowsOf(recs), e.download("t", part, nil))
}

func TestFaultMatchingAndCounting(t *testing.T) {
	t.Parallel()
	f := odpsemu.InternalServerError(odpsemu.Match{Table: "T", Query: []string{"partition"}, Method: http.MethodGet})
	f.Skip, f.Times = 1, 2
	e := newEnv(t, odpsemu.Options{Faults: []odpsemu.Fault{f}})
	e.mustSQL(defaultDDL)
	e.mustSQL("CREATE TABLE other (a STRING) PARTITIONED BY (pt STRING)")
	e.mustSQL("ALTER TABLE t ADD PARTITION (pt='a')")
	e.mustSQL("ALTER TABLE other ADD PARTITION (pt='a')")
	load := func(table string) error {
		_, err := e.odps.Table(table).GetPartition("pt=a")
		return err
	}
	require.NoError(t, load("other"), "other table: not matched")
	require.NoError(t, e.odps.Table("t").Load(), "no partition parameter: not matched")
	require.NoError(t, load("t"), "first match skipped")
	requireAnswer(t, load("t"), 500, "InternalServerError")
	requireAnswer(t, load("t"), 500, "InternalServerError")
	require.NoError(t, load("t"), "Times exhausted")

	// Path regexp on the tunnel; Remove disarms; arming order decides.
	inj := e.srv.InjectFault(odpsemu.FlowExceeded(odpsemu.Match{Path: regexp.MustCompile(`^/projects/[^/]+/tables/other$`)}))
	second := e.srv.InjectFault(odpsemu.ServiceUnavailable(odpsemu.Match{Ops: []odpsemu.Op{odpsemu.OpCreateUploadSession}}))
	_, err := e.tunnel.CreateUploadSession(testProject, "other", tunnel.SessionCfg.WithPartitionKey("pt=a"))
	requireAnswer(t, err, 429, "FlowExceeded")
	_, err = e.tunnel.CreateUploadSession(testProject, "t", tunnel.SessionCfg.WithPartitionKey("pt=a"))
	requireAnswer(t, err, 503, "ServiceUnavailable")
	require.Equal(t, 1, inj.Matched())
	inj.Remove()
	_, err = e.tunnel.CreateUploadSession(testProject, "other", tunnel.SessionCfg.WithPartitionKey("pt=a"))
	requireAnswer(t, err, 503, "ServiceUnavailable")
	require.Equal(t, 2, second.Fired())
	e.srv.ClearFaults()
	_, err = e.tunnel.CreateUploadSession(testProject, "other", tunnel.SessionCfg.WithPartitionKey("pt=a"))
	require.NoError(t, err)

	// A slow request: the client gives up, the request is not served.
	slow := e.srv.InjectFault(odpsemu.Slow(ops(odpsemu.OpCommitUploadSession), time.Hour))
	s, err := e.tunnel.CreateUploadSession(testProject, "t", tunnel.SessionCfg.WithPartitionKey("pt=a"))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- commitOnce(ctx, s) }()
	waitFired(t, slow, 1)
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
	slow.Remove()
	require.NoError(t, s.Load())
	require.Equal(t, tunnel.UploadStatusNormal, s.Status())
}
