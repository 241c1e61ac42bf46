package ossfake

import (
	"bytes"
	"fmt"
	"hash/crc64"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3afero"
)

// crcTable is the CRC-64/ECMA table OSS and its SDK use (oss.CrcTable).
var crcTable = crc64.MakeTable(crc64.ECMA)

// store wraps the s3afero file backend. It fixes what OSS clients would
// notice and remembers each object's CRC-64 so GET and HEAD need not re-read
// the file.
type store struct {
	*s3afero.MultiBucketBackend
	dir string // the backend's root directory

	putMu sync.Mutex // serialises writes so put conditions are atomic

	crcMu sync.Mutex
	crcs  map[string]objectCRC // by bucket + "/" + key
}

// objectCRC is a remembered checksum, valid while the object's MD5 and size
// are unchanged.
type objectCRC struct {
	md5  []byte
	size int64
	crc  uint64
}

var _ gofakes3.Backend = (*store)(nil)

func newStore(backend *s3afero.MultiBucketBackend, dir string) *store {
	return &store{MultiBucketBackend: backend, dir: dir, crcs: make(map[string]objectCRC)}
}

// PutObject replaces the object. s3afero alone would merge the previous
// object's user metadata into the new one (and leak the previous object's
// file handle while doing so); OSS replaces metadata, so the old object is
// deleted first. Put conditions are checked here, under putMu, because the
// delete would otherwise hide the old object from s3afero's own check.
func (s *store) PutObject(bucket, key string, meta map[string]string, input io.Reader, size int64, conditions *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	s.putMu.Lock()
	defer s.putMu.Unlock()

	if conditions != nil {
		info, err := s.conditionalInfo(bucket, key)
		if err != nil {
			return gofakes3.PutObjectResult{}, err
		}
		if err := gofakes3.CheckPutConditions(conditions, info); err != nil {
			return gofakes3.PutObjectResult{}, err
		}
	}
	if _, err := s.deleteObject(bucket, key); err != nil {
		return gofakes3.PutObjectResult{}, err
	}

	h := crc64.New(crcTable)
	res, err := s.MultiBucketBackend.PutObject(bucket, key, meta, io.TeeReader(input, h), size, nil)
	if err != nil {
		// Do not leave a truncated file without metadata behind.
		_, _ = s.MultiBucketBackend.DeleteObject(bucket, key)
		return res, err
	}
	obj, err := s.MultiBucketBackend.HeadObject(bucket, key)
	if err != nil {
		return res, err
	}
	s.remember(bucket, key, objectCRC{md5: obj.Hash, size: obj.Size, crc: h.Sum64()})
	return res, nil
}

// CopyObject copies through s.PutObject rather than s3afero's, for the
// replace semantics above.
func (s *store) CopyObject(srcBucket, srcKey, dstBucket, dstKey string, meta map[string]string) (gofakes3.CopyObjectResult, error) {
	return gofakes3.CopyObject(s, srcBucket, srcKey, dstBucket, dstKey, meta)
}

// DeleteObject deletes the object and forgets its checksum.
func (s *store) DeleteObject(bucket, key string) (gofakes3.ObjectDeleteResult, error) {
	s.putMu.Lock()
	defer s.putMu.Unlock()
	return s.deleteObject(bucket, key)
}

func (s *store) deleteObject(bucket, key string) (gofakes3.ObjectDeleteResult, error) {
	s.forget(bucket, key)
	return s.MultiBucketBackend.DeleteObject(bucket, key)
}

// DeleteMulti deletes the objects and forgets their checksums.
func (s *store) DeleteMulti(bucket string, keys ...string) (gofakes3.MultiDeleteResult, error) {
	s.putMu.Lock()
	defer s.putMu.Unlock()
	for _, k := range keys {
		s.forget(bucket, k)
	}
	return s.MultiBucketBackend.DeleteMulti(bucket, keys...)
}

// conditionalInfo reports whether the object exists and its MD5.
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
	info, err := s.conditionalInfo(bucket, key)
	if err != nil {
		return false, err
	}
	return info.Exists, nil
}

// objectCRC returns the CRC-64/ECMA of the whole object, reading the file
// only if the checksum is not remembered (after a restart, for instance).
func (s *store) objectCRC(bucket, key string) (uint64, error) {
	obj, err := s.MultiBucketBackend.HeadObject(bucket, key)
	if err != nil {
		return 0, err
	}
	s.crcMu.Lock()
	c, ok := s.crcs[bucket+"/"+key]
	s.crcMu.Unlock()
	if ok && c.size == obj.Size && bytes.Equal(c.md5, obj.Hash) {
		return c.crc, nil
	}

	full, err := s.MultiBucketBackend.GetObject(bucket, key, nil)
	if err != nil {
		return 0, err
	}
	defer full.Contents.Close()
	h := crc64.New(crcTable)
	if _, err := io.Copy(h, full.Contents); err != nil {
		return 0, fmt.Errorf("read %s/%s: %w", bucket, key, err)
	}
	s.remember(bucket, key, objectCRC{md5: full.Hash, size: full.Size, crc: h.Sum64()})
	return h.Sum64(), nil
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
		obj, err := s.MultiBucketBackend.HeadObject(bucket, key)
		if err != nil {
			return nil // not an object: no metadata
		}
		info, err := d.Info()
		if err != nil {
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
