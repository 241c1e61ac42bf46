package odpsemu

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Fault injection. A test (or the local stack) arms a Fault with Server.InjectFault or
// Options.Faults. Every authenticated request is matched against the armed faults, in arming
// order, after the concurrent-commit quota and before anything else is done; the first fault
// that matches and still has firings left acts on it. Error answers use the surface's own
// body: the tunnel's JSON ({"Code","Message","RequestId"}) or the REST API's XML
// (<Error><Code/><Message/><RequestId/><HostId/></Error>), which the SDK parses into
// restclient.HttpError.ErrorMessage (odps/restclient/error.go).

// Op names the operation of a request, as the emulator classifies it.
type Op string

// Tunnel operations (tunnel.go lists the requests).
const (
	OpCreateUploadSession   Op = "CreateUploadSession"   // POST ?uploads
	OpGetUploadSession      Op = "GetUploadSession"      // GET ?uploadid: attach, Load, and the reload Commit does first
	OpUploadBlock           Op = "UploadBlock"           // PUT ?uploadid&blockid
	OpCommitUploadSession   Op = "CommitUploadSession"   // POST ?uploadid
	OpCreateDownloadSession Op = "CreateDownloadSession" // POST ?downloads
	OpGetDownloadSession    Op = "GetDownloadSession"    // GET ?downloadid
	OpDownloadData          Op = "DownloadData"          // GET ?downloadid&data
	OpTunnelOther           Op = "TunnelOther"           // any other tunnel request
)

// REST operations (rest.go lists the requests).
const (
	OpGetProject        Op = "GetProject"        // GET /projects/<p>
	OpGetTunnelEndpoint Op = "GetTunnelEndpoint" // GET /projects/<p>/tunnel
	OpListTables        Op = "ListTables"        // GET /projects/<p>/tables
	OpGetTable          Op = "GetTable"          // GET /projects/<p>/tables/<t>
	OpListPartitions    Op = "ListPartitions"    // GET /projects/<p>/tables/<t>?partitions
	OpGetPartition      Op = "GetPartition"      // GET /projects/<p>/tables/<t>?partition=
	OpCreateInstance    Op = "CreateInstance"    // POST /projects/<p>/instances (SQL: DDL)
	OpGetInstance       Op = "GetInstance"       // GET /projects/<p>/instances/<id>
	OpStopInstance      Op = "StopInstance"      // PUT /projects/<p>/instances/<id>
	OpRESTOther         Op = "RESTOther"         // any other REST request
)

// route is where a request goes.
type route struct {
	segs    []string
	project string
	table   string // lower-cased
	isTable bool
	tunnel  bool
	op      Op
}

func classify(r *http.Request, rt *route) Op {
	q := r.URL.Query()
	m := r.Method
	segs := rt.segs
	if rt.tunnel {
		switch {
		case !rt.isTable:
		case m == http.MethodPost && q.Has("uploads"):
			return OpCreateUploadSession
		case m == http.MethodPut && q.Has("uploadid"):
			return OpUploadBlock
		case m == http.MethodGet && q.Has("uploadid"):
			return OpGetUploadSession
		case m == http.MethodPost && q.Has("uploadid"):
			return OpCommitUploadSession
		case m == http.MethodPost && q.Has("downloads"):
			return OpCreateDownloadSession
		case m == http.MethodGet && q.Has("downloadid") && q.Has("data"):
			return OpDownloadData
		case m == http.MethodGet && q.Has("downloadid"):
			return OpGetDownloadSession
		}
		return OpTunnelOther
	}
	switch {
	case len(segs) == 2 && m == http.MethodGet:
		return OpGetProject
	case len(segs) == 3 && segs[2] == "tunnel" && m == http.MethodGet:
		return OpGetTunnelEndpoint
	case len(segs) == 3 && segs[2] == "tables" && m == http.MethodGet:
		return OpListTables
	case rt.isTable && m == http.MethodGet && q.Has("partitions"):
		return OpListPartitions
	case rt.isTable && m == http.MethodGet && q.Has("partition"):
		return OpGetPartition
	case rt.isTable && m == http.MethodGet:
		return OpGetTable
	case len(segs) == 3 && segs[2] == "instances" && m == http.MethodPost:
		return OpCreateInstance
	case len(segs) == 4 && segs[2] == "instances" && m == http.MethodGet:
		return OpGetInstance
	case len(segs) == 4 && segs[2] == "instances" && m == http.MethodPut:
		return OpStopInstance
	}
	return OpRESTOther
}

