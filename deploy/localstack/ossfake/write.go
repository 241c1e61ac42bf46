package ossfake

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/johannesboyne/gofakes3"
)

// The write paths, PutObject, UploadPart and CompleteMultipartUpload, are
// served here rather than by gofakes3, which would hash every body once
// more and keep parts in memory. The responses are the ones gofakes3 gave
// (ETag, the same XML), with x-oss-hash-crc64ecma taken from the write
// itself and OSS XML errors. See store.put and store.complete.

// maxCompleteBody bounds a CompleteMultipartUpload body: 10,000 parts of
// about 100 bytes each.
const maxCompleteBody = 4 << 20

// fastPut reports whether Server.putObject serves the PutObject r. The
// rest, which the OSS SDK does not send (S3 conditional headers,
// aws-chunked bodies, S3 copies), goes to gofakes3 and store.PutObject.
// Unlike gofakes3, putObject accepts a body without Content-Length (sent
// chunked), as OSS does.
func fastPut(r *http.Request) bool {
	h := r.Header
	return h.Get("If-Match") == "" && h.Get("If-None-Match") == "" &&
		h.Get("X-Amz-Copy-Source") == "" &&
		!strings.HasPrefix(h.Get("X-Amz-Content-Sha256"), "STREAMING-")
}

// putObject serves PutObject: the body is spooled and hashed with no lock
// held, then renamed into place; x-oss-forbid-overwrite is checked
// atomically with the rename.
func (s *Server) putObject(w http.ResponseWriter, r *http.Request, bucket, key string, forbid bool) {
	if ok, err := s.store.BucketExists(bucket); err != nil || !ok {
		if err == nil {
			err = gofakes3.BucketNotFound(bucket)
		}
		s.writeBackendError(w, r, err)
		return
	}
	ossToS3Meta(r.Header)
	meta, err := metadataHeaders(r.Header, time.Now())
	if err != nil {
		s.writeBackendError(w, r, err)
		return
	}
	if len(key) > gofakes3.KeySizeLimit {
		s.writeBackendError(w, r, gofakes3.ResourceError(gofakes3.ErrKeyTooLong, key))
		return
	}
	wantMD5, err := contentMD5(r.Header)
	if err != nil {
		s.writeBackendError(w, r, err)
		return
	}
	var conditions *gofakes3.PutConditions
	if forbid {
		star := "*"
		conditions = &gofakes3.PutConditions{IfNoneMatch: &star}
	}

	sp, err := s.store.put(bucket, key, meta, r.Body, r.ContentLength, wantMD5, conditions)
	switch {
	case forbid && gofakes3.HasErrorCode(err, gofakes3.ErrPreconditionFailed):
		writeFileAlreadyExists(w, r)
		return
	case err != nil:
		s.writeBackendError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("ETag", `"`+hex.EncodeToString(sp.md5)+`"`)
	h.Set(headerCRC64, strconv.FormatUint(sp.crc, 10))
	w.WriteHeader(http.StatusOK)
}

// uploadPart serves UploadPart: the part is spooled to a file and hashed
// with no lock held.
func (s *Server) uploadPart(w http.ResponseWriter, r *http.Request, bucket, key, uploadID string) {
	n, err := strconv.ParseInt(r.URL.Query().Get("partNumber"), 10, 0)
	if err != nil || n <= 0 || n > gofakes3.MaxUploadPartNumber {
		s.writeBackendError(w, r, gofakes3.ErrInvalidPart)
		return
	}
	size, err := strconv.ParseInt(r.Header.Get("Content-Length"), 10, 64)
	if err != nil || size <= 0 {
		s.writeBackendError(w, r, gofakes3.ErrMissingContentLength)
		return
	}
	wantMD5, err := contentMD5(r.Header)
	if err != nil {
		s.writeBackendError(w, r, err)
		return
	}
	p, err := s.store.uploadPart(bucket, key, gofakes3.UploadID(uploadID), int(n), size, r.Body, wantMD5)
	if err != nil {
		s.writeBackendError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("ETag", p.etag)
	h.Set(headerCRC64, strconv.FormatUint(p.crc, 10))
	w.WriteHeader(http.StatusOK)
}

// completeUpload serves CompleteMultipartUpload: the parts' files are
// concatenated and their CRC-64s combined, not re-read; with
// x-oss-forbid-overwrite the check is atomic with the rename.
func (s *Server) completeUpload(w http.ResponseWriter, r *http.Request, bucket, key, uploadID string, forbid bool) {
	if forbid && !s.checkNotExists(w, r, bucket, key) {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxCompleteBody))
	if err != nil {
		s.writeBackendError(w, r, err)
		return
	}
	var in gofakes3.CompleteMultipartUploadRequest
	if err := xml.Unmarshal(body, &in); err != nil {
		s.writeBackendError(w, r, gofakes3.ErrorMessage(gofakes3.ErrMalformedXML, err.Error()))
		return
	}

	res, err := s.store.complete(bucket, key, gofakes3.UploadID(uploadID), in.Parts, forbid)
	var small *errEntityTooSmall
	switch {
	case errors.As(err, &small):
		writeError(w, r, http.StatusBadRequest, "EntityTooSmall", small.msg)
		return
	case forbid && gofakes3.HasErrorCode(err, gofakes3.ErrPreconditionFailed):
		writeFileAlreadyExists(w, r)
		return
	case err != nil:
		s.writeBackendError(w, r, err)
		return
	}

	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	w.Header().Set(headerCRC64, strconv.FormatUint(res.crc, 10))
	writeXML(w, r, &gofakes3.CompleteMultipartUploadResult{
		Location: scheme + "://" + r.Host + "/" + bucket + "/" + key,
		Bucket:   bucket,
		Key:      key,
		ETag:     res.etag,
	})
}

// metadataHeaders is gofakes3's: the object's stored headers (x-amz-*,
// which includes the renamed x-oss-meta-*, and the content headers) plus
// Last-Modified, within the metadata size limit.
func metadataHeaders(h http.Header, at time.Time) (map[string]string, error) {
	meta := make(map[string]string)
	size := 0
	for k, v := range h {
		if len(v) > 0 && (strings.HasPrefix(k, "X-Amz-") ||
			k == "Content-Type" || k == "Content-Disposition" || k == "Content-Encoding") {
			meta[k] = v[0]
			size += len(k) + len(v[0])
		}
	}
	meta["Last-Modified"] = at.UTC().Format("Mon, 02 Jan 2006 15:04:05") + " GMT"
	size += len("Last-Modified") + len(meta["Last-Modified"])
	if size > metadataSizeLimit {
		return nil, gofakes3.ErrMetadataTooLarge
	}
	return meta, nil
}

// contentMD5 returns the request's Content-MD5, or nil if it has none.
func contentMD5(h http.Header) ([]byte, error) {
	v, ok := h[textproto.CanonicalMIMEHeaderKey("Content-MD5")]
	if !ok {
		return nil, nil
	}
	if len(v) == 0 || v[0] == "" {
		return nil, gofakes3.ErrInvalidDigest
	}
	sum, err := base64.StdEncoding.DecodeString(v[0])
	if err != nil || len(sum) != 16 {
		return nil, gofakes3.ErrInvalidDigest
	}
	return sum, nil
}
