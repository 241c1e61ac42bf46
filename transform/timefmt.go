package transform

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	_ "time/tzdata" // IANA time zones on minimal machines

	"github.com/ncruces/go-strftime"
)

var gmtRE = regexp.MustCompile(`^(?:GMT|UTC) ?([+-]?)(\d{1,2}):?(\d{2})?$`)

// ParseTimeZone reads "UTC", "GMT+08:00", "GMT 08:00" (the seeds' spelling,
// where the '+' was lost), "UTC-05:30" or an IANA name like "Asia/Shanghai".
// "Local" and "" are refused: a worker's own zone would make the output
// depend on the machine. Package connector reads spec zones with it too.
func ParseTimeZone(s string) (*time.Location, error) {
	t := strings.TrimSpace(s)
	if t == "UTC" || t == "GMT" {
		return time.UTC, nil
	}
	if m := gmtRE.FindStringSubmatch(t); m != nil {
		h, _ := strconv.Atoi(m[2])
		mins := 0
		if m[3] != "" {
			mins, _ = strconv.Atoi(m[3])
		}
		if h > 14 || mins > 59 {
			return nil, fmt.Errorf("time zone %q: offset out of range", s)
		}
		off := h*3600 + mins*60
		if m[1] == "-" {
			off = -off
		}
		return time.FixedZone(t, off), nil
	}
	if t == "" || t == "Local" {
		return nil, fmt.Errorf("time zone %q: want UTC, GMT+hh:mm or an IANA name", s)
	}
	loc, err := time.LoadLocation(t)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: want UTC, GMT+hh:mm or an IANA name", s)
	}
	return loc, nil
}

// Named time formats, accepted wherever a layout is (the time step's parse
// and format, insertMetadata's format, parseTime and formatTime).
const (
	FormatUnix      = "unix"      // seconds since 1970-01-01 UTC, a number
	FormatUnixMilli = "unixMilli" // milliseconds
	FormatUnixMicro = "unixMicro" // microseconds
	FormatUnixNano  = "unixNano"  // nanoseconds
	FormatRFC3339   = "rfc3339"   // 2020-07-28T21:51:35+08:00, fractional seconds when not zero
)

// timeLayout is a compiled time format: a unix unit, a Go layout, or a
// strftime format (one with a '%').
type timeLayout struct {
	unit     int64  // nanoseconds per unit for the unix formats; 0 otherwise
	layout   string // Go layout; for strftime the layout it converts to
	strftime string // the strftime format, when it is one
	zoned    bool   // the layout reads a zone or offset from the text
}

var unitOf = map[string]int64{
	FormatUnix: 1e9, FormatUnixMilli: 1e6, FormatUnixMicro: 1e3, FormatUnixNano: 1,
}

// refTime formats a layout to see whether it has time elements.
var refTime = time.Date(2001, 2, 3, 16, 5, 6, 789_000_000, time.FixedZone("X", 3600))

// compileLayout reads a time format. parse says the layout is used to read
// times (a strftime format must then round-trip).
func compileLayout(s string, parse bool) (*timeLayout, error) {
	if u, ok := unitOf[s]; ok {
		return &timeLayout{unit: u}, nil
	}
	switch {
	case s == FormatRFC3339:
		return &timeLayout{layout: time.RFC3339Nano, zoned: true}, nil
	case s == "":
		return nil, fmt.Errorf("is empty; want unix, unixMilli, unixMicro, unixNano, rfc3339, a Go layout or a strftime format")
	case strings.Contains(s, "%"):
		if err := checkStrftime(s); err != nil {
			return nil, err
		}
		gl, err := strftime.Layout(s)
		if err == nil && parse {
			_, err = strftime.Parse(s, strftime.Format(s, refTime))
		}
		if err != nil && parse {
			return nil, fmt.Errorf("is not a strftime format that can be parsed: %s", strings.TrimSpace(err.Error()))
		}
		return &timeLayout{layout: gl, strftime: s, zoned: hasZone(gl)}, nil
	}
	if refTime.Format(s) == s {
		return nil, fmt.Errorf("has no time elements; want a Go layout (2006-01-02 15:04:05), a strftime format (%%Y-%%m-%%d %%H:%%M:%%S) or one of unix, unixMilli, unixMicro, unixNano, rfc3339")
	}
	return &timeLayout{layout: s, zoned: hasZone(s)}, nil
}

// strftimeDirectives are the conversions go-strftime formats.
const strftimeDirectives = "%+ABCDFGHILMNPQRSTUVWXYZabcdefghjklmnprstuvwxyz"

// checkStrftime refuses a directive go-strftime does not know (it would
// write it out literally).
func checkStrftime(s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		start := i
		i++
		if i < len(s) && (s[i] == '-' || s[i] == ':') {
			i++
		}
		if i < len(s) && (s[i] == 'E' || s[i] == 'O') {
			i++
		}
		if i >= len(s) {
			return fmt.Errorf("ends in an unfinished directive %q", s[start:])
		}
		if !strings.ContainsRune(strftimeDirectives, rune(s[i])) {
			return fmt.Errorf("has an unknown strftime directive %q", s[start:i+1])
		}
	}
	return nil
}

