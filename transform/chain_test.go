package transform

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

func TestEmptyChain(t *testing.T) {
	ctx := context.Background()
	empty, err := Compile(nil, Options{})
	require.NoError(t, err)
	for _, c := range []*Chain{nil, empty} {
		require.True(t, c.Empty())
		require.Equal(t, "", c.Hash())
		run, err := c.Begin(ctx)
		require.NoError(t, err)
		rec := testRecord(`{"a":1}`)
		out, err := run.Apply(ctx, rec)
		require.NoError(t, err)
		require.Equal(t, []*Record{rec}, out, "the same record comes out")
		allocs := testing.AllocsPerRun(100, func() { _, _ = run.Apply(ctx, rec) })
		require.Zero(t, allocs, "an empty chain does not allocate")
		require.Empty(t, run.Counts())
		require.NoError(t, run.Close(ctx))
	}
}

// TestUnchangedValueKeepsBytes: a chain that does not change the value
// passes the original bytes, not a re-encoding (here the value has spaces
// and a number text that a re-encoding would keep, but the bytes are the
// same slice).
func TestUnchangedValueKeepsBytes(t *testing.T) {
	value := []byte(`{ "a" : 1.50, "b" : {"c": 2} }`)
	rec := &Record{Value: value, Key: []byte("k")}

	c := compileYAML(t, `[{type: filter, if: "value.a > 1"}, {type: drop, fields: [zz]}, {type: flatten, field: zz}, {type: keep, fields: [a, b]}]`)
	out, err := applyOne(t, c, rec)
	require.NoError(t, err)
	require.Same(t, rec, out[0], "no step changed the record")

	c = compileYAML(t, `[{type: route, expr: "'p/' + string(value.b.c)"}, {type: key, expr: "'new'"}, {type: setHeaders, fields: [a]}]`)
	out, err = applyOne(t, c, rec)
	require.NoError(t, err)
	require.NotSame(t, rec, out[0])
	require.Equal(t, unsafe.SliceData(value), unsafe.SliceData(out[0].Value), "the value bytes are the input's")
	require.Nil(t, out[0].Fields)
	require.Equal(t, "p/2", out[0].Route)
	require.Equal(t, "new", string(out[0].Key))
	require.Equal(t, []Header{{"a", []byte("1.50")}}, out[0].Headers)
	require.Nil(t, rec.Headers, "the input's headers are untouched")
}

// TestInputFields: a record that arrives with Fields (from an earlier
// chain) is read from them and they are not modified.
func TestInputFields(t *testing.T) {
	v, err := ParseJSON([]byte(`{"a":1,"b":{"c":2}}`))
	require.NoError(t, err)
	fields := v.(*Object)
	rec := &Record{Value: []byte(`{"a":1,"b":{"c":2}}`), Fields: fields}
	c := compileYAML(t, `[{type: set, field: b.d, expr: "value.a + 1"}]`)
	out, err := applyOne(t, c, rec)
	require.NoError(t, err)
	require.Equal(t, `{"a":1,"b":{"c":2,"d":2}}`, string(out[0].Value))
	b, _ := fields.MarshalJSON()
	require.Equal(t, `{"a":1,"b":{"c":2}}`, string(b), "the input's Fields are untouched")
}

// TestDeterminism: the same records through the same spec, in two Runs of
// two separately compiled chains, give byte-identical output, including
// maps built by expressions (encoded in sorted key order whatever Go's map
// iteration order).
func TestDeterminism(t *testing.T) {
	steps := `
- {type: set, field: m, expr: "{'z': value.a, 'y': [1, 2.5, 'x'], 'x': {'q': true, 'p': nil}, 'w': groupBy([1,2,3,4], # % 2)}"}
- {type: set, field: k, expr: "keys(value)"}
- {type: set, field: when, expr: "formatTime(timestamp, '2006-01-02 15:04:05.000 MST', 'Asia/Shanghai')"}
- {type: insertMetadata, metadata: {topic: meta.t, offset: meta.o, timestamp: meta.ts}, format: rfc3339, zone: "GMT+08:00"}
- {type: mask, fields: [secret], hash: sha256}
- {type: flatten, separator: _}
`
	records := func() []*Record {
		var rs []*Record
		for i := range 50 {
			rs = append(rs, testRecord(fmt.Sprintf(`{"a":%d,"secret":"s%d","b":{"c":%d.0}}`, i, i, i)))
		}
		return rs
	}
	render := func() []byte {
		c := compileYAML(t, steps)
		ctx := context.Background()
		run, err := c.Begin(ctx)
		require.NoError(t, err)
		var buf bytes.Buffer
		for _, r := range records() {
			out, err := run.Apply(ctx, r)
			require.NoError(t, err)
			for _, o := range out {
				buf.Write(o.Value)
				buf.WriteByte('\n')
			}
		}
		return buf.Bytes()
	}
	first := render()
	for range 5 {
		require.Equal(t, string(first), string(render()))
	}
	require.Contains(t, string(first), `"m_w_0":[2,4],"m_w_1":[1,3],"m_x_p":null,"m_x_q":true,"m_y":[1,2.5,"x"],"m_z":0,"k":["a","b","m","secret"],"when":"2020-07-28 21:51:35.123 CST"`)
}

