package format

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Format types (Spec.Type).
const (
	Raw     = "raw"
	JSONL   = "jsonl"
	CSV     = "csv"
	Parquet = "parquet"
)

// Compressions (Spec.Compression).
const (
	None = "none"
	Gzip = "gzip"
	Zstd = "zstd"
)

// Newline rules (Spec.Newlines).
const (
	NewlinesReject = "reject"
	NewlinesEscape = "escape"
)

// Embedding modes (Spec.Key, Spec.Value).
const (
	EmbedAuto   = "auto"
	EmbedJSON   = "json"
	EmbedString = "string"
	EmbedBase64 = "base64"
)

// Column types (Column.Type).
const (
	TypeString    = "string"
	TypeInt64     = "int64"
	TypeDouble    = "double"
	TypeBoolean   = "boolean"
	TypeTimestamp = "timestamp"
	TypeBytes     = "bytes"
)

// Metadata sources (Column.Source): the record's coordinates and bytes
// rather than one of its fields.
const (
	SourceKey       = "__key__"
	SourceValue     = "__value__"
	SourceTopic     = "__topic__"
	SourcePartition = "__partition__"
	SourceOffset    = "__offset__"
	SourceTimestamp = "__timestamp__"
)

// Spec says how the records of one batch become the body of one OSS object.
// The zero Spec is seed 000's format: raw values, one a line, uncompressed.
// Keys are the json tags. Options that belong to one type (newlines, key,
// value, columns, rowGroupRows) are an error on any other.
type Spec struct {
	// Type is the object's format: raw (each value, then "\n"), jsonl (one
	// JSON envelope a line), csv (a header row, then one row a record) or
	// parquet (one file, a column per Column). See the package doc for each.
	// Optional. Default: raw.
	Type string `json:"type,omitempty"`
	// Compression wraps the body: none, gzip or zstd. For parquet it
	// selects the codec of the pages (GZIP or ZSTD) instead, so the file
	// stays a parquet file. Optional. Default: none.
	Compression string `json:"compression,omitempty"`
	// Newlines (raw only) is what happens to a value that contains "\n" or
	// "\r", which would read back as several lines: reject sends the record
	// to the dead-letter topic (stage "format"); escape writes a backslash
	// as two (`\\`), a line feed as `\n` and a carriage return as `\r`,
	// which is reversible: read a line, then replace `\\`, `\n` and `\r` in
	// one pass from the left. Under escape every backslash is doubled, also
	// in values without newlines. Optional. Default: reject.
	Newlines string `json:"newlines,omitempty"`
	// Key (jsonl only) is how the envelope holds the record's key: auto,
	// json, string or base64, as Value. Optional. Default: auto.
	Key string `json:"key,omitempty"`
	// Value (jsonl only) is how the envelope holds the record's value:
	//   - auto: embedded as JSON when it is valid UTF-8 JSON whose top level
	//     is an object, an array, a number, true or false (insignificant
	//     white space removed); else a JSON string when it is valid UTF-8
	//     (a JSON string or null at the top level is written as its text, so
	//     it cannot be mistaken for a plain value); else base64.
	//   - json: embedded as JSON (any JSON, white space removed); a value
	//     that is not valid UTF-8 JSON is rejected.
	//   - string: a JSON string; a value that is not valid UTF-8 is rejected.
	//   - base64: standard base64 with padding, always.
	// Whenever base64 is used the envelope says so: "valueEncoding":"base64"
	// follows "value" ("keyEncoding" for the key). A null Kafka value is
	// null in every mode. Optional. Default: auto.
	Value string `json:"value,omitempty"`
	// Columns (csv and parquet) are the columns, in order. Optional.
	// Default: derived from the first record the object holds; see the
	// package doc.
	Columns []Column `json:"columns,omitempty"`
	// RowGroupRows (parquet only) caps the rows of one row group; a new one
	// starts when it is reached. Optional. Default: 0, one row group per
	// object.
	RowGroupRows int `json:"rowGroupRows,omitempty"`
}

