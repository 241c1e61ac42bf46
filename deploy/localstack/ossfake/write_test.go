package ossfake_test

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aliyun/aliyun-oss-go-sdk/oss"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// randomBytes returns n pseudo-random bytes, different for each seed.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 42))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func md5Hex(b []byte) string {
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}

// spoolFiles lists the files left in the fake's spool directories.
func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(filepath.Join(dir, "tmp"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	require.NoError(t, err)
	return files
}

// getObject reads key back; GetObjectToFile also checks the body against
// the x-oss-hash-crc64ecma header.
func getObject(t *testing.T, bucket *oss.Bucket, key string) []byte {
	t.Helper()
	file := filepath.Join(t.TempDir(), "get")
	require.NoError(t, bucket.GetObjectToFile(key, file))
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	return b
}

func TestConcurrentPutsOfDifferentKeys(t *testing.T) {
	dir := t.TempDir()
	srv, bucket := startFake(t, dir)

	const writers, perWriter = 8, 4
	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				key := fmt.Sprintf("concurrent/w%d/%d", w, i)
				data := randomBytes(uint64(w*100+i), 256<<10+w*1000+i)
				if err := bucket.PutObject(key, bytes.NewReader(data), oss.ForbidOverWrite(true), oss.Meta("writer", strconv.Itoa(w))); err != nil {
					errs <- fmt.Errorf("%s: %w", key, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	for w := range writers {
		for i := range perWriter {
			key := fmt.Sprintf("concurrent/w%d/%d", w, i)
			want := randomBytes(uint64(w*100+i), 256<<10+w*1000+i)
			assert.Equal(t, want, getObject(t, bucket, key), key)
			onDisk, err := os.ReadFile(filepath.Join(srv.BucketDir(testBucket), filepath.FromSlash(key)))
			require.NoError(t, err)
			assert.Equal(t, want, onDisk, key)
			h, err := bucket.GetObjectDetailedMeta(key)
			require.NoError(t, err)
			assert.Equal(t, strconv.Itoa(w), h.Get("X-Oss-Meta-Writer"))
			assert.Equal(t, strconv.FormatUint(crc(want), 10), h.Get(oss.HTTPHeaderOssCRC64))
			assert.Equal(t, `"`+md5Hex(want)+`"`, strings.ToLower(h.Get("ETag")))
		}
	}
	res, err := bucket.ListObjectsV2(oss.Prefix("concurrent/"), oss.MaxKeys(1000))
	require.NoError(t, err)
	assert.Len(t, res.Objects, writers*perWriter)
	assert.Empty(t, spoolFiles(t, dir))
}

// A body still on the wire must not hold up other writes: bodies are read
// outside any lock.
func TestSlowBodyDoesNotBlockOtherWrites(t *testing.T) {
	_, bucket := startFake(t, t.TempDir())
	hs := bucket.Client.Config.Endpoint

	for _, multipart := range []bool{false, true} {
		t.Run(fmt.Sprintf("multipart=%v", multipart), func(t *testing.T) {
			key := fmt.Sprintf("slow-%v", multipart)
			url := hs + "/" + testBucket + "/" + key
			if multipart {
				imur, err := bucket.InitiateMultipartUpload(key)
				require.NoError(t, err)
				url += "?partNumber=1&uploadId=" + imur.UploadID
				t.Cleanup(func() { _ = bucket.AbortMultipartUpload(imur) })
			}
			body := []byte("slow body")
			pr, pw := io.Pipe()
			req, err := http.NewRequest(http.MethodPut, url, pr)
			require.NoError(t, err)
			req.ContentLength = int64(len(body))
			done := make(chan int, 1)
			go func() {
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					done <- -1
					return
				}
				resp.Body.Close()
				done <- resp.StatusCode
			}()
			_, err = pw.Write(body[:4]) // the server is now reading the body
			require.NoError(t, err)

			fast := make(chan error, 1)
			go func() {
				fast <- bucket.PutObject("fast-"+key, bytes.NewReader([]byte("fast")), oss.ForbidOverWrite(true))
			}()
			select {
			case err := <-fast:
				require.NoError(t, err)
			case <-time.After(10 * time.Second):
				t.Fatal("a PUT waited for another request's body")
			}

			_, err = pw.Write(body[4:])
			require.NoError(t, err)
			require.NoError(t, pw.Close())
			assert.Equal(t, http.StatusOK, <-done)
			if !multipart {
				assert.Equal(t, body, getObject(t, bucket, key))
			}
		})
	}
}

// Racing PUTs of one key with x-oss-forbid-overwrite: exactly one wins and
// the object is the winner's, whole.
func TestForbidOverwriteRaceHasOneWinner(t *testing.T) {
	dir := t.TempDir()
	_, bucket := startFake(t, dir)

	const racers = 12
	for round := range 5 {
		key := fmt.Sprintf("race/%d", round)
		bodies := make([][]byte, racers)
		for i := range bodies {
			bodies[i] = randomBytes(uint64(round*racers+i), 128<<10+i)
		}
		errs := make([]error, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				<-start
				errs[i] = bucket.PutObject(key, bytes.NewReader(bodies[i]), oss.ForbidOverWrite(true), oss.Meta("racer", strconv.Itoa(i)))
			})
		}
		close(start)
		wg.Wait()

		winner := -1
		for i, err := range errs {
			if err == nil {
				require.Equal(t, -1, winner, "round %d: racers %d and %d both won", round, winner, i)
				winner = i
				continue
			}
			requireServiceError(t, err, http.StatusConflict, "FileAlreadyExists")
		}
		require.NotEqual(t, -1, winner, "round %d: nobody won", round)
		assert.Equal(t, bodies[winner], getObject(t, bucket, key))
		h, err := bucket.GetObjectDetailedMeta(key)
		require.NoError(t, err)
		assert.Equal(t, strconv.Itoa(winner), h.Get("X-Oss-Meta-Racer"))
	}
	assert.Empty(t, spoolFiles(t, dir))
}

