package format

import (
	"cmp"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/dumpflow/dumpflow/transform"
)

// source is where a column's value comes from.
type source uint8

const (
	fromField source = iota
	fromKey
	fromValue
	fromTopic
	fromPartition
	fromOffset
	fromTimestamp
)

var sourceByName = map[string]source{
	SourceKey:       fromKey,
	SourceValue:     fromValue,
	SourceTopic:     fromTopic,
	SourcePartition: fromPartition,
	SourceOffset:    fromOffset,
	SourceTimestamp: fromTimestamp,
}

// column is a compiled Column.
type column struct {
	name     string
	src      source
	path     []string // fromField: keys, outermost first
	typ      string   // parquet: the column type
	required bool
	label    string // names the column in errors
}

// compile turns validated Columns into columns, defaulting Source and Type.
func compile(cs []Column) []column {
	cols := make([]column, len(cs))
	for i, c := range cs {
		name := cmp.Or(c.Source, c.Name)
		col := column{name: c.Name, required: c.Required}
		if src, ok := sourceByName[name]; ok {
			col.src = src
			col.typ = cmp.Or(c.Type, sources[name][0])
		} else {
			col.path, _ = parsePath(name) // valid: Validate checked it
			col.typ = cmp.Or(c.Type, TypeString)
		}
		cols[i] = col.labelled(i)
	}
	return cols
}

func (c column) labelled(i int) column {
	c.label = "column " + strconv.Itoa(i+1) + " (" + c.name + ")"
	return c
}

// envelope is the columns derived for a record without fields.
func envelope() []column {
	return compile([]Column{
		{Name: "topic", Source: SourceTopic, Required: true},
		{Name: "partition", Source: SourcePartition, Required: true},
		{Name: "offset", Source: SourceOffset, Required: true},
		{Name: "timestamp", Source: SourceTimestamp, Required: true},
		{Name: "key", Source: SourceKey},
		{Name: "value", Source: SourceValue},
	})
}

// parsePath reads a field path (transform.ParseFieldPath: keys separated
// by '.', a '.' inside a key written "\.", a backslash "\\") into its keys.
func parsePath(s string) ([]string, error) {
	fp, err := transform.ParseFieldPath(s)
	if err != nil {
		return nil, err
	}
	return fp.Keys(), nil
}

// datumKind is the kind of one cell's value before a format renders it.
type datumKind uint8

const (
	dNull   datumKind = iota // missing, JSON null, or a null key or value
	dString                  // b: a string field's text, or the topic
	dNumber                  // b: a number's JSON text
	dBool                    // i: 0 or 1
	dJSON                    // b: a JSON object or array, compact
	dBytes                   // b: the record's key or value bytes (any bytes)
	dInt                     // i: the partition or offset
	dTime                    // t: the record's timestamp
)

// datum is one cell's value. b aliases the record or the table's arena.
type datum struct {
	kind datumKind
	b    []byte
	i    int64
	t    time.Time
}

func (d datum) describe() string {
	switch d.kind {
	case dNull:
		return "null"
	case dString:
		return "the string " + show(d.b)
	case dNumber:
		return "the number " + transform.ShortPrefix(d.b, prefixLen)
	case dBool:
		return strconv.FormatBool(d.i == 1)
	case dJSON:
		if d.b[0] == '[' {
			return "an array"
		}
		return "an object"
	case dBytes:
		return show(d.b)
	case dInt:
		return strconv.FormatInt(d.i, 10)
	}
	return d.t.UTC().Format(timestampLayout)
}

// table is the column layout csv and parquet share: given in the spec, or
// derived from the first record the object holds.
type table struct {
	cols    []column
	derived bool           // cols came from the first record
	index   map[string]int // derived from fields: key → column
	data    []datum
	arena   []byte // the text of the current record's cells
}

// derive sets the columns from record r: one per key of its fields, in
// order, or the envelope columns when it has none. The names of columns
// derived from keys follow the rule of Column.Name: a key that breaks it
// rejects r, and derives nothing.
func (t *table) derive(r *transform.Record, fields *transform.Object) *RejectError {
	if fields == nil {
		t.cols, t.derived = envelope(), true
		return nil
	}
	for key := range fields.All() {
		if !printable(key) {
			return reject(r, "field "+strconv.Quote(key), "cannot name a column: a derived column's name must be non-empty UTF-8 without control characters (set format.columns to name the columns)")
		}
	}
	t.index = make(map[string]int, fields.Len()) // an Object's keys are unique
	for key := range fields.All() {
		t.index[key] = len(t.cols)
		t.cols = append(t.cols, column{name: key, path: []string{key}, typ: TypeString}.labelled(len(t.cols)))
	}
	t.derived = true
	return nil
}