func TestHash(t *testing.T) {
	hash := func(specs ...StepSpec) string {
		c, err := Compile(specs, Options{Functions: fakeLoader(&fakeStats{})})
		require.NoError(t, err)
		return c.Hash()
	}
	filter := StepSpec{Type: StepFilter, If: "value.a > 1"}
	h := hash(filter)
	require.Len(t, h, 64)
	require.Equal(t, h, hash(filter), "stable")
	named := filter
	named.Name = "only-errors"
	require.NotEqual(t, h, hash(named), "the name is in the dead-letter headers: part of the spec")
	spelt := StepSpec{Type: StepTime, Field: "t", Parse: "unix"}
	require.Equal(t, hash(spelt), hash(StepSpec{Type: StepTime, Field: "t", To: "t", Parse: "unix", Format: "rfc3339", Zone: "UTC"}),
		"defaults spelt out are the same spec")
	other := filter
	other.If = "value.a > 2"
	require.NotEqual(t, h, hash(other))
	require.NotEqual(t, h, hash(filter, StepSpec{Type: StepDrop, Fields: []string{"x"}}))
	// Pinned: a change here changes every connector's hash; do it on purpose.
	require.Equal(t, "e923d5eeb5d73869c52b17137caeddb0d74ef95fc874cc9908ad6fde526a83b4", h)

	fn := StepSpec{Type: StepFunction, Function: &FunctionSpec{Module: "/a.wasm"}}
	fn2 := StepSpec{Type: StepFunction, Function: &FunctionSpec{Module: "/b.wasm"}}
	require.NotEqual(t, hash(fn), hash(fn2), "the module hash is part of the chain hash")
}

// fakeFunction is a Function whose instances emit each record's value
// split at '|', one record per part ("" emits none, "fail" fails).
type fakeFunction struct {
	module string
	stats  *fakeStats
}

type fakeStats struct{ started, closed atomic.Int32 }

type fakeInstance struct {
	f     *fakeFunction
	calls int // per instance: a fresh instance starts at 0
}

func fakeLoader(stats *fakeStats) FunctionLoader {
	return func(spec FunctionSpec) (Function, error) {
		return &fakeFunction{module: spec.Module, stats: stats}, nil
	}
}

func (f *fakeFunction) Hash() string { return "hash-of-" + f.module }

func (f *fakeFunction) NewInstance(context.Context) (FunctionInstance, error) {
	f.stats.started.Add(1)
	return &fakeInstance{f: f}, nil
}

func (i *fakeInstance) Call(ctx context.Context, in *Record) ([]*Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	i.calls++
	v := string(in.Value)
	if v == "fail" {
		return nil, errors.New("function says no")
	}
	var out []*Record
	for _, part := range bytes.Split(in.Value, []byte("|")) {
		if len(part) == 0 {
			continue
		}
		r := *in
		r.Value = []byte(fmt.Sprintf(`{"part":%q,"call":%d}`, part, i.calls))
		out = append(out, &r)
	}
	return out, nil
}

func (i *fakeInstance) Close(context.Context) error {
	i.f.stats.closed.Add(1)
	return nil
}

func TestFunctionStep(t *testing.T) {
	stats := &fakeStats{}
	c := compileYAML(t, `
- {type: function, name: explode, function: {module: /x.wasm}}
- {type: filter, if: "value.part != 'skip'"}
- {type: set, field: up, expr: "upper(value.part)"}
`, Options{Functions: fakeLoader(stats)})
	ctx := context.Background()

	for batch := range 2 {
		run, err := c.Begin(ctx)
		require.NoError(t, err)
		require.EqualValues(t, batch+1, stats.started.Load(), "a fresh instance per Run")

		out, err := run.Apply(ctx, testRecord("a|skip|b"))
		require.NoError(t, err)
		require.Len(t, out, 2)
		require.Equal(t, `{"part":"a","call":1,"up":"A"}`, string(out[0].Value))
		require.Equal(t, `{"part":"b","call":1,"up":"B"}`, string(out[1].Value))

		out, err = run.Apply(ctx, testRecord(""))
		require.NoError(t, err)
		require.Empty(t, out)

		_, err = run.Apply(ctx, testRecord("fail"))
		var se *StepError
		require.ErrorAs(t, err, &se)
		require.Equal(t, StepError{Index: 0, Step: "explode", Type: "function", Err: se.Err}, *se)
		require.EqualError(t, err, `transform step 0 "explode" (function): function says no`)

		require.Equal(t, []StepCounts{
			{Step: "explode", Type: "function", In: 3, Out: 3, Dropped: 1, Failed: 1},
			{Step: "filter#1", Type: "filter", In: 3, Out: 2, Dropped: 1},
			{Step: "set#2", Type: "set", In: 2, Out: 2},
		}, run.Counts())
		require.NoError(t, run.Close(ctx))
		require.EqualValues(t, batch+1, stats.closed.Load())
	}

	// A context that ends during a call is not the record's fault.
	run, err := c.Begin(ctx)
	require.NoError(t, err)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = run.Apply(cctx, testRecord("a"))
	require.ErrorIs(t, err, context.Canceled)
	var se *StepError
	require.False(t, errors.As(err, &se))
}

