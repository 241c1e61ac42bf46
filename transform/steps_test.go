package transform

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// compileYAML compiles a YAML list of steps.
func compileYAML(t testing.TB, steps string, opts ...Options) *Chain {
	t.Helper()
	var specs []StepSpec
	require.NoError(t, yaml.UnmarshalStrict([]byte(steps), &specs))
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	c, err := Compile(specs, o)
	require.NoError(t, err)
	return c
}

// applyOne runs one record through a fresh Run of c.
func applyOne(t testing.TB, c *Chain, rec *Record) ([]*Record, error) {
	t.Helper()
	ctx := context.Background()
	run, err := c.Begin(ctx)
	require.NoError(t, err)
	defer func() { require.NoError(t, run.Close(ctx)) }()
	out, err := run.Apply(ctx, rec)
	return append([]*Record(nil), out...), err
}

var testTime = time.Date(2020, 7, 28, 13, 51, 35, 123_000_000, time.UTC)

func testRecord(value string) *Record {
	r := &Record{Topic: "orders", Partition: 3, Offset: 42, Timestamp: testTime, Key: []byte("k1")}
	if value != "<nil>" {
		r.Value = []byte(value)
	}
	return r
}

// deepCopy copies a record and the bytes it points to.
func deepCopy(r *Record) Record {
	c := *r
	c.Key = slices.Clone(r.Key)
	c.Value = slices.Clone(r.Value)
	c.Headers = nil
	for _, h := range r.Headers {
		c.Headers = append(c.Headers, Header{h.Key, slices.Clone(h.Value)})
	}
	return c
}

type stepCase struct {
	name    string
	steps   string
	value   string                    // the record value; "<nil>" for a null value
	headers []Header                  // the record headers
	want    string                    // the output value; "<dropped>" when dropped
	err     string                    // a substring of the *StepError, when the record fails
	check   func(*testing.T, *Record) // more checks on the output record
}

func runStepCases(t *testing.T, cases []stepCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := compileYAML(t, tc.steps)
			in := testRecord(tc.value)
			in.Headers = tc.headers
			before := deepCopy(in)
			out, err := applyOne(t, c, in)
			require.Equal(t, before, deepCopy(in), "the input record is not modified")
			if tc.err != "" {
				var se *StepError
				require.ErrorAs(t, err, &se)
				require.Contains(t, err.Error(), tc.err)
				require.Empty(t, out)
				return
			}
			require.NoError(t, err)
			if tc.want == "<dropped>" {
				require.Empty(t, out)
				return
			}
			require.Len(t, out, 1)
			if tc.want != "" {
				require.Equal(t, tc.want, string(out[0].Value))
			}
			if out[0].Fields != nil {
				b, err := out[0].Fields.MarshalJSON()
				require.NoError(t, err)
				require.Equal(t, string(out[0].Value), string(b), "Fields and Value agree")
			}
			if tc.check != nil {
				tc.check(t, out[0])
			}
		})
	}
}

func TestFilter(t *testing.T) {
	runStepCases(t, []stepCase{
		{name: "keeps true", steps: `[{type: filter, if: "value.n > 1"}]`, value: `{"n":2}`, want: `{"n":2}`},
		{name: "drops false", steps: `[{type: filter, if: "value.n > 1"}]`, value: `{"n":1}`, want: "<dropped>"},
		{name: "on a non-JSON value", steps: `[{type: filter, if: "value startsWith 'ok'"}]`, value: `ok then`, want: `ok then`},
		{name: "on a null value", steps: `[{type: filter, if: "value == nil"}]`, value: `<nil>`, want: ``},
		{name: "on key and headers", steps: `[{type: filter, if: "key == 'k1' && headers.h == 'v'"}]`, value: `x`,
			headers: []Header{{"h", []byte("w")}, {"h", []byte("v")}}, want: `x`},
		{name: "on coordinates", steps: `[{type: filter, if: "topic == 'orders' && partition == 3 && offset == 42 && timestamp == 1595944295123"}]`, value: `x`, want: `x`},
		{name: "not a bool at run time", steps: `[{type: filter, if: "value.n"}]`, value: `{"n":2}`, err: `if: expression gave a number, want a bool`},
		{name: "runtime error", steps: `[{type: filter, if: "value.a.b == 1"}]`, value: `{"n":2}`, err: `if: cannot fetch b from <nil>`},
		{name: "optional chaining", steps: `[{type: filter, if: "value?.a?.b == nil"}]`, value: `{"n":2}`, want: `{"n":2}`},
	})
}

