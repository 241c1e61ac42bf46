package ossfake

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"hash/fnv"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3afero"
)

// store wraps the s3afero file backend. s3afero still reads, lists and
// deletes, but every object is written here: the body is streamed to a
// spool file outside any lock, hashed (MD5 and CRC-64) in the same pass,
// and then renamed into place together with s3afero's metadata file under
// a short lock. It also remembers each object's CRC-64 so GET and HEAD need
// not re-read the file, and it implements gofakes3's MultipartBackend with
// parts spooled to files (see multipart.go).
type store struct {
	*s3afero.MultiBucketBackend
	dir    string // the backend's root directory
	tmpDir string // spool files of this server; same file system as dir

	// ns orders commits (put conditions, rename, metadata) and deletes,
	// which take it exclusively for a few syscalls, against reads, which
	// share it, so that no reader sees an object's new file with its old
	// metadata. Bodies are never read or hashed under it.
	ns sync.RWMutex

	crcMu sync.Mutex
	crcs  map[string]objectCRC // by bucket + "/" + key

	tmpSeq atomic.Uint64

	uploads uploads
}

// objectCRC is a remembered checksum, valid while the object's MD5 and size
// are unchanged.
type objectCRC struct {
	md5  []byte
	size int64
	crc  uint64
}

var (
	_ gofakes3.Backend          = (*store)(nil)
	_ gofakes3.MultipartBackend = (*store)(nil)
)

// spoolRoot holds each server's spool directory, next to s3afero's
// buckets and metadata directories so that a rename moves a spool file
// into a bucket.
const spoolRoot = "tmp"

// staleSpool is how long a spool directory may go unmodified before a new
// server on the same Dir removes it: its server is most likely gone.
const staleSpool = time.Hour

func newStore(backend *s3afero.MultiBucketBackend, dir string) (*store, error) {
	root := filepath.Join(dir, spoolRoot)
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	removeStaleSpools(root)
	tmpDir, err := os.MkdirTemp(root, "spool-")
	if err != nil {
		return nil, err
	}
	s := &store{
		MultiBucketBackend: backend,
		dir:                dir,
		tmpDir:             tmpDir,
		crcs:               make(map[string]objectCRC),
	}
	s.uploads.init()
	return s, nil
}

// removeStaleSpools removes spool directories left behind by servers that
// stopped (uploads in progress do not survive a restart).
func removeStaleSpools(root string) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleSpool {
			_ = os.RemoveAll(filepath.Join(root, e.Name()))
		}
	}
}

