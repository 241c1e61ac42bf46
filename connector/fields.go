package connector

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode"

	yamlv3 "go.yaml.in/yaml/v3"
)

// Rules of the violations CheckFields reports. Each violation's Value is
// empty: the value under an unknown key is never echoed, because a misplaced
// secret (an accessKeySecret pasted into a spec) must not reach a workflow
// history or a terminal through an error message.
const (
	// RuleUnknownField starts the rule of every key the type does not
	// define, including keys that differ from a field only in letter case.
	RuleUnknownField = "unknown field"
	// RuleDuplicateField is the rule of a key given twice in one object.
	RuleDuplicateField = "is given more than once"
)

// CheckFields reports every key of doc, a YAML or JSON document, that the Go
// type of v does not define. It is the strict half of decoding: encoding/json
// and sigs.k8s.io/yaml ignore unknown keys (unless told otherwise) and match
// keys case-insensitively, so a misspelt optional field silently becomes its
// default and "KAFKA:" or both "concurrency" and "Concurrency" are accepted.
// CheckFields walks the document against v's type, using the `json` struct
// tags with exact case, and reports:
//
//   - a key no field has: `sink.oss.region: "" unknown field; known fields are
//     endpoint, bucket, ...`, or `... did you mean "flushInterval"?` when one
//     is a near miss;
//   - a key that differs from a field only in letter case: `KAFKA: ""
//     unknown field; did you mean "kafka"? (field names are case-sensitive)`;
//     CheckFields still descends into it, so `Sink.OSS` reports both keys;
//   - a field given in two cases (`concurrency` and `Concurrency`): the
//     mis-cased one `duplicates "concurrency" in a different case`;
//   - the same key twice in one object: RuleDuplicateField.
//
// Paths are dotted with slice indices, e.g. `kafka.brokers[0]`; a map key
// that is not a plain word is quoted, e.g. `labels["a.b"]`. Violations come
// in document order and every Value is empty.
//
// The walk follows encoding/json's rules: pointers are followed; slice and
// array elements are checked; map keys are free-form and map values are
// checked; exported fields of embedded structs without a json name are
// promoted (the shallower field wins); `json:"-"` fields do not exist.
// A type that implements json.Unmarshaler or encoding.TextUnmarshaler (such
// as ByteSize and Duration) is a leaf and so is an interface type: what is
// under them is not checked. A value of the wrong shape (an object where a
// string belongs) is left to the decoder, which reports it.
//
// v is a value or pointer of the document's type, e.g. (*Spec)(nil); only
// its type is used. doc is read as JSON when it is a valid JSON object or
// array, otherwise as YAML (anchors, aliases and "<<" merge keys resolved).
// The error is non-nil only when doc cannot be read at all.
//
// A new document kind (a window job spec, a transform step spec) gets strict
// decoding by calling CheckFields next to its decoder and reporting the
// violations with its own Validate's, as Parse does:
//
//	vs, err := connector.CheckFields(doc, &spec)
//	...
//	vs = append(vs, spec.violations()...)
//	if len(vs) > 0 {
//		return &connector.ValidationError{Doc: "window job spec", Violations: vs}
//	}
func CheckFields(doc []byte, v any) ([]Violation, error) {
	var root *docNode
	var err error
	if looksLikeJSON(doc) {
		root, err = jsonTree(doc)
	} else {
		root, err = yamlTree(doc)
	}
	if err != nil {
		return nil, err
	}
	return checkTree(root, v)
}

// checkTree walks root against v's type.
func checkTree(root *docNode, v any) ([]Violation, error) {
	t := reflect.TypeOf(v)
	if t == nil {
		return nil, errors.New("check fields: v is nil; pass a value or pointer of the document's type")
	}
	c := &fieldChecker{budget: maxCheckNodes, fields: map[reflect.Type][]jsonField{}}
	c.walk("", root, t)
	if c.budget < 0 {
		return nil, fmt.Errorf("check fields: document has more than %d values (after expanding aliases)", maxCheckNodes)
	}
	return c.vs, nil
}

