package ossfake_test

import (
	"bytes"
	"fmt"
	"hash/crc64"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/aliyun/aliyun-oss-go-sdk/oss"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dumpflow/dumpflow/deploy/localstack/ossfake"
)

const testBucket = "dumpflow"

// authVersions are the SDK configurations the fake must accept.
var authVersions = map[string][]oss.ClientOption{
	"v1": {oss.ForcePathStyle(true)},
	"v4": {oss.ForcePathStyle(true), oss.AuthVersion(oss.AuthV4), oss.Region("local")},
}

// startFake serves a fake on dir over httptest and returns it with the
// test bucket's client.
func startFake(t *testing.T, dir string, opts ...oss.ClientOption) (*ossfake.Server, *oss.Bucket) {
	t.Helper()
	srv, err := ossfake.New(ossfake.Options{Dir: dir, Buckets: []string{testBucket}})
	require.NoError(t, err)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)

	if len(opts) == 0 {
		opts = authVersions["v1"]
	}
	client, err := oss.New(hs.URL, "test-ak", "test-sk", opts...)
	require.NoError(t, err)
	bucket, err := client.Bucket(testBucket)
	require.NoError(t, err)
	return srv, bucket
}

func crc(b []byte) uint64 { return crc64.Checksum(b, oss.CrcTable()) }

func requireServiceError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var se oss.ServiceError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, status, se.StatusCode)
	if code != "" {
		assert.Equal(t, code, se.Code)
	}
	assert.NotEmpty(t, se.RequestID, "x-oss-request-id")
}

func TestObjectLifecycle(t *testing.T) {
	for name, opts := range authVersions {
		t.Run(name, func(t *testing.T) {
			srv, bucket := startFake(t, t.TempDir(), opts...)
			key := "topic/part-0/00000000000000000042.jsonl"
			data := []byte(`{"offset":42}` + "\n")

			require.NoError(t, bucket.PutObject(key, bytes.NewReader(data),
				oss.Meta("First-Offset", "42"), oss.Meta("records", "1"), oss.ContentType("application/x-ndjson")))

			// The object is a plain file.
			onDisk, err := os.ReadFile(filepath.Join(srv.BucketDir(testBucket), filepath.FromSlash(key)))
			require.NoError(t, err)
			assert.Equal(t, data, onDisk)

			rc, err := bucket.GetObject(key)
			require.NoError(t, err)
			got, err := io.ReadAll(rc)
			require.NoError(t, rc.Close())
			require.NoError(t, err)
			assert.Equal(t, data, got)

			// GetObjectToFile verifies the CRC-64 the SDK computed against the header.
			require.NoError(t, bucket.GetObjectToFile(key, filepath.Join(t.TempDir(), "copy")))

			for _, head := range []func(string, ...oss.Option) (http.Header, error){
				bucket.GetObjectDetailedMeta, bucket.GetObjectMeta,
			} {
				h, err := head(key)
				require.NoError(t, err)
				assert.Equal(t, strconv.FormatUint(crc(data), 10), h.Get(oss.HTTPHeaderOssCRC64))
				assert.Equal(t, strconv.Itoa(len(data)), h.Get("Content-Length"))
				assert.NotEmpty(t, h.Get("ETag"))
			}
			h, err := bucket.GetObjectDetailedMeta(key)
			require.NoError(t, err)
			assert.Equal(t, "42", h.Get("X-Oss-Meta-First-Offset"))
			assert.Equal(t, "1", h.Get("X-Oss-Meta-Records"))
			assert.Equal(t, "application/x-ndjson", h.Get("Content-Type"))
			assert.NotEmpty(t, h.Get("Last-Modified"))
			assert.Empty(t, h.Get("X-Amz-Meta-Records"), "S3 metadata headers are translated")

			// Overwriting replaces data and metadata, as on OSS.
			data2 := []byte("second")
			require.NoError(t, bucket.PutObject(key, bytes.NewReader(data2), oss.Meta("records", "2")))
			h, err = bucket.GetObjectDetailedMeta(key)
			require.NoError(t, err)
			assert.Equal(t, "2", h.Get("X-Oss-Meta-Records"))
			assert.Empty(t, h.Get("X-Oss-Meta-First-Offset"))
			assert.Equal(t, strconv.FormatUint(crc(data2), 10), h.Get(oss.HTTPHeaderOssCRC64))

			exists, err := bucket.IsObjectExist(key)
			require.NoError(t, err)
			assert.True(t, exists)

			require.NoError(t, bucket.DeleteObject(key))
			exists, err = bucket.IsObjectExist(key)
			require.NoError(t, err)
			assert.False(t, exists)

			_, err = bucket.GetObject(key)
			requireServiceError(t, err, http.StatusNotFound, "NoSuchKey")
		})
	}
}

