package ossfake_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/aliyun/aliyun-oss-go-sdk/oss"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dumpflow/dumpflow/deploy/localstack/ossfake"
)

// requireNetworkError checks that err is a transport failure, not an answer.
func requireNetworkError(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	var se oss.ServiceError
	require.False(t, errors.As(err, &se), "want a network error, got an answer: %v", err)
}

func requireMissing(t *testing.T, bucket *oss.Bucket, key string) {
	t.Helper()
	exists, err := bucket.IsObjectExist(key)
	require.NoError(t, err)
	require.False(t, exists, "%s was stored", key)
}

func waitFired(t *testing.T, inj *ossfake.Injection, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, inj.Wait(ctx, n))
}

// Each error answer reaches the SDK as an oss.ServiceError with OSS's
// status, code, message and request id, and a refused write stores nothing.
func TestFaultErrorAnswers(t *testing.T) {
	srv, bucket := startFake(t, t.TempDir())
	part := randomBytes(1, 100<<10)

	for _, tc := range []struct {
		name  string
		fault ossfake.Fault
		call  func(t *testing.T) error
		check func(t *testing.T) // the state after the refused request
	}{
		{
			name:  "PutObject 500",
			fault: ossfake.InternalError(ossfake.Match{Ops: []ossfake.Op{ossfake.OpPutObject}}),
			call: func(*testing.T) error {
				return bucket.PutObject("put/500", bytes.NewReader([]byte("x")))
			},
			check: func(t *testing.T) { requireMissing(t, bucket, "put/500") },
		},
		{
			name:  "PutObject 503 after the body",
			fault: withBody(ossfake.ServiceUnavailable(ossfake.Match{KeyPrefix: "put/"})),
			call: func(*testing.T) error {
				return bucket.PutObject("put/503", bytes.NewReader(part))
			},
			check: func(t *testing.T) { requireMissing(t, bucket, "put/503") },
		},
		{
			name:  "PutObject throttled",
			fault: ossfake.Throttled(ossfake.Match{Method: http.MethodPut}),
			call: func(*testing.T) error {
				return bucket.PutObject("put/429", bytes.NewReader([]byte("x")))
			},
			check: func(t *testing.T) { requireMissing(t, bucket, "put/429") },
		},
		{
			name:  "GetObject total QPS limit",
			fault: ossfake.TotalQPSLimitExceeded(ossfake.Match{Ops: []ossfake.Op{ossfake.OpGetObject}}),
			call: func(*testing.T) error {
				require.NoError(t, bucket.PutObject("get/503", bytes.NewReader([]byte("x"))))
				_, err := bucket.GetObject("get/503")
				return err
			},
		},
		{
			name:  "ListObjectsV2 500",
			fault: ossfake.InternalError(ossfake.Match{Ops: []ossfake.Op{ossfake.OpListObjectsV2}}),
			call: func(*testing.T) error {
				_, err := bucket.ListObjectsV2(oss.Prefix("get/"))
				return err
			},
		},
		{
			name: "UploadPart 503 on part 2",
			fault: withBody(ossfake.ServiceUnavailable(ossfake.Match{
				Ops:  []ossfake.Op{ossfake.OpUploadPart},
				Func: func(r *http.Request) bool { return r.URL.Query().Get("partNumber") == "2" },
			})),
			call: func(t *testing.T) error {
				imur, _ := uploadParts(t, bucket, "mp/part", [][]byte{part})
				_, err := bucket.UploadPart(imur, bytes.NewReader(part), int64(len(part)), 2)
				lp, lerr := bucket.ListUploadedParts(imur)
				require.NoError(t, lerr)
				require.Len(t, lp.UploadedParts, 1, "the refused part was stored")
				require.NoError(t, bucket.AbortMultipartUpload(imur))
				return err
			},
		},
		{
			name:  "CompleteMultipartUpload 500",
			fault: ossfake.InternalError(ossfake.Match{Ops: []ossfake.Op{ossfake.OpCompleteMultipartUpload}}),
			call: func(t *testing.T) error {
				imur, parts := uploadParts(t, bucket, "mp/complete", [][]byte{part, []byte("tail")})
				_, err := bucket.CompleteMultipartUpload(imur, parts)
				requireMissing(t, bucket, "mp/complete")
				// The upload is intact: completing again works.
				_, cerr := bucket.CompleteMultipartUpload(imur, parts)
				require.NoError(t, cerr)
				require.Equal(t, append(append([]byte{}, part...), "tail"...), getObject(t, bucket, "mp/complete"))
				return err
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.fault.Times = 1 // the checks must not meet it again
			inj := srv.InjectFault(tc.fault)
			defer inj.Remove()
			err := tc.call(t)
			requireServiceError(t, err, tc.fault.Status, tc.fault.Code)
			var se oss.ServiceError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tc.fault.Message, se.Message)
			assert.NotEmpty(t, se.HostID)
			assert.Equal(t, 1, inj.Fired())
			if tc.check != nil {
				tc.check(t)
			}
		})
	}
}

