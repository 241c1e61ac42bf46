package transform

import (
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strings"
)

// Object is a JSON object that keeps its keys in first-set order, so that a
// value re-encoded after a transform reads in the order its producer wrote
// it, with new fields appended. Its values are nil, bool, string,
// json.Number (a number, kept as its original text), []any and *Object;
// Set also takes Go numbers, slices and string-keyed maps and converts them
// when the object is encoded (maps in sorted key order).
//
// The zero Object is empty and ready to use. An Object is not safe for
// concurrent mutation.
type Object struct {
	members []member
	index   map[string]int // key → position; built past indexAt members
}

type member struct {
	key string
	val any
}

// indexAt is the size from which lookups go through a map instead of a scan.
const indexAt = 16

// Len is the number of keys.
func (o *Object) Len() int {
	if o == nil {
		return 0
	}
	return len(o.members)
}

// At returns the i-th key and its value, 0 <= i < Len().
func (o *Object) At(i int) (string, any) { return o.members[i].key, o.members[i].val }

// All yields the keys and values in order.
func (o *Object) All() iter.Seq2[string, any] {
	return func(yield func(string, any) bool) {
		if o == nil {
			return
		}
		for _, m := range o.members {
			if !yield(m.key, m.val) {
				return
			}
		}
	}
}

// Keys returns the keys in order.
func (o *Object) Keys() []string {
	keys := make([]string, o.Len())
	for i := range keys {
		keys[i] = o.members[i].key
	}
	return keys
}

func (o *Object) find(key string) int {
	if o == nil {
		return -1
	}
	if o.index != nil {
		if i, ok := o.index[key]; ok {
			return i
		}
		return -1
	}
	for i := range o.members {
		if o.members[i].key == key {
			return i
		}
	}
	return -1
}

// Get returns the value of key and whether the key is present.
func (o *Object) Get(key string) (any, bool) {
	if i := o.find(key); i >= 0 {
		return o.members[i].val, true
	}
	return nil, false
}

// Set gives key the value v: in place when the key is present, appended
// otherwise.
func (o *Object) Set(key string, v any) {
	if i := o.find(key); i >= 0 {
		o.members[i].val = v
		return
	}
	o.members = append(o.members, member{key, v})
	switch {
	case o.index != nil:
		o.index[key] = len(o.members) - 1
	case len(o.members) > indexAt:
		o.reindex()
	}
}

// Delete removes key and reports whether it was present.
func (o *Object) Delete(key string) bool {
	i := o.find(key)
	if i < 0 {
		return false
	}
	o.members = append(o.members[:i], o.members[i+1:]...)
	o.members[:len(o.members)+1][len(o.members)] = member{} // release the value
	if o.index != nil {
		o.reindex()
	}
	return true
}

// rename gives the member old the key new, in place. A member already
// named new is removed first.
func (o *Object) rename(old, new string) bool {
	if old == new {
		return o.find(old) >= 0
	}
	if o.find(old) < 0 {
		return false
	}
	o.Delete(new)
	i := o.find(old)
	o.members[i].key = new
	if o.index != nil {
		delete(o.index, old)
		o.index[new] = i
	}
	return true
}

func (o *Object) reindex() {
	if len(o.members) <= indexAt {
		o.index = nil
		return
	}
	if o.index == nil {
		o.index = make(map[string]int, len(o.members))
	} else {
		clear(o.index)
	}
	for i, m := range o.members {
		o.index[m.key] = i
	}
}

// Clone returns a deep copy of o.
func (o *Object) Clone() *Object {
	if o == nil {
		return nil
	}
	c := &Object{members: make([]member, len(o.members))}
	for i, m := range o.members {
		c.members[i] = member{m.key, cloneValue(m.val)}
	}
	c.reindex()
	return c
}

func cloneValue(v any) any {
	switch x := v.(type) {
	case *Object:
		return x.Clone()
	case []any:
		c := make([]any, len(x))
		for i, e := range x {
			c[i] = cloneValue(e)
		}
		return c
	}
	return v
}

// AppendJSON appends o's compact JSON encoding to dst (see AppendJSON).
func (o *Object) AppendJSON(dst []byte) ([]byte, error) { return AppendJSON(dst, o) }