// TestFailedRecordLeavesNoOutput: when a record fails a later step after a
// function fanned it out, none of its outputs come out.
func TestFailedRecordLeavesNoOutput(t *testing.T) {
	c := compileYAML(t, `
- {type: function, function: {module: /x.wasm}}
- {type: set, field: n, expr: "value.part == 'b' ? value.part.x : 1"}
`, Options{Functions: fakeLoader(&fakeStats{})})
	ctx := context.Background()
	run, err := c.Begin(ctx)
	require.NoError(t, err)
	out, err := run.Apply(ctx, testRecord("a|b"))
	require.Error(t, err)
	require.Empty(t, out)
	out, err = run.Apply(ctx, testRecord("a"))
	require.NoError(t, err)
	require.Len(t, out, 1)
}

func TestStepErrorTruncates(t *testing.T) {
	long := bytes.Repeat([]byte("x"), 5000)
	err := &StepError{Index: 1, Step: "s", Type: "set", Err: errors.New(string(long))}
	require.Less(t, len(err.Error()), 600)
	require.Contains(t, err.Error(), "…(5000 bytes)")
}

// TestNoClock: the clock and machine-zone built-ins do not compile, and
// the timestamp is a number, so no time.Time method (Local) is reachable.
func TestNoClock(t *testing.T) {
	for _, src := range []string{`now()`, `date("2020-01-01")`, `timezone("Asia/Shanghai")`, `now().Local()`, `timestamp.Local()`} {
		_, err := compileExpr(src, false)
		require.Error(t, err, src)
	}
	_, err := compileExpr(`date("2020-01-01")`, false)
	require.ErrorContains(t, err, "unknown name date (1:1); expressions have no clock")
}

// TestInputFieldsFlatten: flattening a shared input's Fields and then
// changing a kept empty object does not reach the input.
func TestInputFieldsFlatten(t *testing.T) {
	v, err := ParseJSON([]byte(`{"a":{"b":1},"e":{}}`))
	require.NoError(t, err)
	fields := v.(*Object)
	c := compileYAML(t, `[{type: flatten}, {type: set, field: e.x, expr: "1"}]`)
	out, err := applyOne(t, c, &Record{Value: []byte(`{"a":{"b":1},"e":{}}`), Fields: fields})
	require.NoError(t, err)
	require.Equal(t, `{"a.b":1,"e":{"x":1}}`, string(out[0].Value))
	b, _ := fields.MarshalJSON()
	require.Equal(t, `{"a":{"b":1},"e":{}}`, string(b))
}

// TestConcurrentRuns: one Chain, many goroutines, each with its own Run
// (run with -race).
func TestConcurrentRuns(t *testing.T) {
	c := compileYAML(t, `
- {type: filter, if: "value.n % 3 != 0"}
- {type: set, field: re, expr: "regexReplace(value.s, '[0-9]', '#')"}
- {type: set, field: at, expr: "formatTime(timestamp, '2006-01-02', 'Asia/Shanghai')"}
`)
	ctx := context.Background()
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			run, err := c.Begin(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer run.Close(ctx)
			for i := range 200 {
				out, err := run.Apply(ctx, testRecord(fmt.Sprintf(`{"n":%d,"s":"g%d-%d"}`, i, g, i)))
				if err != nil {
					errs <- err
					return
				}
				want := fmt.Sprintf(`{"n":%d,"s":"g%d-%d","re":"g#-%s","at":"2020-07-28"}`, i, g, i, strings.Repeat("#", len(fmt.Sprint(i))))
				if i%3 == 0 && len(out) != 0 || i%3 != 0 && (len(out) != 1 || string(out[0].Value) != want) {
					errs <- fmt.Errorf("record %d of goroutine %d: got %v", i, g, out)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		require.NoError(t, <-errs)
	}
}

// TestFilterOnKeyDoesNotParse: an expression that does not name value
// does not parse it.
func TestFilterOnKeyDoesNotParse(t *testing.T) {
	c := compileYAML(t, `[{type: filter, if: "key == 'k1' && offset > 1"}]`)
	ctx := context.Background()
	run, err := c.Begin(ctx)
	require.NoError(t, err)
	rec := testRecord(seedSource)
	allocs := testing.AllocsPerRun(100, func() {
		out, err := run.Apply(ctx, rec)
		if err != nil || len(out) != 1 || out[0] != rec {
			t.Fatal(out, err)
		}
	})
	// The key's string and expr boxing two fields; parsing the value alone
	// would take 20.
	require.LessOrEqual(t, allocs, 3.0)
}