// uploadParts initiates an upload of key and uploads parts.
func uploadParts(t *testing.T, bucket *oss.Bucket, key string, parts [][]byte, opts ...oss.Option) (oss.InitiateMultipartUploadResult, []oss.UploadPart) {
	t.Helper()
	imur, err := bucket.InitiateMultipartUpload(key, opts...)
	require.NoError(t, err)
	var uploaded []oss.UploadPart
	for i, p := range parts {
		up, err := bucket.UploadPart(imur, bytes.NewReader(p), int64(len(p)), i+1)
		require.NoError(t, err)
		uploaded = append(uploaded, up)
	}
	return imur, uploaded
}

// Racing CompleteMultipartUploads (and a PutObject) of one key with
// x-oss-forbid-overwrite: exactly one wins; a loser's upload is intact
// and can still complete once the key is free.
func TestForbidOverwriteRaceOnComplete(t *testing.T) {
	dir := t.TempDir()
	_, bucket := startFake(t, dir)
	const key = "race/multipart"
	const uploads = 4

	type contender struct {
		imur  oss.InitiateMultipartUploadResult
		parts []oss.UploadPart
		data  []byte
	}
	cs := make([]contender, uploads)
	for i := range cs {
		parts := [][]byte{randomBytes(uint64(10*i), 200<<10), randomBytes(uint64(10*i+1), 150<<10), randomBytes(uint64(10*i+2), 7)}
		imur, up := uploadParts(t, bucket, key, parts, oss.Meta("contender", strconv.Itoa(i)))
		cs[i] = contender{imur, up, bytes.Join(parts, nil)}
	}
	putData := randomBytes(99, 300<<10)

	errs := make([]error, uploads+1)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range cs {
		wg.Go(func() {
			<-start
			_, errs[i] = bucket.CompleteMultipartUpload(cs[i].imur, cs[i].parts, oss.ForbidOverWrite(true))
		})
	}
	wg.Go(func() {
		<-start
		errs[uploads] = bucket.PutObject(key, bytes.NewReader(putData), oss.ForbidOverWrite(true), oss.Meta("contender", "put"))
	})
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		if err == nil {
			require.Equal(t, -1, winner, "contenders %d and %d both won", winner, i)
			winner = i
			continue
		}
		requireServiceError(t, err, http.StatusConflict, "FileAlreadyExists")
	}
	require.NotEqual(t, -1, winner)
	want, label := putData, "put"
	if winner < uploads {
		want, label = cs[winner].data, strconv.Itoa(winner)
	}
	assert.Equal(t, want, getObject(t, bucket, key))
	h, err := bucket.GetObjectDetailedMeta(key)
	require.NoError(t, err)
	assert.Equal(t, label, h.Get("X-Oss-Meta-Contender"))
	assert.Equal(t, strconv.FormatUint(crc(want), 10), h.Get(oss.HTTPHeaderOssCRC64))

	// Each loser's upload is as it was: free the key and complete it.
	for i := range cs {
		if i == winner {
			continue
		}
		require.NoError(t, bucket.DeleteObject(key))
		_, err := bucket.CompleteMultipartUpload(cs[i].imur, cs[i].parts, oss.ForbidOverWrite(true))
		require.NoError(t, err, "contender %d", i)
		assert.Equal(t, cs[i].data, getObject(t, bucket, key), "contender %d", i)
	}
	assert.Empty(t, spoolFiles(t, dir))
}

