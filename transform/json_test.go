package transform

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseJSON(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: `{"b":1,"a":[true,false,null,"s",-0.5e+3,{}]}`, want: `{"b":1,"a":[true,false,null,"s",-0.5e+3,{}]}`},
		{in: " \t\n{ \"a\" : 1 }\r\n", want: `{"a":1}`},
		{in: `{"a":1,"b":2,"a":3}`, want: `{"a":3,"b":2}`},
		{in: `"\u00e9\ud83d\ude00\ud800x\/\b\f\n\r\t\"\\"`, want: `"é😀�x/\b\f\n\r\t\"\\"`},
		{in: "\"\xff\"", want: "\"\uFFFD\""},
		{in: `"` + "\u2028" + `"`, want: `"\u2028"`},
		{in: `"<&>"`, want: `"<&>"`},
		{in: `1.0`, want: `1.0`},
		{in: ``, err: "invalid JSON at byte 0: unexpected end"},
		{in: `{"a":1,}`, err: "invalid JSON at byte 7: want a string key"},
		{in: `[1 2]`, err: "invalid JSON at byte 3: want ',' or ']' in an array"},
		{in: `01`, err: "invalid JSON at byte 1: data after the JSON value"},
		{in: `1.`, err: "invalid JSON at byte 2: want a digit after '.'"},
		{in: `-`, err: "invalid JSON at byte 1: want a digit"},
		{in: `"a` + "\n" + `"`, err: "invalid JSON at byte 2: control character in a string"},
		{in: `"\x"`, err: "invalid JSON at byte 3: bad escape"},
		{in: `"\u12"`, err: `invalid JSON at byte 3: bad \u escape`},
		{in: `tru`, err: "invalid JSON at byte 0: unexpected character 't'"},
		{in: `{"a" 1}`, err: "invalid JSON at byte 5: want ':' after an object key"},
		{in: `[` + string(bytes.Repeat([]byte("["), maxDepth)) + `]`, err: "nested too deeply"},
	} {
		v, err := ParseJSON([]byte(tc.in))
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err, tc.in)
			require.False(t, json.Valid([]byte(tc.in)) && tc.err != "nested too deeply", "encoding/json agrees that %q is invalid", tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		b, err := AppendJSON(nil, v)
		require.NoError(t, err)
		require.Equal(t, tc.want, string(b), tc.in)
	}
}

// TestAppendJSONMatchesEncodingJSON: strings encode as encoding/json does
// with HTML escaping off.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "é😀", "\x00\x01\x1f\x7f", "\b\f\n\r\t", `"\`, "<&>", "\u2028\u2029", "\xff\xfe", "a\xc3"} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		require.NoError(t, enc.Encode(s))
		got, err := AppendJSON(nil, s)
		require.NoError(t, err)
		require.Equal(t, bytes.TrimSuffix(want.Bytes(), []byte("\n")), got, "%q", s)
	}
}

func TestAppendJSONGoValues(t *testing.T) {
	b, err := AppendJSON(nil, map[string]any{"b": []int{1, 2}, "a": 1.5, "c": map[int]bool{2: true, 10: false}, "d": int8(-3), "e": uint(7), "f": []byte("x")})
	require.NoError(t, err)
	require.Equal(t, `{"a":1.5,"b":[1,2],"c":{"10":false,"2":true},"d":-3,"e":7,"f":"x"}`, string(b))
	_, err = AppendJSON(nil, map[any]int{1: 1, "1": 2})
	require.ErrorContains(t, err, `map keys collide as "1"`)
	_, err = AppendJSON(nil, json.Number("1x"))
	require.ErrorContains(t, err, `invalid number "1x"`)
	_, err = AppendJSON(nil, struct{}{})
	require.ErrorContains(t, err, `a struct {} cannot be a JSON value`)
	for f, want := range map[float64]string{1e21: "1e+21", 1e-7: "1e-7", 0.000001: "0.000001", -0.0: "0", 123456789: "123456789"} {
		n, err := formatFloat(f)
		require.NoError(t, err)
		require.Equal(t, want, string(n))
		std, _ := json.Marshal(f)
		require.Equal(t, string(std), string(n))
	}
}

func TestObject(t *testing.T) {
	o := &Object{}
	for i := range 40 { // past indexAt, so the map index is used
		o.Set(string(rune('a'+i%26))+string(rune('0'+i/26)), i)
	}
	require.Equal(t, 40, o.Len())
	v, ok := o.Get("c1")
	require.True(t, ok)
	require.Equal(t, 28, v)
	require.True(t, o.Delete("a0"))
	require.False(t, o.Delete("a0"))
	k, _ := o.At(0)
	require.Equal(t, "b0", k)
	require.True(t, o.rename("c1", "zz"))
	v, _ = o.Get("zz")
	require.Equal(t, 28, v)
	_, ok = o.Get("c1")
	require.False(t, ok)
	require.Equal(t, 39, len(o.Keys()))
	c := o.Clone()
	c.Set("b0", "changed")
	v, _ = o.Get("b0")
	require.Equal(t, 1, v, "a clone is independent")

	var u Object
	require.NoError(t, json.Unmarshal([]byte(`{"z":1,"a":{"y":2,"b":3}}`), &u))
	b, err := json.Marshal(&u)
	require.NoError(t, err)
	require.Equal(t, `{"z":1,"a":{"y":2,"b":3}}`, string(b))
	require.ErrorContains(t, json.Unmarshal([]byte(`[1]`), &u), "JSON value is an array, not an object")
}

func TestPath(t *testing.T) {
	p, err := parsePath(`a.b\.c.d\\`)
	require.NoError(t, err)
	require.Equal(t, path{"a", "b.c", `d\`}, p)
	require.Equal(t, `a.b\.c.d\\`, p.String())
}