// maxCheckNodes bounds the walk, so that a YAML alias bomb cannot make it
// run for ever.
const maxCheckNodes = 1 << 16

type fieldChecker struct {
	vs     []Violation
	budget int
	fields map[reflect.Type][]jsonField // memo; looked up, never ranged over
}

func (c *fieldChecker) add(field, rule string) {
	c.vs = append(c.vs, Violation{Field: field, Rule: rule})
}

var (
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// isLeaf reports whether t decodes itself (or takes anything).
func isLeaf(t reflect.Type) bool {
	if t.Kind() == reflect.Interface {
		return true
	}
	if t.Implements(jsonUnmarshalerType) || t.Implements(textUnmarshalerType) {
		return true
	}
	if t.Kind() != reflect.Pointer {
		pt := reflect.PointerTo(t)
		return pt.Implements(jsonUnmarshalerType) || pt.Implements(textUnmarshalerType)
	}
	return false
}

func (c *fieldChecker) walk(path string, n *docNode, t reflect.Type) {
	if n == nil || n.kind == scalarNode {
		return
	}
	if c.budget--; c.budget < 0 {
		return
	}
	for t.Kind() == reflect.Pointer && !isLeaf(t) {
		t = t.Elem()
	}
	if isLeaf(t) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.kind == objectNode {
			c.object(path, n, t)
		}
	case reflect.Slice, reflect.Array:
		if n.kind == arrayNode {
			for i, item := range n.items {
				c.walk(path+"["+strconv.Itoa(i)+"]", item, t.Elem())
			}
		}
	case reflect.Map:
		if n.kind == objectNode {
			for _, m := range n.members {
				c.walk(joinPath(path, m.key), m.val, t.Elem())
			}
		}
	}
}

// object checks the keys of one object against struct type t.
func (c *fieldChecker) object(path string, n *docNode, t reflect.Type) {
	fields, ok := c.fields[t]
	if !ok {
		fields = jsonFields(t)
		c.fields[t] = fields
	}
	exactIn := map[string]bool{} // field names given with their exact key
	for _, m := range n.members {
		if f := exactField(fields, m.key); f != nil {
			exactIn[f.name] = true
		}
	}
	exactSeen := map[string]bool{}
	foldSeen := map[string]string{} // field name → first mis-cased key
	for _, m := range n.members {
		p := joinPath(path, m.key)
		if f := exactField(fields, m.key); f != nil {
			if exactSeen[f.name] {
				c.add(p, RuleDuplicateField)
			}
			exactSeen[f.name] = true
			c.walk(p, m.val, f.typ)
			continue
		}
		if f := foldField(fields, m.key); f != nil {
			switch {
			case exactIn[f.name]:
				c.add(p, fmt.Sprintf("%s: duplicates %q in a different case (field names are case-sensitive)", RuleUnknownField, f.name))
			case foldSeen[f.name] != "":
				c.add(p, fmt.Sprintf("%s: duplicates %q in a different case; the field is %q (field names are case-sensitive)", RuleUnknownField, foldSeen[f.name], f.name))
			default:
				c.add(p, fmt.Sprintf("%s; did you mean %q? (field names are case-sensitive)", RuleUnknownField, f.name))
				foldSeen[f.name] = m.key
			}
			c.walk(p, m.val, f.typ)
			continue
		}
		c.add(p, unknownRule(fields, m.key))
	}
}

func exactField(fields []jsonField, key string) *jsonField {
	for i := range fields {
		if fields[i].name == key {
			return &fields[i]
		}
	}
	return nil
}

// foldField finds the field encoding/json would match key to when no name
// matches exactly: the first whose name equals key under Unicode case folding.
func foldField(fields []jsonField, key string) *jsonField {
	for i := range fields {
		if strings.EqualFold(fields[i].name, key) {
			return &fields[i]
		}
	}
	return nil
}

