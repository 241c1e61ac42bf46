package maxcompute

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/aliyun/aliyun-odps-go-sdk/odps/restclient"

	"github.com/dumpflow/dumpflow/sink"
)

// Permanent error types this package returns (sink.PermanentError.Type).
const (
	ErrAccessDenied    = "AccessDenied"    // bad or unauthorized credentials
	ErrNoSuchProject   = "NoSuchProject"   // the project does not exist
	ErrNoSuchTable     = "NoSuchTable"     // the table does not exist and createTable is off
	ErrSchemaMismatch  = "SchemaMismatch"  // the table's columns do not fit mode and format
	ErrSessionExpired  = "SessionExpired"  // the upload session is gone: prepare the batch again
	ErrTooManyBlocks   = "TooManyBlocks"   // a session would need more than MaxBlocks blocks
	ErrNotPrepared     = "NotPrepared"     // Begin without a Prepared covering the record
	ErrInvalidSpec     = "InvalidSpec"     // the spec or an option is unusable
	ErrNoSuchPartition = "NoSuchPartition" // reading a partition that does not exist
	ErrCreateTable     = "CreateTableFailed"
)

// serviceError is an error answer of the REST API or the tunnel, on one
// line.
type serviceError struct {
	status    int
	code      string
	message   string
	requestID string
	err       error
}

func (e *serviceError) Error() string {
	var b strings.Builder
	if e.code != "" {
		b.WriteString(e.code)
		if e.message != "" {
			b.WriteString(": " + e.message)
		}
	} else {
		b.WriteString("HTTP error")
	}
	fmt.Fprintf(&b, " (HTTP %d", e.status)
	if e.requestID != "" {
		b.WriteString(", request " + e.requestID)
	}
	b.WriteString(")")
	return b.String()
}

func (e *serviceError) Unwrap() error { return e.err }

// asServiceError finds the HTTP error answer in err.
func asServiceError(err error) (*serviceError, bool) {
	var se *serviceError
	if errors.As(err, &se) {
		return se, true
	}
	var he restclient.HttpError
	if !errors.As(err, &he) {
		var hp *restclient.HttpError
		if !errors.As(err, &hp) || hp == nil {
			return nil, false
		}
		he = *hp
	}
	se = &serviceError{status: he.StatusCode, requestID: he.RequestId, err: err}
	if m := he.ErrorMessage; m != nil {
		se.code, se.message = m.ErrorCode, strings.TrimSpace(m.Message)
		if se.requestID == "" {
			se.requestID = m.RequestId
		}
	}
	if se.code == "" && se.message == "" {
		se.message = strings.TrimSpace(string(he.Body))
	}
	return se, true
}

// errorCode is the service's error code in err, or "".
func errorCode(err error) string {
	if se, ok := asServiceError(err); ok {
		return se.code
	}
	return ""
}

// isNotFound reports an HTTP 404 answer.
func isNotFound(err error) bool {
	se, ok := asServiceError(err)
	return ok && se.status == 404
}

// permanentType names the permanent failure err is, or "" when a retry may
// succeed (network errors, 5xx, throttling, and anything unknown).
func permanentType(err error) string {
	se, ok := asServiceError(err)
	if !ok {
		return ""
	}
	switch se.code {
	case "AccessDenied", "NoPermission", "Unauthorized", "InvalidAuthorization",
		"MissingAuthorization", "SignatureNotMatch", "InvalidAccessKeyId":
		return ErrAccessDenied
	case "NoSuchProject":
		return ErrNoSuchProject
	case "NoSuchTable", "InvalidProjectTable":
		return ErrNoSuchTable
	case "NoSuchPartition":
		return ErrNoSuchPartition
	case "InvalidPartitionSpec", "MissingPartitionSpec", "InvalidColumnSpec", "MethodNotAllowed":
		return ErrSchemaMismatch
	case "NoSuchUpload", "StatusConflict", "TableModified":
		return ErrSessionExpired
	}
	if se.status == 401 || se.status == 403 {
		return ErrAccessDenied
	}
	// Any other 4xx answer is the request's fault, and a retry sends the same
	// request: it parks the partition rather than being retried and then
	// diverting every range to the error-data topic. Throttling, timeouts
	// and corrupted uploads (a block cut short on the wire) are retried.
	if se.status >= 400 && se.status < 500 && se.status != http.StatusRequestTimeout && se.status != http.StatusTooManyRequests && !retryableCodes[se.code] {
		if se.code != "" {
			return se.code
		}
		return "HTTP" + strconv.Itoa(se.status)
	}
	return ""
}

// retryableCodes are 4xx error codes a retry can fix.
var retryableCodes = map[string]bool{
	"FlowExceeded": true, "SlotExceeded": true, "QuotaExceeded": true, "RequestTimeout": true,
	"CorruptedDataStream": true, "OdpsServiceBusy": true, "ServiceUnavailable": true,
}

// classify wraps err once with op and, when no retry can fix it, marks it
// permanent with a named type. HTTP answers are reduced to one line.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var pe *sink.PermanentError
	if errors.As(err, &pe) {
		return err
	}
	msg := err
	if se, ok := asServiceError(err); ok {
		msg = se
	}
	wrapped := fmt.Errorf("%s: %w", op, msg)
	if typ := permanentType(err); typ != "" {
		return sink.Permanent(typ, wrapped)
	}
	if se, ok := asServiceError(err); ok && (se.status == http.StatusTooManyRequests || throttleCodes[se.code]) {
		return sink.Throttled(wrapped)
	}
	return wrapped
}

// throttleCodes are the answers that say a quota is used up or requests
// come too fast.
var throttleCodes = map[string]bool{"FlowExceeded": true, "SlotExceeded": true, "QuotaExceeded": true, "OdpsServiceBusy": true}

// asPermanent finds a *sink.PermanentError in err.
func asPermanent(err error) (*sink.PermanentError, bool) {
	var pe *sink.PermanentError
	ok := errors.As(err, &pe)
	return pe, ok
}