func TestMultipartCompletionChecks(t *testing.T) {
	dir := t.TempDir()
	_, bucket := startFake(t, dir)
	const key = "checks"
	parts := [][]byte{randomBytes(1, 100<<10), randomBytes(2, 100<<10), randomBytes(3, 10)}
	imur, uploaded := uploadParts(t, bucket, key, parts)

	// Re-uploading a part replaces it.
	parts[1] = randomBytes(22, 120<<10)
	up, err := bucket.UploadPart(imur, bytes.NewReader(parts[1]), int64(len(parts[1])), 2)
	require.NoError(t, err)
	assert.NotEqual(t, uploaded[1].ETag, up.ETag)
	stale := uploaded[1]
	uploaded[1] = up

	listed, err := bucket.ListUploadedParts(imur)
	require.NoError(t, err)
	require.Len(t, listed.UploadedParts, 3)
	for i, p := range listed.UploadedParts {
		assert.Equal(t, i+1, p.PartNumber)
		assert.Equal(t, len(parts[i]), p.Size)
		assert.Equal(t, uploaded[i].ETag, p.ETag)
	}
	ups, err := bucket.ListMultipartUploads()
	require.NoError(t, err)
	require.Len(t, ups.Uploads, 1)
	assert.Equal(t, imur.UploadID, ups.Uploads[0].UploadID)
	assert.Equal(t, key, ups.Uploads[0].Key)

	_, err = bucket.CompleteMultipartUpload(imur, []oss.UploadPart{uploaded[0], stale, uploaded[2]})
	requireServiceError(t, err, http.StatusBadRequest, "InvalidPart")
	// The SDK sorts the parts; a raw request does not.
	var order strings.Builder
	order.WriteString("<CompleteMultipartUpload>")
	for _, i := range []int{1, 0, 2} {
		fmt.Fprintf(&order, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", uploaded[i].PartNumber, uploaded[i].ETag)
	}
	order.WriteString("</CompleteMultipartUpload>")
	resp, err := http.Post(bucket.Client.Config.Endpoint+"/"+testBucket+"/"+key+"?uploadId="+imur.UploadID, "application/xml", strings.NewReader(order.String()))
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, resp.Body.Close())
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, string(body), "<Code>InvalidPartOrder</Code>")
	assert.NotEmpty(t, resp.Header.Get(oss.HTTPHeaderOssRequestID))
	_, err = bucket.CompleteMultipartUpload(imur, []oss.UploadPart{uploaded[0], {PartNumber: 7, ETag: uploaded[2].ETag}})
	requireServiceError(t, err, http.StatusBadRequest, "InvalidPart")

	res, err := bucket.CompleteMultipartUpload(imur, uploaded)
	require.NoError(t, err)
	// S3's multipart ETag: the MD5 of the parts' MD5s, then the part count.
	// HEAD and listings give the same MD5 without the count: the object is
	// not hashed again.
	md5s := md5.New()
	for _, p := range parts {
		sum := md5.Sum(p)
		md5s.Write(sum[:])
	}
	etag := hex.EncodeToString(md5s.Sum(nil))
	assert.Equal(t, `"`+etag+`-3"`, strings.ToLower(res.ETag))
	want := bytes.Join(parts, nil)
	assert.Equal(t, want, getObject(t, bucket, key))
	h, err := bucket.GetObjectDetailedMeta(key)
	require.NoError(t, err)
	assert.Equal(t, `"`+etag+`"`, strings.ToLower(h.Get("ETag")))
	assert.Equal(t, strconv.FormatUint(crc(want), 10), h.Get(oss.HTTPHeaderOssCRC64))

	_, err = bucket.CompleteMultipartUpload(imur, uploaded)
	requireServiceError(t, err, http.StatusNotFound, "NoSuchUpload")
	ups, err = bucket.ListMultipartUploads()
	require.NoError(t, err)
	assert.Empty(t, ups.Uploads)

	// A subset of the parts: the rest are discarded.
	imur, uploaded = uploadParts(t, bucket, "subset", parts)
	_, err = bucket.CompleteMultipartUpload(imur, []oss.UploadPart{uploaded[0], uploaded[2]})
	require.NoError(t, err)
	assert.Equal(t, append(append([]byte{}, parts[0]...), parts[2]...), getObject(t, bucket, "subset"))

	// One part: its spool file becomes the object.
	imur, uploaded = uploadParts(t, bucket, "single", parts[:1])
	_, err = bucket.CompleteMultipartUpload(imur, uploaded)
	require.NoError(t, err)
	assert.Equal(t, parts[0], getObject(t, bucket, "single"))

	assert.Empty(t, spoolFiles(t, dir))
}

