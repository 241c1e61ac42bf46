package transform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"unsafe"

	"github.com/expr-lang/expr/vm"
)

// Chain is a compiled transform chain. It is immutable and safe for
// concurrent use: each goroutine (each batch) runs it through its own Run.
// A nil *Chain is the empty chain.
type Chain struct {
	steps []*step
	hash  string
}

// step is one compiled step.
type step struct {
	index int
	name  string
	typ   string
	cond  *program // if; for filter, the step itself
	impl  stepImpl // nil for filter and function
	fn    Function // function steps
}

// stepImpl is the type-specific part of a step: apply changes st (the
// record under transformation) or fails the record with an error.
type stepImpl interface {
	apply(r *Run, st *state) error
}

// Empty reports whether the chain has no steps: it passes every record
// through untouched.
func (c *Chain) Empty() bool { return c == nil || len(c.steps) == 0 }

// Hash is a stable hex SHA-256 of the chain's canonical spec (defaults
// filled in) and its function modules' hashes; "" for the empty chain. The
// same spec and modules always give the same hash, on any machine.
func (c *Chain) Hash() string {
	if c == nil {
		return ""
	}
	return c.hash
}

// Close releases the compiled function modules that hold resources (those
// whose Function also has a Close(context.Context) error method). Runs
// begun before must be closed first.
func (c *Chain) Close(ctx context.Context) error {
	if c == nil {
		return nil
	}
	var errs []error
	for _, s := range c.steps {
		if cl, ok := s.fn.(interface{ Close(context.Context) error }); ok {
			errs = append(errs, cl.Close(ctx))
		}
	}
	return errors.Join(errs...)
}

// StepNames lists the steps' names in order.
func (c *Chain) StepNames() []string {
	if c == nil {
		return nil
	}
	names := make([]string, len(c.steps))
	for i, s := range c.steps {
		names[i] = s.name
	}
	return names
}

// StepCounts are one step's counts over a Run. In is the records the step
// saw; Out the records it passed on (a function may emit several per
// record, or none); Dropped the records it dropped (a filter that was false,
// a function that emitted none); Failed the records it failed.
type StepCounts struct {
	Step    string `json:"step"`
	Type    string `json:"type"`
	In      int64  `json:"in"`
	Out     int64  `json:"out"`
	Dropped int64  `json:"dropped"`
	Failed  int64  `json:"failed"`
}

// StepError is a record's failure at a step. The record goes to the
// dead-letter topic with the step's name and the error.
type StepError struct {
	Index int    // position of the step in the chain
	Step  string // the step's name
	Type  string // the step's type
	Err   error
}

// maxErrorLen caps the length of a step error's message, which may quote
// (a short prefix of) record data.
const maxErrorLen = 512

func (e *StepError) Error() string {
	msg := ShortPrefix([]byte(e.Err.Error()), maxErrorLen)
	return fmt.Sprintf("transform step %d %q (%s): %s", e.Index, e.Step, e.Type, msg)
}

func (e *StepError) Unwrap() error { return e.Err }

// Transient reports whether a function's error says nothing about the
// record (it implements Transient() bool, returning true): a time limit,
// which depends on the machine's speed. The chain fails the batch on such
// an error instead of failing the record, so output stays deterministic.
func Transient(err error) bool {
	var t interface{ Transient() bool }
	return errors.As(err, &t) && t.Transient()
}

// Run applies a chain to the records of one batch, in order, from one
// goroutine. It holds the batch's fresh function instances and the per-step
// counts. Close it when the batch is done.
type Run struct {
	c         *Chain
	instances []FunctionInstance // by step index; nil for other steps
	counts    []StepCounts
	states    []*state // by function depth
	out       []*Record
	vm        vm.VM
	buf       []byte // scratch for encoding
	origins   map[unsafe.Pointer]any
}

