package format_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dumpflow/dumpflow/format"
	"github.com/dumpflow/dumpflow/transform"
)

// fuzzRecords builds the records a fuzz input stands for: the key and value
// as given, the same swapped and with a header, and, when the value is a
// JSON object, a record with it as fields.
func fuzzRecords(key, value []byte, nilKey, nilValue bool, hkey string, hvalue []byte) []*transform.Record {
	if nilKey {
		key = nil
	}
	if nilValue {
		value = nil
	}
	r1 := &transform.Record{Topic: "t", Partition: 1, Offset: 10, Timestamp: ts, Key: key, Value: value}
	r2 := &transform.Record{Topic: "t", Partition: 1, Offset: 11, Timestamp: ts, Key: value, Value: key,
		Headers: []transform.Header{{Key: hkey, Value: hvalue}, {Key: hkey, Value: nil}}}
	recs := []*transform.Record{r1, r2}
	if v, err := transform.ParseJSON(value); err == nil {
		if o, ok := v.(*transform.Object); ok {
			recs = append(recs, &transform.Record{Topic: "t", Partition: 1, Offset: 12, Timestamp: ts, Value: value, Fields: o})
		}
	}
	return recs
}

func addSeeds(f *testing.F) {
	for _, s := range []struct {
		key, value string
		hkey       string
		hvalue     string
	}{
		{"k", "v", "h", "hv"},
		{"", "", "", ""},
		{`{"id":1}`, `{"a": [1, 2.5, "x"], "b": {"c": null}}`, "trace", "1"},
		{"42", `"a JSON string"`, "h", "\xff"},
		{"null", "null", "\xff", ""},
		{"a\nb", "c\r\nd", "line\nbreak", "\r\n"},
		{"\xff\xfe", "caf\xc3\xa9 \xe2\x80\xa8", "é", "\x00"},
		{"a,b", `"quoted", field`, ",", `"`},
		{" lead", `\.`, "", ""},
		{"1e400", "-0", "x", "true"},
		{"{\n \"pretty\": true\n}", "[\n]", "x", "y"},
	} {
		f.Add([]byte(s.key), []byte(s.value), false, false, s.hkey, []byte(s.hvalue), byte(0))
	}
	f.Add([]byte(nil), []byte(nil), true, true, "h", []byte(nil), byte(1))
	f.Add([]byte("x"), []byte("not json"), false, false, "h", []byte("v"), byte(1))
	f.Add([]byte("\x80"), []byte("\x80"), false, false, "h", []byte("v"), byte(2))
	f.Add([]byte("k"), []byte("v"), false, false, "h", []byte("v"), byte(3))
}

var embedModes = []string{"auto", "json", "string", "base64"}

// FuzzJSONL: any keys, values and headers either encode to one JSON line per
// record, which encoding/json decodes back to the same key, value and
// headers (JSON values up to insignificant white space), or are a
// *RejectError; no line is ever split or merged.
func FuzzJSONL(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, key, value []byte, nilKey, nilValue bool, hkey string, hvalue []byte, mode byte) {
		spec := format.Spec{Type: "jsonl", Key: embedModes[mode%4], Value: embedModes[(mode/4)%4]}
		recs := fuzzRecords(key, value, nilKey, nilValue, hkey, hvalue)
		var body bytes.Buffer
		e, err := format.New(spec, &body)
		if err != nil {
			t.Fatal(err)
		}
		var written []*transform.Record
		for _, r := range recs {
			if err := e.Write(r); err != nil {
				var re *format.RejectError
				if !errors.As(err, &re) || re.Offset != r.Offset || re.Stage != "format" {
					t.Fatalf("Write: %v", err)
				}
				continue
			}
			written = append(written, r)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(&body)
		sc.Buffer(nil, 1<<20)
		i := 0
		for sc.Scan() {
			if i >= len(written) {
				t.Fatalf("more lines than the %d records written", len(written))
			}
			var l struct {
				Topic         string
				Partition     int32
				Offset        int64
				Timestamp     string
				Key           json.RawMessage
				KeyEncoding   string
				Value         json.RawMessage
				ValueEncoding string
				Headers       []struct {
					Key           string
					Value         json.RawMessage
					ValueEncoding string
				}
			}
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatalf("line %d %q: %v", i, sc.Bytes(), err)
			}
			r := written[i]
			if l.Topic != r.Topic || l.Partition != r.Partition || l.Offset != r.Offset || l.Timestamp != "2020-07-28T13:51:35.123Z" {
				t.Errorf("line %d: envelope %+v", i, l)
			}
			checkEmbedded(t, "key", spec.Key, r.Key, l.Key, l.KeyEncoding)
			wantValue := r.Value
			if r.Fields != nil {
				wantValue, _ = r.Fields.AppendJSON(nil)
			}
			checkEmbedded(t, "value", spec.Value, wantValue, l.Value, l.ValueEncoding)
			if len(l.Headers) != len(r.Headers) {
				t.Fatalf("line %d: %d headers, want %d", i, len(l.Headers), len(r.Headers))
			}
			for j, h := range l.Headers {
				if h.Key != r.Headers[j].Key {
					t.Errorf("header %d key %q, want %q", j, h.Key, r.Headers[j].Key)
				}
				checkEmbedded(t, "header", "string", r.Headers[j].Value, h.Value, h.ValueEncoding)
			}
			i++
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		if i != len(written) {
			t.Fatalf("%d lines for %d records written", i, len(written))
		}
	})
}

