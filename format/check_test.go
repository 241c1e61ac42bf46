package format_test

import (
	"errors"
	"testing"

	"github.com/dumpflow/dumpflow/format"
	"github.com/dumpflow/dumpflow/transform"
)

// TestCheckAgreesWithWrite: Check rejects exactly the records that an
// encoder holding no record yet rejects, with the same error, for every
// format; and it finds nothing that only the object's earlier records
// decide (columns derived from the first record).
func TestCheckAgreesWithWrite(t *testing.T) {
	required := []format.Column{{Name: "id", Type: format.TypeInt64, Required: true}}
	for _, tc := range []struct {
		name   string
		spec   format.Spec
		r      *transform.Record
		reject bool
	}{
		{"raw", format.Spec{}, val(1, "plain"), false},
		{"raw newline", format.Spec{}, val(1, "a\nb"), true},
		{"raw carriage return in fields", format.Spec{}, withFields(t, 1, `{"a":"x\ry"}`), false}, // JSON escapes it
		{"raw escape", format.Spec{Newlines: format.NewlinesEscape}, val(1, "a\nb"), false},
		{"jsonl", format.Spec{Type: format.JSONL}, val(1, `{"a":1}`), false},
		{"jsonl string not utf-8", format.Spec{Type: format.JSONL, Value: format.EmbedString}, val(1, "\xff"), true},
		{"jsonl gzip json mode", format.Spec{Type: format.JSONL, Compression: format.Gzip, Value: format.EmbedJSON}, val(1, "not json"), true},
		{"jsonl key json mode", format.Spec{Type: format.JSONL, Key: format.EmbedJSON}, &transform.Record{Topic: "orders", Key: []byte("k1"), Value: []byte("{}")}, true},
		{"jsonl key json mode ok", format.Spec{Type: format.JSONL, Key: format.EmbedJSON}, &transform.Record{Topic: "orders", Key: []byte(" [1, 2] "), Value: []byte("{}")}, false},
		{"jsonl value json mode fields", format.Spec{Type: format.JSONL, Value: format.EmbedJSON}, withFields(t, 1, `{"a":[1]}`), false},
		{"jsonl topic not utf-8", format.Spec{Type: format.JSONL}, &transform.Record{Topic: "t\xff", Value: []byte("x")}, true},
		{"jsonl header key not utf-8", format.Spec{Type: format.JSONL}, &transform.Record{Topic: "t", Headers: []transform.Header{{Key: "ok"}, {Key: "\xfe", Value: []byte("v")}}}, true},
		{"jsonl header value not utf-8", format.Spec{Type: format.JSONL}, &transform.Record{Topic: "t", Headers: []transform.Header{{Key: "h", Value: []byte("\xfe")}}}, false},
		{"csv derived", format.Spec{Type: format.CSV}, withFields(t, 1, `{"a":1}`), false},
		{"csv crlf", format.Spec{Type: format.CSV}, val(1, "a\r\nb"), true},
		{"csv required missing", format.Spec{Type: format.CSV, Columns: []format.Column{{Name: "id", Required: true}}}, withFields(t, 1, `{"b":1}`), true},
		{"parquet fits", format.Spec{Type: format.Parquet, Columns: required}, withFields(t, 1, `{"id":7}`), false},
		{"parquet misfit", format.Spec{Type: format.Parquet, Compression: format.Zstd, Columns: required}, withFields(t, 1, `{"id":"seven"}`), true},
		{"parquet envelope", format.Spec{Type: format.Parquet}, val(1, "\xff"), false},
		{"parquet envelope topic not utf-8", format.Spec{Type: format.Parquet}, &transform.Record{Topic: "t\xff", Value: []byte("x")}, true},
		{"csv envelope value not utf-8", format.Spec{Type: format.CSV}, val(1, "\xff"), true},
		{"parquet derived", format.Spec{Type: format.Parquet}, withFields(t, 1, `{"id":"seven"}`), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, rejects := encode(t, tc.spec, tc.r)
			err := format.Check(tc.spec, tc.r)
			if (len(rejects) > 0) != tc.reject {
				t.Fatalf("Write rejects %v, want reject=%v", rejects, tc.reject)
			}
			if !tc.reject {
				if err != nil {
					t.Fatalf("Check: %v, Write accepts the record", err)
				}
				return
			}
			var re *format.RejectError
			if !errors.As(err, &re) {
				t.Fatalf("Check: %v, want the *RejectError %v", err, rejects[0])
			}
			if re.Error() != rejects[0].Error() {
				t.Fatalf("Check: %v\nWrite: %v", re, rejects[0])
			}
		})
	}

	// A rejection only the object's first record decides is Write's alone.
	spec := format.Spec{Type: format.CSV}
	first, second := withFields(t, 1, `{"a":1}`), withFields(t, 2, `{"b":1}`)
	if _, rejects := encode(t, spec, first, second); len(rejects) != 1 {
		t.Fatalf("Write: %v, want the second record rejected", rejects)
	}
	if err := format.Check(spec, second); err != nil {
		t.Fatalf("Check: %v: it sees no earlier record", err)
	}
}

// BenchmarkCheck measures what Check costs a plan per record (a raw value
// without fields: the default OSS format; and a JSON line).
func BenchmarkCheck(b *testing.B) {
	r := val(1, `{"version":1,"componentName":"trade","timestamp":1595944295,"returnCode":101103,"returnMessage":"return has no deal return error"}`)
	cols := []format.Column{{Name: "returnCode"}, {Name: "offset", Source: format.SourceOffset}}
	for _, spec := range []format.Spec{{}, {Type: format.JSONL}, {Type: format.CSV}, {Type: format.Parquet, Columns: cols}} {
		b.Run(spec.Name(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := format.Check(spec, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