// underive forgets derived columns when the record they came from was
// rejected, so that the next record derives them again.
func (t *table) underive() {
	if t.derived {
		t.cols, t.index, t.derived = nil, nil, false
	}
}

// get returns the record's cells. Under columns derived from fields, a key
// that is not a column rejects the record.
func (t *table) get(r *transform.Record, fields *transform.Object) ([]datum, *RejectError) {
	t.arena = t.arena[:0]
	n := len(t.cols)
	if cap(t.data) < n {
		t.data = make([]datum, n)
	}
	t.data = t.data[:n]
	clear(t.data)
	if t.index != nil {
		if fields == nil {
			return nil, reject(r, "value", "has no fields, but the columns were derived from the fields of the first record of the object ("+t.names()+"); set format.columns to choose them")
		}
		for key, v := range fields.All() {
			i, ok := t.index[key]
			if !ok {
				return nil, reject(r, "field "+strconv.Quote(key), "is not a column (the columns were derived from the first record of the object: "+t.names()+"; set format.columns to choose them)")
			}
			var err error
			if t.data[i], err = t.datum(v); err != nil {
				return nil, reject(r, t.cols[i].label, "cannot be encoded as JSON: "+err.Error())
			}
		}
		return t.data, nil
	}
	for i := range t.cols {
		c := &t.cols[i]
		var d datum
		switch c.src {
		case fromKey:
			d = bytesDatum(r.Key)
		case fromValue:
			if r.Fields != nil { // the value a step changed; an unchanged value is written as it is
				start := len(t.arena)
				var err error
				if t.arena, err = r.Fields.AppendJSON(t.arena); err != nil {
					return nil, reject(r, "fields", "cannot be encoded as JSON: "+err.Error())
				}
				d = datum{kind: dBytes, b: t.arena[start:]}
			} else {
				d = bytesDatum(r.Value)
			}
		case fromTopic:
			d = datum{kind: dString, b: t.text(r.Topic)}
		case fromPartition:
			d = datum{kind: dInt, i: int64(r.Partition)}
		case fromOffset:
			d = datum{kind: dInt, i: r.Offset}
		case fromTimestamp:
			d = datum{kind: dTime, t: r.Timestamp}
		case fromField:
			if v, ok := find(fields, c.path); ok {
				var err error
				if d, err = t.datum(v); err != nil {
					return nil, reject(r, c.label, "cannot be encoded as JSON: "+err.Error())
				}
			}
		}
		t.data[i] = d
	}
	return t.data, nil
}

// find returns the value at path in fields.
func find(fields *transform.Object, path []string) (any, bool) {
	for _, key := range path[:len(path)-1] {
		v, _ := fields.Get(key)
		next, ok := v.(*transform.Object)
		if !ok {
			return nil, false
		}
		fields = next
	}
	return fields.Get(path[len(path)-1])
}

// datum classifies a field's value, copying its text into the arena.
func (t *table) datum(v any) (datum, error) {
	switch x := v.(type) {
	case nil:
		return datum{}, nil
	case string:
		return datum{kind: dString, b: t.text(x)}, nil
	case json.Number:
		return datum{kind: dNumber, b: t.text(string(x))}, nil
	case bool:
		d := datum{kind: dBool}
		if x {
			d.i = 1
		}
		return d, nil
	}
	// Objects, arrays and Go values: by their JSON encoding.
	start := len(t.arena)
	var err error
	if t.arena, err = transform.AppendJSON(t.arena, v); err != nil {
		return datum{}, err
	}
	raw := t.arena[start:]
	switch kindOf(raw) {
	case kindObject, kindArray:
		return datum{kind: dJSON, b: raw}, nil
	case kindNumber:
		return datum{kind: dNumber, b: raw}, nil
	case kindString: // []byte, named string types
		s, err := unquote(raw)
		return datum{kind: dString, b: s}, err
	case kindBool: // named bool types
		d := datum{kind: dBool}
		if raw[0] == 't' {
			d.i = 1
		}
		return d, nil
	}
	return datum{}, nil // nil slices, maps and pointers
}

// text copies s into the arena.
func (t *table) text(s string) []byte {
	start := len(t.arena)
	t.arena = append(t.arena, s...)
	return t.arena[start:]
}

func bytesDatum(b []byte) datum {
	if b == nil {
		return datum{}
	}
	return datum{kind: dBytes, b: b}
}

func (t *table) names() string {
	names := make([]string, len(t.cols))
	for i, c := range t.cols {
		names[i] = c.name
	}
	return transform.ShortPrefix([]byte(strings.Join(names, ", ")), 200)
}
