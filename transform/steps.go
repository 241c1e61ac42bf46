package transform

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// errMissing fails a record that lacks a field a step needs. Steps that
// look for a field skip it when it is missing, except those that exist to
// compute from it (time, extract, split, and key or value from a field).
func errMissing(p path) error { return fmt.Errorf("field %q is missing", p.String()) }

// setStep: set field = expr.
type setStep struct {
	path path
	expr *program
}

func (s setStep) apply(r *Run, st *state) error {
	if _, err := st.object(); err != nil {
		return err
	}
	v, err := r.eval(s.expr, st)
	if err != nil {
		return fmt.Errorf("expr: %w", err)
	}
	c, err := r.fromExpr(v, 0)
	if err != nil {
		return fmt.Errorf("expr: %w", err)
	}
	if old, ok := st.obj.lookup(s.path); ok && sameScalar(old, c) {
		return nil
	}
	o, err := r.mutable(st)
	if err != nil {
		return err
	}
	return o.setPath(s.path, c)
}

// sameScalar reports whether a and b are the same null, bool, string or
// number text.
func sameScalar(a, b any) bool {
	switch a.(type) {
	case nil, bool, string, json.Number:
		return a == b
	}
	return false
}

// keepStep: keep only the listed fields, in the listed order.
type keepStep struct{ paths []path }

func (s keepStep) apply(r *Run, st *state) error {
	o, err := st.object()
	if err != nil {
		return err
	}
	if s.unchanged(o) {
		return nil
	}
	if o, err = r.mutable(st); err != nil {
		return err
	}
	out := &Object{}
	for _, p := range s.paths {
		if v, ok := o.lookup(p); ok {
			if err := out.setPath(p, v); err != nil {
				return err
			}
		}
	}
	r.setObject(st, out)
	return nil
}

// unchanged reports whether o already holds exactly the kept top-level
// fields in order.
func (s keepStep) unchanged(o *Object) bool {
	if len(s.paths) != o.Len() {
		return false
	}
	for i, p := range s.paths {
		if len(p) != 1 || o.members[i].key != p[0] {
			return false
		}
	}
	return true
}

// dropStep: remove the listed fields.
type dropStep struct{ paths []path }

func (s dropStep) apply(r *Run, st *state) error {
	o, err := st.object()
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(s.paths, func(p path) bool { _, ok := o.lookup(p); return ok }) {
		return nil
	}
	if o, err = r.mutable(st); err != nil {
		return err
	}
	for _, p := range s.paths {
		o.deletePath(p)
	}
	return nil
}

// renameStep: move field to to; in place when both have the same parent.
type renameStep struct{ from, to path }

func (s renameStep) apply(r *Run, st *state) error {
	o, err := st.object()
	if err != nil {
		return err
	}
	if _, ok := o.lookup(s.from); !ok || slices.Equal(s.from, s.to) {
		return nil
	}
	if o, err = r.mutable(st); err != nil {
		return err
	}
	if len(s.from) == len(s.to) && slices.Equal(s.from[:len(s.from)-1], s.to[:len(s.to)-1]) {
		o.parent(s.from).rename(s.from[len(s.from)-1], s.to[len(s.to)-1])
		return nil
	}
	v, _ := o.deletePath(s.from)
	return o.setPath(s.to, v)
}

// maskStep: hide the listed fields' text.
type maskStep struct {
	paths    []path
	keepLast int
	char     string
	hash     bool
}

