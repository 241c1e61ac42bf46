package ossfake

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/johannesboyne/gofakes3"
)

const (
	serverName            = "dumpflow-ossfake"
	headerRequestID       = "X-Oss-Request-Id"
	headerCRC64           = "X-Oss-Hash-Crc64ecma"
	headerForbidOverwrite = "X-Oss-Forbid-Overwrite"
	headerCopySource      = "X-Oss-Copy-Source"
	ossMetaPrefix         = "X-Oss-Meta-"
	s3MetaPrefix          = "X-Amz-Meta-"

	// minPartSize is OSS's minimum size of every multipart part but the last.
	minPartSize = 100 << 10
)

// serveObject serves requests on /bucket/key, adding the OSS dialect around
// gofakes3.
func (s *Server) serveObject(w http.ResponseWriter, r *http.Request, bucket, key string) {
	if r.Header.Get(headerCopySource) != "" {
		// Forwarded, it would be a PUT with an empty body: an empty object.
		writeError(w, r, http.StatusNotImplemented, "NotImplemented",
			"ossfake does not implement CopyObject or UploadPartCopy")
		return
	}
	q := r.URL.Query()
	uploadID := q.Get("uploadId")
	forbid := strings.EqualFold(r.Header.Get(headerForbidOverwrite), "true")
	objectCRC := func() (uint64, error) { return s.store.objectCRC(bucket, key) }
	rw := &responseWriter{ResponseWriter: w, req: r, log: s.log}

	switch {
	case r.Method == http.MethodPut && uploadID == "": // PutObject
		rw.crc = objectCRC
		if forbid {
			// The store checks If-None-Match atomically; its 412 becomes
			// OSS's 409 FileAlreadyExists.
			r.Header.Set("If-None-Match", "*")
			rw.forbidOverwrite = true
		}

	case r.Method == http.MethodPut: // UploadPart
		h := crc64.New(crcTable)
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.TeeReader(r.Body, h), r.Body}
		rw.crc = func() (uint64, error) { return h.Sum64(), nil }
		size, part := r.ContentLength, q.Get("partNumber")
		rw.onSuccess = func() { s.parts.record(uploadID, part, size) }

	case r.Method == http.MethodPost && (q.Has("uploads") || uploadID != ""):
		if forbid && !s.checkNotExists(w, r, bucket, key) {
			return
		}
		if uploadID != "" { // CompleteMultipartUpload
			if err := s.parts.checkComplete(r, uploadID); err != nil {
				writeError(w, r, http.StatusBadRequest, "EntityTooSmall", err.Error())
				return
			}
			rw.crc = objectCRC
			rw.onSuccess = func() { s.parts.forget(uploadID) }
		}

	case r.Method == http.MethodDelete && uploadID != "": // AbortMultipartUpload
		rw.onSuccess = func() { s.parts.forget(uploadID) }

	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && uploadID == "":
		// OSS reports the whole object's checksum, ranged request or not.
		if c, err := objectCRC(); err == nil {
			w.Header().Set(headerCRC64, strconv.FormatUint(c, 10))
		}
	}
	s.forward(rw, r)
}

// checkNotExists writes FileAlreadyExists and returns false if the object
// exists. Used for multipart uploads, where the check is not atomic.
func (s *Server) checkNotExists(w http.ResponseWriter, r *http.Request, bucket, key string) bool {
	exists, err := s.store.exists(bucket, key)
	switch {
	case err != nil:
		s.writeBackendError(w, r, err)
		return false
	case exists:
		writeFileAlreadyExists(w, r)
		return false
	}
	return true
}

// responseWriter rewrites gofakes3's response into the OSS dialect just
// before the status line goes out.
type responseWriter struct {
	http.ResponseWriter
	req *http.Request
	log *slog.Logger

	crc             func() (uint64, error) // checksum to report on success
	onSuccess       func()
	forbidOverwrite bool // report 412 as FileAlreadyExists

	wroteHeader bool
	discard     bool // the body was replaced by an OSS error
}

