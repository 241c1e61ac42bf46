package ossfake

import (
	"cmp"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/johannesboyne/gofakes3"
)

// Multipart uploads. gofakes3's own uploader keeps every part in memory,
// hashes it under a global lock and concatenates the parts into one more
// in-memory copy on completion. Here each part is spooled to a file (MD5
// and CRC-64 in one pass, no lock held), and completion appends the parts
// to the first one with copy_file_range where the kernel has it, combines
// the parts' CRC-64s arithmetically, and renames the result into place.
// Uploads in progress live in this process only, as gofakes3's do.

// minPartSize is OSS's minimum size of every multipart part but the last.
const minPartSize = 100 << 10

// errEntityTooSmall is OSS's error for a part, other than the last, below
// minPartSize. gofakes3 has no such code.
type errEntityTooSmall struct{ msg string }

func (e *errEntityTooSmall) Error() string { return e.msg }

type uploads struct {
	mu    sync.Mutex
	byID  map[gofakes3.UploadID]*upload
	seq   atomic.Uint64
	idTag string // distinguishes this server's upload IDs from a previous one's
}

func (u *uploads) init() {
	u.byID = make(map[gofakes3.UploadID]*upload)
	u.idTag = fmt.Sprintf("%08X", uint32(time.Now().UnixNano()))
}

type upload struct {
	id        gofakes3.UploadID
	seq       uint64 // creation order
	bucket    string
	key       string
	meta      map[string]string
	initiated time.Time

	mu    sync.Mutex // guards the fields below; held for a whole completion
	done  bool       // completed or aborted; its spool files are gone
	parts map[int]*part
}

type part struct {
	spooled
	number   int
	etag     string // quoted hex MD5
	modified time.Time
}

// lookup returns the upload id of bucket/key.
func (s *store) lookup(bucket, key string, id gofakes3.UploadID) (*upload, error) {
	s.uploads.mu.Lock()
	defer s.uploads.mu.Unlock()
	up, ok := s.uploads.byID[id]
	if !ok || up.bucket != bucket || up.key != key {
		return nil, gofakes3.ErrNoSuchUpload
	}
	return up, nil
}

// finish marks up done, drops it from the registry and removes its spool
// files, except keep. The caller holds up.mu.
func (s *store) finish(up *upload, keep string) {
	up.done = true
	for _, p := range up.parts {
		if p.path != keep {
			_ = os.Remove(p.path)
		}
	}
	up.parts = nil
	s.uploads.mu.Lock()
	delete(s.uploads.byID, up.id)
	s.uploads.mu.Unlock()
}

// CreateMultipartUpload starts an upload; meta is the object's metadata.
func (s *store) CreateMultipartUpload(bucket, key string, meta map[string]string) (gofakes3.UploadID, error) {
	if _, err := s.objectPath(bucket, key); err != nil {
		return "", err
	}
	seq := s.uploads.seq.Add(1)
	up := &upload{
		id:        gofakes3.UploadID(fmt.Sprintf("%s%016X", s.uploads.idTag, seq)),
		seq:       seq,
		bucket:    bucket,
		key:       key,
		meta:      meta,
		initiated: time.Now(),
		parts:     make(map[int]*part),
	}
	s.uploads.mu.Lock()
	s.uploads.byID[up.id] = up
	s.uploads.mu.Unlock()
	return up.id, nil
}

// uploadPart spools part number n of an upload, replacing any previous
// part n, and returns it. size is the body's length; wantMD5, if not nil,
// its Content-MD5.
func (s *store) uploadPart(bucket, key string, id gofakes3.UploadID, n int, size int64, body io.Reader, wantMD5 []byte) (*part, error) {
	if n < 1 || n > gofakes3.MaxUploadPartNumber {
		return nil, gofakes3.ErrInvalidPart
	}
	up, err := s.lookup(bucket, key, id)
	if err != nil {
		return nil, err
	}
	sp, err := s.spool("part", body, size, wantMD5)
	if err != nil {
		return nil, err
	}
	p := &part{spooled: sp, number: n, etag: `"` + hex.EncodeToString(sp.md5) + `"`, modified: time.Now()}

	up.mu.Lock()
	defer up.mu.Unlock()
	if up.done {
		_ = os.Remove(sp.path)
		return nil, gofakes3.ErrNoSuchUpload
	}
	if old := up.parts[n]; old != nil {
		_ = os.Remove(old.path)
	}
	up.parts[n] = p
	return p, nil
}

