package ossfake

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

// Fault injection. A test (or the local stack) arms a Fault with
// Server.InjectFault or Options.Faults; every request is matched against the
// armed faults, in the order they were armed, before the fake serves it, and
// the first one that matches and still has firings left acts on it.
//
// Error codes, statuses and messages of the named constructors are OSS's own,
// from Alibaba Cloud's OSS error pages ("HTTP status code 500", "HTTP status
// code 503", "HTTP status code 429"); the SDK (oss/conn.go handleResponse)
// parses the XML body into oss.ServiceError{StatusCode, Code, Message,
// RequestID, Ec}.

// Op names the OSS operation a request is, as the fake classifies it.
type Op string

// The operations a Match can name.
const (
	OpListBuckets             Op = "ListBuckets"             // GET /
	OpListObjects             Op = "ListObjects"             // GET /bucket with list parameters
	OpListObjectsV2           Op = "ListObjectsV2"           // the same with list-type=2
	OpListMultipartUploads    Op = "ListMultipartUploads"    // GET /bucket?uploads
	OpDeleteMultipleObjects   Op = "DeleteMultipleObjects"   // POST /bucket?delete
	OpBucket                  Op = "Bucket"                  // any other request on /bucket (PutBucket, GetBucketInfo, ...)
	OpPutObject               Op = "PutObject"               // PUT /bucket/key
	OpCopyObject              Op = "CopyObject"              // PUT /bucket/key with x-oss-copy-source
	OpAppendObject            Op = "AppendObject"            // POST /bucket/key?append
	OpGetObject               Op = "GetObject"               // GET /bucket/key (x-oss-process included)
	OpHeadObject              Op = "HeadObject"              // HEAD /bucket/key (GetObjectDetailedMeta, IsObjectExist... see OpGetObjectMeta)
	OpGetObjectMeta           Op = "GetObjectMeta"           // HEAD /bucket/key?objectMeta (GetObjectMeta, IsObjectExist)
	OpDeleteObject            Op = "DeleteObject"            // DELETE /bucket/key
	OpInitiateMultipartUpload Op = "InitiateMultipartUpload" // POST /bucket/key?uploads
	OpUploadPart              Op = "UploadPart"              // PUT /bucket/key?partNumber&uploadId
	OpUploadPartCopy          Op = "UploadPartCopy"          // the same with x-oss-copy-source
	OpCompleteMultipartUpload Op = "CompleteMultipartUpload" // POST /bucket/key?uploadId
	OpAbortMultipartUpload    Op = "AbortMultipartUpload"    // DELETE /bucket/key?uploadId
	OpListParts               Op = "ListParts"               // GET /bucket/key?uploadId
	OpObject                  Op = "Object"                  // any other request on /bucket/key (?acl, ?tagging, ...)
)

// classify names the operation of a request on bucket/key.
func classify(r *http.Request, bucket, key string) Op {
	q := r.URL.Query()
	m := r.Method
	switch {
	case bucket == "" && m == http.MethodGet:
		return OpListBuckets
	case bucket == "":
		return OpBucket
	case key == "":
		switch {
		case m == http.MethodGet && isListRequest(q) && q.Get("list-type") == "2":
			return OpListObjectsV2
		case m == http.MethodGet && isListRequest(q):
			return OpListObjects
		case m == http.MethodGet && q.Has("uploads"):
			return OpListMultipartUploads
		case m == http.MethodPost && q.Has("delete"):
			return OpDeleteMultipleObjects
		}
		return OpBucket
	}
	uploadID := q.Has("uploadId")
	copySource := r.Header.Get(headerCopySource) != ""
	switch m {
	case http.MethodPut:
		switch {
		case uploadID && copySource:
			return OpUploadPartCopy
		case uploadID:
			return OpUploadPart
		case copySource:
			return OpCopyObject
		case len(q) == 0:
			return OpPutObject
		}
	case http.MethodPost:
		switch {
		case q.Has("uploads"):
			return OpInitiateMultipartUpload
		case uploadID:
			return OpCompleteMultipartUpload
		case q.Has("append"):
			return OpAppendObject
		}
	case http.MethodGet:
		switch {
		case uploadID:
			return OpListParts
		case !hasObjectSubresource(q):
			return OpGetObject
		}
	case http.MethodHead:
		if q.Has("objectMeta") {
			return OpGetObjectMeta
		}
		return OpHeadObject
	case http.MethodDelete:
		if uploadID {
			return OpAbortMultipartUpload
		}
		if len(q) == 0 {
			return OpDeleteObject
		}
	}
	return OpObject
}