// Begin starts a Run: one fresh instance of every function step. A nil or
// empty chain gives a Run that passes records through.
func (c *Chain) Begin(ctx context.Context) (*Run, error) {
	r := &Run{c: c, out: make([]*Record, 0, 1)}
	if c.Empty() {
		return r, nil
	}
	r.counts = make([]StepCounts, len(c.steps))
	r.instances = make([]FunctionInstance, len(c.steps))
	r.origins = map[unsafe.Pointer]any{}
	for i, s := range c.steps {
		r.counts[i] = StepCounts{Step: s.name, Type: s.typ}
		if s.fn == nil {
			continue
		}
		inst, err := s.fn.NewInstance(ctx)
		if err != nil {
			r.Close(ctx)
			return nil, fmt.Errorf("transform step %d %q: start function: %w", i, s.name, err)
		}
		r.instances[i] = inst
	}
	return r, nil
}

// Close closes the Run's function instances.
func (r *Run) Close(ctx context.Context) error {
	var errs []error
	for i, inst := range r.instances {
		if inst != nil {
			errs = append(errs, inst.Close(ctx))
			r.instances[i] = nil
		}
	}
	return errors.Join(errs...)
}

// Counts returns a copy of the per-step counts so far, in step order.
func (r *Run) Counts() []StepCounts { return slices.Clone(r.counts) }

// Apply runs rec through the chain and returns the records that come out:
// none when a step dropped it, one usually, several when a function step
// emitted several. rec is never modified; a record that comes out unchanged
// is rec itself (its Value the same bytes). The returned slice is reused by
// the next Apply; the records in it belong to the caller.
//
// A record that fails a step gives a *StepError (and no records): the
// caller sends rec to the dead-letter topic. Any other error (the context
// ended while a function ran) is not the record's fault: the batch fails.
func (r *Run) Apply(ctx context.Context, rec *Record) ([]*Record, error) {
	r.out = r.out[:0]
	if r.c.Empty() {
		r.out = append(r.out, rec)
		return r.out, nil
	}
	if err := r.run(ctx, rec, 0, 0); err != nil {
		clear(r.out)
		r.out = r.out[:0]
		return nil, err
	}
	return r.out, nil
}

// run takes in through steps from..end; depth is the number of function
// steps passed, which selects the state.
func (r *Run) run(ctx context.Context, in *Record, from, depth int) error {
	if depth == len(r.states) {
		r.states = append(r.states, &state{})
	}
	st := r.states[depth]
	r.reset(st, in)
	defer st.release()
	for i := from; i < len(r.c.steps); i++ {
		s := r.c.steps[i]
		n := &r.counts[i]
		n.In++
		fail := func(err error) error {
			n.Failed++
			return &StepError{Index: i, Step: s.name, Type: s.typ, Err: err}
		}
		if s.cond != nil {
			ok, err := r.test(s.cond, st)
			if err != nil {
				return fail(fmt.Errorf("if: %w", err))
			}
			if !ok {
				if s.typ == StepFilter {
					n.Dropped++
					return nil
				}
				n.Out++
				continue
			}
		}
		if inst := r.instances[i]; inst != nil {
			rec, err := r.record(st)
			if err != nil {
				return fail(err)
			}
			outs, err := inst.Call(ctx, rec)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if Transient(err) {
					// Not the record's fault (a time limit depends on the
					// machine): the batch fails and is retried, so a retry
					// never sends a record elsewhere than the first attempt.
					return err
				}
				return fail(err)
			}
			if len(outs) == 0 {
				n.Dropped++
				return nil
			}
			n.Out += int64(len(outs))
			for _, o := range outs {
				if err := r.run(ctx, o, i+1, depth+1); err != nil {
					return err
				}
			}
			return nil
		}
		if s.impl != nil {
			if err := s.impl.apply(r, st); err != nil {
				return fail(err)
			}
		}
		n.Out++
	}
	rec, err := r.record(st)
	if err != nil {
		// Values the steps build always encode; this is a value that came
		// in as Fields holding something that is not JSON. The last step
		// passed it on: count it as failed there instead.
		last := len(r.c.steps) - 1
		r.counts[last].Out--
		r.counts[last].Failed++
		s := r.c.steps[last]
		return &StepError{Index: last, Step: s.name, Type: s.typ, Err: err}
	}
	r.out = append(r.out, rec)
	return nil
}

