package window

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// PositionKind says what a Position means.
type PositionKind string

// Position kinds. Seed 003's beginOffset/endOffset and
// beginDateTime/endDateTime become one begin and one end.
const (
	// KindOffset is an exact offset, the same in every partition.
	KindOffset PositionKind = "offset"
	// KindTime is a point in time: in each partition, the first offset
	// whose record timestamp is at or after it (ListOffsets by timestamp),
	// or the end of the partition when there is none.
	KindTime PositionKind = "time"
	// KindSeekToBeginning is each partition's log start offset.
	KindSeekToBeginning PositionKind = "seekToBeginning"
	// KindSeekToLast is the job's committed position in each partition
	// (consumer group window-<name>); a partition without one starts at
	// its log start. Only a begin: each run commits its end, so the next
	// run continues where it stopped. Seed 003 notes that such a begin
	// reads each record once, where a datetime can be read again.
	KindSeekToLast PositionKind = "seekToLast"
	// KindSeekToEnd is each partition's last stable offset when the run
	// starts (read_committed's end of the log). As a begin it reads
	// nothing (seed 003: "reads empty data"), but the run still commits
	// it: a first run with begin seekToEnd starts a seekToLast job "from
	// now".
	KindSeekToEnd PositionKind = "seekToEnd"
	// KindWindow is the run's window bound: its begin for reader.begin, its
	// end for reader.end — the scheduled window [previous fire time,
	// nominal time) or the one given by hand (--from/--to). The default.
	KindWindow PositionKind = "window"
)

// DateTimeLayout is seed 003's beginDateTime/endDateTime form,
// yyyyMMddHHmmss, as a Go layout.
const DateTimeLayout = "20060102150405"

// Position is a reader bound as written in the spec: a whole number (an
// offset) or a string — digits (an offset), 14 digits (a yyyyMMddHHmmss
// datetime), an RFC 3339 time, or one of seekToBeginning, seekToLast,
// seekToEnd and window. Its JSON is what was written, so it survives a
// round trip through a workflow input unchanged. Parse gives its meaning;
// Validate reports a Position that does not parse.
//
// The zero Position is unset; Default replaces it with window.
type Position struct {
	text   string
	number bool // written as a JSON number
}

// NewPosition is the Position written as the string s.
func NewPosition(s string) Position { return Position{text: s} }

// OffsetPosition is the Position of offset n, written as a number.
func OffsetPosition(n int64) Position {
	return Position{text: strconv.FormatInt(n, 10), number: true}
}

// WindowPosition is the Position "window", the default of begin and end.
func WindowPosition() Position { return Position{text: string(KindWindow)} }

// IsZero reports whether p is unset.
func (p Position) IsZero() bool { return p.text == "" }

// String returns p as written.
func (p Position) String() string { return p.text }

// MarshalJSON writes p as it was written: a number or a string.
func (p Position) MarshalJSON() ([]byte, error) {
	if p.number {
		return []byte(p.text), nil
	}
	return json.Marshal(p.text)
}

// UnmarshalJSON reads a number or a string; null leaves p unset. Whether
// the text means anything is Parse's (and Validate's) business, so that
// every problem of a spec is reported at once.
func (p *Position) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*p = Position{}
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*p = Position{text: s}
		return nil
	case len(b) > 0 && (b[0] == '-' || (b[0] >= '0' && b[0] <= '9')):
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return err
		}
		*p = Position{text: n.String(), number: true}
		return nil
	}
	return fmt.Errorf("position %s: want an offset (a whole number) or a string such as \"seekToBeginning\" or \"20240101000000\"", b)
}

// Bound is a Position's meaning.
type Bound struct {
	Kind PositionKind
	// Offset is set for KindOffset.
	Offset int64
	// Time is set for KindTime.
	Time time.Time
}

// Parse reads p. A yyyyMMddHHmmss datetime is read in loc (the job's
// zone, Spec.Location); it must exist there (not fall in a daylight-saving
// gap), and one that occurs twice (the repeated hour when clocks go back)
// is the first. An RFC 3339 time carries its own offset. An error is a
// rule for the field's violation.
func (p Position) Parse(loc *time.Location) (Bound, error) {
	s := p.text
	if p.number {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Bound{}, errors.New("must be a whole number of at most 19 digits (an offset)")
		}
		if n < 0 {
			return Bound{}, negativeOffset(n)
		}
		if len(s) == len(DateTimeLayout) {
			if t, err := time.ParseInLocation(DateTimeLayout, s, time.UTC); err == nil && t.Format(DateTimeLayout) == s {
				return Bound{}, fmt.Errorf("is ambiguous: a 14-digit number that reads as the datetime %s; write it in quotes (\"%s\") for the datetime (an offset this large is refused)", t.Format("2006-01-02 15:04:05"), s)
			}
		}
		return Bound{Kind: KindOffset, Offset: n}, nil
	}
	switch PositionKind(s) {
	case KindSeekToBeginning, KindSeekToLast, KindSeekToEnd, KindWindow:
		return Bound{Kind: PositionKind(s)}, nil
	}
	for _, k := range []PositionKind{KindSeekToBeginning, KindSeekToLast, KindSeekToEnd, KindWindow} {
		if strings.EqualFold(s, string(k)) {
			return Bound{}, fmt.Errorf("is not a position; did you mean %q? (names are case-sensitive)", k)
		}
	}
	if s != "" && strings.Trim(s, "0123456789") == "" {
		if len(s) == len(DateTimeLayout) {
			if loc == nil {
				loc = time.UTC
			}
			t, err := time.ParseInLocation(DateTimeLayout, s, loc)
			if err != nil {
				return Bound{}, fmt.Errorf("is not a valid yyyyMMddHHmmss datetime: %s", parseErrDetail(err))
			}
			if t.In(loc).Format(DateTimeLayout) != s {
				return Bound{}, fmt.Errorf("does not exist in time zone %s (the clocks skip it for daylight saving)", loc)
			}
			// A wall time that occurs twice (clocks going back) is the
			// first; Go's choice depends on the side of UTC.
			for _, d := range []time.Duration{2 * time.Hour, time.Hour, 30 * time.Minute} {
				if e := t.Add(-d); e.In(loc).Format(DateTimeLayout) == s {
					t = e
					break
				}
			}
			return Bound{Kind: KindTime, Time: t}, nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Bound{}, errors.New("must be an offset of at most 19 digits")
		}
		return Bound{Kind: KindOffset, Offset: n}, nil
	}
	if strings.HasPrefix(s, "-") && strings.Trim(s[1:], "0123456789") == "" && len(s) > 1 {
		n, _ := strconv.ParseInt(s, 10, 64)
		return Bound{}, negativeOffset(n)
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return Bound{Kind: KindTime, Time: t}, nil
	}
	return Bound{}, errors.New("must be an offset, a datetime (yyyyMMddHHmmss or RFC 3339 such as 2024-01-01T00:00:00+08:00), seekToBeginning, seekToLast, seekToEnd or window")
}

func negativeOffset(n int64) error {
	switch n {
	case -1:
		return errors.New("must not be negative; for Kafka's -1 (latest) write seekToEnd")
	case -2:
		return errors.New("must not be negative; for Kafka's -2 (earliest) write seekToBeginning")
	}
	return errors.New("must not be negative (an offset is 0 or more)")
}

// parseErrDetail shortens a time.ParseError to what is out of range.
func parseErrDetail(err error) string {
	var pe *time.ParseError
	if errors.As(err, &pe) && pe.Message != "" {
		return strings.TrimPrefix(pe.Message, ": ")
	}
	return err.Error()
}