func withBody(f ossfake.Fault) ossfake.Fault {
	f.ConsumeBody = true
	return f
}

// HEAD answers carry no body: the SDK sees the status, and the EC from
// x-oss-ec.
func TestFaultOnHeadAndEC(t *testing.T) {
	srv, bucket := startFake(t, t.TempDir())
	require.NoError(t, bucket.PutObject("k", bytes.NewReader([]byte("x"))))

	f := ossfake.TotalQPSLimitExceeded(ossfake.Match{Ops: []ossfake.Op{ossfake.OpHeadObject, ossfake.OpGetObjectMeta}})
	f.EC = "0004-00000302"
	f.Times = 2
	srv.InjectFault(f)

	_, err := bucket.GetObjectDetailedMeta("k")
	var se oss.ServiceError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusServiceUnavailable, se.StatusCode)
	assert.Equal(t, "0004-00000302", se.Ec)
	assert.NotEmpty(t, se.RequestID)

	_, err = bucket.IsObjectExist("k") // not a 404: the error reaches the caller
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusServiceUnavailable, se.StatusCode)

	exists, err := bucket.IsObjectExist("k")
	require.NoError(t, err)
	assert.True(t, exists)

	// On GET the EC is in the body too.
	f = ossfake.InternalError(ossfake.Match{Ops: []ossfake.Op{ossfake.OpGetObject}})
	f.EC, f.Times = "0000-00000000", 1
	srv.InjectFault(f)
	_, err = bucket.GetObject("k")
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "InternalError", se.Code)
	assert.Equal(t, "0000-00000000", se.Ec)
	assert.Contains(t, se.RawMessage, "<EC>0000-00000000</EC>")
}