func TestSet(t *testing.T) {
	runStepCases(t, []stepCase{
		{name: "appends a new field", steps: `[{type: set, field: c, expr: "value.a + value.b"}]`,
			value: `{"a": 1, "b": 2.50}`, want: `{"a":1,"b":2.50,"c":3.5}`},
		{name: "replaces in place", steps: `[{type: set, field: a, expr: "upper(value.a)"}]`,
			value: `{"a":"x","b":1e3}`, want: `{"a":"X","b":1e3}`},
		{name: "nested path creates objects", steps: `[{type: set, field: m.n.o, expr: "offset"}]`,
			value: `{"m":{"x":true}}`, want: `{"m":{"x":true,"n":{"o":42}}}`},
		{name: "copies an object in its order", steps: `[{type: set, field: c, expr: "value.a"}]`,
			value: `{"a":{"z":1.50,"y":[2.0,{"q":1}]}}`, want: `{"a":{"z":1.50,"y":[2.0,{"q":1}]},"c":{"z":1.50,"y":[2.0,{"q":1}]}}`},
		{name: "a map literal in sorted key order", steps: `[{type: set, field: c, expr: "{'z': 1, 'a': [1, 'x', nil]}"}]`,
			value: `{}`, want: `{"c":{"a":[1,"x",null],"z":1}}`},
		{name: "the same value keeps the bytes", steps: `[{type: set, field: a, expr: "'x'"}]`,
			value: `{"a" : "x"}`, want: `{"a" : "x"}`},
		{name: "strings are escaped, not HTML-escaped", steps: `[{type: set, field: s, expr: "'<a>&\"\\n\u2028'"}]`,
			value: `{}`, want: `{"s":"<a>&\"\n\u2028"}`},
		{name: "NaN fails", steps: `[{type: set, field: a, expr: "0/0"}]`, value: `{}`, err: `NaN is not a JSON number`},
		{name: "through a non-object fails", steps: `[{type: set, field: a.b, expr: "1"}]`, value: `{"a":"s"}`, err: `field "a" is a string, not an object`},
		{name: "on a non-JSON value fails", steps: `[{type: set, field: a, expr: "1"}]`, value: `plain`, err: `the value is not JSON ("plain")`},
		{name: "on an array fails", steps: `[{type: set, field: a, expr: "1"}]`, value: `[1]`, err: `the value is an array, not a JSON object`},
		{name: "if false passes unchanged", steps: `[{type: set, if: "value.a > 5", field: b, expr: "1"}]`, value: `{"a":1}`, want: `{"a":1}`},
		{name: "if true applies", steps: `[{type: set, if: "value.a > 0", field: b, expr: "1"}]`, value: `{"a":1}`, want: `{"a":1,"b":1}`},
		{name: "sees earlier steps", steps: `[{type: set, field: b, expr: "2"}, {type: set, field: c, expr: "value.b * 10"}]`,
			value: `{"a":1}`, want: `{"a":1,"b":2,"c":20}`},
	})
}

