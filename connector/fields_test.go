package connector

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// ossJSON is ossYAML as JSON.
const ossJSON = `{"name": "demo-oss", "kafka": {"brokers": ["127.0.0.1:9092"], "topic": "demo"},
 "sink": {"type": "oss", "oss": {"endpoint": "http://127.0.0.1:9300", "bucket": "dumpflow", "credentials": "local"}}}`

// want is one expected violation: its field, and a fragment of its rule.
type want struct{ field, rule string }

// requireViolations checks that err is a *ValidationError holding exactly
// the wanted violations, in order, those of CheckFields with an empty value.
func requireViolations(t *testing.T, err error, wants []want) []Violation {
	t.Helper()
	var ve *ValidationError
	require.ErrorAs(t, err, &ve, "%v", err)
	require.Len(t, ve.Violations, len(wants), "%v", err)
	for i, w := range wants {
		v := ve.Violations[i]
		require.Equal(t, w.field, v.Field, "%v", err)
		require.Contains(t, v.Rule, w.rule, "%v", err)
		if strings.HasPrefix(v.Rule, RuleUnknownField) || v.Rule == RuleDuplicateField {
			require.Empty(t, v.Value, "%v", err)
		}
	}
	return ve.Violations
}

// TestParseUnknownFields breaks one spec, in YAML and in JSON, by rewriting
// a fragment of it. Parse (YAML), Parse (JSON) and ParseJSON must each report
// exactly the wanted violations, the same ones, and never echo the value
// under an unknown key.
func TestParseUnknownFields(t *testing.T) {
	tests := []struct {
		name             string
		yamlOld, yamlNew string
		jsonOld, jsonNew string
		want             []want
	}{
		{"top level",
			"name: demo-oss\n", "name: demo-oss\nbogus: hunter2\n",
			`"name": "demo-oss"`, `"name": "demo-oss", "bogus": "hunter2"`,
			[]want{{"bogus", "unknown field; known fields are name, kafka, concurrency, partitionsPerWorkflow, batch, errors, transforms, sink"}}},
		{"nested",
			"    bucket: dumpflow\n", "    bucket: dumpflow\n    region: hunter2\n",
			`"bucket": "dumpflow"`, `"bucket": "dumpflow", "region": "hunter2"`,
			[]want{{"sink.oss.region", "unknown field; known fields are endpoint, bucket, path"}}},
		{"near miss",
			"name: demo-oss\n", "name: demo-oss\nbatch:\n  flushIntervl: 5s\n",
			`"name": "demo-oss"`, `"name": "demo-oss", "batch": {"flushIntervl": "5s"}`,
			[]want{{"batch.flushIntervl", `unknown field; did you mean "flushInterval"?`}}},
		{"under a pointer",
			"  topic: demo\n", "  topic: demo\n  sasl: {mechanism: PLAIN, credentials: k, password: hunter2}\n",
			`"topic": "demo"`, `"topic": "demo", "sasl": {"mechanism": "PLAIN", "credentials": "k", "password": "hunter2"}`,
			[]want{{"kafka.sasl.password", "unknown field; known fields are mechanism, credentials"}}},
		{"wrong case top level",
			"kafka:", "KAFKA:",
			`"kafka":`, `"KAFKA":`,
			[]want{{"KAFKA", `unknown field; did you mean "kafka"? (field names are case-sensitive)`}}},
		{"wrong case nested",
			"sink:\n  type: oss\n  oss:", "Sink:\n  type: oss\n  OSS:",
			`"sink": {"type": "oss", "oss":`, `"Sink": {"type": "oss", "OSS":`,
			[]want{{"Sink", `did you mean "sink"?`}, {"Sink.OSS", `did you mean "oss"?`}}},
		{"wrong case leaf",
			"  topic: demo\n", "  Topic: demo\n",
			`"topic": "demo"`, `"Topic": "demo"`,
			[]want{{"kafka.Topic", `did you mean "topic"?`}}},
		{"two cases",
			"name: demo-oss\n", "name: demo-oss\nconcurrency: 3\nConcurrency: 12\n",
			`"name": "demo-oss"`, `"name": "demo-oss", "concurrency": 3, "Concurrency": 12`,
			[]want{{"Concurrency", `unknown field: duplicates "concurrency" in a different case`}}},
		{"two cases, wrong one first",
			"name: demo-oss\n", "name: demo-oss\nConcurrency: 12\nconcurrency: 3\n",
			`"name": "demo-oss"`, `"name": "demo-oss", "Concurrency": 12, "concurrency": 3`,
			[]want{{"Concurrency", `duplicates "concurrency" in a different case`}}},
		{"two wrong cases",
			"name: demo-oss\n", "name: demo-oss\nConcurrency: 12\nCONCURRENCY: 3\n",
			`"name": "demo-oss"`, `"name": "demo-oss", "Concurrency": 12, "CONCURRENCY": 3`,
			[]want{{"Concurrency", `did you mean "concurrency"?`}, {"CONCURRENCY", `duplicates "Concurrency" in a different case; the field is "concurrency"`}}},
		{"same key twice",
			"name: demo-oss\n", "name: demo-oss\nconcurrency: 3\nconcurrency: 6\n",
			`"name": "demo-oss"`, `"name": "demo-oss", "concurrency": 3, "concurrency": 6`,
			[]want{{"concurrency", RuleDuplicateField}}},
		{"with rule violations",
			"name: demo-oss\n", "name: demo-oss\nconcurrency: 5\nbogus: 1\n",
			`"name": "demo-oss"`, `"name": "demo-oss", "concurrency": 5, "bogus": 1`,
			[]want{{"bogus", "unknown field"}, {"concurrency", "must be one of 1, 2, 3, 6, 12"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yamlDoc := strings.Replace(ossYAML, tt.yamlOld, tt.yamlNew, 1)
			jsonDoc := strings.Replace(ossJSON, tt.jsonOld, tt.jsonNew, 1)
			require.NotEqual(t, ossYAML, yamlDoc)
			require.NotEqual(t, ossJSON, jsonDoc)
			require.True(t, json.Valid([]byte(jsonDoc)), jsonDoc)

			var got [][]Violation
			for _, parse := range []struct {
				name string
				fn   func() (*Spec, error)
			}{
				{"Parse YAML", func() (*Spec, error) { return Parse([]byte(yamlDoc)) }},
				{"Parse JSON", func() (*Spec, error) { return Parse([]byte(jsonDoc)) }},
				{"ParseJSON", func() (*Spec, error) { return ParseJSON([]byte(jsonDoc)) }},
			} {
				s, err := parse.fn()
				require.Nil(t, s, parse.name)
				require.NotContains(t, err.Error(), "hunter2", parse.name)
				got = append(got, requireViolations(t, err, tt.want))
			}
			require.Equal(t, got[0], got[1])
			require.Equal(t, got[1], got[2])
		})
	}
}

func TestParseMessage(t *testing.T) {
	_, err := Parse([]byte(strings.Replace(ossYAML, "    bucket: dumpflow\n", "    bucket: dumpflow\n    region: x\n", 1)))
	require.ErrorContains(t, err, "invalid connector spec (1 problem):\n  - sink.oss.region: \"\" unknown field;")
	_, err = Parse([]byte(strings.Replace(ossYAML, "kafka:", "KAFKA:", 1)))
	require.ErrorContains(t, err, `KAFKA: "" unknown field; did you mean "kafka"?`)
}

// TestParseNotReadable: a malformed document or a value of the wrong type is
// a plain error, not a violation.
func TestParseNotReadable(t *testing.T) {
	for name, doc := range map[string]string{
		"yaml syntax": "name: [",
		"wrong type":  ossYAML + "concurrency: many\n",
		"object leaf": ossYAML + "batch:\n  maxBytes: {n: 1}\n",
		"json syntax": `{"name": `,
		"json type":   strings.Replace(ossJSON, `"topic": "demo"`, `"topic": ["demo"]`, 1),
	} {
		t.Run(name, func(t *testing.T) {
			for _, parse := range []func([]byte) (*Spec, error){Parse, ParseJSON} {
				_, err := parse([]byte(doc))
				require.Error(t, err)
				var ve *ValidationError
				require.False(t, errors.As(err, &ve), "%v", err)
			}
		})
	}
	_, err := ParseJSON([]byte(ossJSON + " {}"))
	require.ErrorContains(t, err, "after top-level value")
}

// TestExamplesParse: the shipped examples parse as YAML, and their JSON form
// parses the same through ParseJSON and Parse.
func TestExamplesParse(t *testing.T) {
	files, err := filepath.Glob("../deploy/examples/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			s, err := Load(f)
			require.NoError(t, err)
			j, err := ParseJSON([]byte(s.JSON()))
			require.NoError(t, err)
			require.Equal(t, s, j)
			p, err := Parse([]byte(s.JSON()))
			require.NoError(t, err)
			require.Equal(t, s, p)
		})
	}
}

