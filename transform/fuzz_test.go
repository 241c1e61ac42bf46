package transform

import (
	"encoding/json"
	"errors"
	pathpkg "path"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzExprs are the expressions FuzzSteps runs on arbitrary values; the
// fuzzer picks one per input.
var fuzzExprs = []string{
	`value`,
	`value?.a`,
	`value?.a?.b ?? "none"`,
	`keys(value)`,
	`values(value)`,
	`toPairs(value)`,
	`toJSON(value)`,
	`string(value)`,
	`type(value)`,
	`len(toJSON(value))`,
	`value?.a + 1`,
	`value?.a * 1.5`,
	`upper(value?.s ?? "")`,
	`split(value?.s ?? "", ",")`,
	`regexFindAll(toJSON(value), "[0-9]+")`,
	`regexReplace(toJSON(value), "[aeiou]", "_")`,
	`sha256(toJSON(value))`,
	`formatTime(value?.t ?? 0, "2006-01-02T15:04:05.000Z07:00", "GMT+08:00")`,
	`parseTime(value?.s ?? "", "rfc3339")`,
	`{"copy": value, "n": value?.a}`,
	`[value, value?.a, nil]`,
	`fromJSON(toJSON(value))`,
	`map(value?.arr ?? [], # )`,
	`groupBy(value?.arr ?? [], type(#))`,
}

// FuzzSteps runs the expression steps (filter, set, route) and the field
// steps around them on arbitrary values. It checks that nothing panics,
// that the input is never modified, that a changed value is valid JSON
// agreeing with Fields and keeping the input's keys first and in order,
// that the output is deterministic, that only *StepErrors come out, and
// that ParseJSON accepts exactly what encoding/json accepts.
func FuzzSteps(f *testing.F) {
	for i, v := range []string{
		`{"a":1,"b":{"c":[1,2.50,"x"]},"s":"p,q","t":1595944295000,"arr":[1,"a",null]}`,
		`{"a":"x"}`, `[1,2]`, `"str"`, `12`, `null`, `not json`, ``, `{"a":1e400}`,
		`{"a":{"b":{"c":{}}},"a.b":1}`, "{\"s\":\"\xff\u2028\"}", `{"a":-0,"s":"2020-07-28T21:51:35+08:00"}`,
	} {
		f.Add([]byte(v), uint8(i))
	}
	chains := make([]*Chain, len(fuzzExprs))
	for i, e := range fuzzExprs {
		specs := []StepSpec{
			{Type: StepFilter, If: `value == nil || type(value) != "bool"`},
			{Type: StepSet, Field: "out", Expr: e},
			{Type: StepRoute, Expr: `"p/" + type(value)`},
			{Type: StepFlatten, Separator: "_"},
			{Type: StepCast, Fields: []string{"a"}, As: "string"},
		}
		c, err := Compile(specs, Options{})
		if err != nil {
			f.Fatalf("%s: %v", e, err)
		}
		chains[i] = c
	}
	f.Fuzz(func(t *testing.T, value []byte, pick uint8) {
		v, perr := ParseJSON(value)
		if (perr == nil) != json.Valid(value) {
			t.Fatalf("ParseJSON error %v, json.Valid %v", perr, json.Valid(value))
		}
		if perr == nil {
			// The decoded value encodes to JSON meaning the same as the input.
			b, err := AppendJSON(nil, v)
			if err != nil {
				t.Fatal(err)
			}
			if !sameJSON(t, b, value) {
				t.Fatalf("re-encoding %q gives %q", value, b)
			}
		}

		c := chains[int(pick)%len(chains)]
		in := &Record{Topic: "t", Value: value}
		if value == nil {
			in.Value = nil
		}
		keep := slices.Clone(value)
		var first []byte
		for round := range 2 {
			out, err := applyOne(t, c, in)
			if !sameBytes(in.Value, keep) {
				t.Fatal("the input was modified")
			}
			if err != nil {
				var se *StepError
				if !errors.As(err, &se) {
					t.Fatalf("not a StepError: %v", err)
				}
				if len(out) != 0 {
					t.Fatal("a failed record gave output")
				}
				return
			}
			if len(out) == 0 {
				return
			}
			o := out[0]
			if round == 1 {
				if !sameBytes(first, o.Value) {
					t.Fatalf("not deterministic: %q then %q", first, o.Value)
				}
				continue
			}
			first = slices.Clone(o.Value)
			if CheckRoute(o.Route) != nil {
				t.Fatalf("route %q", o.Route)
			}
			if o.Fields == nil {
				continue
			}
			if !json.Valid(o.Value) {
				t.Fatalf("output %q is not JSON", o.Value)
			}
			enc, err := o.Fields.MarshalJSON()
			if err != nil || !sameBytes(enc, o.Value) {
				t.Fatalf("Fields %q and Value %q disagree (%v)", enc, o.Value, err)
			}
		}
	})
}

func sameBytes(a, b []byte) bool { return string(a) == string(b) }

// sameJSON reports whether a and b decode (with encoding/json, numbers as
// text) to equal values.
func sameJSON(t *testing.T, a, b []byte) bool {
	decode := func(data []byte) any {
		d := json.NewDecoder(strings.NewReader(string(data)))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatalf("decode %q: %v", data, err)
		}
		return v
	}
	return reflect.DeepEqual(decode(a), decode(b))
}

// FuzzRoute checks CheckRoute against an independent statement of the
// rule, and that an accepted route joined under a prefix stays under it
// and is not rewritten by path cleaning.
func FuzzRoute(f *testing.F) {
	for _, s := range []string{
		"a", "a/b", "region=cn/2020-07-28", "..", "../x", "a/../b", "/a", "a/", "a//b", ".", "a/./b",
		"a\x00b", "a\nb", "a\u0085b", "a\\b", "\xff", "日本/語", "a/...", ".../a", strings.Repeat("a", 256),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := CheckRoute(s)
		valid := s != "" && len(s) <= MaxRouteLen && utf8.ValidString(s) && !strings.ContainsRune(s, '\\') &&
			!strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r >= 0x7f && r <= 0x9f })
		for _, seg := range strings.Split(s, "/") {
			valid = valid && seg != "" && seg != "." && seg != ".."
		}
		if valid != (err == nil) {
			t.Fatalf("CheckRoute(%q) = %v, the rule says valid=%v", s, err, valid)
		}
		if err != nil {
			return
		}
		const prefix = "dumps/topic"
		joined := prefix + "/" + s
		if pathpkg.Clean(joined) != joined {
			t.Fatalf("route %q is rewritten by path cleaning: %q", s, pathpkg.Clean(joined))
		}
		if !strings.HasPrefix(pathpkg.Join(prefix, s), prefix+"/") {
			t.Fatalf("route %q escapes the prefix", s)
		}
	})
}