func TestKeepDropRename(t *testing.T) {
	v := `{"a":1,"b":{"c":2,"d":3},"e":"x"}`
	runStepCases(t, []stepCase{
		{name: "keep in the listed order", steps: `[{type: keep, fields: [e, a, missing]}]`, value: v, want: `{"e":"x","a":1}`},
		{name: "keep a nested field", steps: `[{type: keep, fields: [b.d, a]}]`, value: v, want: `{"b":{"d":3},"a":1}`},
		{name: "keep everything keeps the bytes", steps: `[{type: keep, fields: [a, b, e]}]`, value: `{"a":1, "b":{}, "e":2}`, want: `{"a":1, "b":{}, "e":2}`},
		{name: "drop", steps: `[{type: drop, fields: [a, b.c]}]`, value: v, want: `{"b":{"d":3},"e":"x"}`},
		{name: "drop missing keeps the bytes", steps: `[{type: drop, fields: [z, b.z, e.z]}]`, value: `{"e" : 1}`, want: `{"e" : 1}`},
		{name: "rename in place", steps: `[{type: rename, field: b, to: B}]`, value: v, want: `{"a":1,"B":{"c":2,"d":3},"e":"x"}`},
		{name: "rename over an existing field", steps: `[{type: rename, field: e, to: a}]`, value: v, want: `{"b":{"c":2,"d":3},"a":"x"}`},
		{name: "rename across levels", steps: `[{type: rename, field: b.c, to: x.y}]`, value: v, want: `{"a":1,"b":{"d":3},"e":"x","x":{"y":2}}`},
		{name: "rename a missing field", steps: `[{type: rename, field: z, to: y}]`, value: v, want: v},
		{name: "escaped dot in a path", steps: `[{type: rename, field: 'a\.b', to: ab}]`, value: `{"a.b":1,"a":{"b":2}}`, want: `{"ab":1,"a":{"b":2}}`},
	})
}

func TestMask(t *testing.T) {
	v := `{"card":"4111111111111111","name":"张三丰","num":12345,"o":{"p":"secret"},"nil":null}`
	runStepCases(t, []stepCase{
		{name: "all characters", steps: `[{type: mask, fields: [name, o.p]}]`, value: v,
			want: `{"card":"4111111111111111","name":"***","num":12345,"o":{"p":"******"},"nil":null}`},
		{name: "keep the last 4", steps: `[{type: mask, fields: [card, name, missing, nil], keepLast: 4, char: "#"}]`, value: v,
			want: `{"card":"############1111","name":"张三丰","num":12345,"o":{"p":"secret"},"nil":null}`},
		{name: "a number becomes a masked string", steps: `[{type: mask, fields: [num], keepLast: 2}]`, value: v,
			want: `{"card":"4111111111111111","name":"张三丰","num":"***45","o":{"p":"secret"},"nil":null}`},
		{name: "hash", steps: `[{type: mask, fields: [o.p], hash: sha256}]`, value: `{"o":{"p":"secret"}}`,
			want: `{"o":{"p":"2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"}}`},
		{name: "an object fails", steps: `[{type: mask, fields: [o]}]`, value: v, err: `mask field "o": it is an object; mask its fields instead`},
	})
}

