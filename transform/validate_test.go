package transform

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

func TestValidate(t *testing.T) {
	types := "must be one of cast, copyHeaders, drop, dropHeaders, extract, filter, flatten, function, insertMetadata, keep, key, mask, rename, route, set, setHeaders, split, time, value"
	for _, tc := range []struct {
		name  string
		steps string
		want  []Violation
	}{
		{"valid", `[{type: filter, if: "value.a > 1"}, {type: set, field: b, expr: "1"}]`, nil},
		{"type missing", `[{field: a}]`, []Violation{{"transforms[0].type", "", "is required; " + types}}},
		{"type unknown", `[{type: fliter}]`, []Violation{{"transforms[0].type", "fliter", types}}},
		{"filter without if", `[{type: filter}]`, []Violation{{"transforms[0].if", "", "is required"}}},
		{"unknown name", `[{type: filter, if: "valeu.x > 1"}]`,
			[]Violation{{"transforms[0].if", "valeu.x > 1", "does not compile: unknown name valeu (1:1)"}}},
		{"syntax error", `[{type: set, field: a, expr: "value.a +"}]`,
			[]Violation{{"transforms[0].expr", "value.a +", "does not compile: unexpected token EOF (1:9)"}}},
		{"type error", `[{type: set, field: a, expr: "topic + 1"}]`,
			[]Violation{{"transforms[0].expr", "topic + 1", "does not compile: invalid operation: + (mismatched types string and int) (1:7)"}}},
		{"if not a bool", `[{type: filter, if: "offset + 1"}]`, []Violation{{"transforms[0].if", "offset + 1", "gives int, want a bool"}}},
		{"no clock", `[{type: set, field: a, expr: "now()"}]`, []Violation{{"transforms[0].expr", "now()",
			"does not compile: unknown name now (1:1); expressions have no clock and no machine time zone: use timestamp, parseTime and formatTime"}}},
		{"set without field and expr", `[{type: set}]`,
			[]Violation{{"transforms[0].field", "", "is required"}, {"transforms[0].expr", "", "is required"}}},
		{"a field of another type", `[{type: keep, fields: [a], expr: "1", keepLast: 2, metadata: {topic: t}}]`, []Violation{
			{"transforms[0].expr", "1", "is not used by a keep step"},
			{"transforms[0].keepLast", "2", "is not used by a keep step"},
			{"transforms[0].metadata", `{"topic":"t"}`, "is not used by a keep step"}}},
		{"bad paths", `[{type: drop, fields: [a..b, "", 'x\y', .a]}]`, []Violation{
			{"transforms[0].fields[0]", "a..b", "is not a field path: has an empty key (a leading, trailing or doubled '.')"},
			{"transforms[0].fields[1]", "", "is not a field path: is empty"},
			{"transforms[0].fields[2]", `x\y`, `is not a field path: has a '\' that is not followed by '.' or '\'`},
			{"transforms[0].fields[3]", ".a", "is not a field path: has an empty key (a leading, trailing or doubled '.')"}}},
		{"keep without fields", `[{type: keep}]`, []Violation{{"transforms[0].fields", "", "is required"}}},
		{"mask", `[{type: mask, fields: [a], keepLast: -1, char: "ab"}, {type: mask, fields: [a], hash: md5}, {type: mask, fields: [a], hash: sha256, keepLast: 2}]`, []Violation{
			{"transforms[0].keepLast", "-1", "must not be negative"},
			{"transforms[0].char", "ab", "must be one character"},
			{"transforms[1].hash", "md5", "must be sha256"},
			{"transforms[2].hash", "sha256", "cannot be combined with keepLast or char"}}},
		{"time", `[{type: time, field: t, zone: Mars/Base, format: yyyy-MM-dd}, {type: time, field: t, parse: "%Y %Q"}, {type: time, field: t, parse: unix, format: "%Y %J"}]`, []Violation{
			{"transforms[0].parse", "", "is required"},
			{"transforms[0].format", "yyyy-MM-dd", "has no time elements; want a Go layout (2006-01-02 15:04:05), a strftime format (%Y-%m-%d %H:%M:%S) or one of unix, unixMilli, unixMicro, unixNano, rfc3339"},
			{"transforms[0].zone", "Mars/Base", "must be UTC, GMT+hh:mm or an IANA name such as Asia/Shanghai"},
			{"transforms[1].parse", "%Y %Q", "is not a strftime format that can be parsed: strftime: unsupported directive: %Q"},
			{"transforms[2].format", "%Y %J", `has an unknown strftime directive "%J"`}}},
		{"extract", `[{type: extract, field: m, regex: "("}, {type: extract, field: m, regex: "(a)"}]`, []Violation{
			{"transforms[0].regex", "(", "does not compile: missing closing ): `(`"},
			{"transforms[1].regex", "(a)", "has no named group (?P<name>...)"}}},
		{"split", `[{type: split, field: s, into: [a], to: b}]`, []Violation{
			{"transforms[0].separator", "", "is required"},
			{"transforms[0].to", "b", "cannot be combined with into"}}},
		{"cast", `[{type: cast, fields: [a], as: integer}]`, []Violation{{"transforms[0].as", "integer", "must be one of int, float, string, bool"}}},
		{"key and value", `[{type: key}, {type: value, field: a, expr: "1"}]`, []Violation{
			{"transforms[0].field", "", "is required (or expr)"},
			{"transforms[1].expr", "1", "cannot be combined with field"}}},
		{"insertMetadata", `[{type: insertMetadata}, {type: insertMetadata, metadata: {topic: t}, format: unix}]`, []Violation{
			{"transforms[0].metadata", "", "is required: set at least one of topic, partition, offset, timestamp"},
			{"transforms[1].format", "unix", "is set but metadata.timestamp is not"}}},
		{"headers", `[{type: setHeaders}, {type: dropHeaders}, {type: copyHeaders, headers: [""]}]`, []Violation{
			{"transforms[0].fields", "", "is required (or from)"},
			{"transforms[1].headers", "", "is required"},
			{"transforms[2].headers[0]", "", "is empty"}}},
		{"route", `[{type: route}]`, []Violation{{"transforms[0].expr", "", "is required"}}},
		{"function", `[{type: function}, {type: function, function: {module: "", allowFS: [data]}}]`, []Violation{
			{"transforms[0].function", "", "is required"},
			{"transforms[1].function.module", "", "is required"},
			{"transforms[1].function.allowFS[0]", "data", "must be an absolute path"}}},
		{"names", `[{type: drop, fields: [a], name: "bad name"}, {type: drop, fields: [a], name: x}, {type: drop, fields: [a], name: x}]`, []Violation{
			{"transforms[0].name", "bad name", "must be 1 to 64 letters, digits, '_', '.' or '-'"},
			{"transforms[2].name", "x", "duplicates the name of transforms[1]"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var specs []StepSpec
			require.NoError(t, yaml.UnmarshalStrict([]byte(tc.steps), &specs))
			require.Equal(t, tc.want, Validate(specs))
			_, err := Compile(specs, Options{})
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			var ve *ValidationError
			require.ErrorAs(t, err, &ve)
			require.Equal(t, tc.want, ve.Violations)
		})
	}
}

func TestValidationErrorMessage(t *testing.T) {
	_, err := Compile([]StepSpec{{Type: "filter", If: "valeu > 1"}, {Type: "keep"}}, Options{})
	require.EqualError(t, err, strings.Join([]string{
		"invalid transforms (2 problems):",
		`  - transforms[0].if: "valeu > 1" does not compile: unknown name valeu (1:1)`,
		`  - transforms[1].fields: "" is required`,
	}, "\n"))
}

func TestCompileFunctionNeedsLoader(t *testing.T) {
	specs := []StepSpec{{Type: StepFunction, Function: &FunctionSpec{Module: "/m.wasm"}}}
	require.Empty(t, Validate(specs), "Validate does not load modules")
	_, err := Compile(specs, Options{})
	require.ErrorContains(t, err, `transforms[0].function.module: "/m.wasm" cannot be loaded: no function loader is configured`)
	_, err = Compile(specs, Options{Functions: func(FunctionSpec) (Function, error) {
		return nil, context.DeadlineExceeded
	}})
	require.ErrorContains(t, err, `cannot be loaded: context deadline exceeded`)
}
