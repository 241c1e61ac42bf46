package ossfake

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3afero"
)

// metadataSizeLimit is OSS's 8 KiB limit on user metadata. gofakes3 counts
// header names and a few system headers too, so it is slightly stricter.
const metadataSizeLimit = 8 << 10

// Options configures a Server.
type Options struct {
	// Dir holds the buckets and their metadata. Required; created if missing.
	Dir string
	// Buckets are created on start if missing.
	Buckets []string
	// Logger receives gofakes3's errors and warnings, and its request log at
	// debug level. Nil discards everything.
	Logger *slog.Logger
	// Faults are armed on start, as by Server.InjectFault. Optional.
	// Default: none.
	Faults []Fault
}

// Server is a local OSS fake. It implements http.Handler; serve it with
// net/http or httptest. It starts no goroutines and needs no Close.
type Server struct {
	store *store
	s3    http.Handler
	log   *slog.Logger

	idBase uint32
	idSeq  atomic.Uint64

	faults faultSet
}

var _ http.Handler = (*Server)(nil)

// New opens (or creates) the fake's storage in opts.Dir and creates
// opts.Buckets that do not exist yet.
func New(opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("ossfake: Options.Dir is required")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("ossfake: resolve %s: %w", opts.Dir, err)
	}
	fsys, err := s3afero.FsPath(dir, s3afero.FsPathCreateAll)
	if err != nil {
		return nil, fmt.Errorf("ossfake: open %s: %w", dir, err)
	}
	backend, err := s3afero.MultiBucket(fsys)
	if err != nil {
		return nil, fmt.Errorf("ossfake: open backend in %s: %w", dir, err)
	}
	st, err := newStore(backend, dir)
	if err != nil {
		return nil, fmt.Errorf("ossfake: spool directory in %s: %w", dir, err)
	}
	for _, b := range opts.Buckets {
		if err := gofakes3.ValidateBucketName(b); err != nil {
			return nil, fmt.Errorf("ossfake: bucket %q: %w", b, err)
		}
		if err := st.CreateBucket(b); err != nil && !gofakes3.IsAlreadyExists(err) {
			return nil, fmt.Errorf("ossfake: create bucket %q: %w", b, err)
		}
	}

	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	faker := gofakes3.New(st,
		gofakes3.WithLogger(gofakesLogger{log}),
		gofakes3.WithMetadataSizeLimit(metadataSizeLimit),
	)
	s := &Server{
		store:  st,
		s3:     faker.Server(),
		log:    log,
		idBase: uint32(time.Now().Unix()),
	}
	for _, f := range opts.Faults {
		s.InjectFault(f)
	}
	return s, nil
}

// BucketDir returns the directory holding bucket's objects: the object with
// key "a/b.txt" is the file BucketDir(bucket)/a/b.txt.
func (s *Server) BucketDir(bucket string) string {
	return s.store.bucketDir(bucket)
}

// ServeHTTP serves OSS requests with path-style addressing (/bucket/key),
// after the armed faults had their say.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(headerRequestID, fmt.Sprintf("%08X%016X", s.idBase, s.idSeq.Add(1)))
	w.Header().Set("Server", serverName)

	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	op := classify(r, bucket, key)
	if f := s.faults.take(r, op, bucket, key); f != nil && s.applyFault(w, r, f, op, bucket, key) {
		return
	}
	s.serve(w, r, bucket, key, false)
}

// serve serves a request; truncate is the TruncateListing fault.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, bucket, key string, truncate bool) {
	switch {
	case r.Method == http.MethodGet && bucket == "":
		s.listBuckets(w, r)
	case r.Method == http.MethodGet && key == "" && isListRequest(r.URL.Query()):
		s.listObjects(w, r, bucket, truncate)
	case key == "":
		s.forward(&responseWriter{ResponseWriter: w, req: r, log: s.log}, r)
	default:
		s.serveObject(w, r, bucket, key)
	}
}

// forward hands the request to gofakes3.
func (s *Server) forward(w *responseWriter, r *http.Request) {
	ossToS3Meta(r.Header)
	s.s3.ServeHTTP(w, r)
	w.WriteHeader(http.StatusOK) // no-op unless gofakes3 wrote nothing
}

// gofakesLogger adapts slog to gofakes3.Logger. gofakes3 logs every request
// at info level; that is debug here.
type gofakesLogger struct{ log *slog.Logger }

func (l gofakesLogger) Print(level gofakes3.LogLevel, v ...any) {
	msg := strings.TrimSuffix(fmt.Sprintln(v...), "\n")
	switch level {
	case gofakes3.LogErr:
		l.log.Error(msg)
	case gofakes3.LogWarn:
		l.log.Warn(msg)
	default:
		l.log.Debug(msg)
	}
}