func TestTime(t *testing.T) {
	runStepCases(t, []stepCase{
		{name: "unix seconds to a layout in GMT+08:00", steps: `[{type: time, field: ts, parse: unix, format: "2006-01-02 15:04:05", zone: "GMT+08:00"}]`,
			value: `{"ts":1595944295}`, want: `{"ts":"2020-07-28 21:51:35"}`},
		{name: "numeric string millis to rfc3339", steps: `[{type: time, field: ts, to: iso, parse: unixMilli}]`,
			value: `{"ts":"1595944295123"}`, want: `{"ts":"1595944295123","iso":"2020-07-28T13:51:35.123Z"}`},
		{name: "fractional seconds", steps: `[{type: time, field: ts, parse: unix, format: unixMilli}]`,
			value: `{"ts":1595944295.5}`, want: `{"ts":1595944295500}`},
		{name: "a layout read in an IANA zone", steps: `[{type: time, field: ts, parse: "2006-01-02 15:04:05", format: unix, zone: Asia/Shanghai}]`,
			value: `{"ts":"2020-07-28 21:51:35"}`, want: `{"ts":1595944295}`},
		{name: "strftime both ways", steps: `[{type: time, field: ts, parse: "%d/%m/%Y %H:%M", format: "%Y-%m-%dT%H:%M:%S%z", zone: "GMT-05:30"}]`,
			value: `{"ts":"28/07/2020 21:51"}`, want: `{"ts":"2020-07-28T21:51:00-0530"}`},
		{name: "a zone in the text wins", steps: `[{type: time, field: ts, parse: rfc3339, format: "2006-01-02 15:04", zone: UTC}]`,
			value: `{"ts":"2020-07-28T21:51:35+08:00"}`, want: `{"ts":"2020-07-28 13:51"}`},
		{name: "missing field", steps: `[{type: time, field: ts, parse: unix}]`, value: `{}`, err: `field "ts" is missing`},
		{name: "not matching the layout", steps: `[{type: time, field: ts, parse: "2006-01-02"}]`, value: `{"ts":"July 28"}`,
			err: `field "ts": "July 28" does not match the layout`},
		{name: "not a number", steps: `[{type: time, field: ts, parse: unix}]`, value: `{"ts":"soon"}`, err: `"soon" is not a number`},
		{name: "a number for a layout", steps: `[{type: time, field: ts, parse: rfc3339}]`, value: `{"ts":1}`, err: `is a number; use parse: unix`},
	})
}

func TestExtractSplit(t *testing.T) {
	runStepCases(t, []stepCase{
		{name: "extract named groups", steps: `[{type: extract, field: m, regex: '(?P<code>\d+) (?P<text>\w+)(?P<rest>!)?'}]`,
			value: `{"m":"E 404 missing"}`, want: `{"m":"E 404 missing","code":"404","text":"missing","rest":null}`},
		{name: "extract into an object", steps: `[{type: extract, field: m, to: parsed, regex: '(?P<code>\d+)'}]`,
			value: `{"m":"E 404"}`, want: `{"m":"E 404","parsed":{"code":"404"}}`},
		{name: "extract from a number", steps: `[{type: extract, field: num, regex: '^(?P<year>\d{4})'}]`,
			value: `{"num":20200728}`, want: `{"num":20200728,"year":"2020"}`},
		{name: "extract no match", steps: `[{type: extract, field: m, regex: '(?P<code>\d+)'}]`, value: `{"m":"none"}`,
			err: `field "m" ("none") does not match the regex`},
		{name: "extract missing", steps: `[{type: extract, field: m, regex: '(?P<code>\d+)'}]`, value: `{}`, err: `field "m" is missing`},
		{name: "split into an array", steps: `[{type: split, field: csv, separator: ","}]`,
			value: `{"csv":"a,b,,c"}`, want: `{"csv":["a","b","","c"]}`},
		{name: "split to another field", steps: `[{type: split, field: p, separator: "/", to: parts}]`,
			value: `{"p":"a/b"}`, want: `{"p":"a/b","parts":["a","b"]}`},
		{name: "split into fields, the last takes the rest", steps: `[{type: split, field: l, separator: " ", into: [level, msg]}]`,
			value: `{"l":"WARN disk is full"}`, want: `{"l":"WARN disk is full","level":"WARN","msg":"disk is full"}`},
		{name: "split into more fields than parts", steps: `[{type: split, field: l, separator: " ", into: [a, b, c]}]`,
			value: `{"l":"x y"}`, want: `{"l":"x y","a":"x","b":"y","c":null}`},
		{name: "split a number", steps: `[{type: split, field: l, separator: " "}]`, value: `{"l":1}`, err: `field "l" is a number, want a string`},
	})
}

