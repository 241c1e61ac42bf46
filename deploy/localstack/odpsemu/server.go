package odpsemu

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures the emulator.
type Options struct {
	// Dir holds the persisted state (state.json and row files). Required. A new Server on
	// the same Dir resumes where the previous one stopped.
	Dir string
	// Projects are created on start if missing. Optional. Default: ["dumpflow"].
	Projects []string
	// AccessKeyID and AccessKeySecret, when AccessKeyID is set, make every request carry a
	// valid ODPS signature for this key pair; others are refused with 403. Optional. Default:
	// no authentication.
	AccessKeyID, AccessKeySecret string
	// SessionTTL is how long upload and download sessions stay usable. Optional. Default: 24h,
	// the service's session lifetime.
	SessionTTL time.Duration
	// Now is the clock used for session expiry and timestamps. Optional. Default: time.Now.
	Now func() time.Time
	// Logger receives one debug record per request and errors. Optional. Default: discard.
	Logger *slog.Logger
	// Quotas, when set, enables the tunnel's per-table quotas (QuotaOptions; its zero value
	// has the service's limits). They use Now. Optional. Default: no quotas.
	Quotas *QuotaOptions
	// Faults are armed on start, as by Server.InjectFault. Optional. Default: none.
	Faults []Fault
}

// Server is the emulator. It implements http.Handler: requests under /api are the REST API
// (use http://host:port/api as the odps endpoint), all others are the tunnel (use
// http://host:port as the tunnel endpoint, or let the SDK discover it).
type Server struct {
	opts   Options
	log    *slog.Logger
	store  *store
	closed atomic.Bool
	once   sync.Once
	quotas *quotas
	faults faultSet
}

// New opens (or creates) the state in opts.Dir and returns a ready Server.
func New(opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("odpsemu: Options.Dir is required")
	}
	if len(opts.Projects) == 0 {
		opts.Projects = []string{"dumpflow"}
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	st, err := openStore(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("odpsemu: %w", err)
	}
	s := &Server{opts: opts, log: opts.Logger, store: st, quotas: newQuotas(opts.Quotas, opts.Now)}
	for _, f := range opts.Faults {
		s.InjectFault(f)
	}

	now := s.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, name := range opts.Projects {
		if st.st.Projects[name] == nil {
			st.st.Projects[name] = &projectMeta{Name: name, Created: now, Tables: map[string]*tableMeta{}}
		}
	}
	st.pruneLocked(now)
	st.gcLocked(true)
	if err := st.saveLocked(); err != nil {
		return nil, fmt.Errorf("odpsemu: %w", err)
	}
	return s, nil
}

// Close saves the state and makes the Server refuse further requests. The caller stops the
// HTTP server serving it. Close is safe to call more than once.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		s.closed.Store(true)
		s.store.mu.Lock()
		defer s.store.mu.Unlock()
		if serr := s.store.saveLocked(); serr != nil {
			err = fmt.Errorf("odpsemu: close: %w", serr)
		}
	})
	return err
}

func (s *Server) now() time.Time { return s.opts.Now() }

func (s *Server) owner() string {
	if s.opts.AccessKeyID != "" {
		return "ALIYUN$" + s.opts.AccessKeyID
	}
	return "ALIYUN$odpsemu"
}

// call is one request being served.
type call struct {
	w      *statusRecorder
	r      *http.Request
	reqID  string
	tunnel bool // answer errors in the tunnel's JSON form rather than the REST API's XML
}