// TestDecodeLenient: a spec an older build accepted (here with a field this
// build does not know and a value it no longer allows) decodes leniently, so
// a continued run can warn; ParseJSON refuses it.
func TestDecodeLenient(t *testing.T) {
	raw := []byte(strings.Replace(ossJSON, `"name": "demo-oss"`, `"name": "demo-oss", "retired": true, "concurrency": 4`, 1))
	s, err := DecodeLenient(raw)
	require.NoError(t, err)
	require.Equal(t, 4, s.Concurrency)
	require.Equal(t, "connect-demo-oss", s.Kafka.Group, "defaults are filled in")
	var ve *ValidationError
	require.ErrorAs(t, s.Validate(), &ve)
	require.Len(t, ve.Violations, 1)
	require.Equal(t, "concurrency", ve.Violations[0].Field)

	_, err = ParseJSON(raw)
	require.ErrorAs(t, err, &ve)
	require.Len(t, ve.Violations, 2)

	_, err = DecodeLenient([]byte("name: x"))
	require.ErrorContains(t, err, "decode spec")
}

type (
	fcInner struct {
		A string   `json:"a"`
		D Duration `json:"d,omitempty"`
	}
	FcEmbedded struct {
		E string `json:"e"`
		// Shadowed by fcDoc.A2 (shallower).
		A2 int `json:"a2"`
	}
	fcDoc struct {
		FcEmbedded
		A2       string             `json:"a2"`
		Items    []fcInner          `json:"items"`
		Ptr      *fcInner           `json:"ptr"`
		PtrSlice []*fcInner         `json:"ptrSlice"`
		Array    [2]fcInner         `json:"array"`
		ByName   map[string]fcInner `json:"byName"`
		ByPtr    map[string]*fcInner
		Any      any             `json:"any"`
		Raw      json.RawMessage `json:"raw"`
		Size     ByteSize        `json:"size"`
		Skip     string          `json:"-"`
		NoTag    string
		hidden   string //nolint:unused // unexported fields are not keys
	}
)