// UploadPart implements gofakes3.MultipartBackend. The dialect serves
// UploadPart itself (Server.uploadPart); this is for completeness.
func (s *store) UploadPart(bucket, key string, id gofakes3.UploadID, n int, size int64, input io.Reader) (string, error) {
	p, err := s.uploadPart(bucket, key, id, n, size, input, nil)
	if err != nil {
		return "", err
	}
	return p.etag, nil
}

// completed is a completed upload's object.
type completed struct {
	etag string // S3's multipart ETag: MD5 of the parts' MD5s, "-", part count
	crc  uint64
}

// complete assembles the listed parts into the object. With forbid it
// fails with gofakes3.ErrPreconditionFailed, atomically, if the object
// exists. On failure the upload and its parts stay as they were.
func (s *store) complete(bucket, key string, id gofakes3.UploadID, in []gofakes3.CompletedPart, forbid bool) (completed, error) {
	up, err := s.lookup(bucket, key, id)
	if err != nil {
		return completed{}, err
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	if up.done {
		return completed{}, gofakes3.ErrNoSuchUpload
	}

	if len(in) == 0 {
		return completed{}, gofakes3.ErrorMessage(gofakes3.ErrInvalidPart, "at least one part is required")
	}
	parts := make([]*part, len(in))
	for i, ip := range in {
		if i > 0 && ip.PartNumber <= in[i-1].PartNumber {
			return completed{}, gofakes3.ErrInvalidPartOrder
		}
		p := up.parts[ip.PartNumber]
		if p == nil {
			return completed{}, gofakes3.ErrorMessagef(gofakes3.ErrInvalidPart, "unexpected part number %d in complete request", ip.PartNumber)
		}
		if !strings.EqualFold(strings.Trim(ip.ETag, `"`), strings.Trim(p.etag, `"`)) {
			return completed{}, gofakes3.ErrorMessagef(gofakes3.ErrInvalidPart, "unexpected part etag for number %d in complete request", ip.PartNumber)
		}
		parts[i] = p
	}
	for _, p := range parts[:len(parts)-1] {
		if p.size < minPartSize {
			return completed{}, &errEntityTooSmall{fmt.Sprintf("part %d is %d bytes; every part but the last must be at least 100 KiB", p.number, p.size)}
		}
	}
	var conditions *gofakes3.PutConditions
	if forbid {
		// Fail before copying anything in the usual case; commit checks
		// again, atomically.
		if exists, err := s.exists(bucket, key); err != nil {
			return completed{}, err
		} else if exists {
			return completed{}, gofakes3.ErrorMessage(gofakes3.ErrPreconditionFailed, "The object already exists")
		}
		star := "*"
		conditions = &gofakes3.PutConditions{IfNoneMatch: &star}
	}

	// The first part's file becomes the object: append the others to it.
	first := parts[0]
	md5s := md5.New()
	crc := first.crc
	for _, p := range parts {
		md5s.Write(p.md5)
		if p != first {
			crc = crc64Combine(crc, p.crc, p.size)
		}
	}
	if len(parts) > 1 {
		if err := appendParts(first, parts[1:]); err != nil {
			_ = os.Truncate(first.path, first.size)
			return completed{}, err
		}
	}
	sum := md5s.Sum(nil)
	if err := s.commit(bucket, key, first.path, up.meta, sum, crc, conditions); err != nil {
		_ = os.Truncate(first.path, first.size)
		return completed{}, err
	}
	s.finish(up, first.path)
	return completed{etag: fmt.Sprintf(`"%s-%d"`, hex.EncodeToString(sum), len(parts)), crc: crc}, nil
}

// appendParts appends the files of parts to first's file. Between two
// regular files io.Copy uses copy_file_range: the data does not pass
// through this process.
func appendParts(first *part, parts []*part) (err error) {
	dst, err := os.OpenFile(first.path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
	}()
	if _, err := dst.Seek(first.size, io.SeekStart); err != nil {
		return err
	}
	for _, p := range parts {
		src, err := os.Open(p.path)
		if err != nil {
			return err
		}
		n, err := io.Copy(dst, src)
		src.Close()
		if err != nil {
			return fmt.Errorf("append part %d: %w", p.number, err)
		}
		if n != p.size {
			return fmt.Errorf("append part %d: copied %d of %d bytes", p.number, n, p.size)
		}
	}
	return nil
}

// CompleteMultipartUpload implements gofakes3.MultipartBackend. The
// dialect serves CompleteMultipartUpload itself (Server.completeUpload);
// this is for completeness.
func (s *store) CompleteMultipartUpload(bucket, key string, id gofakes3.UploadID, in *gofakes3.CompleteMultipartUploadRequest) (gofakes3.VersionID, string, error) {
	res, err := s.complete(bucket, key, id, in.Parts, false)
	var small *errEntityTooSmall
	if errors.As(err, &small) {
		err = gofakes3.ErrorMessage(gofakes3.ErrInvalidPart, small.msg)
	}
	return "", res.etag, err
}

// AbortMultipartUpload discards the upload and its parts.
func (s *store) AbortMultipartUpload(bucket, key string, id gofakes3.UploadID) error {
	up, err := s.lookup(bucket, key, id)
	if err != nil {
		return err
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	if up.done {
		return gofakes3.ErrNoSuchUpload
	}
	s.finish(up, "")
	return nil
}

// ListParts lists an upload's parts after part number marker.
func (s *store) ListParts(bucket, key string, id gofakes3.UploadID, marker int, limit int64) (*gofakes3.ListMultipartUploadPartsResult, error) {
	up, err := s.lookup(bucket, key, id)
	if err != nil {
		return nil, err
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	if up.done {
		return nil, gofakes3.ErrNoSuchUpload
	}
	numbers := make([]int, 0, len(up.parts))
	for n := range up.parts {
		if n > marker {
			numbers = append(numbers, n)
		}
	}
	slices.Sort(numbers)
	res := &gofakes3.ListMultipartUploadPartsResult{
		Bucket:           bucket,
		Key:              key,
		UploadID:         id,
		MaxParts:         limit,
		PartNumberMarker: marker,
		StorageClass:     "STANDARD",
	}
	res.NextPartNumberMarker = marker
	for i, n := range numbers {
		if int64(i) >= limit {
			res.IsTruncated = true
			break
		}
		res.NextPartNumberMarker = n
		p := up.parts[n]
		res.Parts = append(res.Parts, gofakes3.ListMultipartUploadPartItem{
			PartNumber:   n,
			LastModified: gofakes3.NewContentTime(p.modified),
			ETag:         p.etag,
			Size:         p.size,
		})
	}
	return res, nil
}

// ListMultipartUploads lists the bucket's uploads in progress, sorted by
// key and then by initiation, after marker.
func (s *store) ListMultipartUploads(bucket string, marker *gofakes3.UploadListMarker, prefix gofakes3.Prefix, limit int64) (*gofakes3.ListMultipartUploadsResult, error) {
	s.uploads.mu.Lock()
	var ups []*upload
	for _, up := range s.uploads.byID {
		if up.bucket == bucket {
			ups = append(ups, up)
		}
	}
	s.uploads.mu.Unlock()
	slices.SortFunc(ups, func(a, b *upload) int {
		if c := strings.Compare(a.key, b.key); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})

	res := &gofakes3.ListMultipartUploadsResult{
		Bucket:     bucket,
		Delimiter:  prefix.Delimiter,
		Prefix:     prefix.Prefix,
		MaxUploads: limit,
	}
	if marker != nil {
		res.KeyMarker, res.UploadIDMarker = marker.Object, marker.UploadID
	}

	seen := map[string]bool{}
	var count int64
	var last *upload // the last upload listed or rolled into a prefix
	var match gofakes3.PrefixMatch
	for _, up := range ups {
		// Upload IDs of one key sort in creation order (fixed-width hex).
		if marker != nil && (up.key < marker.Object || up.key == marker.Object &&
			(marker.UploadID == "" || up.id <= marker.UploadID)) {
			continue
		}
		if !prefix.Match(up.key, &match) {
			continue
		}
		if match.CommonPrefix && seen[match.MatchedPart] {
			last = up
			continue
		}
		if count >= limit {
			res.IsTruncated = true
			if last != nil {
				res.NextKeyMarker, res.NextUploadIDMarker = last.key, last.id
			}
			break
		}
		count++
		last = up
		if match.CommonPrefix {
			seen[match.MatchedPart] = true
			res.CommonPrefixes = append(res.CommonPrefixes, match.AsCommonPrefix())
			continue
		}
		res.Uploads = append(res.Uploads, gofakes3.ListMultipartUploadItem{
			StorageClass: "STANDARD",
			Key:          up.key,
			UploadID:     up.id,
			Initiated:    gofakes3.NewContentTime(up.initiated),
		})
	}
	return res, nil
}