func TestFaultMatchingAndCounting(t *testing.T) {
	f := ossfake.InternalError(ossfake.Match{KeyPrefix: "a/", Query: []string{"x-oss-process"}})
	f.Skip, f.Times = 1, 2
	srv, err := ossfake.New(ossfake.Options{Dir: t.TempDir(), Buckets: []string{testBucket}, Faults: []ossfake.Fault{f}})
	require.NoError(t, err)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	client, err := oss.New(hs.URL, "ak", "sk", oss.ForcePathStyle(true))
	require.NoError(t, err)
	bucket, err := client.Bucket(testBucket)
	require.NoError(t, err)

	for _, k := range []string{"a/1", "b/1"} {
		require.NoError(t, bucket.PutObject(k, bytes.NewReader([]byte(k))))
	}
	process := oss.Process("image/resize,w_1")
	get := func(key string, opts ...oss.Option) error {
		rc, err := bucket.GetObject(key, opts...)
		if err == nil {
			_, _ = io.Copy(io.Discard, rc)
			rc.Close()
		}
		return err
	}
	require.NoError(t, get("a/1"), "no x-oss-process: not matched")
	require.NoError(t, get("b/1", process), "other prefix: not matched")
	require.NoError(t, get("a/1", process), "first match skipped")
	requireServiceError(t, get("a/1", process), 500, "InternalError")
	requireServiceError(t, get("a/1", process), 500, "InternalError")
	require.NoError(t, get("a/1", process), "Times exhausted")

	// Path and method; Remove disarms.
	inj := srv.InjectFault(ossfake.Throttled(ossfake.Match{Method: http.MethodDelete, Path: regexp.MustCompile(`/b/\d$`)}))
	requireServiceError(t, bucket.DeleteObject("b/1"), 429, "QpsLimitExceeded")
	requireServiceError(t, bucket.DeleteObject("b/1"), 429, "QpsLimitExceeded")
	require.NoError(t, bucket.DeleteObject("a/1"))
	assert.Equal(t, 2, inj.Matched())
	assert.Equal(t, 2, inj.Fired())
	inj.Remove()
	require.NoError(t, bucket.DeleteObject("b/1"))
	assert.Equal(t, 2, inj.Matched())

	// Faults are tried in arming order; ClearFaults disarms all.
	f = ossfake.ServiceUnavailable(ossfake.Match{Ops: []ossfake.Op{ossfake.OpPutObject}})
	f.Times = 1
	first := srv.InjectFault(f)
	second := srv.InjectFault(ossfake.InternalError(ossfake.Match{Ops: []ossfake.Op{ossfake.OpPutObject}}))
	requireServiceError(t, bucket.PutObject("c", bytes.NewReader(nil)), 503, "ServiceUnavailable")
	requireServiceError(t, bucket.PutObject("c", bytes.NewReader(nil)), 500, "InternalError")
	assert.Equal(t, 1, first.Fired())
	assert.Equal(t, 1, second.Fired())
	srv.ClearFaults()
	require.NoError(t, bucket.PutObject("c", bytes.NewReader(nil)))
}

// A dropped connection is a network error for the SDK; nothing is stored,
// whether the body arrived or not.
func TestFaultDropConnection(t *testing.T) {
	srv, bucket := startFake(t, t.TempDir())
	body := randomBytes(2, 256<<10)

	for _, consume := range []bool{false, true} {
		t.Run(fmt.Sprintf("consume body %v", consume), func(t *testing.T) {
			f := ossfake.DropConnection(ossfake.Match{Ops: []ossfake.Op{ossfake.OpPutObject}})
			f.ConsumeBody, f.Times = consume, 1
			inj := srv.InjectFault(f)
			key := fmt.Sprintf("drop/%v", consume)
			requireNetworkError(t, bucket.PutObject(key, bytes.NewReader(body)))
			assert.Equal(t, 1, inj.Fired())
			requireMissing(t, bucket, key)
		})
	}

	t.Run("GetObject", func(t *testing.T) {
		require.NoError(t, bucket.PutObject("drop/get", bytes.NewReader(body)))
		// Go's HTTP client replays a GET once on a new connection when a
		// reused one is dropped, so arm the fault until removed.
		inj := srv.InjectFault(ossfake.DropConnection(ossfake.Match{Ops: []ossfake.Op{ossfake.OpGetObject}}))
		_, err := bucket.GetObject("drop/get")
		requireNetworkError(t, err)
		assert.GreaterOrEqual(t, inj.Fired(), 1)
		inj.Remove()
		assert.Equal(t, body, getObject(t, bucket, "drop/get"))
	})
}