// ServeHTTP implements http.Handler: it authenticates the request and dispatches it to the
// REST API or the tunnel.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	c := &call{w: &statusRecorder{ResponseWriter: w, status: http.StatusOK}, r: r, reqID: newSessionID(s.now())}
	c.w.Header().Set("x-odps-request-id", c.reqID)
	defer func() {
		s.log.Debug("odpsemu request", "method", r.Method, "url", r.URL.String(), "status", c.w.status,
			"code", c.w.code, "request_id", c.reqID, "duration", time.Since(start))
	}()

	path, isREST := strings.CutPrefix(r.URL.Path, "/api")
	if isREST && path != "" && !strings.HasPrefix(path, "/") {
		path, isREST = r.URL.Path, false // e.g. /apis/...: not the REST prefix
	}
	rt := &route{segs: strings.Split(strings.Trim(path, "/"), "/")}
	var table string
	rt.project, table, rt.isTable = tableRoute(rt.segs)
	rt.table = strings.ToLower(table)
	rt.tunnel = !isREST || (rt.isTable && isTunnelQuery(r))
	rt.op = classify(r, rt)
	c.tunnel = rt.tunnel

	switch {
	case s.closed.Load():
		s.fail(c, newAPIError(http.StatusServiceUnavailable, codeInternalServerError, "the odpsemu emulator is closed"))
		return
	case !s.authenticate(r):
		s.fail(c, s.authError(c))
		return
	}
	if rt.op == OpCommitUploadSession {
		release, aerr := s.quotas.beginCommit(rt.project, rt.table)
		if aerr != nil {
			s.fail(c, aerr)
			return
		}
		defer release()
	}
	serve := func(c *call) { s.dispatch(c, rt) }
	if f := s.faults.take(r, rt); f != nil && s.applyFault(w, c, f, serve) {
		return
	}
	serve(c)
}

// dispatch serves an authenticated request.
func (s *Server) dispatch(c *call, rt *route) {
	switch {
	case rt.tunnel && !rt.isTable:
		s.fail(c, newAPIError(http.StatusBadRequest, codeInvalidArgument,
			"resource %s is not supported by the odpsemu tunnel emulator (only /projects/<p>/tables/<t>)", c.r.URL.Path))
	case rt.tunnel:
		s.serveTunnel(c, rt.project, rt.table)
	default:
		s.serveREST(c, rt.segs)
	}
}

func (s *Server) authError(c *call) *apiError {
	if c.tunnel {
		return newAPIError(http.StatusForbidden, codeUnauthorized, "The request authorization header is invalid or missing")
	}
	return newAPIError(http.StatusForbidden, codeSignatureNotMatch, "ODPS-0410042:Invalid signature value - User signature dose not match")
}

// tableRoute recognizes /projects/<p>/tables/<t> and /projects/<p>/schemas/<s>/tables/<t>.
// The schema level is accepted and ignored: the emulator has one schema per project.
func tableRoute(segs []string) (project, table string, ok bool) {
	switch {
	case len(segs) == 4 && segs[0] == "projects" && segs[2] == "tables":
		return segs[1], segs[3], true
	case len(segs) == 6 && segs[0] == "projects" && segs[2] == "schemas" && segs[4] == "tables":
		return segs[1], segs[5], true
	}
	return "", "", false
}

// isTunnelQuery tells tunnel session requests on a table resource from REST table requests.
func isTunnelQuery(r *http.Request) bool {
	q := r.URL.Query()
	return q.Has("uploads") || q.Has("uploadid") || q.Has("downloads") || q.Has("downloadid")
}

// fail answers with err. An error that is not an *apiError is an internal error. The rest of
// a request body is read first so that a streaming client (the SDK uploads blocks through a
// pipe) gets the response rather than a broken pipe.
func (s *Server) fail(c *call, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		s.log.Error("odpsemu internal error", "method", c.r.Method, "url", c.r.URL.String(), "err", err)
		ae = newAPIError(http.StatusInternalServerError, codeInternalServerError, "Service internal error: %v", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(c.r.Body, 1<<30))
	c.w.code = ae.Code
	if c.tunnel {
		writeTunnelError(c.w, c.reqID, ae)
	} else {
		writeRESTError(c.w, c.reqID, c.r.Host, ae)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	code   string
}

func (w *statusRecorder) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusRecorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func gmt(t time.Time) string { return t.UTC().Format(http.TimeFormat) }