// spooled is a body written to a spool file.
type spooled struct {
	path string
	size int64
	md5  []byte
	crc  uint64
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// createSpool creates an empty spool file.
func (s *store) createSpool(kind string) (*os.File, error) {
	name := filepath.Join(s.tmpDir, fmt.Sprintf("%s-%d", kind, s.tmpSeq.Add(1)))
	return os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
}

// spool streams body to a new spool file, computing its MD5 and CRC-64 in
// the same pass. size, if not negative, is the length the body must have;
// wantMD5, if not nil, is the MD5 it must have. If body is gofakes3's
// hashing reader, its MD5 is used rather than computed again. No lock is
// held: any number of bodies spool in parallel.
func (s *store) spool(kind string, body io.Reader, size int64, wantMD5 []byte) (sp spooled, err error) {
	f, err := s.createSpool(kind)
	if err != nil {
		return sp, err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()

	crc := crc64.New(crcTable)
	var md5h interface{ Sum([]byte) []byte }
	var w io.Writer
	if hr, ok := body.(interface{ Sum([]byte) []byte }); ok {
		md5h, w = hr, io.MultiWriter(f, crc) // gofakes3 hashes as it reads
	} else {
		h := md5.New()
		md5h, w = h, io.MultiWriter(f, h, crc)
	}
	buf := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(buf)
	// struct{io.Reader} hides any WriterTo: one buffer, one pass.
	n, err := io.CopyBuffer(w, struct{ io.Reader }{body}, *buf)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return sp, gofakes3.ErrIncompleteBody // the client went away
	}
	if err != nil {
		return sp, err
	}
	if size >= 0 && n != size {
		return sp, gofakes3.ErrIncompleteBody
	}
	if err := f.Close(); err != nil {
		return sp, err
	}
	sp = spooled{path: f.Name(), size: n, md5: md5h.Sum(nil), crc: crc.Sum64()}
	if wantMD5 != nil && !bytes.Equal(wantMD5, sp.md5) {
		err = gofakes3.ErrBadDigest // removes the file (deferred)
		return sp, err
	}
	return sp, nil
}

// objectPath is the object's file, as s3afero names it, or an error if the
// key would leave the bucket's directory.
func (s *store) objectPath(bucket, key string) (string, error) {
	p := path.Join(bucket, key)
	if !strings.HasPrefix(p, bucket+"/") {
		return "", gofakes3.ErrorMessagef(gofakes3.ErrInvalidArgument, "ossfake: key %q is not a file in the bucket", key)
	}
	return filepath.Join(s.dir, "buckets", filepath.FromSlash(p)), nil
}

// metaPath is s3afero's metadata file for the object (s3afero's
// metaStore.metaPath under <Dir>/metadata).
func (s *store) metaPath(bucket, key string) string {
	h := fnv.New128a()
	h.Write([]byte(key))
	name := strings.NewReplacer("/", "_", `\`, "_").Replace(key) + "-" + hex.EncodeToString(h.Sum(nil))
	return filepath.Join(s.dir, "metadata", bucket, name)
}

// commit moves the spool file src into place as the object, with meta as
// its user metadata and hash as its MD5 (the ETag), after checking
// conditions atomically. It replaces any previous object, metadata
// included, as OSS does. src is left in place on error.
func (s *store) commit(bucket, key, src string, meta map[string]string, hash []byte, crc uint64, conditions *gofakes3.PutConditions) error {
	dst, err := s.objectPath(bucket, key)
	if err != nil {
		return err
	}
	metaFile := s.metaPath(bucket, key)
	if _, ok := meta[headerCRC64]; ok { // from a copy's source (withCRC)
		meta = maps.Clone(meta)
		delete(meta, headerCRC64)
	}

	s.ns.Lock()
	defer s.ns.Unlock()

	if _, err := os.Stat(s.bucketDir(bucket)); errors.Is(err, fs.ErrNotExist) {
		return gofakes3.BucketNotFound(bucket)
	}
	if conditions != nil {
		info, err := s.conditionalInfo(bucket, key)
		if err != nil {
			return err
		}
		if err := gofakes3.CheckPutConditions(conditions, info); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	if err := os.Rename(src, dst); err != nil {
		return err
	}
	// From here on the object is replaced: a failure must not leave it
	// with the previous object's metadata.
	fail := func(err error) error {
		_ = os.Remove(dst)
		_ = os.Remove(metaFile)
		s.forget(bucket, key)
		return err
	}
	st, err := os.Stat(dst)
	if err != nil {
		return fail(err)
	}
	// s3afero trusts its metadata while size and modification time match
	// the file; otherwise it re-hashes the file.
	bts, err := json.Marshal(&s3afero.Metadata{
		File:    path.Join(bucket, key),
		ModTime: st.ModTime(),
		Size:    st.Size(),
		Hash:    hash,
		Meta:    meta,
	})
	if err != nil {
		return fail(err)
	}
	if err := os.MkdirAll(filepath.Dir(metaFile), 0o777); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(metaFile, bts, 0o666); err != nil {
		return fail(err)
	}
	s.remember(bucket, key, objectCRC{md5: hash, size: st.Size(), crc: crc})
	return nil
}

// put writes an object from body: spool, then commit. It returns the
// object's MD5 and CRC-64.
func (s *store) put(bucket, key string, meta map[string]string, body io.Reader, size int64, wantMD5 []byte, conditions *gofakes3.PutConditions) (spooled, error) {
	// Fail before reading the body if the bucket is missing.
	if ok, err := s.BucketExists(bucket); err != nil {
		return spooled{}, err
	} else if !ok {
		return spooled{}, gofakes3.BucketNotFound(bucket)
	}
	if _, err := s.objectPath(bucket, key); err != nil {
		return spooled{}, err
	}
	sp, err := s.spool("put", body, size, wantMD5)
	if err != nil {
		return sp, err
	}
	if err := s.commit(bucket, key, sp.path, meta, sp.md5, sp.crc, conditions); err != nil {
		_ = os.Remove(sp.path)
		return sp, err
	}
	return sp, nil
}

// PutObject is gofakes3's path for writes the dialect does not serve
// itself (see Server.putObject); it replaces the object and its metadata
// as OSS does (s3afero alone would merge the previous object's user
// metadata into the new one). The MD5 gofakes3's hashing reader computes is
// used, not computed again.
func (s *store) PutObject(bucket, key string, meta map[string]string, input io.Reader, size int64, conditions *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	_, err := s.put(bucket, key, meta, input, size, nil, conditions)
	return gofakes3.PutObjectResult{}, err
}

// CopyObject copies through s.PutObject rather than s3afero's, for the
// replace semantics above.
func (s *store) CopyObject(srcBucket, srcKey, dstBucket, dstKey string, meta map[string]string) (gofakes3.CopyObjectResult, error) {
	return gofakes3.CopyObject(s, srcBucket, srcKey, dstBucket, dstKey, meta)
}

// HeadObject is s3afero's, ordered against commits, with the version's
// CRC-64 (see withCRC).
func (s *store) HeadObject(bucket, key string) (*gofakes3.Object, error) {
	return s.withCRC(bucket, key, func() (*gofakes3.Object, error) {
		return s.MultiBucketBackend.HeadObject(bucket, key)
	})
}

// GetObject is s3afero's, ordered against commits, with the version's
// CRC-64 (see withCRC). The body is read after the lock is released; a
// commit replaces the file by renaming, so the reader keeps the version it
// opened.
func (s *store) GetObject(bucket, key string, rng *gofakes3.ObjectRangeRequest) (*gofakes3.Object, error) {
	return s.withCRC(bucket, key, func() (*gofakes3.Object, error) {
		return s.MultiBucketBackend.GetObject(bucket, key, rng)
	})
}

// withCRC runs s3afero's get under ns and adds the CRC-64/ECMA of the
// object version it found to the object's metadata, which gofakes3 sends
// as headers: OSS's x-oss-hash-crc64ecma on GET (ranged or not) and HEAD.
// The CRC-64 is the one remembered for that version (its MD5) or, after a
// restart, read from the same version's file, outside the lock.
func (s *store) withCRC(bucket, key string, get func() (*gofakes3.Object, error)) (*gofakes3.Object, error) {
	s.ns.RLock()
	obj, err := get()
	if err != nil {
		s.ns.RUnlock()
		return nil, err
	}
	crc, known := s.rememberedCRC(bucket, key, obj.Hash, obj.Size)
	var f *os.File
	if !known {
		if p, err := s.objectPath(bucket, key); err == nil {
			f, _ = os.Open(p) // this version, whatever commits follow
		}
	}
	s.ns.RUnlock()

	if !known {
		if f == nil {
			return obj, nil
		}
		h := crc64.New(crcTable)
		_, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			if obj.Contents != nil {
				obj.Contents.Close()
			}
			return nil, fmt.Errorf("read %s/%s: %w", bucket, key, err)
		}
		crc = h.Sum64()
		s.rememberIfUnknown(bucket, key, objectCRC{md5: obj.Hash, size: obj.Size, crc: crc})
	}
	if obj.Metadata == nil {
		obj.Metadata = make(map[string]string)
	}
	obj.Metadata[headerCRC64] = strconv.FormatUint(crc, 10)
	return obj, nil
}

// head is s3afero's HeadObject, ordered against commits, without the
// checksum.
func (s *store) head(bucket, key string) (*gofakes3.Object, error) {
	s.ns.RLock()
	defer s.ns.RUnlock()
	return s.MultiBucketBackend.HeadObject(bucket, key)
}

// DeleteObject deletes the object and forgets its checksum.
func (s *store) DeleteObject(bucket, key string) (gofakes3.ObjectDeleteResult, error) {
	s.ns.Lock()
	defer s.ns.Unlock()
	s.forget(bucket, key)
	return s.MultiBucketBackend.DeleteObject(bucket, key)
}

// DeleteMulti deletes the objects and forgets their checksums.
func (s *store) DeleteMulti(bucket string, keys ...string) (gofakes3.MultiDeleteResult, error) {
	s.ns.Lock()
	defer s.ns.Unlock()
	for _, k := range keys {
		s.forget(bucket, k)
	}
	return s.MultiBucketBackend.DeleteMulti(bucket, keys...)
}

// conditionalInfo reports whether the object exists and its MD5. The
// caller holds ns.
func (s *store) conditionalInfo(bucket, key string) (*gofakes3.ConditionalObjectInfo, error) {
	obj, err := s.MultiBucketBackend.HeadObject(bucket, key)
	switch {
	case gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchKey):
		return &gofakes3.ConditionalObjectInfo{}, nil
	case err != nil:
		return nil, err
	}
	return &gofakes3.ConditionalObjectInfo{Exists: true, Hash: obj.Hash}, nil
}

// exists reports whether the object exists.
func (s *store) exists(bucket, key string) (bool, error) {
	s.ns.RLock()
	defer s.ns.RUnlock()
	info, err := s.conditionalInfo(bucket, key)
	if err != nil {
		return false, err
	}
	return info.Exists, nil
}

// objectCRC returns the CRC-64/ECMA of the whole object.
func (s *store) objectCRC(bucket, key string) (uint64, error) {
	obj, err := s.HeadObject(bucket, key)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(obj.Metadata[headerCRC64], 10, 64)
}

// rememberedCRC returns the CRC-64 remembered for the object's version
// with MD5 hash and size.
func (s *store) rememberedCRC(bucket, key string, hash []byte, size int64) (uint64, bool) {
	s.crcMu.Lock()
	defer s.crcMu.Unlock()
	c, ok := s.crcs[bucket+"/"+key]
	if ok && c.size == size && bytes.Equal(c.md5, hash) {
		return c.crc, true
	}
	return 0, false
}

// rememberIfUnknown remembers c unless a commit remembered a checksum
// meanwhile: that one is of a newer version.
func (s *store) rememberIfUnknown(bucket, key string, c objectCRC) {
	s.crcMu.Lock()
	defer s.crcMu.Unlock()
	if _, ok := s.crcs[bucket+"/"+key]; !ok {
		s.crcs[bucket+"/"+key] = c
	}
}

func (s *store) remember(bucket, key string, c objectCRC) {
	s.crcMu.Lock()
	defer s.crcMu.Unlock()
	s.crcs[bucket+"/"+key] = c
}

func (s *store) forget(bucket, key string) {
	s.crcMu.Lock()
	defer s.crcMu.Unlock()
	delete(s.crcs, bucket+"/"+key)
}

// bucketDir is where bucket's objects are files.
func (s *store) bucketDir(bucket string) string {
	return filepath.Join(s.dir, "buckets", bucket)
}

// listObjects returns every object in bucket whose key starts with prefix,
// sorted by key; callers apply delimiter and paging (see list.go).
//
// It walks the bucket directory itself rather than use s3afero's
// ListBucket, which cannot page, lists one directory with its own quirks
// when given a delimiter, and fails the whole listing on a file without
// gofakes3 metadata (a .DS_Store, say). Such files are skipped here.
func (s *store) listObjects(bucket, prefix string) ([]*gofakes3.Content, error) {
	if ok, err := s.BucketExists(bucket); err != nil {
		return nil, err
	} else if !ok {
		return nil, gofakes3.BucketNotFound(bucket)
	}

	root := s.bucketDir(bucket)
	var objs []*gofakes3.Content
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p != root && errors.Is(err, fs.ErrNotExist) {
				return nil // deleted while walking
			}
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			// Descend only where keys with the prefix can be.
			if key != "." && !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		obj, err := s.head(bucket, key)
		if err != nil {
			return nil // not an object: no metadata
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		objs = append(objs, &gofakes3.Content{
			Key:          key,
			LastModified: gofakes3.NewContentTime(info.ModTime()),
			ETag:         gofakes3.FormatETag(obj.Hash),
			Size:         obj.Size,
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", bucket, err)
	}
	slices.SortFunc(objs, func(a, b *gofakes3.Content) int { return strings.Compare(a.Key, b.Key) })
	return objs, nil
}