// MarshalJSON encodes o compactly, keys in order.
func (o *Object) MarshalJSON() ([]byte, error) { return AppendJSON(nil, o) }

// UnmarshalJSON reads a JSON object, keeping its key order.
func (o *Object) UnmarshalJSON(data []byte) error {
	v, err := ParseJSON(data)
	if err != nil {
		return err
	}
	obj, ok := v.(*Object)
	if !ok {
		return fmt.Errorf("JSON value is %s, not an object", kindOf(v))
	}
	*o = *obj
	return nil
}

// A path names a field inside a value: keys separated by '.', so "a.b" is
// key "b" of the object under key "a". A key holding a '.' is written with
// a backslash, "a\.b", and a backslash as "\\".
type path []string

// parsePath reads a path. Every key must be non-empty.
func parsePath(s string) (path, error) {
	if s == "" {
		return nil, errors.New("is empty")
	}
	var p path
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 == len(s) || (s[i+1] != '.' && s[i+1] != '\\') {
				return nil, errors.New(`has a '\' that is not followed by '.' or '\'`)
			}
			i++
			b.WriteByte(s[i])
		case '.':
			if b.Len() == 0 {
				return nil, errors.New("has an empty key (a leading, trailing or doubled '.')")
			}
			p = append(p, b.String())
			b.Reset()
		default:
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return nil, errors.New("has an empty key (a leading, trailing or doubled '.')")
	}
	return append(p, b.String()), nil
}

// String writes p back in path syntax.
func (p path) String() string {
	var b strings.Builder
	for i, k := range p {
		if i > 0 {
			b.WriteByte('.')
		}
		for j := 0; j < len(k); j++ {
			if k[j] == '.' || k[j] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(k[j])
		}
	}
	return b.String()
}

// parent returns the object holding the last key of p, or nil when a key on
// the way is missing or not an object.
func (o *Object) parent(p path) *Object {
	for _, k := range p[:len(p)-1] {
		v, _ := o.Get(k)
		next, ok := v.(*Object)
		if !ok {
			return nil
		}
		o = next
	}
	return o
}

// lookup returns the value at p and whether it is present.
func (o *Object) lookup(p path) (any, bool) {
	if par := o.parent(p); par != nil {
		return par.Get(p[len(p)-1])
	}
	return nil, false
}

// setPath sets the value at p, creating the objects on the way. It fails
// when a key on the way holds something other than an object.
func (o *Object) setPath(p path, v any) error {
	for i, k := range p[:len(p)-1] {
		cur, ok := o.Get(k)
		if !ok {
			next := &Object{}
			o.Set(k, next)
			o = next
			continue
		}
		next, isObj := cur.(*Object)
		if !isObj {
			return fmt.Errorf("field %q is %s, not an object", p[:i+1].String(), kindOf(cur))
		}
		o = next
	}
	o.Set(p[len(p)-1], v)
	return nil
}

// deletePath removes the value at p and returns it.
func (o *Object) deletePath(p path) (any, bool) {
	par := o.parent(p)
	if par == nil {
		return nil, false
	}
	k := p[len(p)-1]
	v, ok := par.Get(k)
	if ok {
		par.Delete(k)
	}
	return v, ok
}

// kindOf names the JSON kind of a value for error messages.
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a bool"
	case string:
		return "a string"
	case json.Number, int, int64, float64:
		return "a number"
	case *Object, map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("a %T", v)
}

// FieldPath is a parsed field path: keys separated by '.', a '.' inside a
// key written "\.", a backslash "\\". Packages that read a record's fields
// by path (output formats, table column mappings) parse it once.
type FieldPath struct{ p path }

// ParseFieldPath parses s; the error says what is wrong with it.
func ParseFieldPath(s string) (FieldPath, error) {
	p, err := parsePath(s)
	if err != nil {
		return FieldPath{}, err
	}
	return FieldPath{p}, nil
}

// Keys returns the path's keys, outermost first.
func (fp FieldPath) Keys() []string { return fp.p }

// Get returns the value at the path inside o.
func (fp FieldPath) Get(o *Object) (any, bool) {
	if o == nil || len(fp.p) == 0 {
		return nil, false
	}
	return o.lookup(fp.p)
}

// String writes the path back in path syntax.
func (fp FieldPath) String() string { return fp.p.String() }