func hasZone(goLayout string) bool {
	return strings.Contains(goLayout, "MST") || strings.Contains(goLayout, "-07") ||
		strings.Contains(goLayout, "Z07")
}

// parse reads a time from v: a number or numeric string for the unix
// formats, a string otherwise. Text without a zone is read in loc.
func (l *timeLayout) parse(v any, loc *time.Location) (time.Time, error) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = string(x)
	case string:
		s = x
	case nil:
		return time.Time{}, fmt.Errorf("is null")
	default:
		return time.Time{}, fmt.Errorf("is %s, want a string or a number", kindOf(v))
	}
	if l.unit != 0 {
		return parseUnix(s, l.unit)
	}
	if _, ok := v.(json.Number); ok {
		return time.Time{}, fmt.Errorf("is a number; use parse: unix (or unixMilli, unixMicro, unixNano) for numbers")
	}
	var t time.Time
	var err error
	if l.strftime != "" {
		t, err = strftime.Parse(l.strftime, s)
		if err == nil && !l.zoned {
			y, mo, d := t.Date()
			h, mi, sec := t.Clock()
			t = time.Date(y, mo, d, h, mi, sec, t.Nanosecond(), loc)
		}
	} else {
		t, err = time.ParseInLocation(l.layout, s, loc)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("%q does not match the layout", ShortPrefix([]byte(s), 64))
	}
	return t, nil
}

// format renders t in loc: a json.Number for the unix formats, a string
// otherwise.
func (l *timeLayout) format(t time.Time, loc *time.Location) any {
	switch l.unit {
	case 1e9:
		return json.Number(strconv.FormatInt(t.Unix(), 10))
	case 1e6:
		return json.Number(strconv.FormatInt(t.UnixMilli(), 10))
	case 1e3:
		return json.Number(strconv.FormatInt(t.UnixMicro(), 10))
	case 1:
		return json.Number(strconv.FormatInt(t.UnixNano(), 10))
	}
	t = t.In(loc)
	if l.strftime != "" {
		return strftime.Format(l.strftime, t)
	}
	return t.Format(l.layout)
}

// parseUnix reads a decimal count of units (nanoseconds per unit) since the
// epoch, exactly: "1595944295", "1595944295.5", "-1.25"; exponent forms go
// through float64.
func parseUnix(s string, unit int64) (time.Time, error) {
	bad := func() (time.Time, error) {
		return time.Time{}, fmt.Errorf("%q is not a number", ShortPrefix([]byte(s), 64))
	}
	if strings.ContainsAny(s, "eE") {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return bad()
		}
		ns := f * float64(unit)
		if math.IsNaN(ns) || ns >= math.MaxInt64 || ns <= math.MinInt64 {
			return time.Time{}, fmt.Errorf("%q is out of range", s)
		}
		return time.Unix(0, int64(ns)).UTC(), nil
	}
	t := s
	neg := strings.HasPrefix(t, "-")
	if neg {
		t = t[1:]
	}
	whole, frac, hasFrac := strings.Cut(t, ".")
	if whole == "" || !allDigits(whole) || (hasFrac && (frac == "" || !allDigits(frac))) {
		return bad()
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is out of range", ShortPrefix([]byte(s), 64))
	}
	perSec := 1e9 / unit
	sec, nsec := w/perSec, (w%perSec)*unit
	if hasFrac {
		frac = (frac + "000000000")[:9]
		f, _ := strconv.ParseInt(frac, 10, 64)
		nsec += f * unit / 1e9
	}
	if neg {
		sec, nsec = -sec, -nsec
	}
	return time.Unix(sec, nsec).UTC(), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// memo caches the results of a pure function of a string, for the
// expression helpers whose zone, layout or pattern arguments are usually
// constants. It holds at most memoMax entries; past that it computes.
type memo[V any] struct {
	m sync.Map // string → memoEntry[V]
	n atomic.Int32
}

type memoEntry[V any] struct {
	v   V
	err error
}

const memoMax = 256

func (c *memo[V]) get(key string, f func(string) (V, error)) (V, error) {
	if e, ok := c.m.Load(key); ok {
		e := e.(memoEntry[V])
		return e.v, e.err
	}
	v, err := f(key)
	if c.n.Load() < memoMax {
		c.n.Add(1)
		c.m.Store(key, memoEntry[V]{v, err})
	}
	return v, err
}

var (
	zoneMemo         memo[*time.Location]
	parseLayoutMemo  memo[*timeLayout]
	formatLayoutMemo memo[*timeLayout]
)

func zoneNamed(s string) (*time.Location, error) { return zoneMemo.get(s, ParseTimeZone) }

// layoutNamed compiles a layout given to parseTime (parse) or formatTime.
func layoutNamed(s string, parse bool) (*timeLayout, error) {
	m := &formatLayoutMemo
	if parse {
		m = &parseLayoutMemo
	}
	return m.get(s, func(s string) (*timeLayout, error) {
		l, err := compileLayout(s, parse)
		if err != nil {
			return nil, fmt.Errorf("layout %q %v", s, err)
		}
		return l, nil
	})
}