func TestPutObjectReportsCRC(t *testing.T) {
	_, bucket := startFake(t, t.TempDir())
	data := bytes.Repeat([]byte("dumpflow"), 10_000)

	resp, err := bucket.DoPutObject(&oss.PutObjectRequest{ObjectKey: "crc", Reader: bytes.NewReader(data)}, nil)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, strconv.FormatUint(crc(data), 10), resp.Headers.Get(oss.HTTPHeaderOssCRC64))
	assert.Equal(t, crc(data), resp.ServerCRC)
	assert.Equal(t, resp.ClientCRC, resp.ServerCRC)
	assert.NotEmpty(t, resp.Headers.Get(oss.HTTPHeaderOssRequestID))
}

func TestForbidOverwrite(t *testing.T) {
	_, bucket := startFake(t, t.TempDir())
	put := func(body string, opts ...oss.Option) error {
		return bucket.PutObject("once", bytes.NewReader([]byte(body)), opts...)
	}

	require.NoError(t, put("first", oss.ForbidOverWrite(true)))
	requireServiceError(t, put("second", oss.ForbidOverWrite(true)), http.StatusConflict, "FileAlreadyExists")
	require.NoError(t, put("third", oss.ForbidOverWrite(false)))

	rc, err := bucket.GetObject("once")
	require.NoError(t, err)
	defer rc.Close()
	got, err := io.ReadAll(rc)
	require.NoError(t, err)
	assert.Equal(t, "third", string(got))

	// Multipart uploads honour it too.
	_, err = bucket.InitiateMultipartUpload("once", oss.ForbidOverWrite(true))
	requireServiceError(t, err, http.StatusConflict, "FileAlreadyExists")
}

func TestMultipartUpload(t *testing.T) {
	for name, opts := range authVersions {
		t.Run(name, func(t *testing.T) {
			_, bucket := startFake(t, t.TempDir(), opts...)
			const key = "big/object.bin"
			// S3 wants parts of at least 5 MiB, OSS 100 KiB, the last part excepted.
			parts := [][]byte{
				bytes.Repeat([]byte{'a'}, 5<<20),
				bytes.Repeat([]byte{'b'}, 5<<20),
				bytes.Repeat([]byte{'c'}, 1<<20),
			}

			imur, err := bucket.InitiateMultipartUpload(key, oss.Meta("kind", "multipart"))
			require.NoError(t, err)
			var uploaded []oss.UploadPart
			for i, p := range parts {
				// UploadPart checks the part's CRC-64 header.
				up, err := bucket.UploadPart(imur, bytes.NewReader(p), int64(len(p)), i+1)
				require.NoError(t, err)
				uploaded = append(uploaded, up)
			}
			res, err := bucket.CompleteMultipartUpload(imur, uploaded, oss.ForbidOverWrite(true))
			require.NoError(t, err)
			assert.Equal(t, key, res.Key)

			want := bytes.Join(parts, nil)
			h, err := bucket.GetObjectDetailedMeta(key)
			require.NoError(t, err)
			assert.Equal(t, "multipart", h.Get("X-Oss-Meta-Kind"))
			assert.Equal(t, strconv.Itoa(len(want)), h.Get("Content-Length"))
			assert.Equal(t, strconv.FormatUint(crc(want), 10), h.Get(oss.HTTPHeaderOssCRC64))
			require.NoError(t, bucket.GetObjectToFile(key, filepath.Join(t.TempDir(), "copy")))
		})
	}
}