func TestContentMD5(t *testing.T) {
	dir := t.TempDir()
	_, bucket := startFake(t, dir)
	data := []byte("checked body")
	sum := md5.Sum(data)
	good := base64.StdEncoding.EncodeToString(sum[:])
	bad := base64.StdEncoding.EncodeToString(make([]byte, 16))

	require.NoError(t, bucket.PutObject("md5", bytes.NewReader(data), oss.ContentMD5(good)))
	assert.Equal(t, data, getObject(t, bucket, "md5"))
	err := bucket.PutObject("md5-bad", bytes.NewReader(data), oss.ContentMD5(bad))
	requireServiceError(t, err, http.StatusBadRequest, "BadDigest")
	exists, err := bucket.IsObjectExist("md5-bad")
	require.NoError(t, err)
	assert.False(t, exists)

	imur, err := bucket.InitiateMultipartUpload("md5-part")
	require.NoError(t, err)
	_, err = bucket.UploadPart(imur, bytes.NewReader(data), int64(len(data)), 1, oss.ContentMD5(bad))
	requireServiceError(t, err, http.StatusBadRequest, "BadDigest")
	_, err = bucket.UploadPart(imur, bytes.NewReader(data), int64(len(data)), 1, oss.ContentMD5(good))
	require.NoError(t, err)
	require.NoError(t, bucket.AbortMultipartUpload(imur))
	assert.Empty(t, spoolFiles(t, dir))
}

// onlyReader hides bytes.Reader's length: the SDK then sends the body
// chunked, without Content-Length, which OSS accepts.
type onlyReader struct{ io.Reader }

func TestPutWithoutContentLength(t *testing.T) {
	dir := t.TempDir()
	_, bucket := startFake(t, dir)
	data := randomBytes(7, 300<<10)

	resp, err := bucket.DoPutObject(&oss.PutObjectRequest{ObjectKey: "chunked", Reader: onlyReader{bytes.NewReader(data)}},
		[]oss.Option{oss.ForbidOverWrite(true)})
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, crc(data), resp.ServerCRC)
	assert.Equal(t, data, getObject(t, bucket, "chunked"))

	err = bucket.PutObject("chunked", onlyReader{bytes.NewReader(data)}, oss.ForbidOverWrite(true))
	requireServiceError(t, err, http.StatusConflict, "FileAlreadyExists")
	assert.Empty(t, spoolFiles(t, dir))
}

// S3 conditional headers, which OSS's PutObject does not have, go through
// gofakes3 and store.PutObject: same object, same checksum header.
func TestPutThroughGofakes3(t *testing.T) {
	dir := t.TempDir()
	_, bucket := startFake(t, dir)
	data := randomBytes(8, 300<<10)

	resp, err := bucket.DoPutObject(&oss.PutObjectRequest{ObjectKey: "s3", Reader: bytes.NewReader(data)},
		[]oss.Option{oss.IfNoneMatch("*"), oss.Meta("via", "gofakes3")})
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, crc(data), resp.ServerCRC)
	assert.Equal(t, `"`+md5Hex(data)+`"`, strings.ToLower(resp.Headers.Get("ETag")))
	assert.Equal(t, data, getObject(t, bucket, "s3"))
	h, err := bucket.GetObjectDetailedMeta("s3")
	require.NoError(t, err)
	assert.Equal(t, "gofakes3", h.Get("X-Oss-Meta-Via"))
	assert.Equal(t, `"`+md5Hex(data)+`"`, strings.ToLower(h.Get("ETag")))

	err = bucket.PutObject("s3", bytes.NewReader(data), oss.IfNoneMatch("*"))
	requireServiceError(t, err, http.StatusPreconditionFailed, "PreconditionFailed")
	err = bucket.PutObject("s3", bytes.NewReader(data), oss.IfNoneMatch("*"), oss.ForbidOverWrite(true))
	requireServiceError(t, err, http.StatusConflict, "FileAlreadyExists")
	// If-Match with the current ETag overwrites, and replaces the metadata.
	data2 := randomBytes(9, 1000)
	require.NoError(t, bucket.PutObject("s3", bytes.NewReader(data2), oss.IfMatch(`"`+md5Hex(data)+`"`)))
	assert.Equal(t, data2, getObject(t, bucket, "s3"))
	h, err = bucket.GetObjectDetailedMeta("s3")
	require.NoError(t, err)
	assert.Empty(t, h.Get("X-Oss-Meta-Via"))
	assert.Empty(t, spoolFiles(t, dir))
}

