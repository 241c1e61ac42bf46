package format_test

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	pformat "github.com/parquet-go/parquet-go/format"

	"github.com/dumpflow/dumpflow/format"
	"github.com/dumpflow/dumpflow/transform"
)

// readParquet opens body with parquet-go and returns the file and its rows,
// each rendered as "name=value" cells ("null" for a null).
func readParquet(t *testing.T, body []byte) (*parquet.File, []string) {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	fields := f.Schema().Fields()
	var rows []string
	for _, rg := range f.RowGroups() {
		rr := rg.Rows()
		buf := make([]parquet.Row, 16)
		for {
			n, err := rr.ReadRows(buf)
			for _, row := range buf[:n] {
				cells := make([]string, len(row))
				for i, v := range row {
					cells[i] = fields[v.Column()].Name() + "=" + render(v)
				}
				rows = append(rows, strings.Join(cells, " "))
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("ReadRows: %v", err)
			}
		}
		rr.Close()
	}
	if int64(len(rows)) != f.NumRows() {
		t.Errorf("read %d rows, the footer says %d", len(rows), f.NumRows())
	}
	return f, rows
}

func render(v parquet.Value) string {
	if v.IsNull() {
		return "null"
	}
	switch v.Kind() {
	case parquet.Boolean:
		return strconv.FormatBool(v.Boolean())
	case parquet.Int64:
		return strconv.FormatInt(v.Int64(), 10)
	case parquet.Double:
		return strconv.FormatFloat(v.Double(), 'g', -1, 64)
	}
	return strconv.Quote(string(v.ByteArray()))
}

// schemaOf renders the file's schema as parquet-go prints it, on one line.
func schemaOf(f *parquet.File) string {
	return strings.Join(strings.Fields(f.Schema().String()), " ")
}

// TestParquet: a schema given in the spec (every type, optional and
// required, metadata sources) and one derived from the first record's fields
// or from its envelope; the file reads back with parquet-go to the values
// written, columns in spec order, created_by fixed.
func TestParquet(t *testing.T) {
	keyed := withFields(t, 1, `{"name": "Zoë", "n": 42, "x": 2.5, "ok": true, "at": "2020-07-28T21:51:35.123456+08:00", "ms": 1595944295123, "obj": {"a": [1]}, "big": 1e3}`)
	keyed.Key = []byte{0, 0xff}
	sparse := withFields(t, 2, `{"n": -1}`)
	for _, c := range []struct {
		name       string
		spec       format.Spec
		recs       []*transform.Record
		wantSchema string
		wantRows   []string
	}{
		{
			name: "columns",
			spec: format.Spec{Columns: []format.Column{
				{Name: "name", Required: true},
				{Name: "n", Type: "int64"},
				{Name: "big", Type: "int64"},
				{Name: "x", Type: "double"},
				{Name: "n_double", Source: "n", Type: "double"},
				{Name: "ok", Type: "boolean"},
				{Name: "at", Type: "timestamp"},
				{Name: "ms", Type: "timestamp"},
				{Name: "obj", Type: "string"},
				{Name: "name_bytes", Source: "name", Type: "bytes"},
				{Name: "key", Source: "__key__"},
				{Name: "value", Source: "__value__", Type: "string"},
				{Name: "topic", Source: "__topic__"},
				{Name: "partition", Source: "__partition__"},
				{Name: "offset", Source: "__offset__", Type: "string"},
				{Name: "ts", Source: "__timestamp__"},
				{Name: "ts_ms", Source: "__timestamp__", Type: "int64"},
			}},
			recs:       []*transform.Record{keyed, func() *transform.Record { r := withFields(t, 2, `{"name": "", "n": null}`); return r }()},
			wantSchema: `message record { required binary name (STRING); optional int64 n (INT(64,true)); optional int64 big (INT(64,true)); optional double x; optional double n_double; optional boolean ok; optional int64 at (TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)); optional int64 ms (TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)); optional binary obj (STRING); optional binary name_bytes; optional binary key; optional binary value (STRING); optional binary topic (STRING); optional int64 partition (INT(64,true)); optional binary offset (STRING); optional int64 ts (TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)); optional int64 ts_ms (INT(64,true)); }`,
			wantRows: []string{
				`name="Zoë" n=42 big=1000 x=2.5 n_double=42 ok=true at=1595944295123456 ms=1595944295123000 obj="{\"a\":[1]}" name_bytes="Zoë" key="\x00\xff" value="{\"name\":\"Zoë\",\"n\":42,\"x\":2.5,\"ok\":true,\"at\":\"2020-07-28T21:51:35.123456+08:00\",\"ms\":1595944295123,\"obj\":{\"a\":[1]},\"big\":1e3}" topic="orders" partition=3 offset="1" ts=1595944295123000 ts_ms=1595944295123`,
				`name="" n=null big=null x=null n_double=null ok=null at=null ms=null obj=null name_bytes="" key=null value="{\"name\":\"\",\"n\":null}" topic="orders" partition=3 offset="2" ts=1595944295123000 ts_ms=1595944295123`,
			},
		},
		{
			name:       "derived from fields",
			recs:       []*transform.Record{keyed, sparse},
			wantSchema: `message record { optional binary name (STRING); optional int64 n (INT(64,true)); optional double x; optional boolean ok; optional binary at (STRING); optional int64 ms (INT(64,true)); optional binary obj (STRING); optional double big; }`,
			wantRows: []string{
				`name="Zoë" n=42 x=2.5 ok=true at="2020-07-28T21:51:35.123456+08:00" ms=1595944295123 obj="{\"a\":[1]}" big=1000`,
				`name=null n=-1 x=null ok=null at=null ms=null obj=null big=null`,
			},
		},
		{
			name:       "derived envelope",
			recs:       []*transform.Record{func() *transform.Record { r := val(5, "v"); r.Key = []byte("k"); return r }(), rec(6, nil)},
			wantSchema: `message record { required binary topic (STRING); required int64 partition (INT(64,true)); required int64 offset (INT(64,true)); required int64 timestamp (TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)); optional binary key; optional binary value; }`,
			wantRows: []string{
				`topic="orders" partition=3 offset=5 timestamp=1595944295123000 key="k" value="v"`,
				`topic="orders" partition=3 offset=6 timestamp=1595944295123000 key=null value=null`,
			},
		},
		{
			name:       "no records, columns given",
			spec:       format.Spec{Columns: []format.Column{{Name: "a"}, {Name: "b", Type: "int64", Required: true}}},
			wantSchema: `message record { optional binary a (STRING); required int64 b (INT(64,true)); }`,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := c.spec
			spec.Type = "parquet"
			body := mustEncode(t, spec, c.recs...)
			f, rows := readParquet(t, body)
			if got := schemaOf(f); got != c.wantSchema {
				t.Errorf("schema\n%s\nwant\n%s", got, c.wantSchema)
			}
			if strings.Join(rows, "\n") != strings.Join(c.wantRows, "\n") {
				t.Errorf("rows\n%s\nwant\n%s", strings.Join(rows, "\n"), strings.Join(c.wantRows, "\n"))
			}
			md := f.Metadata()
			if md.CreatedBy != "dumpflow" {
				t.Errorf("created_by %q, want dumpflow", md.CreatedBy)
			}
			if len(md.KeyValueMetadata) != 0 {
				t.Errorf("key-value metadata %v, want none", md.KeyValueMetadata)
			}
			if wantGroups := min(len(c.recs), 1); len(md.RowGroups) != wantGroups {
				t.Errorf("%d row groups, want %d", len(md.RowGroups), wantGroups)
			}
		})
	}
}

