package format_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/dumpflow/dumpflow/format"
)

// TestValidate: every violation names the field (under the path given), the
// value and the rule; valid specs have none.
func TestValidate(t *testing.T) {
	for _, c := range []struct {
		spec format.Spec
		want []string // Violation.String()s
	}{
		{spec: format.Spec{}},
		{spec: format.Spec{Type: "raw", Compression: "gzip", Newlines: "escape"}},
		{spec: format.Spec{Type: "jsonl", Key: "string", Value: "base64", Compression: "zstd"}},
		{spec: format.Spec{Type: "csv", Columns: []format.Column{{Name: "a"}, {Name: "b c", Source: `x.y\.z`, Required: true}, {Name: "k", Source: "__key__"}}}},
		{spec: format.Spec{Type: "parquet", RowGroupRows: 1000, Columns: []format.Column{{Name: "a", Type: "int64"}, {Name: "t", Source: "__timestamp__", Type: "string"}}}},
		{
			spec: format.Spec{Type: "xml", Compression: "lz4"},
			want: []string{
				`format.type: "xml" must be raw, jsonl, csv or parquet`,
				`format.compression: "lz4" must be none, gzip or zstd`,
			},
		},
		{
			spec: format.Spec{Newlines: "drop", Key: "auto", Value: "hex", RowGroupRows: 5, Columns: []format.Column{{Name: "a"}}},
			want: []string{
				`format.newlines: "drop" must be reject or escape`,
				`format.key: "auto" applies to type jsonl only (type is raw)`,
				`format.value: "hex" applies to type jsonl only (type is raw)`,
				`format.rowGroupRows: "5" applies to type parquet only (type is raw)`,
				`format.columns: "1 columns" applies to type csv and parquet only (type is raw)`,
			},
		},
		{
			spec: format.Spec{Type: "jsonl", Newlines: "escape", Key: "hex", Value: "JSON"},
			want: []string{
				`format.newlines: "escape" applies to type raw only (type is jsonl)`,
				`format.key: "hex" must be auto, json, string or base64`,
				`format.value: "JSON" must be auto, json, string or base64`,
			},
		},
		{
			spec: format.Spec{Type: "csv", Columns: []format.Column{
				{Name: ""},
				{Name: "a\nb"},
				{Name: "x", Source: "a..b"},
				{Name: "x", Source: "__offset", Type: "int64"},
				{Name: "y", Source: "__nope__"},
				{Name: "z", Source: `a\b`},
			}},
			want: []string{
				`format.columns[0].name: "" is required`,
				`format.columns[1].name: "a\nb" must be valid UTF-8 without control characters`,
				`format.columns[2].source: "a..b" is not a field path: has an empty key (a leading, trailing or doubled '.')`,
				`format.columns[3].name: "x" is also the name of columns[2]`,
				`format.columns[3].type: "int64" applies to type parquet only (type is csv)`,
				`format.columns[4].source: "__nope__" is not a metadata source (__key__, __value__, __topic__, __partition__, __offset__, __timestamp__)`,
				`format.columns[5].source: "a\\b" is not a field path: has a '\' that is not followed by '.' or '\'`,
			},
		},
		{
			spec: format.Spec{Type: "parquet", RowGroupRows: -1, Columns: []format.Column{
				{Name: "a", Type: "float"},
				{Name: "b", Source: "__key__", Type: "int64"},
				{Name: "c", Source: "__timestamp__", Type: "double"},
				{Name: "d", Source: "__partition__", Type: "string"},
			}},
			want: []string{
				`format.rowGroupRows: "-1" must be 0 (one row group) or more`,
				`format.columns[0].type: "float" must be string, int64, double, boolean, timestamp or bytes`,
				`format.columns[1].type: "int64" must be bytes or string for source __key__`,
				`format.columns[2].type: "double" must be timestamp, int64 or string for source __timestamp__`,
			},
		},
	} {
		var got []string
		for _, v := range c.spec.Validate("format") {
			got = append(got, v.String())
		}
		if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("%+v:\n%s\nwant\n%s", c.spec, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
		}
	}
	if vs := (format.Spec{Type: "x"}).Validate("sink.oss.format"); len(vs) != 1 || vs[0].Field != "sink.oss.format.type" {
		t.Errorf("Validate under sink.oss.format: %v", vs)
	}
}

// TestNewInvalid: New refuses a spec with violations, listing them all.
func TestNewInvalid(t *testing.T) {
	_, err := format.New(format.Spec{Type: "csv", Compression: "brotli", Columns: []format.Column{{Name: "a", Type: "int64"}}}, io.Discard)
	var ve *format.ValidationError
	if !errors.As(err, &ve) || len(ve.Violations) != 2 {
		t.Fatalf("New: %v, want a *ValidationError with 2 violations", err)
	}
	want := `invalid format spec (2 problems):
  - format.compression: "brotli" must be none, gzip or zstd
  - format.columns[0].type: "int64" applies to type parquet only (type is csv)`
	if err.Error() != want {
		t.Errorf("error\n%s\nwant\n%s", err, want)
	}
}

// TestExtensionAndContentType: names keep seed 000's form for raw
// uncompressed objects and say the format and compression otherwise.
func TestExtensionAndContentType(t *testing.T) {
	for _, c := range []struct {
		spec       format.Spec
		ext, ctype string
	}{
		{format.Spec{}, "", "text/plain; charset=utf-8"},
		{format.Spec{Type: "raw", Compression: "none"}, "", "text/plain; charset=utf-8"},
		{format.Spec{Compression: "gzip"}, ".gz", "application/gzip"},
		{format.Spec{Compression: "zstd"}, ".zst", "application/zstd"},
		{format.Spec{Type: "jsonl"}, ".jsonl", "application/x-ndjson"},
		{format.Spec{Type: "jsonl", Compression: "gzip"}, ".jsonl.gz", "application/gzip"},
		{format.Spec{Type: "csv"}, ".csv", "text/csv; charset=utf-8; header=present"},
		{format.Spec{Type: "csv", Compression: "zstd"}, ".csv.zst", "application/zstd"},
		{format.Spec{Type: "parquet"}, ".parquet", "application/vnd.apache.parquet"},
		{format.Spec{Type: "parquet", Compression: "gzip"}, ".parquet", "application/vnd.apache.parquet"},
		{format.Spec{Type: "parquet", Compression: "zstd"}, ".parquet", "application/vnd.apache.parquet"},
	} {
		if got := c.spec.Extension(); got != c.ext {
			t.Errorf("%+v: Extension() = %q, want %q", c.spec, got, c.ext)
		}
		e, err := format.New(c.spec, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.ContentType(); got != c.ctype {
			t.Errorf("%+v: ContentType() = %q, want %q", c.spec, got, c.ctype)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		if err := e.Close(); err == nil {
			t.Errorf("%+v: a second Close succeeded", c.spec)
		}
	}
}
