package format

import (
	"io"
	"math"
	"reflect"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/gzip"
	"github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/parquet-go/parquet-go/encoding"

	"github.com/dumpflow/dumpflow/transform"
)

// createdBy is the file's created_by. parquet-go's default names its own
// version, read from the binary's build info, so a worker built with another
// parquet-go would write different bytes for the same records; a fixed name
// keeps a retried batch byte-identical across builds.
const createdBy = "dumpflow"

// parquetFormat writes one parquet file: the schema is the columns (given,
// or derived from the first record), every column flat and optional unless
// required; rows are written as records arrive and a row group ends every
// RowGroupRows rows (or only at Close).
type parquetFormat struct {
	w         io.Writer
	codec     compress.Codec
	groupRows int
	t         table
	pw        *parquet.Writer
	rows      int // in the current row group
	buf       parquet.Row
	batch     [1]parquet.Row
}

func newParquet(w io.Writer, spec Spec) *parquetFormat {
	f := &parquetFormat{w: w, groupRows: spec.RowGroupRows}
	switch spec.Compression {
	case Gzip:
		f.codec = &gzip.Codec{Level: gzip.DefaultCompression}
	case Zstd:
		f.codec = &zstd.Codec{Level: zstd.SpeedDefault, Concurrency: 1}
	}
	if len(spec.Columns) > 0 {
		f.t.cols = compile(spec.Columns)
	}
	return f
}

func (f *parquetFormat) write(r *transform.Record, fields *transform.Object) error {
	derive := f.t.cols == nil
	if derive {
		if rej := f.t.derive(r, fields); rej != nil {
			return rej
		}
	}
	row, rej := f.row(r, fields, derive)
	if rej != nil {
		if derive {
			f.t.underive()
		}
		return rej
	}
	if f.pw == nil {
		f.open()
	}
	f.batch[0] = row
	if _, err := f.pw.WriteRows(f.batch[:]); err != nil {
		return err
	}
	if f.rows++; f.groupRows > 0 && f.rows == f.groupRows {
		f.rows = 0
		return f.pw.Flush()
	}
	return nil
}

// derivedType is the type of a column derived from its first value.
func derivedType(d datum) string {
	switch d.kind {
	case dNumber:
		if _, err := strconv.ParseInt(string(d.b), 10, 64); err == nil {
			return TypeInt64
		}
		return TypeDouble
	case dBool:
		return TypeBoolean
	}
	return TypeString
}

func (f *parquetFormat) open() {
	fields := make(group, len(f.t.cols))
	for i, c := range f.t.cols {
		fields[i] = &field{Node: node(c.typ, c.required), name: c.name}
	}
	config := &parquet.WriterConfig{
		Schema:    parquet.NewSchema("record", fields),
		CreatedBy: createdBy,
	}
	if f.codec != nil {
		config.Compression = f.codec
	}
	f.pw = parquet.NewWriter(f.w, config)
}

func node(typ string, required bool) parquet.Node {
	var n parquet.Node
	switch typ {
	case TypeString:
		n = parquet.String()
	case TypeInt64:
		n = parquet.Leaf(parquet.Int64Type)
	case TypeDouble:
		n = parquet.Leaf(parquet.DoubleType)
	case TypeBoolean:
		n = parquet.Leaf(parquet.BooleanType)
	case TypeTimestamp:
		n = parquet.Timestamp(parquet.Microsecond)
	default:
		n = parquet.Leaf(parquet.ByteArrayType)
	}
	if required {
		return parquet.Required(n)
	}
	return parquet.Optional(n)
}

// row makes the record's row, or says why it cannot. typed says the
// columns were just derived from this record: their types are those of its
// values.
func (f *parquetFormat) row(r *transform.Record, fields *transform.Object, typed bool) (parquet.Row, *RejectError) {
	data, rej := f.t.get(r, fields)
	if rej != nil {
		return nil, rej
	}
	if typed && fields != nil {
		for i, d := range data {
			f.t.cols[i].typ = derivedType(d)
		}
	}
	if cap(f.buf) < len(data) {
		f.buf = make(parquet.Row, len(data))
	}
	row := f.buf[:len(data)]
	for i, d := range data {
		c := &f.t.cols[i]
		if d.kind == dNull {
			if c.required {
				return nil, reject(r, c.label, "is missing or null, and the column is required")
			}
			row[i] = parquet.NullValue().Level(0, 0, i)
			continue
		}
		v, ok := value(c.typ, d)
		if !ok {
			return nil, reject(r, c.label, d.describe()+" does not fit the column's type "+c.typ+rules[c.typ])
		}
		def := 1 // an optional column's value is defined
		if c.required {
			def = 0
		}
		row[i] = v.Level(0, def, i)
	}
	return row, nil
}