// TestParquetEmptyDerived: without columns and without records there is no
// schema: the body is empty.
func TestParquetEmptyDerived(t *testing.T) {
	if body := mustEncode(t, format.Spec{Type: "parquet"}); len(body) != 0 {
		t.Errorf("body of %d bytes, want none", len(body))
	}
}

// TestParquetRejects: a value that does not fit its column's type, a missing
// required value and a field outside derived columns reject the record with
// stage "format", its coordinates, the column and the rule; the rest are
// written. A rejected first record does not fix the derived schema.
func TestParquetRejects(t *testing.T) {
	_, rejects := encode(t, format.Spec{Type: "parquet", Columns: []format.Column{
		{Name: "i", Type: "int64"},
		{Name: "d", Type: "double"},
		{Name: "b", Type: "boolean"},
		{Name: "ts", Type: "timestamp"},
		{Name: "s", Type: "string"},
		{Name: "req", Type: "string", Required: true},
		{Name: "key", Source: "__key__", Type: "string"},
	}},
		withFields(t, 1, `{"req": "ok", "i": 1.5}`),
		withFields(t, 2, `{"req": "ok", "i": "1"}`),
		withFields(t, 3, `{"req": "ok", "i": 9223372036854775808}`),
		withFields(t, 4, `{"req": "ok", "d": "1.5"}`),
		withFields(t, 5, `{"req": "ok", "d": 1e400}`),
		withFields(t, 6, `{"req": "ok", "b": 1}`),
		withFields(t, 7, `{"req": "ok", "ts": "2020-07-28 21:51:35"}`),
		withFields(t, 8, `{"req": "ok", "ts": "2020-07-28T21:51:35.123456789Z"}`),
		withFields(t, 9, `{"req": "ok", "ts": 1.5}`),
		withFields(t, 10, `{"i": 1}`),
		withFields(t, 11, `{"req": null}`),
		func() *transform.Record { r := withFields(t, 12, `{"req": "ok"}`); r.Key = []byte{0xfe}; return r }(),
		withFields(t, 13, `{"req": "ok", "i": 9223372036854775807, "d": -0.5, "b": false, "ts": 0, "s": [1, {"x": null}]}`),
	)
	checkRejects(t, rejects, []string{
		`record orders[3]@1: column 1 (i) the number 1.5 does not fit the column's type int64 (it takes integers in int64 range)`,
		`record orders[3]@2: column 1 (i) the string "1" does not fit the column's type int64`,
		`record orders[3]@3: column 1 (i) the number 9223372036854775808 does not fit the column's type int64`,
		`record orders[3]@4: column 2 (d) the string "1.5" does not fit the column's type double (it takes numbers within float64 range)`,
		`record orders[3]@5: column 2 (d) the number 1e400 does not fit the column's type double`,
		`record orders[3]@6: column 3 (b) the number 1 does not fit the column's type boolean (it takes true and false)`,
		`record orders[3]@7: column 4 (ts) the string "2020-07-28 21:51:35" does not fit the column's type timestamp (it takes RFC 3339 strings to the microsecond, and integers as epoch milliseconds)`,
		`record orders[3]@8: column 4 (ts) the string "2020-07-28T21:51:35.123456789Z" does not fit the column's type timestamp`,
		`record orders[3]@9: column 4 (ts) the number 1.5 does not fit the column's type timestamp`,
		`record orders[3]@10: column 6 (req) is missing or null, and the column is required`,
		`record orders[3]@11: column 6 (req) is missing or null, and the column is required`,
		`record orders[3]@12: column 7 (key) "\xfe" does not fit the column's type string`,
	})

	body, rejects := encode(t, format.Spec{Type: "parquet"},
		withFields(t, 0, `{"a\nb": 1}`),
		withFields(t, 1, `{"a": "x", "b": 1e999}`),
		withFields(t, 2, `{"a": "y", "b": 2}`),
		withFields(t, 3, `{"a": "z", "b": 2.5}`),
		withFields(t, 4, `{"a": "z", "c": 1}`),
		val(5, "no fields"),
		withFields(t, 6, `{"b": 3, "a": 1}`),
	)
	checkRejects(t, rejects, []string{
		`record orders[3]@0: field "a\nb" cannot name a column`,
		`record orders[3]@1: column 2 (b) the number 1e999 does not fit the column's type double`,
		`record orders[3]@3: column 2 (b) the number 2.5 does not fit the column's type int64`,
		`record orders[3]@4: field "c" is not a column`,
		`record orders[3]@5: value has no fields`,
	})
	f, rows := readParquet(t, body)
	if got, want := schemaOf(f), `message record { optional binary a (STRING); optional int64 b (INT(64,true)); }`; got != want {
		t.Errorf("derived schema %s, want %s", got, want)
	}
	if got, want := strings.Join(rows, "; "), `a="y" b=2; a="1" b=3`; got != want {
		t.Errorf("rows %s, want %s", got, want)
	}
}