// unknownRule suggests the nearest field for a near miss, or lists the
// fields there are.
func unknownRule(fields []jsonField, key string) string {
	best, bestD := "", 0
	lk := strings.ToLower(key)
	for _, f := range fields {
		d := editDistance(lk, strings.ToLower(f.name))
		if best == "" || d < bestD {
			best, bestD = f.name, d
		}
	}
	if best != "" && bestD <= 2 && bestD*3 <= len(best) {
		return fmt.Sprintf("%s; did you mean %q?", RuleUnknownField, best)
	}
	if len(fields) == 0 {
		return RuleUnknownField
	}
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	return RuleUnknownField + "; known fields are " + strings.Join(names, ", ")
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// joinPath appends key to a dotted path, quoting a key that is not a plain
// word so that the path stays unambiguous.
func joinPath(path, key string) string {
	plain := key != ""
	for _, r := range key {
		if r == '.' || r == '[' || r == ']' || r == '"' || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			plain = false
			break
		}
	}
	switch {
	case !plain:
		return path + "[" + strconv.Quote(key) + "]"
	case path == "":
		return key
	default:
		return path + "." + key
	}
}

// jsonField is one key a struct type decodes.
type jsonField struct {
	name  string
	typ   reflect.Type
	index []int
	tag   bool // named by a json tag
}

// jsonFields lists the keys encoding/json decodes into struct type t, in
// declaration order, following its rules for tags and embedded structs.
func jsonFields(t reflect.Type) []jsonField {
	var all []jsonField
	visited := map[reflect.Type]bool{}
	next := []jsonField{{typ: t}}
	for len(next) > 0 {
		current := next
		next = nil
		for _, e := range current {
			if visited[e.typ] {
				continue
			}
			visited[e.typ] = true
			for i := 0; i < e.typ.NumField(); i++ {
				sf := e.typ.Field(i)
				ft := sf.Type
				if sf.Anonymous {
					if ft.Kind() == reflect.Pointer {
						ft = ft.Elem()
					}
					if !sf.IsExported() && ft.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, _, _ := strings.Cut(tag, ",")
				index := append(append([]int(nil), e.index...), i)
				if name == "" && sf.Anonymous && ft.Kind() == reflect.Struct {
					next = append(next, jsonField{typ: ft, index: index})
					continue
				}
				f := jsonField{name: name, typ: sf.Type, index: index, tag: name != ""}
				if f.name == "" {
					f.name = sf.Name
				}
				all = append(all, f)
			}
		}
	}
	// For each name keep the dominant field: the shallowest, then the tagged
	// one; two equally good fields cancel out, as in encoding/json.
	sort.SliceStable(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if a.name != b.name {
			return a.name < b.name
		}
		if len(a.index) != len(b.index) {
			return len(a.index) < len(b.index)
		}
		return a.tag && !b.tag
	})
	var out []jsonField
	for i := 0; i < len(all); {
		j := i + 1
		for j < len(all) && all[j].name == all[i].name {
			j++
		}
		if j-i == 1 || len(all[i].index) != len(all[i+1].index) || all[i].tag != all[i+1].tag {
			out = append(out, all[i])
		}
		i = j
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].index, out[j].index
		for k := 0; k < len(a) && k < len(b); k++ {
			if a[k] != b[k] {
				return a[k] < b[k]
			}
		}
		return len(a) < len(b)
	})
	return out
}

// docNode is a parsed document with object keys in order, duplicates kept.
type docNode struct {
	kind    nodeKind
	members []docMember // objectNode
	items   []*docNode  // arrayNode
}

type nodeKind uint8

const (
	scalarNode nodeKind = iota
	objectNode
	arrayNode
)

type docMember struct {
	key string
	val *docNode
}