func TestFlattenCast(t *testing.T) {
	runStepCases(t, []stepCase{
		{name: "flatten the value", steps: `[{type: flatten}]`,
			value: `{"a":1,"b":{"c":{"d":2},"e":[{"f":3}],"g":{}},"h":4}`, want: `{"a":1,"b.c.d":2,"b.e":[{"f":3}],"b.g":{},"h":4}`},
		{name: "flatten a field with a separator", steps: `[{type: flatten, field: b, separator: _}]`,
			value: `{"a":{"x":1},"b":{"c":{"d":2}}}`, want: `{"a":{"x":1},"b":{"c_d":2}}`},
		{name: "flat already keeps the bytes", steps: `[{type: flatten}]`, value: `{"a": 1, "b": {}}`, want: `{"a": 1, "b": {}}`},
		{name: "flatten collision", steps: `[{type: flatten}]`, value: `{"a.b":1,"a":{"b":2}}`, err: `flattened key "a.b" appears twice`},
		{name: "cast to int", steps: `[{type: cast, fields: [a, b, c, d, missing, n], as: int}]`,
			value: `{"a":"12","b":3.0,"c":true,"d":7,"n":null}`, want: `{"a":12,"b":3,"c":1,"d":7,"n":null}`},
		{name: "cast 1.5 to int fails", steps: `[{type: cast, fields: [a], as: int}]`, value: `{"a":1.5}`,
			err: `cast field "a" to int: 1.5 is not a whole number within int64`},
		{name: "cast text to int fails", steps: `[{type: cast, fields: [a], as: int}]`, value: `{"a":"12x"}`,
			err: `cast field "a" to int: "12x" is not a number`},
		{name: "cast to float", steps: `[{type: cast, fields: [a, b], as: float}]`, value: `{"a":"1.50","b":2}`, want: `{"a":1.5,"b":2}`},
		{name: "cast to string", steps: `[{type: cast, fields: [a, b, c, d], as: string}]`,
			value: `{"a":1.50,"b":true,"c":{"x":[1]},"d":"s"}`, want: `{"a":"1.50","b":"true","c":"{\"x\":[1]}","d":"s"}`},
		{name: "cast to bool", steps: `[{type: cast, fields: [a, b, c], as: bool}]`, value: `{"a":"true","b":0,"c":"F"}`, want: `{"a":true,"b":false,"c":false}`},
		{name: "cast 2 to bool fails", steps: `[{type: cast, fields: [a], as: bool}]`, value: `{"a":2}`, err: `2 is neither 0 nor 1`},
		{name: "cast an array fails", steps: `[{type: cast, fields: [a], as: int}]`, value: `{"a":[]}`, err: `it is an array`},
	})
}

func TestKeyValue(t *testing.T) {
	runStepCases(t, []stepCase{
		{name: "key from a field", steps: `[{type: key, field: id}]`, value: `{"id":"u-1"}`, want: `{"id":"u-1"}`,
			check: func(t *testing.T, r *Record) { require.Equal(t, "u-1", string(r.Key)) }},
		{name: "key from a number", steps: `[{type: key, field: id}]`, value: `{"id":12}`,
			check: func(t *testing.T, r *Record) { require.Equal(t, "12", string(r.Key)) }},
		{name: "key from null", steps: `[{type: key, field: id}]`, value: `{"id":null}`,
			check: func(t *testing.T, r *Record) { require.Nil(t, r.Key) }},
		{name: "key from an expression", steps: `[{type: key, expr: "topic + '/' + string(value.id)"}]`, value: `{"id":7}`,
			check: func(t *testing.T, r *Record) { require.Equal(t, "orders/7", string(r.Key)) }},
		{name: "key from a missing field", steps: `[{type: key, field: id}]`, value: `{}`, err: `field "id" is missing`},
		{name: "value from an embedded payload", steps: `[{type: value, field: payload}, {type: set, field: seen, expr: "true"}]`,
			value: `{"meta":1,"payload":"{\"a\":1}"}`, want: `{"a":1,"seen":true}`},
		{name: "value from an object", steps: `[{type: value, field: data}]`, value: `{"data":{"b":1.50,"a":2}}`, want: `{"b":1.50,"a":2}`},
		{name: "value from an expression", steps: `[{type: value, expr: "value.msg"}]`, value: `{"msg":"plain text"}`, want: `plain text`},
		{name: "value null", steps: `[{type: value, field: x}]`, value: `{"x":null}`,
			check: func(t *testing.T, r *Record) { require.Nil(t, r.Value) }},
	})
}

