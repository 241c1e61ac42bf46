package format_test

import (
	"strings"
	"testing"
	"time"

	"github.com/dumpflow/dumpflow/format"
	"github.com/dumpflow/dumpflow/transform"
)

// envelope is the start of the line of a record made by rec or val.
const envelope = `{"topic":"orders","partition":3,"offset":7,"timestamp":"2020-07-28T13:51:35.123Z",`

// TestJSONL: exact lines for each way a key, a value and headers can be
// held, in each mode.
func TestJSONL(t *testing.T) {
	keyed := func(k []byte, v string) *transform.Record {
		r := val(7, v)
		r.Key = k
		return r
	}
	headed := func(hs ...transform.Header) *transform.Record {
		r := val(7, "v")
		r.Headers = hs
		return r
	}
	fields := withFields(t, 7, `{"b": 2, "a": {"x": [1, 2.50, "s"]}, "n": null}`)
	fields.Value = []byte("not what is written")
	for _, c := range []struct {
		name       string
		spec       format.Spec
		rec        *transform.Record
		want       string // the line after envelope
		wantReject string // else: the start of the reject's Field + " " + Rule
	}{
		{name: "object", rec: val(7, `{"a": 1, "b": [true, null]}`), want: `"key":null,"value":{"a":1,"b":[true,null]},"headers":[]}`},
		{name: "pretty JSON is compacted", rec: val(7, "{\n  \"a\": \"x y\",\n  \"b\": 1.50e3\n}\n"), want: `"key":null,"value":{"a":"x y","b":1.50e3},"headers":[]}`},
		{name: "array", rec: val(7, `[1,"two"]`), want: `"key":null,"value":[1,"two"],"headers":[]}`},
		{name: "number", rec: val(7, `-12.5`), want: `"key":null,"value":-12.5,"headers":[]}`},
		{name: "true", rec: val(7, `true`), want: `"key":null,"value":true,"headers":[]}`},
		{name: "text", rec: val(7, `hello "world"`), want: `"key":null,"value":"hello \"world\"","headers":[]}`},
		{name: "text with newlines", rec: val(7, "a\nb\r\tc\x01\u2028"), want: `"key":null,"value":"a\nb\r\tc\u0001\u2028","headers":[]}`},
		{name: "JSON string stays text", rec: val(7, `"quoted"`), want: `"key":null,"value":"\"quoted\"","headers":[]}`},
		{name: "JSON null stays text", rec: val(7, `null`), want: `"key":null,"value":"null","headers":[]}`},
		{name: "not quite JSON", rec: val(7, `{"a":1`), want: `"key":null,"value":"{\"a\":1","headers":[]}`},
		{name: "leading zero is not JSON", rec: val(7, `007`), want: `"key":null,"value":"007","headers":[]}`},
		{name: "empty", rec: val(7, ``), want: `"key":null,"value":"","headers":[]}`},
		{name: "null value", rec: rec(7, nil), want: `"key":null,"value":null,"headers":[]}`},
		{name: "binary", rec: rec(7, []byte{0xff, 0xfe, 'a'}), want: `"key":null,"value":"//5h","valueEncoding":"base64","headers":[]}`},
		{name: "JSON with invalid UTF-8 inside", rec: rec(7, []byte("{\"a\":\"\xff\"}")), want: `"key":null,"value":"eyJhIjoi/yJ9","valueEncoding":"base64","headers":[]}`},
		{name: "keys", rec: keyed([]byte("user-1"), "v"), want: `"key":"user-1","value":"v","headers":[]}`},
		{name: "JSON key", rec: keyed([]byte(`{"id":1}`), "v"), want: `"key":{"id":1},"value":"v","headers":[]}`},
		{name: "numeric key", rec: keyed([]byte(`42`), "v"), want: `"key":42,"value":"v","headers":[]}`},
		{name: "binary key", rec: keyed([]byte{0x80}, "v"), want: `"key":"gA==","keyEncoding":"base64","value":"v","headers":[]}`},
		{name: "empty key", rec: keyed([]byte{}, "v"), want: `"key":"","value":"v","headers":[]}`},
		{name: "headers", rec: headed(
			transform.Header{Key: "h", Value: []byte("1")},
			transform.Header{Key: "h", Value: []byte("again")},
			transform.Header{Key: "nil", Value: nil},
			transform.Header{Key: "empty", Value: []byte{}},
			transform.Header{Key: "bin\n", Value: []byte{0xc3, 0x28}},
		), want: `"key":null,"value":"v","headers":[{"key":"h","value":"1"},{"key":"h","value":"again"},{"key":"nil","value":null},{"key":"empty","value":""},{"key":"bin\n","value":"wyg=","valueEncoding":"base64"}]}`},
		{name: "fields", rec: fields, want: `"key":null,"value":{"b":2,"a":{"x":[1,2.50,"s"]},"n":null},"headers":[]}`},

		{name: "value json", spec: format.Spec{Value: "json"}, rec: val(7, ` "s" `), want: `"key":null,"value":"s","headers":[]}`},
		{name: "value json null", spec: format.Spec{Value: "json"}, rec: val(7, `null`), want: `"key":null,"value":null,"headers":[]}`},
		{name: "value json fields", spec: format.Spec{Value: "json"}, rec: fields, want: `"key":null,"value":{"b":2,"a":{"x":[1,2.50,"s"]},"n":null},"headers":[]}`},
		{name: "value json rejects text", spec: format.Spec{Value: "json"}, rec: val(7, `plain`), wantReject: `value "plain" is not valid UTF-8 JSON (format.value is json)`},
		{name: "value json rejects bad UTF-8", spec: format.Spec{Value: "json"}, rec: rec(7, []byte("\"\xff\"")), wantReject: `value "\"\xff\"" is not valid UTF-8 JSON`},
		{name: "value string", spec: format.Spec{Value: "string"}, rec: val(7, `{"a": 1}`), want: `"key":null,"value":"{\"a\": 1}","headers":[]}`},
		{name: "value string fields", spec: format.Spec{Value: "string"}, rec: fields, want: `"key":null,"value":"{\"b\":2,\"a\":{\"x\":[1,2.50,\"s\"]},\"n\":null}","headers":[]}`},
		{name: "value string rejects binary", spec: format.Spec{Value: "string"}, rec: rec(7, []byte{'a', 0xff}), wantReject: `value "a\xff" is not valid UTF-8, which a JSON string cannot hold (format.value is string`},
		{name: "value base64", spec: format.Spec{Value: "base64"}, rec: val(7, `{}`), want: `"key":null,"value":"e30=","valueEncoding":"base64","headers":[]}`},
		{name: "value base64 null", spec: format.Spec{Value: "base64"}, rec: rec(7, nil), want: `"key":null,"value":null,"headers":[]}`},
		{name: "key string", spec: format.Spec{Key: "string"}, rec: keyed([]byte(`42`), "v"), want: `"key":"42","value":"v","headers":[]}`},
		{name: "key base64", spec: format.Spec{Key: "base64"}, rec: keyed([]byte(`k`), "v"), want: `"key":"aw==","keyEncoding":"base64","value":"v","headers":[]}`},
		{name: "key json rejects", spec: format.Spec{Key: "json"}, rec: keyed([]byte(`k`), "v"), wantReject: `key "k" is not valid UTF-8 JSON (format.key is json)`},
		{name: "header key not UTF-8", rec: headed(transform.Header{Key: "ok"}, transform.Header{Key: "\xff"}), wantReject: `headers[1].key "\xff" is not valid UTF-8`},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := c.spec
			spec.Type = "jsonl"
			// Valid JSON in every mode, before and after the record under test.
			body, rejects := encode(t, spec, val(6, "6"), c.rec, val(8, "8"))
			line := func(offset, v string) string {
				switch spec.Value {
				case "string":
					v = `"` + v + `"`
				case "base64":
					v = map[string]string{"6": `"Ng=="`, "8": `"OA=="`}[v] + `,"valueEncoding":"base64"`
				}
				return `{"topic":"orders","partition":3,"offset":` + offset + `,"timestamp":"2020-07-28T13:51:35.123Z","key":null,"value":` + v + `,"headers":[]}` + "\n"
			}
			before, after := line("6", "6"), line("8", "8")
			if c.wantReject != "" {
				if len(rejects) != 1 {
					t.Fatalf("rejects %v, want one", rejects)
				}
				re := rejects[0]
				if got := re.Field + " " + re.Rule; !strings.HasPrefix(got, c.wantReject) {
					t.Errorf("reject %q, want prefix %q", got, c.wantReject)
				}
				if re.Stage != "format" || re.Topic != "orders" || re.Partition != 3 || re.Offset != 7 {
					t.Errorf("reject %+v, want stage format and orders[3]@7", re)
				}
				if want := before + after; string(body) != want {
					t.Errorf("body\n%s\nwant\n%s", body, want)
				}
				return
			}
			if len(rejects) > 0 {
				t.Fatalf("rejects %v", rejects)
			}
			if want := before + envelope + c.want + "\n" + after; string(body) != want {
				t.Errorf("body\n%s\nwant\n%s", body, want)
			}
		})
	}
}

// TestJSONLTimestamp: timestamps are RFC 3339 in UTC, to the millisecond,
// whatever the record's location.
func TestJSONLTimestamp(t *testing.T) {
	for _, c := range []struct {
		ts   time.Time
		want string
	}{
		{time.Date(2020, 7, 28, 21, 51, 35, 0, time.FixedZone("GMT+08:00", 8*3600)), "2020-07-28T13:51:35.000Z"},
		{time.UnixMilli(1595944295001), "2020-07-28T13:51:35.001Z"},
		{time.Unix(0, 999_999_999), "1970-01-01T00:00:00.999Z"},
		{time.Time{}, "0001-01-01T00:00:00.000Z"},
	} {
		r := val(1, "v")
		r.Timestamp = c.ts
		body := mustEncode(t, format.Spec{Type: "jsonl"}, r)
		if want := `"timestamp":"` + c.want + `"`; !strings.Contains(string(body), want) {
			t.Errorf("%v: %s, want %s", c.ts, body, want)
		}
	}
}