// rules completes a type mismatch's message with what the type takes.
var rules = map[string]string{
	TypeString:    " (it takes strings, numbers, booleans, objects and arrays as JSON text, UTF-8 keys and values)",
	TypeInt64:     " (it takes integers in int64 range)",
	TypeDouble:    " (it takes numbers within float64 range)",
	TypeBoolean:   " (it takes true and false)",
	TypeTimestamp: " (it takes RFC 3339 strings to the microsecond, and integers as epoch milliseconds)",
	TypeBytes:     "",
}

// value converts d to a value of column type typ; ok is false when it does
// not fit.
func value(typ string, d datum) (v parquet.Value, ok bool) {
	switch typ {
	case TypeString, TypeBytes:
		switch d.kind {
		case dString, dNumber, dJSON, dBytes:
			if typ == TypeString && !utf8.Valid(d.b) {
				return v, false
			}
			return parquet.ByteArrayValue(d.b), true
		case dBool:
			return parquet.ByteArrayValue([]byte(strconv.FormatBool(d.i == 1))), true
		case dInt:
			return parquet.ByteArrayValue(strconv.AppendInt(nil, d.i, 10)), true
		case dTime:
			return parquet.ByteArrayValue(appendTimestamp(nil, d.t)), true
		}
	case TypeInt64:
		switch d.kind {
		case dInt:
			return parquet.Int64Value(d.i), true
		case dTime:
			return parquet.Int64Value(d.t.UnixMilli()), true
		case dNumber:
			if i, err := strconv.ParseInt(string(d.b), 10, 64); err == nil {
				return parquet.Int64Value(i), true
			}
			// 1e3 or 5.0: an integer all the same, if float64 holds it exactly.
			if x, err := strconv.ParseFloat(string(d.b), 64); err == nil && x == math.Trunc(x) && math.Abs(x) <= 1<<53 {
				return parquet.Int64Value(int64(x)), true
			}
		}
	case TypeDouble:
		if d.kind == dNumber {
			if x, err := strconv.ParseFloat(string(d.b), 64); err == nil {
				return parquet.DoubleValue(x), true
			}
		}
	case TypeBoolean:
		if d.kind == dBool {
			return parquet.BooleanValue(d.i == 1), true
		}
	case TypeTimestamp:
		switch d.kind {
		case dTime:
			return parquet.Int64Value(d.t.UnixMicro()), true
		case dString:
			t, err := time.Parse(time.RFC3339Nano, string(d.b))
			if err == nil && t.Nanosecond()%1000 == 0 && t.Year() >= 1 && t.Year() <= 9999 {
				return parquet.Int64Value(t.UnixMicro()), true
			}
		case dNumber:
			ms, err := strconv.ParseInt(string(d.b), 10, 64)
			if err == nil && ms >= math.MinInt64/1000 && ms <= math.MaxInt64/1000 {
				return parquet.Int64Value(ms * 1000), true
			}
		}
	}
	return v, false
}

func (f *parquetFormat) close() error {
	if f.pw == nil {
		if f.t.cols == nil {
			return nil // derived columns and no record: an empty body
		}
		f.open()
	}
	return f.pw.Close()
}

// group is a parquet group whose fields keep the order given (parquet.Group
// is a map and sorts them by name).
type group []parquet.Field

func (g group) ID() int                     { return 0 }
func (g group) String() string              { return parquet.NewSchema("record", g).String() }
func (g group) Type() parquet.Type          { return parquet.Group{}.Type() }
func (g group) Optional() bool              { return false }
func (g group) Repeated() bool              { return false }
func (g group) Required() bool              { return true }
func (g group) Leaf() bool                  { return false }
func (g group) Fields() []parquet.Field     { return g }
func (g group) Encoding() encoding.Encoding { return nil }
func (g group) Compression() compress.Codec { return nil }
func (g group) GoType() reflect.Type        { return g.asMap().GoType() }
func (g group) asMap() parquet.Group {
	m := make(parquet.Group, len(g))
	for _, f := range g {
		m[f.Name()] = f
	}
	return m
}

// field is one column of a group.
type field struct {
	parquet.Node
	name string
}

func (f *field) Name() string { return f.name }

// Value is for writing Go values, which this package does not do.
func (f *field) Value(base reflect.Value) reflect.Value { return reflect.Value{} }