// test evaluates a condition.
func (r *Run) test(p *program, st *state) (bool, error) {
	v, err := r.eval(p, st)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("expression gave %s, want a bool", kindOf(v))
	}
	return b, nil
}

// eval runs an expression on the record.
func (r *Run) eval(p *program, st *state) (any, error) {
	v, err := r.vm.Run(p.prog, r.env(st, p.needs))
	if err != nil {
		return nil, errors.New(exprMessage(err))
	}
	return v, nil
}

// state is the record under transformation.
type state struct {
	in      *Record // the record as it entered (never modified)
	rec     Record  // working copy
	changed bool    // rec differs from *in

	parsed  bool    // val, obj and isJSON describe rec.Value
	isJSON  bool    // rec.Value is JSON
	val     any     // the parsed value
	obj     *Object // val when it is an object
	ownObj  bool    // obj may be modified (not shared with a record)
	dirty   bool    // obj changed since rec.Value was encoded
	ownHdrs bool    // rec.Headers may be modified

	env   exprEnv
	envOK need // which lazy parts of env are current
}

func (r *Run) reset(st *state, in *Record) {
	*st = state{in: in, rec: *in}
	st.env = exprEnv{
		Topic:     in.Topic,
		Partition: int(in.Partition),
		Offset:    int(in.Offset),
		Timestamp: int(in.Timestamp.UnixMilli()),
	}
	if in.Fields != nil {
		st.parsed, st.isJSON, st.val, st.obj = true, true, in.Fields, in.Fields
	}
	clear(r.origins)
}

// release drops the state's references so a Run holds no record data
// between calls.
func (st *state) release() { *st = state{} }

// parse decodes rec.Value once.
func (st *state) parse() {
	if st.parsed {
		return
	}
	st.parsed = true
	if st.rec.Value == nil {
		return
	}
	v, err := ParseJSON(st.rec.Value)
	if err != nil {
		return
	}
	st.isJSON, st.val, st.ownObj = true, v, true
	st.obj, _ = v.(*Object)
}

// object returns the value as an object to read.
func (st *state) object() (*Object, error) {
	st.parse()
	if st.obj != nil {
		return st.obj, nil
	}
	switch {
	case st.rec.Value == nil:
		return nil, errors.New("the value is null, not a JSON object")
	case !st.isJSON:
		return nil, fmt.Errorf("the value is not JSON (%q)", ShortPrefix(st.rec.Value, 32))
	}
	return nil, fmt.Errorf("the value is %s, not a JSON object", kindOf(st.val))
}

// mutable returns the value as an object to change, and marks it changed.
func (r *Run) mutable(st *state) (*Object, error) {
	o, err := st.object()
	if err != nil {
		return nil, err
	}
	if !st.ownObj {
		o = o.Clone()
		st.obj, st.val, st.ownObj = o, o, true
	}
	st.dirty = true
	st.envOK &^= needValue
	clear(r.origins)
	return o, nil
}

// setObject replaces the value by o.
func (r *Run) setObject(st *state, o *Object) {
	st.obj, st.val, st.ownObj, st.dirty = o, o, true, true
	st.envOK &^= needValue
	clear(r.origins)
}

// setValue replaces the value bytes.
func (r *Run) setValue(st *state, b []byte) {
	st.rec.Value, st.rec.Fields = b, nil
	st.parsed, st.isJSON, st.val, st.obj, st.ownObj, st.dirty = false, false, nil, nil, false, false
	st.changed = true
	st.envOK &^= needValue
	clear(r.origins)
}