// A lost answer: the write happened, the client saw a network error.
// Retrying a completion then answers NoSuchUpload; the object is whole.
func TestFaultAnswerLost(t *testing.T) {
	srv, bucket := startFake(t, t.TempDir())
	body := randomBytes(3, 150<<10)

	once := func(f ossfake.Fault) ossfake.Fault { f.Times = 1; return f }
	inj := srv.InjectFault(once(ossfake.AnswerLost(ossfake.Match{Ops: []ossfake.Op{ossfake.OpPutObject}})))
	requireNetworkError(t, bucket.PutObject("lost/put", bytes.NewReader(body), oss.Meta("records", "7")))
	assert.Equal(t, 1, inj.Fired())
	assert.Equal(t, body, getObject(t, bucket, "lost/put"))
	h, err := bucket.GetObjectDetailedMeta("lost/put")
	require.NoError(t, err)
	assert.Equal(t, "7", h.Get("X-Oss-Meta-Records"))

	part := randomBytes(4, 100<<10)
	imur, parts := uploadParts(t, bucket, "lost/mp", [][]byte{part, []byte("tail")})
	srv.InjectFault(once(ossfake.AnswerLost(ossfake.Match{Ops: []ossfake.Op{ossfake.OpCompleteMultipartUpload}})))
	_, err = bucket.CompleteMultipartUpload(imur, parts)
	requireNetworkError(t, err)
	assert.Equal(t, append(append([]byte{}, part...), "tail"...), getObject(t, bucket, "lost/mp"))
	_, err = bucket.CompleteMultipartUpload(imur, parts)
	requireServiceError(t, err, http.StatusNotFound, "NoSuchUpload")

	// With x-oss-forbid-overwrite a retried PutObject learns that it had won.
	srv.InjectFault(once(ossfake.AnswerLost(ossfake.Match{Ops: []ossfake.Op{ossfake.OpPutObject}})))
	requireNetworkError(t, bucket.PutObject("lost/once", bytes.NewReader(body), oss.ForbidOverWrite(true)))
	err = bucket.PutObject("lost/once", bytes.NewReader(body), oss.ForbidOverWrite(true))
	requireServiceError(t, err, http.StatusConflict, "FileAlreadyExists")
}

// The listing anomaly: IsTruncated with no token. A pager that follows the
// (empty) token gets the first page again, forever.
func TestFaultTruncatedListingWithoutToken(t *testing.T) {
	srv, bucket := startFake(t, t.TempDir())
	for i := range 3 {
		require.NoError(t, bucket.PutObject(fmt.Sprintf("l/%d", i), bytes.NewReader(nil)))
	}
	inj := srv.InjectFault(ossfake.TruncatedWithoutToken(ossfake.Match{Bucket: testBucket}))

	token := ""
	for range 3 {
		res, err := bucket.ListObjectsV2(oss.Prefix("l/"), oss.MaxKeys(2), oss.ContinuationToken(token))
		require.NoError(t, err)
		assert.True(t, res.IsTruncated)
		assert.Empty(t, res.NextContinuationToken)
		require.Len(t, res.Objects, 2)
		assert.Equal(t, "l/0", res.Objects[0].Key, "the first page again")
		token = res.NextContinuationToken
	}
	assert.Equal(t, 3, inj.Fired())

	// Not truncated at all, it still says so.
	res, err := bucket.ListObjectsV2(oss.Prefix("l/"))
	require.NoError(t, err)
	assert.True(t, res.IsTruncated)
	assert.Len(t, res.Objects, 3)

	// V1 listings are not matched by default; with OpListObjects they lose NextMarker.
	v1, err := bucket.ListObjects(oss.Prefix("l/"), oss.MaxKeys(2))
	require.NoError(t, err)
	assert.Equal(t, "l/1", v1.NextMarker)
	srv.InjectFault(ossfake.TruncatedWithoutToken(ossfake.Match{Ops: []ossfake.Op{ossfake.OpListObjects}}))
	v1, err = bucket.ListObjects(oss.Prefix("l/"), oss.MaxKeys(2))
	require.NoError(t, err)
	assert.True(t, v1.IsTruncated)
	assert.Empty(t, v1.NextMarker)

	inj.Remove()
	res, err = bucket.ListObjectsV2(oss.Prefix("l/"), oss.MaxKeys(2))
	require.NoError(t, err)
	assert.NotEmpty(t, res.NextContinuationToken)
}