// TestParquetRowGroupsAndCodecs: rowGroupRows starts a row group every n
// rows (default: one per object); compression selects the page codec, and
// the file reads back the same.
func TestParquetRowGroupsAndCodecs(t *testing.T) {
	var recs []*transform.Record
	for i := range 10 {
		recs = append(recs, withFields(t, int64(i), `{"i": `+strconv.Itoa(i)+`, "s": "`+strings.Repeat("x", i*100)+`"}`))
	}
	for _, c := range []struct {
		spec   format.Spec
		groups int
		codec  pformat.CompressionCodec
	}{
		{format.Spec{}, 1, pformat.Uncompressed},
		{format.Spec{RowGroupRows: 3}, 4, pformat.Uncompressed},
		{format.Spec{RowGroupRows: 10}, 1, pformat.Uncompressed},
		{format.Spec{Compression: "gzip"}, 1, pformat.Gzip},
		{format.Spec{Compression: "zstd", RowGroupRows: 5}, 2, pformat.Zstd},
	} {
		spec := c.spec
		spec.Type = "parquet"
		body := mustEncode(t, spec, recs...)
		f, rows := readParquet(t, body)
		if len(rows) != 10 || rows[9] != `i=9 s="`+strings.Repeat("x", 900)+`"` {
			t.Errorf("%+v: rows read back wrong: %d rows, last %.40q", spec, len(rows), rows[len(rows)-1])
		}
		md := f.Metadata()
		if len(md.RowGroups) != c.groups {
			t.Errorf("%+v: %d row groups, want %d", spec, len(md.RowGroups), c.groups)
		}
		for _, rg := range md.RowGroups {
			for _, col := range rg.Columns {
				if col.MetaData.Codec != c.codec {
					t.Errorf("%+v: column %v codec %v, want %v", spec, col.MetaData.PathInSchema, col.MetaData.Codec, c.codec)
				}
			}
		}
	}
}