// Match selects the requests a Fault acts on. Every field that is set must match; the zero
// Match matches every request.
type Match struct {
	// Ops are the operations matched; empty matches any.
	Ops []Op
	// Method is the HTTP method matched; empty matches any.
	Method string
	// Project and Table are matched exactly (Table case-insensitively); empty matches any.
	Project, Table string
	// PathPrefix matches the URL path ("/api/projects/p/tables/t" or "/projects/p/tables/t").
	PathPrefix string
	// Path, if set, must match the URL path.
	Path *regexp.Regexp
	// Query are query parameters that must be present, with any value, e.g. "blockid",
	// "partition", "overwrite", "create_partition", "data".
	Query []string
	// Func, if set, is called last, with the faults locked: it must not read the request body
	// nor arm or remove faults.
	Func func(*http.Request) bool
}

func (m *Match) matches(r *http.Request, rt *route) bool {
	if len(m.Ops) > 0 && !slices.Contains(m.Ops, rt.op) {
		return false
	}
	if m.Method != "" && !strings.EqualFold(m.Method, r.Method) {
		return false
	}
	if m.Project != "" && m.Project != rt.project {
		return false
	}
	if m.Table != "" && !strings.EqualFold(m.Table, rt.table) {
		return false
	}
	if m.PathPrefix != "" && !strings.HasPrefix(r.URL.Path, m.PathPrefix) {
		return false
	}
	if m.Path != nil && !m.Path.MatchString(r.URL.Path) {
		return false
	}
	if len(m.Query) > 0 {
		q := r.URL.Query()
		for _, k := range m.Query {
			if !q.Has(k) {
				return false
			}
		}
	}
	return m.Func == nil || m.Func(r)
}

// Action is what a Fault does to a request it matches.
type Action int

const (
	// Respond answers with Status, Code and Message in the surface's error body. Nothing
	// changes on the server.
	Respond Action = iota
	// Drop closes the connection without answering: a network failure after the request
	// reached the server. Nothing changes on the server.
	Drop
	// ServeThenDrop serves the request as usual (a commit commits, a block is stored), then
	// closes the connection without sending the answer: the operation succeeded but the client
	// cannot know.
	ServeThenDrop
	// Delay waits Fault.Delay, then serves the request as usual.
	Delay
)

// Fault is a failure to inject. Use the constructors and adjust fields as needed.
type Fault struct {
	Match  Match
	Action Action
	// Status, Code and Message are the answer of a Respond fault. Defaults: 500,
	// InternalServerError (for a 5xx status; a 4xx answer keeps the code given, which may be
	// empty), the service's message.
	Status  int
	Code    string
	Message string
	// Skip lets the first Skip matching requests through untouched.
	Skip int
	// Times is how many matching requests (after Skip) the fault acts on; 0 acts until the
	// fault is removed.
	Times int
	// ConsumeBody reads the whole request body before a Respond or Drop fault acts, so a
	// block's writer has sent everything when it sees the failure. Without it the fault acts
	// as soon as the headers arrived, and the SDK's streaming block writer (an io.Pipe) may
	// report a closed pipe rather than the answer.
	ConsumeBody bool
	// Delay is waited before the fault acts (for every Action). If the client goes away
	// meanwhile the request is dropped unserved (net/http notices that only once the request
	// body has been read).
	Delay time.Duration
}

// Messages of the service's error list ("Tunnel error messages"; the REST API's common
// errors use the same codes).
const (
	msgInternalServerError = "Service internal error, please try again later."
	msgServiceUnavailable  = "Service is temporarily unavailable, Please try again later."
	msgFlowExceeded        = "Your flow quota is exceeded"
)

// InternalServerError is the service's 500 InternalServerError.
func InternalServerError(m Match) Fault {
	return Fault{Match: m, Status: http.StatusInternalServerError, Code: codeInternalServerError, Message: msgInternalServerError}
}

// ServiceUnavailable is the service's 503 ServiceUnavailable.
func ServiceUnavailable(m Match) Fault {
	return Fault{Match: m, Status: http.StatusServiceUnavailable, Code: codeServiceUnavailable, Message: msgServiceUnavailable}
}

// FlowExceeded is the tunnel's throttling answer, 429 FlowExceeded: the status is the one
// the Java SDK names "Flow Exceeded (Quota Exceeded/Slot Exceeded)" for the tunnel
// (commons/transport/HttpStatus.java) and retries without limit (TunnelRetryHandler), the code
// and message the tunnel error list's. On the REST API the emulator answers the same (*).
func FlowExceeded(m Match) Fault {
	return Fault{Match: m, Status: http.StatusTooManyRequests, Code: codeFlowExceeded, Message: msgFlowExceeded}
}

// DropConnection closes the connection of matching requests without an answer.
func DropConnection(m Match) Fault { return Fault{Match: m, Action: Drop} }

// AnswerLost serves matching requests and then closes the connection without the answer.
func AnswerLost(m Match) Fault { return Fault{Match: m, Action: ServeThenDrop} }

// CommitAnswerLost commits matching upload sessions and loses the answer: AnswerLost of
// commit requests.
func CommitAnswerLost(m Match) Fault {
	m.Ops = []Op{OpCommitUploadSession}
	return AnswerLost(m)
}