// looksLikeJSON reports whether doc is a JSON object or array.
func looksLikeJSON(doc []byte) bool {
	t := bytes.TrimLeft(doc, " \t\r\n")
	return len(t) > 0 && (t[0] == '{' || t[0] == '[') && json.Valid(doc)
}

// maxDepth bounds nesting, as encoding/json does.
const maxDepth = 1000

func jsonTree(doc []byte) (*docNode, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	n, err := readJSON(dec, 0)
	if err != nil {
		return nil, fmt.Errorf("read JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("read JSON: data after the top-level value")
	}
	return n, nil
}

func readJSON(dec *json.Decoder, depth int) (*docNode, error) {
	if depth > maxDepth {
		return nil, errors.New("nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		n := &docNode{kind: objectNode}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			key, _ := kt.(string)
			v, err := readJSON(dec, depth+1)
			if err != nil {
				return nil, err
			}
			n.members = append(n.members, docMember{key: key, val: v})
		}
		_, err := dec.Token() // '}'
		return n, err
	case json.Delim('['):
		n := &docNode{kind: arrayNode}
		for dec.More() {
			v, err := readJSON(dec, depth+1)
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, v)
		}
		_, err := dec.Token() // ']'
		return n, err
	}
	return &docNode{kind: scalarNode}, nil
}

func yamlTree(doc []byte) (*docNode, error) {
	var root yamlv3.Node
	if err := yamlv3.Unmarshal(doc, &root); err != nil {
		return nil, fmt.Errorf("read YAML: %w", err)
	}
	b := &yamlBuilder{memo: map[*yamlv3.Node]*docNode{}}
	return b.build(&root, 0)
}

// yamlBuilder converts yaml nodes, sharing the conversion of an anchored
// node between its aliases so that the tree stays as small as the text.
type yamlBuilder struct {
	memo map[*yamlv3.Node]*docNode
}

func (b *yamlBuilder) build(n *yamlv3.Node, depth int) (*docNode, error) {
	if depth > maxDepth {
		return nil, errors.New("read YAML: nested too deeply")
	}
	if d, ok := b.memo[n]; ok {
		return d, nil
	}
	switch n.Kind {
	case yamlv3.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return b.build(n.Content[0], depth)
	case yamlv3.AliasNode:
		if n.Alias == nil {
			return nil, nil
		}
		return b.build(n.Alias, depth+1)
	case yamlv3.SequenceNode:
		d := &docNode{kind: arrayNode}
		b.memo[n] = d
		for _, c := range n.Content {
			item, err := b.build(c, depth+1)
			if err != nil {
				return nil, err
			}
			d.items = append(d.items, item)
		}
		return d, nil
	case yamlv3.MappingNode:
		d := &docNode{kind: objectNode}
		b.memo[n] = d
		var merges []*yamlv3.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yamlv3.ScalarNode && k.ShortTag() == "!!merge" {
				merges = append(merges, v)
				continue
			}
			val, err := b.build(v, depth+1)
			if err != nil {
				return nil, err
			}
			d.members = append(d.members, docMember{key: k.Value, val: val})
		}
		// "<<: *base" or "<<: [*a, *b]": merged keys count unless the
		// mapping (or an earlier merge) already has them.
		have := map[string]bool{}
		for _, m := range d.members {
			have[m.key] = true
		}
		for _, mv := range merges {
			srcs := []*yamlv3.Node{mv}
			if mv.Kind == yamlv3.SequenceNode {
				srcs = mv.Content
			}
			for _, src := range srcs {
				sd, err := b.build(src, depth+1)
				if err != nil {
					return nil, err
				}
				if sd == nil || sd.kind != objectNode {
					continue
				}
				for _, m := range sd.members {
					if !have[m.key] {
						have[m.key] = true
						d.members = append(d.members, m)
					}
				}
			}
		}
		return d, nil
	}
	return &docNode{kind: scalarNode}, nil
}