// TestCheckFields covers the generic walk: slices of structs, pointers,
// arrays, maps (free keys, checked values), embedded structs, leaves,
// `json:"-"`, untagged fields, path quoting, and YAML aliases and merges.
func TestCheckFields(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []want
	}{
		{"valid", `{e: x, a2: y, items: [{a: 1, d: 1s}], ptr: {a: 1}, ptrSlice: [{a: 1}, null], array: [{a: 1}],
			byName: {Any-Key: {a: 1}}, ByPtr: {k: {a: 1}}, any: {whatever: [1]}, raw: {x: 1}, size: 1MiB, NoTag: x}`, nil},
		{"slice element", "items:\n- a: 1\n- a: 2\n  b: 3\n", []want{{"items[1].b", "unknown field; known fields are a, d"}}},
		{"near miss", "items: [{dd: 1s}]\nptrSlize: []\n", []want{{"items[0].dd", "known fields are a, d"}, {"ptrSlize", `did you mean "ptrSlice"?`}}},
		{"pointer", "ptr: {A: 1}", []want{{"ptr.A", `did you mean "a"?`}}},
		{"slice of pointers", "ptrSlice: [{a: 1}, {x: 1}]", []want{{"ptrSlice[1].x", "known fields are a, d"}}},
		{"array", "array: [{}, {z: 1}]", []want{{"array[1].z", "unknown field"}}},
		{"map value", "byName: {k: {z: 1}}", []want{{"byName.k.z", "unknown field"}}},
		{"map key quoted", `byName: {"a.b c": {z: 1}}`, []want{{`byName["a.b c"].z`, "unknown field"}}},
		{"map of pointers", "ByPtr: {k: {z: 1}}", []want{{"ByPtr.k.z", "unknown field"}}},
		{"embedded promoted", "e: 1\nFcEmbedded: {e: 1}\n", []want{{"FcEmbedded", "unknown field"}}},
		{"json dash", "Skip: 1\nhidden: 1\n", []want{{"Skip", "unknown field"}, {"hidden", "unknown field"}}},
		{"untagged wrong case", "notag: 1", []want{{"notag", `did you mean "NoTag"?`}}},
		{"leaf not descended", "size: {z: 1}\nitems: [{d: {z: 1}}]\nraw: {z: 1}\nany: {z: 1}\n", nil},
		{"wrong shape left to decoder", "items: {z: 1}\nptr: [1]\n", nil},
		{"alias", "base: &b {a: 1, z: 2}\nptr: *b\n", []want{{"base", "unknown field"}, {"ptr.z", "unknown field"}}},
		{"merge", "items:\n- &b {a: 1, z: 2}\n- <<: *b\n  a: 3\n", []want{{"items[0].z", "unknown field"}, {"items[1].z", "unknown field"}}},
		{"json duplicate", `{"e": 1, "e": 2, "E": 3}`, []want{{"e", RuleDuplicateField}, {"E", `duplicates "e"`}}},
		{"empty", "", nil},
		{"null", "null", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs, err := CheckFields([]byte(tt.doc), (*fcDoc)(nil))
			require.NoError(t, err)
			require.Len(t, vs, len(tt.want), "%v", vs)
			for i, w := range tt.want {
				require.Equal(t, w.field, vs[i].Field, "%v", vs)
				require.Contains(t, vs[i].Rule, w.rule, "%v", vs)
			}
		})
	}

	_, err := CheckFields([]byte("a: ["), fcDoc{})
	require.ErrorContains(t, err, "read YAML")
	_, err = CheckFields([]byte("a: 1"), nil)
	require.Error(t, err)
}

// TestCheckFieldsAliasBomb: aliases are shared, not expanded into memory,
// and the walk gives up instead of running for ever.
func TestCheckFieldsAliasBomb(t *testing.T) {
	doc := "a00: &a00 {a: 1}\n"
	for i := 1; i <= 30; i++ {
		doc += "a" + itoa(i) + ": &a" + itoa(i) + " {"
		for j := 0; j < 4; j++ {
			doc += "k" + itoa(j) + ": *a" + itoa(i-1) + ", "
		}
		doc += "}\n"
	}
	doc += "byName: *a30\n"
	_, err := CheckFields([]byte(doc), (*struct {
		ByName map[string]map[string]map[string]map[string]map[string]map[string]map[string]map[string]map[string]map[string]map[string]map[string]fcInner `json:"byName"`
	})(nil))
	require.ErrorContains(t, err, "more than 65536 values")
}

func itoa(i int) string { return fmt.Sprintf("%02d", i) }