func (s maskStep) apply(r *Run, st *state) error {
	o, err := st.object()
	if err != nil {
		return err
	}
	masked := make([]any, len(s.paths)) // nil: leave as is
	changed := false
	for i, p := range s.paths {
		v, ok := o.lookup(p)
		if !ok || v == nil {
			continue
		}
		text, ok := scalarText(v)
		if !ok {
			return fmt.Errorf("mask field %q: it is %s; mask its fields instead", p.String(), kindOf(v))
		}
		m := s.mask(text)
		masked[i] = m
		changed = changed || m != v
	}
	if !changed {
		return nil
	}
	if o, err = r.mutable(st); err != nil {
		return err
	}
	for i, p := range s.paths {
		if masked[i] != nil {
			if err := o.setPath(p, masked[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s maskStep) mask(text string) string {
	if s.hash {
		sum := sha256.Sum256([]byte(text))
		return hex.EncodeToString(sum[:])
	}
	n := utf8.RuneCountInString(text)
	keep := min(s.keepLast, n)
	cut := len(text)
	for range keep {
		_, size := utf8.DecodeLastRuneInString(text[:cut])
		cut -= size
	}
	return strings.Repeat(s.char, n-keep) + text[cut:]
}

// scalarText is the text of a string, number or bool.
func scalarText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return string(x), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// timeStep: parse a time from a field and write it formatted.
type timeStep struct {
	from, to      path
	parse, format *timeLayout
	zone          *time.Location
}

func (s timeStep) apply(r *Run, st *state) error {
	o, err := st.object()
	if err != nil {
		return err
	}
	v, ok := o.lookup(s.from)
	if !ok {
		return errMissing(s.from)
	}
	t, err := s.parse.parse(v, s.zone)
	if err != nil {
		return fmt.Errorf("field %q: %w", s.from.String(), err)
	}
	out := s.format.format(t, s.zone)
	if slices.Equal(s.from, s.to) && sameScalar(v, out) {
		return nil
	}
	if o, err = r.mutable(st); err != nil {
		return err
	}
	return o.setPath(s.to, out)
}

// extractStep: a regex's named groups into fields.
type extractStep struct {
	from, to path
	re       *regexp.Regexp
}

func (s extractStep) apply(r *Run, st *state) error {
	o, err := st.object()
	if err != nil {
		return err
	}
	v, ok := o.lookup(s.from)
	if !ok {
		return errMissing(s.from)
	}
	text, ok := scalarText(v)
	if !ok {
		return fmt.Errorf("field %q is %s, want a string", s.from.String(), kindOf(v))
	}
	idx := s.re.FindStringSubmatchIndex(text)
	if idx == nil {
		return fmt.Errorf("field %q (%q) does not match the regex", s.from.String(), ShortPrefix([]byte(text), 64))
	}
	if o, err = r.mutable(st); err != nil {
		return err
	}
	for i, name := range s.re.SubexpNames() {
		if name == "" {
			continue
		}
		var g any
		if idx[2*i] >= 0 {
			g = text[idx[2*i]:idx[2*i+1]]
		}
		if err := o.setPath(append(slices.Clip(s.to), name), g); err != nil {
			return err
		}
	}
	return nil
}

// splitStep: a string field split at a separator.
type splitStep struct {
	from, to path
	sep      string
	into     []path
}

func (s splitStep) apply(r *Run, st *state) error {
	o, err := st.object()
	if err != nil {
		return err
	}
	v, ok := o.lookup(s.from)
	if !ok {
		return errMissing(s.from)
	}
	text, ok := v.(string)
	if !ok {
		return fmt.Errorf("field %q is %s, want a string", s.from.String(), kindOf(v))
	}
	if o, err = r.mutable(st); err != nil {
		return err
	}
	if len(s.into) == 0 {
		parts := strings.Split(text, s.sep)
		arr := make([]any, len(parts))
		for i, p := range parts {
			arr[i] = p
		}
		return o.setPath(s.to, arr)
	}
	parts := strings.SplitN(text, s.sep, len(s.into))
	for i, p := range s.into {
		var part any
		if i < len(parts) {
			part = parts[i]
		}
		if err := o.setPath(p, part); err != nil {
			return err
		}
	}
	return nil
}

// lookupObject is the object at p inside o (o itself for a nil p); ok is
// false when there is no field at p, and a field that is not an object is
// an error. objectAt creates what is missing instead.
func lookupObject(o *Object, p path) (obj *Object, ok bool, err error) {
	if p == nil {
		return o, true, nil
	}
	v, ok := o.lookup(p)
	if !ok {
		return nil, false, nil
	}
	if obj, ok = v.(*Object); !ok {
		return nil, false, fmt.Errorf("field %q is %s, not an object", p.String(), kindOf(v))
	}
	return obj, true, nil
}

// flattenStep: nested objects into joined keys.
type flattenStep struct {
	field path // nil: the whole value
	sep   string
}

func (s flattenStep) apply(r *Run, st *state) error {
	o, err := st.object()
	if err != nil {
		return err
	}
	target, ok, err := lookupObject(o, s.field)
	if !ok || err != nil {
		return err
	}
	if !slices.ContainsFunc(target.members, func(m member) bool {
		sub, ok := m.val.(*Object)
		return ok && sub.Len() > 0
	}) {
		return nil
	}
	if o, err = r.mutable(st); err != nil {
		return err
	}
	if target = o; s.field != nil {
		v, _ := o.lookup(s.field)
		target = v.(*Object)
	}
	flat := &Object{}
	if err := s.flatten(flat, "", target); err != nil {
		return err
	}
	if s.field == nil {
		r.setObject(st, flat)
		return nil
	}
	return o.setPath(s.field, flat)
}

func (s flattenStep) flatten(dst *Object, prefix string, o *Object) error {
	for _, m := range o.members {
		k := m.key
		if prefix != "" {
			k = prefix + s.sep + k
		}
		if sub, ok := m.val.(*Object); ok && sub.Len() > 0 {
			if err := s.flatten(dst, k, sub); err != nil {
				return err
			}
			continue
		}
		if _, dup := dst.Get(k); dup {
			return fmt.Errorf("flattened key %q appears twice", ShortPrefix([]byte(k), 64))
		}
		dst.Set(k, m.val)
	}
	return nil
}

// castStep: fields to int, float, string or bool.
type castStep struct {
	paths []path
	as    string
}

func (s castStep) apply(r *Run, st *state) error {
	o, err := st.object()
	if err != nil {
		return err
	}
	out := make([]any, len(s.paths))
	set := make([]bool, len(s.paths))
	changed := false
	for i, p := range s.paths {
		v, ok := o.lookup(p)
		if !ok || v == nil {
			continue
		}
		c, err := cast(v, s.as)
		if err != nil {
			return fmt.Errorf("cast field %q to %s: %w", p.String(), s.as, err)
		}
		out[i], set[i] = c, true
		changed = changed || !sameScalar(v, c)
	}
	if !changed {
		return nil
	}
	if o, err = r.mutable(st); err != nil {
		return err
	}
	for i, p := range s.paths {
		if set[i] {
			if err := o.setPath(p, out[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

func cast(v any, as string) (any, error) {
	if as == "string" {
		if text, ok := scalarText(v); ok {
			return text, nil
		}
		b, err := AppendJSON(nil, v)
		return string(b), err
	}
	var num json.Number
	switch x := v.(type) {
	case json.Number:
		num = x
	case bool:
		switch as {
		case "bool":
			return x, nil
		case "int", "float":
			if x {
				return json.Number("1"), nil
			}
			return json.Number("0"), nil
		}
	case string:
		if as == "bool" {
			b, err := strconv.ParseBool(x)
			if err != nil {
				return nil, fmt.Errorf("%q is not true or false", ShortPrefix([]byte(x), 64))
			}
			return b, nil
		}
		if !validNumber(x) {
			return nil, fmt.Errorf("%q is not a number", ShortPrefix([]byte(x), 64))
		}
		num = json.Number(x)
	default:
		return nil, fmt.Errorf("it is %s", kindOf(v))
	}
	switch as {
	case "int":
		if _, err := strconv.ParseInt(string(num), 10, 64); err == nil {
			return num, nil
		}
		f, err := strconv.ParseFloat(string(num), 64)
		if err != nil || f != math.Trunc(f) || math.Abs(f) >= 1<<63 {
			return nil, fmt.Errorf("%s is not a whole number within int64", ShortPrefix([]byte(num), 64))
		}
		return json.Number(strconv.FormatInt(int64(f), 10)), nil
	case "float":
		f, err := strconv.ParseFloat(string(num), 64)
		if err != nil {
			return nil, fmt.Errorf("%s is out of the float64 range", ShortPrefix([]byte(num), 64))
		}
		return formatFloat(f)
	default: // bool
		switch string(num) {
		case "0":
			return false, nil
		case "1":
			return true, nil
		}
		return nil, fmt.Errorf("%s is neither 0 nor 1", ShortPrefix([]byte(num), 64))
	}
}

// fieldOrExpr is the source of a key or value step.
type fieldOrExpr struct {
	path path
	expr *program
}

func (s fieldOrExpr) get(r *Run, st *state) ([]byte, error) {
	var v any
	if s.path != nil {
		o, err := st.object()
		if err != nil {
			return nil, err
		}
		var ok bool
		if v, ok = o.lookup(s.path); !ok {
			return nil, errMissing(s.path)
		}
	} else {
		x, err := r.eval(s.expr, st)
		if err != nil {
			return nil, fmt.Errorf("expr: %w", err)
		}
		if v, err = r.fromExpr(x, 0); err != nil {
			return nil, fmt.Errorf("expr: %w", err)
		}
	}
	return valueBytes(v)
}

// valueBytes renders a value as record bytes: a string as its text (so an
// embedded payload becomes the value itself), null as nil, anything else as
// its JSON.
func valueBytes(v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []byte(x), nil
	}
	return AppendJSON(nil, v)
}

// keyStep: the record key from a field or an expression.
type keyStep struct{ fieldOrExpr }

func (s keyStep) apply(r *Run, st *state) error {
	b, err := s.get(r, st)
	if err != nil {
		return err
	}
	if bytes.Equal(b, st.rec.Key) && (b == nil) == (st.rec.Key == nil) {
		return nil
	}
	st.rec.Key = b
	st.changed = true
	st.envOK &^= needKey
	return nil
}

// valueStep: the whole value from a field or an expression.
type valueStep struct{ fieldOrExpr }

func (s valueStep) apply(r *Run, st *state) error {
	b, err := s.get(r, st)
	if err != nil {
		return err
	}
	r.setValue(st, b)
	return nil
}

// metadataStep: insertMetadata.
type metadataStep struct {
	topic, partition, offset, timestamp path
	format                              *timeLayout
	zone                                *time.Location
}

func (s metadataStep) apply(r *Run, st *state) error {
	o, err := r.mutable(st)
	if err != nil {
		return err
	}
	rec := st.in
	for _, f := range []struct {
		p path
		v func() any
	}{
		{s.topic, func() any { return rec.Topic }},
		{s.partition, func() any { return json.Number(strconv.FormatInt(int64(rec.Partition), 10)) }},
		{s.offset, func() any { return json.Number(strconv.FormatInt(rec.Offset, 10)) }},
		{s.timestamp, func() any { return s.format.format(rec.Timestamp, s.zone) }},
	} {
		if f.p != nil {
			if err := o.setPath(f.p, f.v()); err != nil {
				return err
			}
		}
	}
	return nil
}

// copyHeadersStep: headers into fields.
type copyHeadersStep struct {
	names []string // nil: all
	to    path
}

func (s copyHeadersStep) apply(r *Run, st *state) error {
	if _, err := st.object(); err != nil {
		return err
	}
	type kv struct {
		k string
		v []byte
	}
	var found []kv
	add := func(k string, v []byte) {
		if i := slices.IndexFunc(found, func(e kv) bool { return e.k == k }); i >= 0 {
			found[i].v = v // the last header of a key wins
			return
		}
		found = append(found, kv{k, v})
	}
	for _, h := range st.rec.Headers {
		if s.names == nil || slices.Contains(s.names, h.Key) {
			add(h.Key, h.Value)
		}
	}
	if len(found) == 0 {
		return nil
	}
	o, err := r.mutable(st)
	if err != nil {
		return err
	}
	dst := o
	if s.to != nil {
		if dst, err = objectAt(o, s.to); err != nil {
			return err
		}
	}
	for _, h := range found {
		if !utf8.Valid(h.v) {
			return fmt.Errorf("header %q is not valid UTF-8 (%s)", h.k, ShortPrefix(h.v, 32))
		}
		var v any
		if h.v != nil {
			v = string(h.v)
		}
		dst.Set(h.k, v)
	}
	return nil
}

// objectAt returns the object at p, creating it (and the objects on the
// way) when missing.
func objectAt(o *Object, p path) (*Object, error) {
	v, ok := o.lookup(p)
	if !ok {
		obj := &Object{}
		return obj, o.setPath(p, obj)
	}
	obj, isObj := v.(*Object)
	if !isObj {
		return nil, fmt.Errorf("field %q is %s, not an object", p.String(), kindOf(v))
	}
	return obj, nil
}

// setHeadersStep: fields into headers.
type setHeadersStep struct {
	names []string // nil: every key of from
	from  path
}

func (s setHeadersStep) apply(r *Run, st *state) error {
	o, err := st.object()
	if err != nil {
		return err
	}
	src, ok, err := lookupObject(o, s.from)
	if !ok || err != nil {
		return err
	}
	names := s.names
	if names == nil {
		names = src.Keys()
	}
	for _, name := range names {
		v, ok := src.Get(name)
		if !ok {
			continue
		}
		b, err := valueBytes(v)
		if err != nil {
			return fmt.Errorf("field %q: %w", name, err)
		}
		hs := slices.DeleteFunc(st.headers(), func(h Header) bool { return h.Key == name })
		st.rec.Headers = append(hs, Header{Key: name, Value: b})
	}
	return nil
}

// dropHeadersStep: remove headers.
type dropHeadersStep struct{ names []string }

func (s dropHeadersStep) apply(r *Run, st *state) error {
	if !slices.ContainsFunc(st.rec.Headers, func(h Header) bool { return slices.Contains(s.names, h.Key) }) {
		return nil
	}
	st.rec.Headers = slices.DeleteFunc(st.headers(), func(h Header) bool { return slices.Contains(s.names, h.Key) })
	return nil
}

// routeStep: the record's folder.
type routeStep struct{ expr *program }

func (s routeStep) apply(r *Run, st *state) error {
	v, err := r.eval(s.expr, st)
	if err != nil {
		return fmt.Errorf("expr: %w", err)
	}
	route, ok := v.(string)
	if !ok {
		return fmt.Errorf("expr gave %s, want a string", kindOf(v))
	}
	if err := CheckRoute(route); err != nil {
		return err
	}
	if route != st.rec.Route {
		st.rec.Route = route
		st.changed = true
	}
	return nil
}
