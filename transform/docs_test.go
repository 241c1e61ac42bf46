package transform

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// TestDocsExamples runs every example of docs/transforms.md: each YAML
// block that starts with "transforms:" must validate, and each ```json in
// block after it (with the ```json headers block before it, if any) must
// give the outputs the blocks after it show: ```json out (the value),
// ```text out "dropped", ```text key-out, ```json headers-out (as
// [key, value] pairs), ```text route-out.
func TestDocsExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/transforms.md")
	require.NoError(t, err)
	blocks := regexp.MustCompile("(?ms)^```([a-z]+(?: [a-z-]+)?)\n(.*?)^```\n").FindAllStringSubmatch(string(doc), -1)

	type example struct {
		chain   *Chain
		headers []Header
		in      *Record
		checked bool
	}
	var ex *example
	examples, runs := 0, 0
	finish := func() {
		if ex != nil && ex.in != nil {
			require.True(t, ex.checked, "an input without an output block in docs/transforms.md")
		}
	}
	var out []*Record
	for _, b := range blocks {
		info, body := b[1], b[2]
		switch {
		case info == "yaml" && strings.HasPrefix(body, "transforms:"):
			finish()
			var spec struct {
				Transforms []StepSpec `json:"transforms"`
			}
			require.NoError(t, yaml.UnmarshalStrict([]byte(body), &spec), body)
			require.Empty(t, Validate(spec.Transforms), body)
			ex = &example{}
			examples++
			hasFunction := false
			for _, s := range spec.Transforms {
				hasFunction = hasFunction || s.Type == StepFunction
			}
			if !hasFunction {
				ex.chain, err = Compile(spec.Transforms, Options{})
				require.NoError(t, err)
			}
		case ex == nil:
			continue
		case info == "json headers":
			ex.headers = headerPairs(t, body)
		case info == "json in":
			finish()
			require.NotNil(t, ex.chain, "an input for a function example")
			ex.in = testRecord(strings.TrimSuffix(body, "\n"))
			ex.in.Headers, ex.headers = ex.headers, nil
			ex.checked = false
			out, err = applyOne(t, ex.chain, ex.in)
			require.NoError(t, err, body)
			runs++
		case ex.in == nil || !strings.Contains(info, "out"):
			continue
		default:
			ex.checked = true
			want := strings.TrimSuffix(body, "\n")
			if info == "text out" && want == "dropped" {
				require.Empty(t, out, "in: %s", ex.in.Value)
				continue
			}
			require.Len(t, out, 1, "in: %s", ex.in.Value)
			switch info {
			case "json out":
				require.Equal(t, want, string(out[0].Value))
			case "text key-out":
				require.Equal(t, want, string(out[0].Key))
			case "text route-out":
				require.Equal(t, want, out[0].Route)
			case "json headers-out":
				require.Equal(t, headerPairs(t, body), out[0].Headers)
			default:
				t.Fatalf("unknown block %q in docs/transforms.md", info)
			}
		}
	}
	finish()
	require.GreaterOrEqual(t, examples, 20, "every step has an example")
	require.GreaterOrEqual(t, runs, 20)
	t.Logf("%d examples, %d records", examples, runs)
}

func headerPairs(t *testing.T, body string) []Header {
	var pairs [][2]string
	require.NoError(t, json.Unmarshal([]byte(body), &pairs))
	var hs []Header
	for _, p := range pairs {
		hs = append(hs, Header{p[0], []byte(p[1])})
	}
	return hs
}