// headers returns the headers to change.
func (st *state) headers() []Header {
	if !st.ownHdrs {
		st.rec.Headers = slices.Clone(st.rec.Headers)
		st.ownHdrs = true
	}
	st.changed = true
	st.envOK &^= needHeaders
	return st.rec.Headers
}

// record returns the record as the chain has made it so far: the input
// itself when nothing changed.
func (r *Run) record(st *state) (*Record, error) {
	if st.dirty {
		b, err := AppendJSON(r.buf[:0], st.obj)
		r.buf = b[:0]
		if err != nil {
			return nil, fmt.Errorf("encode the value: %w", err)
		}
		st.rec.Value = slices.Clone(b)
		st.rec.Fields = st.obj
		st.dirty, st.changed = false, true
		st.ownObj = false // the output record now shares obj
	}
	if !st.changed {
		return st.in, nil
	}
	out := new(Record)
	*out = st.rec
	st.ownHdrs = false
	return out, nil
}

// env fills the parts of the expression environment an expression needs.
func (r *Run) env(st *state, needs need) *exprEnv {
	e := &st.env
	if missing := needs &^ st.envOK; missing != 0 {
		if missing&needKey != 0 {
			e.Key = string(st.rec.Key)
		}
		if missing&needValue != 0 {
			st.parse()
			switch {
			case st.isJSON:
				e.Value = r.view(st.val)
			case st.rec.Value == nil:
				e.Value = nil
			default:
				e.Value = string(st.rec.Value)
			}
		}
		if missing&needHeaders != 0 {
			h := make(map[string]string, len(st.rec.Headers))
			for _, kv := range st.rec.Headers {
				h[kv.Key] = string(kv.Value)
			}
			e.Headers = h
		}
		st.envOK |= missing
	}
	return e
}

// view converts a JSON value to what expressions see: objects become
// map[string]any, numbers int or float64. Each map and slice made is
// remembered with its origin, so an expression that returns one unchanged
// (set b = value.a) gives back the original, in its key order with its
// number text.
func (r *Run) view(v any) any {
	switch x := v.(type) {
	case *Object:
		m := make(map[string]any, len(x.members))
		for _, kv := range x.members {
			m[kv.key] = r.view(kv.val)
		}
		r.origins[reflect.ValueOf(m).UnsafePointer()] = x
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = r.view(e)
		}
		if len(s) > 0 {
			r.origins[unsafe.Pointer(&s[0])] = x
		}
		return s
	case json.Number:
		return numberView(x)
	}
	return v
}

// numberView is a JSON number as an expression sees it: int when it is a
// whole number within int64, float64 otherwise.
func numberView(n json.Number) any {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return int(i)
	}
	f, _ := strconv.ParseFloat(string(n), 64) // a JSON number always parses; ±Inf past float64
	return f
}

// fromExpr converts an expression's result to the JSON model, giving back
// a copy of the original for a map or slice of the current view.
func (r *Run) fromExpr(v any, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("value nested too deeply")
	}
	switch x := v.(type) {
	case map[string]any:
		if o, ok := r.origins[reflect.ValueOf(x).UnsafePointer()]; ok {
			return cloneValue(o), nil
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		o := &Object{members: make([]member, 0, len(keys))}
		for _, k := range keys {
			c, err := r.fromExpr(x[k], depth+1)
			if err != nil {
				return nil, err
			}
			o.members = append(o.members, member{k, c})
		}
		o.reindex()
		return o, nil
	case []any:
		if len(x) > 0 {
			if o, ok := r.origins[unsafe.Pointer(&x[0])]; ok && len(o.([]any)) == len(x) {
				return cloneValue(o), nil
			}
		}
		s := make([]any, len(x))
		for i, e := range x {
			c, err := r.fromExpr(e, depth+1)
			if err != nil {
				return nil, err
			}
			s[i] = c
		}
		return s, nil
	}
	return toJSONValue(v, depth)
}
