package format_test

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/dumpflow/dumpflow/format"
	"github.com/dumpflow/dumpflow/transform"
)

// TestRaw: values without newlines are written exactly as the OSS sink
// wrote them before formats existed (value, then "\n"), in every newline
// mode; a record with fields is written as their JSON.
func TestRaw(t *testing.T) {
	for _, c := range []struct {
		name string
		recs []*transform.Record
		want string
	}{
		{"none", nil, ""},
		{"values", []*transform.Record{val(0, "a"), val(1, "héllo, 世界"), val(2, `{"json": 1}`)}, "a\nhéllo, 世界\n{\"json\": 1}\n"},
		{"empty and null", []*transform.Record{val(0, ""), rec(1, nil), val(2, "x")}, "\n\nx\n"},
		{"binary", []*transform.Record{rec(0, []byte{0, 0xff, '\t', 0xfe})}, "\x00\xff\t\xfe\n"},
		{"fields", []*transform.Record{withFields(t, 0, `{"b": 2, "a": [1, "x"]}`)}, `{"b":2,"a":[1,"x"]}` + "\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var seed000 bytes.Buffer // what sink/oss wrote before formats
			for _, r := range c.recs {
				if r.Fields == nil {
					seed000.Write(r.Value)
					seed000.WriteByte('\n')
				}
			}
			for _, spec := range []format.Spec{{}, {Type: "raw"}, {Type: "raw", Newlines: "reject", Compression: "none"}} {
				got := mustEncode(t, spec, c.recs...)
				if string(got) != c.want {
					t.Errorf("%+v: body %q, want %q", spec, got, c.want)
				}
				if c.name != "fields" && !bytes.Equal(got, seed000.Bytes()) {
					t.Errorf("%+v: body %q differs from seed 000's %q", spec, got, seed000.Bytes())
				}
			}
			if strings.ContainsRune(c.want, '\\') {
				return
			}
			if got := mustEncode(t, format.Spec{Newlines: "escape"}, c.recs...); string(got) != c.want {
				t.Errorf("escape: body %q, want %q (nothing to escape)", got, c.want)
			}
		})
	}
}

// TestRawNewlines: under newlines: reject a value with "\n" or "\r" is a
// *RejectError naming the record, the byte and the option, and nothing of it
// is written; under escape it is written on one line and unescapes back.
func TestRawNewlines(t *testing.T) {
	recs := []*transform.Record{
		val(10, "first"),
		val(11, "two\nlines"),
		val(12, `back\slash`),
		val(13, "cr\rhere"),
		val(14, "crlf\r\n"),
		val(15, `\n is not a newline`),
		withFields(t, 16, `{"s":"a\nb"}`), // the JSON escapes it: nothing to reject
		val(17, "last"),
	}
	body, rejects := encode(t, format.Spec{}, recs...)
	if want := "first\nback\\slash\n\\n is not a newline\n{\"s\":\"a\\nb\"}\nlast\n"; string(body) != want {
		t.Errorf("reject: body %q, want %q", body, want)
	}
	wantRejects := []struct {
		offset int64
		rule   string
	}{
		{11, `"two\nlines" contains a line feed at byte 3`},
		{13, `"cr\rhere" contains a carriage return at byte 2`},
		{14, `"crlf\r\n" contains a carriage return at byte 4`},
	}
	if len(rejects) != len(wantRejects) {
		t.Fatalf("rejects %v, want %d", rejects, len(wantRejects))
	}
	for i, w := range wantRejects {
		re := rejects[i]
		if re.Stage != "format" || re.Topic != "orders" || re.Partition != 3 || re.Offset != w.offset || re.Field != "value" {
			t.Errorf("reject %d: %+v, want stage format, orders[3]@%d, field value", i, re, w.offset)
		}
		if !strings.HasPrefix(re.Rule, w.rule) || !strings.Contains(re.Rule, "format.newlines is reject") {
			t.Errorf("reject %d: rule %q, want it to start with %q and name format.newlines", i, re.Rule, w.rule)
		}
		if want := "record orders[3]@" + strconv.FormatInt(w.offset, 10) + ": value " + w.rule; !strings.HasPrefix(re.Error(), want) {
			t.Errorf("reject %d: Error() = %q, want prefix %q", i, re.Error(), want)
		}
	}

	body = mustEncode(t, format.Spec{Newlines: "escape"}, recs...)
	want := `first
two\nlines
back\\slash
cr\rhere
crlf\r\n
\\n is not a newline
{"s":"a\\nb"}
last
`
	if string(body) != want {
		t.Errorf("escape: body\n%s\nwant\n%s", body, want)
	}
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	if len(lines) != len(recs) {
		t.Fatalf("escape: %d lines for %d records", len(lines), len(recs))
	}
	for i, line := range lines {
		wantValue := string(recs[i].Value)
		if recs[i].Fields != nil {
			wantValue = `{"s":"a\nb"}`
		}
		if got := unescape(line); got != wantValue {
			t.Errorf("escape: line %d unescapes to %q, want %q", i, got, wantValue)
		}
	}
}

// unescape reverses newlines: escape as documented on Spec.Newlines.
func unescape(s string) string {
	return strings.NewReplacer(`\\`, `\`, `\n`, "\n", `\r`, "\r").Replace(s)
}