// checkEmbedded checks that raw (with encoding enc) holds want: base64 and
// JSON strings exactly, other JSON as want compacted.
func checkEmbedded(t *testing.T, what, mode string, want []byte, raw json.RawMessage, enc string) {
	t.Helper()
	switch {
	case string(raw) == "null" && enc == "":
		if want != nil && !(mode == "json" && compactOf(want) == "null") {
			t.Errorf("%s: null, want %q", what, want)
		}
	case enc == "base64":
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		got, err := base64.StdEncoding.DecodeString(s)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: base64 %q decodes to %q (%v), want %q", what, s, got, err, want)
		}
		if mode == "string" && what != "header" || mode == "json" {
			t.Errorf("%s: base64 under mode %s", what, mode)
		}
	case enc != "":
		t.Errorf("%s: encoding %q", what, enc)
	case raw[0] == '"' && mode != "json":
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if s != string(want) {
			t.Errorf("%s: string %q, want %q", what, s, want)
		}
	default: // embedded JSON
		if mode == "string" || mode == "base64" {
			t.Errorf("%s: embedded JSON %s under mode %s", what, raw, mode)
		}
		if got := compactOf(want); string(raw) != got {
			t.Errorf("%s: JSON %s, want %s (%q compacted)", what, raw, got, want)
		}
		if mode == "auto" && (raw[0] == '"' || string(raw) == "null") {
			t.Errorf("%s: auto embedded a JSON string or null: %s", what, raw)
		}
	}
}

func compactOf(b []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return "<not JSON>"
	}
	return buf.String()
}

// FuzzCSV: any keys, values and headers either encode to one CSV row per
// record, which encoding/csv reads back (same row count, same cells), or are
// a *RejectError, exactly when a cell is not valid UTF-8 or holds "\r\n".
func FuzzCSV(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, key, value []byte, nilKey, nilValue bool, hkey string, hvalue []byte, mode byte) {
		cols := []format.Column{{Name: "v", Source: "__value__"}}
		if mode%2 == 0 {
			cols = []format.Column{{Name: "k", Source: "__key__"}, {Name: "v", Source: "__value__"}, {Name: "o", Source: "__offset__"}}
		}
		spec := format.Spec{Type: "csv", Columns: cols}
		if mode%4 == 3 {
			spec.Compression = "gzip"
		}
		recs := fuzzRecords(key, value, nilKey, nilValue, hkey, hvalue)
		var body bytes.Buffer
		e, err := format.New(spec, &body)
		if err != nil {
			t.Fatal(err)
		}
		var written []*transform.Record
		for _, r := range recs {
			cells := [][]byte{r.Value}
			if r.Fields != nil {
				cells[0], _ = r.Fields.AppendJSON(nil)
			}
			if len(cols) > 1 {
				cells = append(cells, r.Key)
			}
			faithful := true
			for _, c := range cells {
				faithful = faithful && utf8.Valid(c) && !bytes.Contains(c, []byte("\r\n"))
			}
			err := e.Write(r)
			var re *format.RejectError
			switch {
			case err == nil && faithful:
				written = append(written, r)
			case errors.As(err, &re) && !faithful:
				if re.Offset != r.Offset || re.Stage != "format" || !strings.HasPrefix(re.Field, "column ") {
					t.Errorf("reject %+v", re)
				}
			default:
				t.Fatalf("Write(%q, %q): %v (faithful: %v)", r.Key, r.Value, err, faithful)
			}
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		data := body.Bytes()
		if spec.Compression == "gzip" {
			data = decompress(t, "gzip", data)
		}
		rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
		if err != nil {
			t.Fatalf("read back %q: %v", data, err)
		}
		if len(rows) != 1+len(written) {
			t.Fatalf("read back %d rows, want a header and %d: %q", len(rows), len(written), data)
		}
		for i, r := range written {
			row := rows[i+1]
			v := r.Value
			if r.Fields != nil {
				v, _ = r.Fields.AppendJSON(nil)
			}
			want := []string{string(v)}
			if len(cols) > 1 {
				want = []string{string(r.Key), string(v), strconv.FormatInt(r.Offset, 10)}
			}
			if strings.Join(row, "\x00") != strings.Join(want, "\x00") {
				t.Errorf("row %d: %q, want %q", i, row, want)
			}
		}
	})
}