// A slow answer; the client gives up. (net/http notices a client going
// away only once the request body has been read: a GET here.)
func TestFaultDelay(t *testing.T) {
	srv, bucket := startFake(t, t.TempDir())
	inj := srv.InjectFault(ossfake.Slow(ossfake.Match{Ops: []ossfake.Op{ossfake.OpGetObject}}, time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := bucket.GetObject("slow", oss.WithContext(ctx))
		errc <- err
	}()
	waitFired(t, inj, 1)
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
	inj.Remove()

	// A short delay, then served.
	inj = srv.InjectFault(ossfake.Slow(ossfake.Match{Ops: []ossfake.Op{ossfake.OpPutObject}}, 20*time.Millisecond))
	start := time.Now()
	require.NoError(t, bucket.PutObject("slow", bytes.NewReader([]byte("x"))))
	assert.GreaterOrEqual(t, time.Since(start), 20*time.Millisecond)
	assert.Equal(t, []byte("x"), getObject(t, bucket, "slow"))
	inj.Remove()
}

func TestClassify(t *testing.T) {
	srv, bucket := startFake(t, t.TempDir())
	var mu sync.Mutex
	seen := map[ossfake.Op]bool{}
	var ops []ossfake.Op
	for _, op := range []ossfake.Op{
		ossfake.OpPutObject, ossfake.OpGetObject, ossfake.OpHeadObject, ossfake.OpGetObjectMeta,
		ossfake.OpDeleteObject, ossfake.OpListObjects, ossfake.OpListObjectsV2, ossfake.OpListBuckets,
		ossfake.OpInitiateMultipartUpload, ossfake.OpUploadPart, ossfake.OpCompleteMultipartUpload,
		ossfake.OpAbortMultipartUpload, ossfake.OpListParts, ossfake.OpListMultipartUploads,
		ossfake.OpDeleteMultipleObjects, ossfake.OpCopyObject,
	} {
		ops = append(ops, op)
		srv.InjectFault(ossfake.Fault{Action: ossfake.Delay, Match: ossfake.Match{Ops: []ossfake.Op{op},
			Func: func(*http.Request) bool {
				mu.Lock()
				defer mu.Unlock()
				seen[op] = true
				return false
			}}})
	}

	require.NoError(t, bucket.PutObject("k", bytes.NewReader([]byte("x"))))
	rc, err := bucket.GetObject("k")
	require.NoError(t, err)
	rc.Close()
	_, err = bucket.GetObjectDetailedMeta("k")
	require.NoError(t, err)
	_, err = bucket.GetObjectMeta("k")
	require.NoError(t, err)
	_, err = bucket.ListObjects()
	require.NoError(t, err)
	_, err = bucket.ListObjectsV2()
	require.NoError(t, err)
	_, err = bucket.Client.ListBuckets()
	require.NoError(t, err)
	imur, parts := uploadParts(t, bucket, "mp", [][]byte{[]byte("x")})
	_, err = bucket.ListUploadedParts(imur)
	require.NoError(t, err)
	_, err = bucket.ListMultipartUploads()
	require.NoError(t, err)
	_, err = bucket.CompleteMultipartUpload(imur, parts)
	require.NoError(t, err)
	imur, _ = uploadParts(t, bucket, "mp2", nil)
	require.NoError(t, bucket.AbortMultipartUpload(imur))
	_, err = bucket.CopyObject("k", "k2")
	requireServiceError(t, err, http.StatusNotImplemented, "NotImplemented")
	require.NoError(t, bucket.DeleteObject("k"))
	_, err = bucket.DeleteObjects([]string{"mp"})
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	for _, op := range ops {
		assert.True(t, seen[op], "%s not classified", op)
	}
}