func TestMetadataHeaders(t *testing.T) {
	hs := []Header{{"trace", []byte("t1")}, {"cnt", []byte("1")}, {"trace", []byte("t2")}}
	runStepCases(t, []stepCase{
		{name: "insert all metadata", steps: `[{type: insertMetadata, metadata: {topic: k.topic, partition: k.partition, offset: k.offset, timestamp: k.ts}}]`,
			value: `{"a":1}`, want: `{"a":1,"k":{"topic":"orders","partition":3,"offset":42,"ts":1595944295123}}`},
		{name: "insert a formatted timestamp", steps: `[{type: insertMetadata, metadata: {timestamp: at}, format: "2006-01-02 15:04:05.000", zone: GMT+08:00}]`,
			value: `{}`, want: `{"at":"2020-07-28 21:51:35.123"}`},
		{name: "copy every header, the last wins", steps: `[{type: copyHeaders}]`, value: `{"a":1}`, headers: hs,
			want: `{"a":1,"trace":"t2","cnt":"1"}`},
		{name: "copy listed headers into an object", steps: `[{type: copyHeaders, headers: [cnt, missing], to: h}]`, value: `{}`, headers: hs,
			want: `{"h":{"cnt":"1"}}`},
		{name: "copy no header keeps the bytes", steps: `[{type: copyHeaders, headers: [missing]}]`, value: `{ }`, headers: hs, want: `{ }`},
		{name: "copy a binary header fails", steps: `[{type: copyHeaders}]`, value: `{}`, headers: []Header{{"b", []byte{0xff}}},
			err: `header "b" is not valid UTF-8`},
		{name: "set headers from fields", steps: `[{type: setHeaders, fields: [trace, cnt, o, missing]}]`,
			value: `{"trace":"t9","cnt":5,"o":{"x":1}}`, headers: hs, want: `{"trace":"t9","cnt":5,"o":{"x":1}}`,
			check: func(t *testing.T, r *Record) {
				require.Equal(t, []Header{{"trace", []byte("t9")}, {"cnt", []byte("5")}, {"o", []byte(`{"x":1}`)}}, r.Headers)
			}},
		{name: "set headers from an object", steps: `[{type: setHeaders, from: h}]`, value: `{"h":{"a":"1","b":null}}`,
			check: func(t *testing.T, r *Record) {
				require.Equal(t, []Header{{"a", []byte("1")}, {"b", nil}}, r.Headers)
			}},
		{name: "drop headers", steps: `[{type: dropHeaders, headers: [trace]}]`, value: `x`, headers: hs, want: `x`,
			check: func(t *testing.T, r *Record) { require.Equal(t, []Header{{"cnt", []byte("1")}}, r.Headers) }},
		{name: "headers round trip", steps: `[{type: copyHeaders, to: h}, {type: dropHeaders, headers: [trace, cnt]}, {type: setHeaders, from: h}, {type: drop, fields: [h]}]`,
			value: `{"a":1}`, headers: hs, want: `{"a":1}`,
			check: func(t *testing.T, r *Record) {
				require.Equal(t, []Header{{"trace", []byte("t2")}, {"cnt", []byte("1")}}, r.Headers)
			}},
	})
}

