package window

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Window variables, for a MaxCompute partition and an OSS prefix. Each is
// the window's begin (or end) in the writer's time zone, formatted as
// named (Java/DataWorks letters: yyyy year, MM month, dd day, HH hour,
// mm minute, ss second):
//
//	${bizdate}       yyyyMMdd of the begin: DataWorks's business date. For
//	                 a daily window, run at midnight, it is the day before
//	                 the run, as in DataWorks; for shorter windows it is
//	                 the date of the data (DataWorks would still give the
//	                 day before the run).
//	${yyyy}          year of the begin, 4 digits
//	${MM}            month of the begin, 01-12
//	${dd}            day of the begin, 01-31
//	${HH}            hour of the begin, 00-23
//	${mm}            minute of the begin, 00-59
//	${yyyyMMdd}      e.g. 20240101
//	${yyyyMMddHH}    e.g. 2024010108
//	${yyyyMMddHHmm}  e.g. 202401010815
//	${begin}         yyyyMMddHHmmss of the begin
//	${end}           yyyyMMddHHmmss of the end (exclusive)
//
// An hourly window [08:00, 09:00) therefore has ${yyyyMMddHH} 2024010108.
// Any other ${...} is a violation; a '$' not followed by '{' is itself.
var Variables = []string{"bizdate", "yyyy", "MM", "dd", "HH", "mm", "yyyyMMdd", "yyyyMMddHH", "yyyyMMddHHmm", "begin", "end"}

var varLayouts = map[string]string{
	"bizdate":      "20060102",
	"yyyy":         "2006",
	"MM":           "01",
	"dd":           "02",
	"HH":           "15",
	"mm":           "04",
	"yyyyMMdd":     "20060102",
	"yyyyMMddHH":   "2006010215",
	"yyyyMMddHHmm": "200601021504",
	"begin":        DateTimeLayout,
	"end":          DateTimeLayout,
}

// Expand replaces the window variables of template with the window
// [begin, end) in loc (UTC when nil). An unknown or unterminated variable
// is an error naming it.
func Expand(template string, begin, end time.Time, loc *time.Location) (string, error) {
	if loc == nil {
		loc = time.UTC
	}
	b, e := begin.In(loc), end.In(loc)
	var out strings.Builder
	rest := template
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			out.WriteString(rest)
			return out.String(), nil
		}
		out.WriteString(rest[:i])
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("variable %q is not closed with '}'", rest[i:])
		}
		name := rest[i+2 : i+j]
		layout, ok := varLayouts[name]
		if !ok {
			return "", fmt.Errorf("unknown variable ${%s}; the variables are ${%s}", name, strings.Join(Variables, "}, ${"))
		}
		t := b
		if name == "end" {
			t = e
		}
		out.WriteString(t.Format(layout))
		rest = rest[i+j+1:]
	}
}

// sampleBegin and sampleEnd are a window for checking templates: every
// variable expands to digits, so any window gives the same shape.
var (
	sampleBegin = time.Date(2024, time.January, 2, 3, 4, 0, 0, time.UTC)
	sampleEnd   = sampleBegin.Add(time.Hour)
)

// PartitionLevel is one level of a MaxCompute partition spec.
type PartitionLevel struct {
	Key, Value string
}

var (
	identRE          = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	partitionValueRE = regexp.MustCompile(`^[A-Za-z0-9 :_$#.!@-]+$`)
)

// ParsePartition reads an expanded partition spec: key=value levels
// separated by ',' or '/', keys MaxCompute identifiers (unique), values
// 1..255 of letters, digits, space and : _ $ # . ! @ - (what MaxCompute
// takes in a partition value). Quotes around a value ('v' or "v") are
// removed. An empty spec has no levels.
func ParsePartition(spec string) ([]PartitionLevel, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, nil
	}
	var levels []PartitionLevel
	seen := map[string]bool{}
	for _, part := range strings.FieldsFunc(spec, func(r rune) bool { return r == ',' || r == '/' }) {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok {
			return nil, fmt.Errorf("level %q must be key=value, e.g. pt=${bizdate}", part)
		}
		if len(v) >= 2 && (v[0] == '\'' || v[0] == '"') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		switch {
		case !identRE.MatchString(k) || len(k) > 128:
			return nil, fmt.Errorf("level %q: the key must be a partition column name: a letter or '_', then letters, digits or '_'", part)
		case seen[strings.ToLower(k)]:
			return nil, fmt.Errorf("level %q: the key %s is given twice", part, k)
		case v == "":
			return nil, fmt.Errorf("level %q: the value is empty", part)
		case len(v) > 255:
			return nil, fmt.Errorf("level %q: the value is longer than 255 bytes", part)
		case !partitionValueRE.MatchString(v):
			return nil, fmt.Errorf("level %q: the value may hold only letters, digits, space and : _ $ # . ! @ -", part)
		}
		seen[strings.ToLower(k)] = true
		levels = append(levels, PartitionLevel{Key: k, Value: v})
	}
	return levels, nil
}

// PartitionSpec returns the writer's partition for the window [begin,
// end): its variables expanded in the writer's time zone, levels joined
// by ',' as in MaxCompute's partition specs ("ds=20240101,hh=08"); "" for
// a table without partitions.
func (m *MaxComputeWriter) PartitionSpec(begin, end time.Time) (string, error) {
	loc, err := LoadZone(m.TimeZone)
	if err != nil {
		return "", fmt.Errorf("writer.maxcompute.timeZone: %w", err)
	}
	s, err := Expand(m.Partition, begin, end, loc)
	if err != nil {
		return "", fmt.Errorf("writer.maxcompute.partition: %w", err)
	}
	levels, err := ParsePartition(s)
	if err != nil {
		return "", fmt.Errorf("writer.maxcompute.partition %q: %w", s, err)
	}
	parts := make([]string, len(levels))
	for i, l := range levels {
		parts[i] = l.Key + "=" + l.Value
	}
	return strings.Join(parts, ","), nil
}

// WindowPrefix returns the writer's prefix for the window [begin, end),
// its variables expanded in the writer's time zone.
func (o *OSSWriter) WindowPrefix(begin, end time.Time) (string, error) {
	loc, err := LoadZone(o.TimeZone)
	if err != nil {
		return "", fmt.Errorf("writer.oss.timeZone: %w", err)
	}
	p, err := Expand(o.Prefix, begin, end, loc)
	if err != nil {
		return "", fmt.Errorf("writer.oss.prefix: %w", err)
	}
	return p, nil
}