func (w *responseWriter) WriteHeader(status int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true

	h := w.Header()
	s3ToOSSMeta(h)
	h.Del("X-Amz-Request-Id")
	h.Del("X-Amz-Id-2")
	h.Set("Server", serverName) // gofakes3 says AmazonS3

	if w.forbidOverwrite && status == http.StatusPreconditionFailed {
		w.discard = true
		writeFileAlreadyExists(w.ResponseWriter, w.req)
		return
	}
	if status >= 200 && status < 300 {
		if w.crc != nil {
			if c, err := w.crc(); err != nil {
				w.log.Warn("ossfake: checksum for response", "path", w.req.URL.Path, "error", err)
			} else {
				h.Set(headerCRC64, strconv.FormatUint(c, 10))
			}
		}
		if w.onSuccess != nil {
			w.onSuccess()
		}
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if w.discard {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ossToS3Meta renames x-oss-meta-* request headers to gofakes3's
// x-amz-meta-*. Header names are canonical: net/http canonicalises them.
func ossToS3Meta(h http.Header) { renamePrefix(h, ossMetaPrefix, s3MetaPrefix) }

// s3ToOSSMeta renames x-amz-meta-* response headers back to x-oss-meta-*.
func s3ToOSSMeta(h http.Header) { renamePrefix(h, s3MetaPrefix, ossMetaPrefix) }

func renamePrefix(h http.Header, from, to string) {
	var keys []string
	for k := range h {
		if strings.HasPrefix(k, from) {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		h[to+k[len(from):]] = h[k]
		delete(h, k)
	}
}

// partSizes remembers the size of each uploaded part so that completing an
// upload can enforce OSS's minimum part size, which gofakes3 does not.
// Like gofakes3's uploads, it lives in memory.
type partSizes struct {
	mu    sync.Mutex
	sizes map[string]map[string]int64 // upload ID → part number → size
}

func (p *partSizes) record(uploadID, part string, size int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sizes[uploadID] == nil {
		p.sizes[uploadID] = make(map[string]int64)
	}
	p.sizes[uploadID][part] = size
}

func (p *partSizes) forget(uploadID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.sizes, uploadID)
}

// checkComplete reads the CompleteMultipartUpload body, puts it back for
// gofakes3, and fails if a part other than the last is below minPartSize.
// A body it cannot parse is left for gofakes3 to reject.
func (p *partSizes) checkComplete(r *http.Request, uploadID string) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return nil
	}
	var req struct {
		Parts []struct {
			PartNumber int `xml:"PartNumber"`
		} `xml:"Part"`
	}
	if xml.Unmarshal(body, &req) != nil || len(req.Parts) == 0 {
		return nil
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	for _, part := range req.Parts[:len(req.Parts)-1] {
		n := strconv.Itoa(part.PartNumber)
		if size, ok := p.sizes[uploadID][n]; ok && size < minPartSize {
			return fmt.Errorf("part %s is %d bytes; every part but the last must be at least 100 KiB", n, size)
		}
	}
	return nil
}

type errorXML struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	RequestID string   `xml:"RequestId"`
	HostID    string   `xml:"HostId"`
}

// writeError writes an OSS-style XML error. HEAD responses carry no body.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	body, _ := xml.MarshalIndent(errorXML{
		Code:      code,
		Message:   msg,
		RequestID: w.Header().Get(headerRequestID),
		HostID:    r.Host,
	}, "", "  ")
	_, _ = io.WriteString(w, xml.Header)
	_, _ = w.Write(body)
}

func writeFileAlreadyExists(w http.ResponseWriter, r *http.Request) {
	writeError(w, r, http.StatusConflict, "FileAlreadyExists",
		"The object you specified already exists and can not be overwritten.")
}

// writeBackendError writes a gofakes3 error with its S3 code, which OSS
// shares for the errors the backend returns (NoSuchBucket, NoSuchKey, ...).
func (s *Server) writeBackendError(w http.ResponseWriter, r *http.Request, err error) {
	var coded interface{ ErrorCode() gofakes3.ErrorCode }
	if errors.As(err, &coded) {
		code := coded.ErrorCode()
		writeError(w, r, code.Status(), string(code), code.Message())
		return
	}
	s.log.Error("ossfake: backend", "path", r.URL.Path, "error", err)
	writeError(w, r, http.StatusInternalServerError, "InternalError", "ossfake: "+err.Error())
}

// writeXML writes v as an XML document.
func writeXML(w http.ResponseWriter, r *http.Request, v any) {
	body, err := xml.MarshalIndent(v, "", "  ")
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, "InternalError", "ossfake: encode response: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	_, _ = io.WriteString(w, xml.Header)
	_, _ = w.Write(body)
}