// Readers racing overwrites see one whole version, with its own CRC-64
// (GetObjectToFile checks it): objects are renamed into place.
func TestReadsDuringOverwritesSeeWholeVersions(t *testing.T) {
	_, bucket := startFake(t, t.TempDir())
	const key = "overwritten"
	const size = 512 << 10
	version := func(v int) []byte { return bytes.Repeat([]byte{byte('a' + v%26)}, size) }
	require.NoError(t, bucket.PutObject(key, bytes.NewReader(version(0))))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(stop)
		for v := 1; v <= 30; v++ {
			if err := bucket.PutObject(key, bytes.NewReader(version(v))); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 2 {
		wg.Go(func() {
			file := filepath.Join(t.TempDir(), "get")
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := bucket.GetObjectToFile(key, file); err != nil {
					t.Error(err)
					return
				}
				b, err := os.ReadFile(file)
				if err != nil {
					t.Error(err)
					return
				}
				if len(b) != size || !bytes.Equal(b, bytes.Repeat(b[:1], size)) {
					t.Errorf("read a mixed or partial object: %d bytes", len(b))
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestStaleSpoolIsRemoved(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "tmp", "spool-stale")
	require.NoError(t, os.MkdirAll(stale, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(stale, "part-1"), []byte("left over"), 0o600))
	old := time.Now().Add(-2 * time.Hour)
	require.NoError(t, os.Chtimes(stale, old, old))

	_, bucket := startFake(t, dir)
	_, err := os.Stat(stale)
	assert.True(t, errors.Is(err, fs.ErrNotExist), "stale spool directory removed: %v", err)
	require.NoError(t, bucket.PutObject("k", bytes.NewReader([]byte("v"))))
}

func TestListUploadsAndParts(t *testing.T) {
	_, bucket := startFake(t, t.TempDir())
	var ids []string
	for _, key := range []string{"b/1", "a/2", "a/1", "a/1", "c"} {
		imur, err := bucket.InitiateMultipartUpload(key)
		require.NoError(t, err)
		ids = append(ids, imur.UploadID)
		t.Cleanup(func() { _ = bucket.AbortMultipartUpload(imur) })
	}
	type entry struct{ key, id string }
	want := []entry{{"a/1", ids[2]}, {"a/1", ids[3]}, {"a/2", ids[1]}, {"b/1", ids[0]}, {"c", ids[4]}}

	var got []entry
	var keyMarker, idMarker string
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		res, err := bucket.ListMultipartUploads(oss.MaxUploads(2), oss.KeyMarker(keyMarker), oss.UploadIDMarker(idMarker))
		require.NoError(t, err)
		for _, u := range res.Uploads {
			got = append(got, entry{u.Key, u.UploadID})
		}
		if !res.IsTruncated {
			break
		}
		keyMarker, idMarker = res.NextKeyMarker, res.NextUploadIDMarker
	}
	assert.Equal(t, want, got)

	res, err := bucket.ListMultipartUploads(oss.Delimiter("/"))
	require.NoError(t, err)
	assert.Equal(t, []string{"a/", "b/"}, res.CommonPrefixes)
	require.Len(t, res.Uploads, 1)
	assert.Equal(t, "c", res.Uploads[0].Key)
	res, err = bucket.ListMultipartUploads(oss.Prefix("a/2"))
	require.NoError(t, err)
	require.Len(t, res.Uploads, 1)
	assert.Equal(t, ids[1], res.Uploads[0].UploadID)

	// Parts, paged.
	imur := oss.InitiateMultipartUploadResult{Bucket: testBucket, Key: "c", UploadID: ids[4]}
	for _, n := range []int{3, 1, 2} {
		_, err := bucket.UploadPart(imur, bytes.NewReader(bytes.Repeat([]byte{byte(n)}, n)), int64(n), n)
		require.NoError(t, err)
	}
	var sizes []int
	for marker, pages := 0, 0; ; pages++ {
		require.Less(t, pages, 10)
		parts, err := bucket.ListUploadedParts(imur, oss.MaxParts(2), oss.PartNumberMarker(marker))
		require.NoError(t, err)
		for _, p := range parts.UploadedParts {
			sizes = append(sizes, p.Size)
		}
		if !parts.IsTruncated {
			break
		}
		marker, err = strconv.Atoi(parts.NextPartNumberMarker)
		require.NoError(t, err)
	}
	assert.Equal(t, []int{1, 2, 3}, sizes)
}