func TestMultipartAbortAndPartSize(t *testing.T) {
	_, bucket := startFake(t, t.TempDir())

	imur, err := bucket.InitiateMultipartUpload("aborted")
	require.NoError(t, err)
	_, err = bucket.UploadPart(imur, bytes.NewReader([]byte("x")), 1, 1)
	require.NoError(t, err)
	require.NoError(t, bucket.AbortMultipartUpload(imur))
	_, err = bucket.UploadPart(imur, bytes.NewReader([]byte("x")), 1, 2)
	requireServiceError(t, err, http.StatusNotFound, "NoSuchUpload")
	exists, err := bucket.IsObjectExist("aborted")
	require.NoError(t, err)
	assert.False(t, exists)

	// Parts but the last below OSS's 100 KiB minimum are rejected on complete.
	imur, err = bucket.InitiateMultipartUpload("small-parts")
	require.NoError(t, err)
	var parts []oss.UploadPart
	for i := 1; i <= 2; i++ {
		p, err := bucket.UploadPart(imur, bytes.NewReader(make([]byte, 10<<10)), 10<<10, i)
		require.NoError(t, err)
		parts = append(parts, p)
	}
	_, err = bucket.CompleteMultipartUpload(imur, parts)
	requireServiceError(t, err, http.StatusBadRequest, "EntityTooSmall")
	require.NoError(t, bucket.AbortMultipartUpload(imur))
}

func TestListObjectsPaging(t *testing.T) {
	srv, bucket := startFake(t, t.TempDir())
	var want []string
	for i := range 1100 {
		key := fmt.Sprintf("many/%05d", i)
		require.NoError(t, bucket.PutObject(key, bytes.NewReader([]byte(key))))
		want = append(want, key)
	}
	// Keys the SDK url-decodes (encoding-type=url) and that sort before "many/".
	odd := []string{"dir/a+b c%25.txt", "dir/sub/x", "dir/sub/y", "dir/z"}
	for _, key := range odd {
		require.NoError(t, bucket.PutObject(key, bytes.NewReader([]byte(key))))
	}
	// A file that is not an object, as a file browser may leave behind.
	require.NoError(t, os.WriteFile(filepath.Join(srv.BucketDir(testBucket), "dir", ".DS_Store"), nil, 0o644))

	t.Run("v1", func(t *testing.T) {
		var got []string
		var pageSizes []int
		for marker := ""; ; {
			res, err := bucket.ListObjects(oss.Prefix("many/"), oss.Marker(marker), oss.MaxKeys(1000))
			require.NoError(t, err)
			pageSizes = append(pageSizes, len(res.Objects))
			for _, o := range res.Objects {
				got = append(got, o.Key)
			}
			if !res.IsTruncated {
				break
			}
			marker = res.NextMarker
		}
		assert.Equal(t, []int{1000, 100}, pageSizes)
		assert.Equal(t, want, got)
	})
	t.Run("v2", func(t *testing.T) {
		var got []string
		var pageSizes []int
		for token := ""; ; {
			res, err := bucket.ListObjectsV2(oss.Prefix("many/"), oss.ContinuationToken(token), oss.MaxKeys(1000))
			require.NoError(t, err)
			pageSizes = append(pageSizes, len(res.Objects))
			for _, o := range res.Objects {
				got = append(got, o.Key)
			}
			if !res.IsTruncated {
				break
			}
			token = res.NextContinuationToken
		}
		assert.Equal(t, []int{1000, 100}, pageSizes)
		assert.Equal(t, want, got)
	})
	t.Run("default page size and delimiter", func(t *testing.T) {
		res, err := bucket.ListObjects()
		require.NoError(t, err)
		assert.Len(t, res.Objects, 100, "OSS's default max-keys")
		assert.True(t, res.IsTruncated)
		assert.Equal(t, res.Objects[99].Key, res.NextMarker)

		res, err = bucket.ListObjects(oss.Delimiter("/"))
		require.NoError(t, err)
		assert.Empty(t, res.Objects)
		assert.Equal(t, []string{"dir/", "many/"}, res.CommonPrefixes)

		res, err = bucket.ListObjects(oss.Prefix("dir/"), oss.Delimiter("/"))
		require.NoError(t, err)
		assert.Equal(t, []string{"dir/sub/"}, res.CommonPrefixes)
		var keys []string
		for _, o := range res.Objects {
			keys = append(keys, o.Key)
		}
		assert.Equal(t, []string{"dir/a+b c%25.txt", "dir/z"}, keys)

		v2, err := bucket.ListObjectsV2(oss.Prefix("dir/sub/"), oss.MaxKeys(1))
		require.NoError(t, err)
		require.Len(t, v2.Objects, 1)
		assert.Equal(t, "dir/sub/x", v2.Objects[0].Key)
		v2, err = bucket.ListObjectsV2(oss.Prefix("dir/sub/"), oss.ContinuationToken(v2.NextContinuationToken))
		require.NoError(t, err)
		require.Len(t, v2.Objects, 1)
		assert.Equal(t, "dir/sub/y", v2.Objects[0].Key)
		assert.False(t, v2.IsTruncated)

		res, err = bucket.ListObjects(oss.Prefix("nothing/"), oss.Delimiter("/"))
		require.NoError(t, err)
		assert.Empty(t, res.Objects)
	})
}