func TestRoute(t *testing.T) {
	runStepCases(t, []stepCase{
		{name: "a folder", steps: `[{type: route, expr: "'region=' + value.region + '/' + formatTime(timestamp, '2006-01-02', 'GMT+08:00')"}]`,
			value: `{"region":"cn"}`, want: `{"region":"cn"}`,
			check: func(t *testing.T, r *Record) { require.Equal(t, "region=cn/2020-07-28", r.Route) }},
		{name: "dot-dot", steps: `[{type: route, expr: "value.r"}]`, value: `{"r":"a/../../etc"}`, err: `has a ".." segment`},
		{name: "leading slash", steps: `[{type: route, expr: "value.r"}]`, value: `{"r":"/etc"}`, err: `has an empty segment`},
		{name: "control character", steps: `[{type: route, expr: "value.r"}]`, value: `{"r":"a\nb"}`, err: `has a control character at byte 1`},
		{name: "empty", steps: `[{type: route, expr: "value.r"}]`, value: `{"r":""}`, err: `route is empty`},
		{name: "not a string", steps: `[{type: route, expr: "value.r"}]`, value: `{"r":1}`, err: `expr gave a number, want a string`},
	})
}

func TestExprHelpers(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		{`formatTime(timestamp, "2006-01-02 15:04:05.000", "GMT+08:00")`, `"2020-07-28 21:51:35.123"`},
		{`formatTime(timestamp, "%Y/%m/%d")`, `"2020/07/28"`},
		{`formatTime(timestamp, "unix")`, `1595944295`},
		{`parseTime("2020-07-28 21:51:35", "2006-01-02 15:04:05", "Asia/Shanghai")`, `1595944295000`},
		{`parseTime("2020-07-28T21:51:35+08:00", "rfc3339")`, `1595944295000`},
		{`parseTime("2020-07-28T13:51:35Z", "rfc3339", "GMT+08:00")`, `1595944295000`},
		{`regexFind("a1b22", "\\d+")`, `"1"`},
		{`regexFind("ab", "\\d+") ?? "none"`, `"none"`},
		{`regexFindAll("a1b22", "\\d+")`, `["1","22"]`},
		{`regexReplace("a1b22", "(\\d+)", "<$1>")`, `"a<1>b<22>"`},
		{`regexSubmatch("k=v", "(\\w)=(\\w)(x)?")`, `["k=v","k","v",null]`},
		{`sha256("secret")`, `"2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"`},
		{`keys(value)`, `["a","b","c"]`},
		{`values(value)`, `[2,1,3]`},
		{`toPairs(value)`, `[["a",2],["b",1],["c",3]]`},
		{`split("a,b", ",")`, `["a","b"]`},
		{`toJSON(value)`, `"{\n  \"a\": 2,\n  \"b\": 1,\n  \"c\": 3\n}"`},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			c := compileYAML(t, `[{type: set, field: out, expr: '`+strings.ReplaceAll(tc.expr, "'", "''")+`'}, {type: keep, fields: [out]}]`)
			out, err := applyOne(t, c, testRecord(`{"b":1,"a":2,"c":3}`))
			require.NoError(t, err)
			require.Equal(t, `{"out":`+tc.want+`}`, string(out[0].Value))
		})
	}
}

func TestHelperErrors(t *testing.T) {
	for _, tc := range []struct{ expr, err string }{
		{`parseTime(value.s, "2006-01-02")`, `parseTime: time "x" does not match the layout`},
		{`parseTime("2020", "yyyy")`, `parseTime: layout "yyyy" has no time elements`},
		{`formatTime(timestamp, "2006", "Mars/Base")`, `formatTime: time zone "Mars/Base": want UTC, GMT+hh:mm or an IANA name`},
		{`formatTime(timestamp, "2006", "Local")`, `time zone "Local"`},
		{`formatTime(value.s, "2006")`, `formatTime: argument 1 is a string, want unix milliseconds`},
		{`regexFind(value.s, "(")`, "regexFind: error parsing regexp: missing closing ): `(`"},
		{`regexFind(value.n, "a")`, `regexFind: argument 1 is a number, want a string`},
		{`keys(value.s)`, `keys: argument is a string, want an object`},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			c := compileYAML(t, `[{type: set, field: out, expr: '`+tc.expr+`'}]`)
			_, err := applyOne(t, c, testRecord(`{"s":"x","n":1}`))
			require.ErrorContains(t, err, tc.err)
		})
	}
}