// Column is one column of a csv or parquet object.
type Column struct {
	// Name is the column's name in the header row (csv) or schema
	// (parquet): printable UTF-8, unique among the columns. Required.
	Name string `json:"name"`
	// Source is where the column's value comes from: a field path of the
	// record's fields (keys joined by '.', e.g. "user.id"; a '.' inside a key
	// is written "\.", a backslash "\\"), or one of __key__, __value__,
	// __topic__, __partition__, __offset__ and __timestamp__ (__value__ is
	// the fields' JSON when the record has fields). Optional. Default: Name,
	// as a field path.
	Source string `json:"source,omitempty"`
	// Type (parquet only) is the column's type: string, int64, double,
	// boolean, timestamp (microseconds, UTC) or bytes. __topic__ may be
	// string or bytes; __partition__ and __offset__ int64 or string;
	// __timestamp__ timestamp, int64 (epoch milliseconds) or string (RFC
	// 3339); __key__ and __value__ bytes or string. Optional. Default: the
	// first of those for a metadata source, string for a field path.
	Type string `json:"type,omitempty"`
	// Required rejects a record that has no value for the column (the field
	// is missing or null, the key or value is null); parquet marks the
	// column REQUIRED. Optional. Default: false: the cell is empty (csv) or
	// null (parquet).
	Required bool `json:"required,omitempty"`
}

// Violation is one broken rule of a Spec: the field (a path such as
// "format.columns[1].type"), the value it had, and the rule. It has the
// shape of connector.Violation, so a caller converts it with a type
// conversion.
type Violation struct {
	Field string `json:"field"`
	Value string `json:"value"`
	Rule  string `json:"rule"`
}

func (v Violation) String() string { return fmt.Sprintf("%s: %q %s", v.Field, v.Value, v.Rule) }