func TestBuckets(t *testing.T) {
	srv, err := ossfake.New(ossfake.Options{Dir: t.TempDir(), Buckets: []string{testBucket, "second"}})
	require.NoError(t, err)
	hs := httptest.NewServer(srv)
	defer hs.Close()
	client, err := oss.New(hs.URL, "ak", "sk", oss.ForcePathStyle(true))
	require.NoError(t, err)

	require.NoError(t, client.CreateBucket("third"))
	for name, want := range map[string]bool{testBucket: true, "second": true, "third": true, "missing": false, "sec": false} {
		exists, err := client.IsBucketExist(name)
		require.NoError(t, err)
		assert.Equal(t, want, exists, name)
	}
	assert.DirExists(t, srv.BucketDir("third"))

	missing, err := client.Bucket("missing")
	require.NoError(t, err)
	err = missing.PutObject("k", bytes.NewReader(nil))
	requireServiceError(t, err, http.StatusNotFound, "NoSuchBucket")
	_, err = missing.ListObjects()
	requireServiceError(t, err, http.StatusNotFound, "NoSuchBucket")
}

func TestPersistsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	data := []byte("survives restarts")

	_, bucket := startFake(t, dir)
	require.NoError(t, bucket.PutObject("kept/object", bytes.NewReader(data), oss.Meta("kept", "yes")))

	_, bucket = startFake(t, dir) // a new server on the same directory
	h, err := bucket.GetObjectDetailedMeta("kept/object")
	require.NoError(t, err)
	assert.Equal(t, "yes", h.Get("X-Oss-Meta-Kept"))
	assert.Equal(t, strconv.FormatUint(crc(data), 10), h.Get(oss.HTTPHeaderOssCRC64))
	require.NoError(t, bucket.GetObjectToFile("kept/object", filepath.Join(t.TempDir(), "copy")))

	res, err := bucket.ListObjectsV2()
	require.NoError(t, err)
	require.Len(t, res.Objects, 1)
	assert.Equal(t, "kept/object", res.Objects[0].Key)
	assert.Equal(t, int64(len(data)), res.Objects[0].Size)
}

func TestCopyIsRejected(t *testing.T) {
	_, bucket := startFake(t, t.TempDir())
	require.NoError(t, bucket.PutObject("src", bytes.NewReader([]byte("data"))))
	_, err := bucket.CopyObject("src", "dst")
	requireServiceError(t, err, http.StatusNotImplemented, "NotImplemented")
	exists, err := bucket.IsObjectExist("dst")
	require.NoError(t, err)
	assert.False(t, exists)
}

func TestNewRequiresDir(t *testing.T) {
	_, err := ossfake.New(ossfake.Options{})
	require.Error(t, err)
	_, err = ossfake.New(ossfake.Options{Dir: t.TempDir(), Buckets: []string{"Bad_Name"}})
	require.Error(t, err)
}
