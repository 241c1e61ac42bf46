package ossfake

import (
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/johannesboyne/gofakes3"
)

const (
	serverName            = "dumpflow-ossfake"
	headerRequestID       = "X-Oss-Request-Id"
	headerCRC64           = "X-Oss-Hash-Crc64ecma"
	headerForbidOverwrite = "X-Oss-Forbid-Overwrite"
	headerCopySource      = "X-Oss-Copy-Source"
	headerEC              = "X-Oss-Ec"
	ossMetaPrefix         = "X-Oss-Meta-"
	s3MetaPrefix          = "X-Amz-Meta-"
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

	// GetObject and HeadObject need nothing here: the store adds the
	// version's x-oss-hash-crc64ecma to the object's headers.
	switch {
	case r.Method == http.MethodPut && uploadID == "": // PutObject
		if fastPut(r) {
			s.putObject(w, r, bucket, key, forbid)
			return
		}
		rw.crc = objectCRC
		if forbid {
			// The store checks If-None-Match atomically; its 412 becomes
			// OSS's 409 FileAlreadyExists.
			r.Header.Set("If-None-Match", "*")
			rw.forbidOverwrite = true
		}

	case r.Method == http.MethodPut: // UploadPart
		s.uploadPart(w, r, bucket, key, uploadID)
		return

	case r.Method == http.MethodPost && uploadID != "": // CompleteMultipartUpload
		s.completeUpload(w, r, bucket, key, uploadID, forbid)
		return

	case r.Method == http.MethodPost && q.Has("uploads"): // InitiateMultipartUpload
		if forbid && !s.checkNotExists(w, r, bucket, key) {
			return
		}

	}
	s.forward(rw, r)
}

// checkNotExists writes FileAlreadyExists and returns false if the object
// exists. It is not atomic: it refuses InitiateMultipartUpload early, and
// CompleteMultipartUpload checks again atomically (store.complete).
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
	forbidOverwrite bool                   // report 412 as FileAlreadyExists

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

type errorXML struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	RequestID string   `xml:"RequestId"`
	HostID    string   `xml:"HostId"`
	EC        string   `xml:"EC,omitempty"`
}

// writeError writes an OSS-style XML error. HEAD responses carry no body.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	writeErrorEC(w, r, status, code, msg, "")
}

// writeErrorEC is writeError with OSS's fine-grained error code, EC, in the
// body (the caller sets the x-oss-ec header).
func writeErrorEC(w http.ResponseWriter, r *http.Request, status int, code, msg, ec string) {
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
		EC:        ec,
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
	if errors.As(err, &coded) && coded.ErrorCode() != gofakes3.ErrInternal {
		code := coded.ErrorCode()
		msg := code.Message()
		// gofakes3's errors print as "Code: message".
		if m, ok := strings.CutPrefix(coded.(error).Error(), string(code)+": "); ok && m != "" {
			msg = m
		}
		writeError(w, r, code.Status(), string(code), msg)
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