// ValidationError is what New returns for a Spec with violations.
type ValidationError struct {
	Violations []Violation
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid format spec (%d problem", len(e.Violations))
	if len(e.Violations) != 1 {
		b.WriteString("s")
	}
	b.WriteString("):")
	for _, v := range e.Violations {
		b.WriteString("\n  - ")
		b.WriteString(v.String())
	}
	return b.String()
}

// Default fills in the documented defaults of the fields that are empty.
// It changes nothing else: options of other types stay, so Validate still
// sees them.
func (s *Spec) Default() {
	if s.Type == "" {
		s.Type = Raw
	}
	if s.Compression == "" {
		s.Compression = None
	}
	switch s.Type {
	case Raw:
		if s.Newlines == "" {
			s.Newlines = NewlinesReject
		}
	case JSONL:
		if s.Key == "" {
			s.Key = EmbedAuto
		}
		if s.Value == "" {
			s.Value = EmbedAuto
		}
	}
}

// sources maps each metadata source to the column types it can have, the
// default first.
var sources = map[string][]string{
	SourceTopic:     {TypeString, TypeBytes},
	SourcePartition: {TypeInt64, TypeString},
	SourceOffset:    {TypeInt64, TypeString},
	SourceTimestamp: {TypeTimestamp, TypeInt64, TypeString},
	SourceKey:       {TypeBytes, TypeString},
	SourceValue:     {TypeBytes, TypeString},
}

var columnTypes = []string{TypeString, TypeInt64, TypeDouble, TypeBoolean, TypeTimestamp, TypeBytes}

// Validate checks the spec (defaulted or not: an empty field means its
// default) and returns every violation, each Field a path under at (the
// spec's own path in its document, e.g. "format" or "sink.oss.format").
func (s Spec) Validate(at string) []Violation {
	var vs []Violation
	add := func(field, value, rule string) {
		vs = append(vs, Violation{Field: at + "." + field, Value: value, Rule: rule})
	}
	d := s
	d.Default()
	only := func(field, value string, set bool, types ...string) bool {
		if set && !slices.Contains(types, d.Type) {
			add(field, value, "applies to type "+strings.Join(types, " and ")+" only (type is "+d.Type+")")
			return false
		}
		return set
	}

	if !slices.Contains([]string{Raw, JSONL, CSV, Parquet}, d.Type) {
		add("type", s.Type, "must be raw, jsonl, csv or parquet")
	}
	if !slices.Contains([]string{None, Gzip, Zstd}, d.Compression) {
		add("compression", s.Compression, "must be none, gzip or zstd")
	}
	if only("newlines", s.Newlines, s.Newlines != "", Raw) && !slices.Contains([]string{NewlinesReject, NewlinesEscape}, s.Newlines) {
		add("newlines", s.Newlines, "must be reject or escape")
	}
	for _, f := range []struct{ name, value string }{{"key", s.Key}, {"value", s.Value}} {
		if only(f.name, f.value, f.value != "", JSONL) && !slices.Contains([]string{EmbedAuto, EmbedJSON, EmbedString, EmbedBase64}, f.value) {
			add(f.name, f.value, "must be auto, json, string or base64")
		}
	}
	if only("rowGroupRows", strconv.Itoa(s.RowGroupRows), s.RowGroupRows != 0, Parquet) && s.RowGroupRows < 0 {
		add("rowGroupRows", strconv.Itoa(s.RowGroupRows), "must be 0 (one row group) or more")
	}
	if !only("columns", fmt.Sprintf("%d columns", len(s.Columns)), len(s.Columns) > 0, CSV, Parquet) {
		return vs
	}
	seen := make(map[string]int, len(s.Columns))
	for i, c := range s.Columns {
		field := fmt.Sprintf("columns[%d]", i)
		switch {
		case c.Name == "":
			add(field+".name", c.Name, "is required")
		case !printable(c.Name):
			add(field+".name", c.Name, "must be valid UTF-8 without control characters")
		default:
			if j, dup := seen[c.Name]; dup {
				add(field+".name", c.Name, fmt.Sprintf("is also the name of columns[%d]", j))
			}
			seen[c.Name] = i
		}
		source := cmp.Or(c.Source, c.Name)
		types, meta := sources[source]
		if !meta {
			// A source defaulted from a bad name has been reported as the name.
			if rule := checkPath(source); rule != "" && (c.Source != "" || printable(c.Name)) {
				add(field+".source", source, rule)
			}
			types = columnTypes
		}
		if only(field+".type", c.Type, c.Type != "", Parquet) && !slices.Contains(types, c.Type) {
			if meta {
				add(field+".type", c.Type, "must be "+orList(types)+" for source "+source)
			} else {
				add(field+".type", c.Type, "must be "+orList(types))
			}
		}
	}
	return vs
}

// checkPath returns why source is not a field path, or "".
func checkPath(source string) string {
	if strings.HasPrefix(source, "__") && strings.HasSuffix(source, "__") {
		return "is not a metadata source (" + strings.Join(sortedSources(), ", ") + ")"
	}
	if !printable(source) {
		return "must be valid UTF-8 without control characters"
	}
	if _, err := parsePath(source); err != nil {
		return "is not a field path: " + err.Error()
	}
	return ""
}

func sortedSources() []string {
	return []string{SourceKey, SourceValue, SourceTopic, SourcePartition, SourceOffset, SourceTimestamp}
}

// Extension is the suffix of the object's name: "" for raw (seed 000's
// names), ".jsonl", ".csv" or ".parquet", then ".gz" or ".zst" when the body
// is compressed (not for parquet, whose pages are).
func (s Spec) Extension() string {
	d := s
	d.Default()
	var ext string
	switch d.Type {
	case JSONL:
		ext = ".jsonl"
	case CSV:
		ext = ".csv"
	case Parquet:
		return ".parquet"
	}
	switch d.Compression {
	case Gzip:
		ext += ".gz"
	case Zstd:
		ext += ".zst"
	}
	return ext
}

// printable reports whether s is non-empty valid UTF-8 without control
// characters.
func printable(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	return strings.IndexFunc(s, unicode.IsControl) < 0
}

func orList(xs []string) string {
	if len(xs) == 1 {
		return xs[0]
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " or " + xs[len(xs)-1]
}

// Name names the format in object metadata, e.g. "raw", "jsonl+gzip",
// "parquet+zstd".
func (s Spec) Name() string {
	t := s.Type
	if t == "" {
		t = Raw
	}
	if s.Compression != "" && s.Compression != None {
		t += "+" + s.Compression
	}
	return t
}
