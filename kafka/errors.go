package kafka

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kerr"
)

// DataLostError reports that offsets of a range were deleted from the log
// (retention, DeleteRecords) before they were read: the partition's log start
// moved past the first offset not read. The offsets [From, LogStart) can never
// be read again; whether they held records is unknown. It is a declared gap,
// never a skip: ReadRange returns it instead of jumping to the log start.
//
// It wraps nothing, so that no other error is mistaken for it and it is
// mistaken for no other; find it with IsDataLost or errors.As.
type DataLostError struct {
	Topic     string
	Partition int32
	// From is the first offset of the range that was not read (records
	// before it were passed to the read's callback).
	From int64
	// LogStart is the partition's log start offset as looked up when the
	// loss was detected (kadm ListStartOffsets): the first offset that can
	// still be read.
	LogStart int64
}

func (e *DataLostError) Error() string {
	return fmt.Sprintf("data lost in %s[%d]: offsets [%d,%d) were deleted (retention or DeleteRecords) before they were read; the log now starts at %d",
		e.Topic, e.Partition, e.From, e.LogStart, e.LogStart)
}

// IsDataLost returns the *DataLostError in err's chain, if any.
func IsDataLost(err error) (*DataLostError, bool) {
	var e *DataLostError
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// StallError reports that a ReadRange call saw no new offset for
// ReadOptions.StallTimeout. The range was not completed and nothing is
// inferred about the offsets not seen. It is retryable: the broker may have
// been unavailable, the range may reach past the last stable offset (an open
// transaction), or the partition may be gone. The message says which, as far
// as the reader knows.
//
// LastErr is informative only: StallError does not unwrap to it, so that a
// stall is never classified by the error that happened to precede it.
type StallError struct {
	Topic     string
	Partition int32
	From, To  int64 // the range [From, To)
	// Next is the next offset the read expected: every offset below it was
	// seen or proven absent.
	Next int64
	// HighWatermark and LastStable are the partition's high watermark and
	// last stable offset as last seen (by a fetch or by a lookup when the
	// stall was declared); -1 if never seen.
	HighWatermark, LastStable int64
	// Stalled is how long the read went without a new offset.
	Stalled time.Duration
	// LastErr is the last fetch error franz-go reported for the partition
	// (it retries them itself), or nil.
	LastErr error
	// LookupErr is the last error of the reader's own offset lookups while
	// stalled (an unreachable broker shows here), or nil.
	LookupErr error
}

func (e *StallError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "read %s[%d] [%d,%d) stalled: no new offset for %v; next offset expected %d, high watermark %s, last stable offset %s",
		e.Topic, e.Partition, e.From, e.To, e.Stalled.Round(time.Millisecond), e.Next, offsetString(e.HighWatermark), offsetString(e.LastStable))
	if e.LastErr != nil {
		fmt.Fprintf(&b, "; last fetch error: %v", e.LastErr)
	} else {
		b.WriteString("; no fetch error reported")
	}
	if e.LookupErr != nil {
		fmt.Fprintf(&b, "; last offset lookup error: %v", e.LookupErr)
	}
	return b.String()
}

// Retryable reports true: a stall is never permanent by itself.
func (e *StallError) Retryable() bool { return true }

func offsetString(o int64) string {
	if o < 0 {
		return "unknown"
	}
	return strconv.FormatInt(o, 10)
}

// isAuthErr reports whether err is an authentication or authorization
// failure, which no retry within a read fixes.
func isAuthErr(err error) bool {
	for _, e := range []error{
		kerr.SaslAuthenticationFailed,
		kerr.IllegalSaslState,
		kerr.UnsupportedSaslMechanism,
		kerr.TopicAuthorizationFailed,
		kerr.ClusterAuthorizationFailed,
		kerr.GroupAuthorizationFailed,
		kerr.TransactionalIDAuthorizationFailed,
		kerr.DelegationTokenAuthorizationFailed,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// cutUTF8 returns s cut to at most n bytes on a rune boundary, with "…"
// appended when cut.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	k := n
	for k > 0 && !utf8.RuneStart(s[k]) {
		k--
	}
	return s[:k] + "…"
}