// Slow delays matching requests by d and then serves them.
func Slow(m Match, d time.Duration) Fault { return Fault{Match: m, Action: Delay, Delay: d} }

// Injection is an armed Fault.
type Injection struct {
	fault Fault
	set   *faultSet

	mu      sync.Mutex
	matched int
	fired   int
	done    bool          // removed or out of firings
	changed chan struct{} // closed and replaced whenever fired changes
}

// Remove disarms the fault. Requests it is acting on are not affected.
func (i *Injection) Remove() {
	i.set.remove(i)
	i.mu.Lock()
	i.done = true
	i.mu.Unlock()
}

// Matched is the number of requests the fault matched, skipped ones included.
func (i *Injection) Matched() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.matched
}

// Fired is the number of requests the fault acted on.
func (i *Injection) Fired() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.fired
}

// Wait blocks until the fault has acted on n requests or ctx is done.
func (i *Injection) Wait(ctx context.Context, n int) error {
	for {
		i.mu.Lock()
		fired, ch := i.fired, i.changed
		i.mu.Unlock()
		if fired >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

type faultSet struct {
	mu   sync.Mutex
	list []*Injection
}

func (s *faultSet) add(f Fault) *Injection {
	if f.Action == Respond {
		if f.Status == 0 {
			f.Status = http.StatusInternalServerError
		}
		if f.Code == "" && f.Status >= 500 {
			f.Code = codeInternalServerError
		}
		if f.Message == "" {
			f.Message = msgInternalServerError
		}
	}
	inj := &Injection{fault: f, set: s, changed: make(chan struct{})}
	s.mu.Lock()
	s.list = append(s.list, inj)
	s.mu.Unlock()
	return inj
}

func (s *faultSet) remove(inj *Injection) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = slices.DeleteFunc(s.list, func(x *Injection) bool { return x == inj })
}

func (s *faultSet) clear() {
	s.mu.Lock()
	list := s.list
	s.list = nil
	s.mu.Unlock()
	for _, inj := range list {
		inj.mu.Lock()
		inj.done = true
		inj.mu.Unlock()
	}
}

// take returns the fault that acts on r, if any, and counts the firing.
func (s *faultSet) take(r *http.Request, rt *route) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, inj := range s.list {
		if !inj.fault.Match.matches(r, rt) {
			continue
		}
		inj.mu.Lock()
		if inj.done {
			inj.mu.Unlock()
			continue
		}
		inj.matched++
		if inj.matched <= inj.fault.Skip {
			inj.mu.Unlock()
			continue
		}
		inj.fired++
		if inj.fault.Times > 0 && inj.fired >= inj.fault.Times {
			inj.done = true
			s.list = slices.DeleteFunc(s.list, func(x *Injection) bool { return x == inj })
		}
		close(inj.changed)
		inj.changed = make(chan struct{})
		f := inj.fault
		inj.mu.Unlock()
		return &f
	}
	return nil
}

// InjectFault arms f until it has acted Times times or is removed, and returns its handle.
// Faults are tried in arming order.
func (s *Server) InjectFault(f Fault) *Injection { return s.faults.add(f) }

// ClearFaults disarms every fault.
func (s *Server) ClearFaults() { s.faults.clear() }

// applyFault acts on the request of c; serve serves a call. It returns false when the request
// must then be served as usual.
func (s *Server) applyFault(w http.ResponseWriter, c *call, f *Fault, serve func(*call)) bool {
	r := c.r
	if f.Delay > 0 && !sleepCtx(r.Context(), f.Delay) {
		c.w.code = "(client gone)"
		dropConnection(w)
		return true
	}
	switch f.Action {
	case Delay:
		return false
	case Drop:
		if f.ConsumeBody {
			drainBody(r)
		}
		c.w.status, c.w.code = 0, "(dropped)"
		dropConnection(w)
	case ServeThenDrop:
		lost := &call{w: &statusRecorder{ResponseWriter: &discardWriter{header: http.Header{}}, status: http.StatusOK},
			r: r, reqID: c.reqID, tunnel: c.tunnel}
		serve(lost)
		drainBody(r)
		c.w.status, c.w.code = lost.w.status, "(answer lost)"
		dropConnection(w)
	default:
		if f.ConsumeBody {
			drainBody(r)
		}
		ae := &apiError{Status: f.Status, Code: f.Code, Message: f.Message}
		c.w.code = ae.Code
		if c.tunnel {
			writeTunnelError(c.w, c.reqID, ae)
		} else {
			writeRESTError(c.w, c.reqID, r.Host, ae)
		}
	}
	return true
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func drainBody(r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }

// dropConnection closes the client connection without an answer.
func dropConnection(w http.ResponseWriter) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		_ = conn.Close()
		return
	}
	// Not hijackable (HTTP/2): abort the stream without an answer.
	panic(http.ErrAbortHandler)
}

// discardWriter swallows an answer that is never sent.
type discardWriter struct {
	header http.Header
}

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}