// objectSubresources are the query parameters that make a GET on an object
// something other than GetObject.
var objectSubresources = []string{"acl", "tagging", "symlink", "restore", "objectMeta"}

func hasObjectSubresource(q map[string][]string) bool {
	for _, k := range objectSubresources {
		if _, ok := q[k]; ok {
			return true
		}
	}
	return false
}

// Match selects the requests a Fault acts on. Every field that is set must
// match; the zero Match matches every request.
type Match struct {
	// Ops are the operations matched; empty matches any.
	Ops []Op
	// Method is the HTTP method matched; empty matches any.
	Method string
	// Bucket is the bucket matched; empty matches any (and ListBuckets).
	Bucket string
	// KeyPrefix matches object keys with this prefix; empty matches any
	// request, bucket-level ones included.
	KeyPrefix string
	// Path, if set, must match the request's URL path, "/bucket/key".
	Path *regexp.Regexp
	// Query are query parameters that must be present, with any value, e.g.
	// "uploadId", "partNumber", "x-oss-process", "continuation-token".
	Query []string
	// Func, if set, is called last, with the faults locked: it must not read
	// the request body nor arm or remove faults.
	Func func(*http.Request) bool
}

func (m *Match) matches(r *http.Request, op Op, bucket, key string) bool {
	if len(m.Ops) > 0 && !slices.Contains(m.Ops, op) {
		return false
	}
	if m.Method != "" && !strings.EqualFold(m.Method, r.Method) {
		return false
	}
	if m.Bucket != "" && m.Bucket != bucket {
		return false
	}
	if m.KeyPrefix != "" && (key == "" || !strings.HasPrefix(key, m.KeyPrefix)) {
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
	// Respond answers with Status, Code and Message in OSS's XML error
	// body (<Error><Code/><Message/><RequestId/><HostId/>[<EC/>]</Error>,
	// with x-oss-request-id, and x-oss-ec when EC is set). Nothing is stored.
	Respond Action = iota
	// Drop closes the connection without answering: a network failure after
	// the request reached the server. Nothing is stored.
	Drop
	// ServeThenDrop serves the request as usual (a PutObject stores the
	// object, a CompleteMultipartUpload completes it), then closes the
	// connection without sending the answer: the write succeeded but the
	// client cannot know.
	ServeThenDrop
	// Delay waits Fault.Delay and then serves the request as usual.
	Delay
	// TruncateListing answers ListObjects or ListObjectsV2 with the real
	// page but IsTruncated=true and no NextContinuationToken (V2) or
	// NextMarker (V1). A client that pages by those tokens re-lists the
	// first page forever; Alibaba's own OSS emulator was seen doing this.
	// Other operations it matches are served as usual.
	TruncateListing
)

// Fault is a failure to inject. Use the constructors (InternalError,
// ServiceUnavailable, Throttled, ...) and adjust fields as needed.
type Fault struct {
	Match  Match
	Action Action
	// Status, Code, Message and EC are the answer of a Respond fault.
	// Defaults: 500, "InternalError" (for a 5xx status; a 4xx answer keeps
	// the code given, which may be empty, as some OSS-compatible services
	// send), a generic message, no EC.
	Status  int
	Code    string
	Message string
	EC      string
	// Skip lets the first Skip matching requests through untouched.
	Skip int
	// Times is how many matching requests (after Skip) the fault acts on;
	// 0 acts until the fault is removed.
	Times int
	// ConsumeBody reads the whole request body before a Respond or Drop
	// fault acts, so the client has sent everything when it sees the
	// failure. Without it the fault acts as soon as the headers arrived.
	ConsumeBody bool
	// Delay is waited before the fault acts (for every Action). If the
	// client goes away meanwhile the request is dropped unserved (net/http
	// notices that only once the request body has been read).
	Delay time.Duration
}

// InternalError is OSS's 500 InternalError (OSS error page "HTTP status
// code 500").
func InternalError(m Match) Fault {
	return Fault{Match: m, Status: http.StatusInternalServerError, Code: "InternalError",
		Message: "Please contact the server administrator, oss@service.aliyun.com"}
}

// ServiceUnavailable is OSS's 503 ServiceUnavailable, the answer of a busy
// server (OSS error page "HTTP status code 503").
func ServiceUnavailable(m Match) Fault {
	return Fault{Match: m, Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable",
		Message: "Thread pool is almost full, please retry later"}
}

// Throttled is OSS's request-rate throttling answer, 429 QpsLimitExceeded
// (OSS error page "HTTP status code 429").
func Throttled(m Match) Fault {
	return Fault{Match: m, Status: http.StatusTooManyRequests, Code: "QpsLimitExceeded",
		Message: "Please reduce your request rate."}
}

// TotalQPSLimitExceeded is OSS's 503 TotalQpsLimitExceeded, the account's
// total QPS limit (OSS error page "HTTP status code 503"; the fine-grained
// EC of the QPS limit is documented as 0004-00000302, set EC to send it).
func TotalQPSLimitExceeded(m Match) Fault {
	return Fault{Match: m, Status: http.StatusServiceUnavailable, Code: "TotalQpsLimitExceeded",
		Message: "Max total qps limit is exceeded"}
}

// DropConnection closes the connection of matching requests without an
// answer.
func DropConnection(m Match) Fault { return Fault{Match: m, Action: Drop} }

// AnswerLost serves matching requests and then closes the connection
// without sending the answer.
func AnswerLost(m Match) Fault { return Fault{Match: m, Action: ServeThenDrop} }

// Slow delays matching requests by d and then serves them.
func Slow(m Match, d time.Duration) Fault { return Fault{Match: m, Action: Delay, Delay: d} }

// TruncatedWithoutToken answers matching listings with IsTruncated=true and
// no continuation token. With no Ops in m it matches ListObjectsV2.
func TruncatedWithoutToken(m Match) Fault {
	if len(m.Ops) == 0 {
		m.Ops = []Op{OpListObjectsV2}
	}
	return Fault{Match: m, Action: TruncateListing}
}

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

// faultSet holds the armed faults in arming order.
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
			f.Code = "InternalError"
		}
		if f.Message == "" {
			f.Message = "ossfake: injected fault"
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
func (s *faultSet) take(r *http.Request, op Op, bucket, key string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, inj := range s.list {
		if !inj.fault.Match.matches(r, op, bucket, key) {
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

// InjectFault arms f until it has acted Times times or is removed, and
// returns its handle. Faults are tried in arming order.
func (s *Server) InjectFault(f Fault) *Injection { return s.faults.add(f) }

// ClearFaults disarms every fault.
func (s *Server) ClearFaults() { s.faults.clear() }

// applyFault acts on r; it returns false when the request must then be
// served as usual.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, f *Fault, op Op, bucket, key string) bool {
	if f.Delay > 0 && !sleepCtx(r.Context(), f.Delay) {
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
		dropConnection(w)
	case ServeThenDrop:
		d := &discardWriter{header: http.Header{}}
		s.serve(d, r, bucket, key, false)
		drainBody(r)
		dropConnection(w)
	case TruncateListing:
		if op != OpListObjects && op != OpListObjectsV2 {
			return false
		}
		s.serve(w, r, bucket, key, true)
	default:
		if f.ConsumeBody {
			drainBody(r)
		}
		if f.EC != "" {
			w.Header().Set(headerEC, f.EC)
		}
		writeErrorEC(w, r, f.Status, f.Code, f.Message, f.EC)
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
