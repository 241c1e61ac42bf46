package transform

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Violation is one broken rule of a transform spec: the field (a path such
// as "transforms[2].if"), its value and the rule. connector.Violation has
// the same shape.
type Violation struct {
	Field string `json:"field"`
	Value string `json:"value"`
	Rule  string `json:"rule"`
}

func (v Violation) String() string { return fmt.Sprintf("%s: %q %s", v.Field, v.Value, v.Rule) }

// ValidationError lists every violation of a chain's spec.
type ValidationError struct{ Violations []Violation }

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid transforms (%d problem", len(e.Violations))
	if len(e.Violations) != 1 {
		b.WriteString("s")
	}
	b.WriteString("):")
	for _, v := range e.Violations {
		b.WriteString("\n  - ")
		b.WriteString(v.String())
	}
	return b.String()
}

// Options are what Compile needs besides the steps.
type Options struct {
	// Functions compiles the modules of function steps. Required when the
	// chain has a function step.
	Functions FunctionLoader
}

// Validate checks steps without loading function modules and returns every
// violation, fields named "transforms[i].<field>". Expressions are compiled,
// and one that does not compile is reported with the compiler's message.
func Validate(steps []StepSpec) []Violation {
	_, vs := compile(steps, Options{}, false)
	return vs
}

// Compile validates steps, compiles every expression, regex and layout
// once, and loads the function modules through opts.Functions. A spec that
// breaks a rule gives a *ValidationError. The Chain is immutable and safe
// for concurrent use; each goroutine runs it through its own Run.
func Compile(steps []StepSpec, opts Options) (*Chain, error) {
	c, vs := compile(steps, opts, true)
	if len(vs) > 0 {
		return nil, &ValidationError{Violations: vs}
	}
	return c, nil
}

// hashVersion changes when the meaning of a spec changes, so that the
// chain hash of the same spec changes with it.
const hashVersion = "dumpflow-transform-v1"

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// stepFields lists the fields each type reads besides type, name and if.
var stepFields = map[string][]string{
	StepFilter:         {},
	StepSet:            {"field", "expr"},
	StepKeep:           {"fields"},
	StepDrop:           {"fields"},
	StepRename:         {"field", "to"},
	StepMask:           {"fields", "keepLast", "char", "hash"},
	StepTime:           {"field", "to", "parse", "format", "zone"},
	StepExtract:        {"field", "regex", "to"},
	StepSplit:          {"field", "separator", "into", "to"},
	StepFlatten:        {"field", "separator"},
	StepCast:           {"fields", "as"},
	StepKey:            {"field", "expr"},
	StepValue:          {"field", "expr"},
	StepInsertMetadata: {"metadata", "format", "zone"},
	StepCopyHeaders:    {"headers", "to"},
	StepSetHeaders:     {"fields", "from"},
	StepDropHeaders:    {"headers"},
	StepRoute:          {"expr"},
	StepFunction:       {"function"},
}

var stepTypes = func() []string {
	ts := make([]string, 0, len(stepFields))
	for t := range stepFields {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return ts
}()

// compiler collects the violations of one spec.
type compiler struct {
	vs     []Violation
	prefix string // "transforms[i]."
}

func (c *compiler) add(field, value, rule string) {
	c.vs = append(c.vs, Violation{Field: c.prefix + field, Value: value, Rule: rule})
}

func (c *compiler) expr(field, src string, asBool bool) *program {
	p, err := compileExpr(src, asBool)
	if err != nil {
		c.add(field, src, err.Error())
		return nil
	}
	return p
}

func (c *compiler) path(field, s string) path {
	p, err := parsePath(s)
	if err != nil {
		c.add(field, s, "is not a field path: "+err.Error())
		return nil
	}
	return p
}

func (c *compiler) paths(field string, ss []string, required bool) []path {
	if len(ss) == 0 && required {
		c.add(field, "", "is required")
	}
	ps := make([]path, 0, len(ss))
	for i, s := range ss {
		ps = append(ps, c.path(field+"["+strconv.Itoa(i)+"]", s))
	}
	return ps
}

func (c *compiler) required(field, v string) bool {
	if v == "" {
		c.add(field, "", "is required")
		return false
	}
	return true
}

func (c *compiler) zone(s string) *time.Location {
	if s == "" {
		return time.UTC
	}
	loc, err := ParseTimeZone(s)
	if err != nil {
		c.add("zone", s, "must be UTC, GMT+hh:mm or an IANA name such as Asia/Shanghai")
		return nil
	}
	return loc
}

func (c *compiler) layout(field, s string, parse bool) *timeLayout {
	l, err := compileLayout(s, parse)
	if err != nil {
		c.add(field, s, err.Error())
		return nil
	}
	return l
}

func compile(specs []StepSpec, opts Options, load bool) (*Chain, []Violation) {
	c := &compiler{}
	chain := &Chain{}
	names := map[string]int{}
	for i, s := range specs {
		c.prefix = fmt.Sprintf("transforms[%d].", i)
		st := &step{index: i, typ: s.Type, name: s.Name}
		if _, ok := stepFields[s.Type]; !ok {
			rule := "must be one of " + strings.Join(stepTypes, ", ")
			if s.Type == "" {
				rule = "is required; " + rule
			}
			c.add("type", s.Type, rule)
			continue
		}
		if st.name == "" {
			st.name = s.Type + "#" + strconv.Itoa(i)
		} else if !nameRE.MatchString(s.Name) {
			c.add("name", s.Name, "must be 1 to 64 letters, digits, '_', '.' or '-'")
		}
		if j, dup := names[st.name]; dup {
			c.add("name", st.name, fmt.Sprintf("duplicates the name of transforms[%d]", j))
		}
		names[st.name] = i
		c.unused(s)
		if s.If != "" {
			st.cond = c.expr("if", s.If, true)
		}
		st.impl = c.step(s)
		if s.Type == StepFunction && s.Function != nil && load && len(c.vs) == 0 {
			if opts.Functions == nil {
				c.add("function.module", s.Function.Module, "cannot be loaded: no function loader is configured")
			} else if fn, err := opts.Functions(*s.Function); err != nil {
				c.add("function.module", s.Function.Module, "cannot be loaded: "+err.Error())
			} else {
				st.fn = fn
			}
		}
		chain.steps = append(chain.steps, st)
	}
	if len(c.vs) > 0 {
		chain.Close(context.Background())
		return nil, c.vs
	}
	chain.hash = chainHash(specs, chain.steps)
	return chain, nil
}

// unused reports the fields set that the step's type does not read.
func (c *compiler) unused(s StepSpec) {
	allowed := stepFields[s.Type]
	v := reflect.ValueOf(s)
	t := v.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "type" || name == "name" || name == "if" || v.Field(i).IsZero() || slices.Contains(allowed, name) {
			continue
		}
		val := ""
		if f := v.Field(i); f.Kind() == reflect.String {
			val = f.String()
		} else if b, err := json.Marshal(f.Interface()); err == nil {
			val = string(b)
		}
		c.add(name, val, fmt.Sprintf("is not used by a %s step", s.Type))
	}
}

// step compiles the type-specific part of s.
func (c *compiler) step(s StepSpec) stepImpl {
	switch s.Type {
	case StepFilter:
		c.required("if", s.If)
		return nil
	case StepSet:
		p := setStep{}
		if c.required("field", s.Field) {
			p.path = c.path("field", s.Field)
		}
		if c.required("expr", s.Expr) {
			p.expr = c.expr("expr", s.Expr, false)
		}
		return p
	case StepKeep:
		return keepStep{paths: c.paths("fields", s.Fields, true)}
	case StepDrop:
		return dropStep{paths: c.paths("fields", s.Fields, true)}
	case StepRename:
		p := renameStep{}
		if c.required("field", s.Field) {
			p.from = c.path("field", s.Field)
		}
		if c.required("to", s.To) {
			p.to = c.path("to", s.To)
		}
		return p
	case StepMask:
		p := maskStep{paths: c.paths("fields", s.Fields, true), keepLast: s.KeepLast, char: "*", hash: s.Hash != ""}
		if s.KeepLast < 0 {
			c.add("keepLast", strconv.Itoa(s.KeepLast), "must not be negative")
		}
		if s.Char != "" {
			if utf8.RuneCountInString(s.Char) != 1 || !utf8.ValidString(s.Char) {
				c.add("char", s.Char, "must be one character")
			}
			p.char = s.Char
		}
		if s.Hash != "" && s.Hash != "sha256" {
			c.add("hash", s.Hash, "must be sha256")
		}
		if s.Hash != "" && (s.KeepLast != 0 || s.Char != "") {
			c.add("hash", s.Hash, "cannot be combined with keepLast or char")
		}
		return p
	case StepTime:
		p := timeStep{}
		if c.required("field", s.Field) {
			p.from = c.path("field", s.Field)
			p.to = p.from
		}
		if s.To != "" {
			p.to = c.path("to", s.To)
		}
		if c.required("parse", s.Parse) {
			p.parse = c.layout("parse", s.Parse, true)
		}
		format := s.Format
		if format == "" {
			format = FormatRFC3339
		}
		p.format = c.layout("format", format, false)
		p.zone = c.zone(s.Zone)
		return p
	case StepExtract:
		p := extractStep{}
		if c.required("field", s.Field) {
			p.from = c.path("field", s.Field)
		}
		if s.To != "" {
			p.to = c.path("to", s.To)
		}
		if c.required("regex", s.Regex) {
			re, err := regexp.Compile(s.Regex)
			switch {
			case err != nil:
				c.add("regex", s.Regex, "does not compile: "+strings.TrimPrefix(err.Error(), "error parsing regexp: "))
			case !slices.ContainsFunc(re.SubexpNames(), func(n string) bool { return n != "" }):
				c.add("regex", s.Regex, "has no named group (?P<name>...)")
			default:
				p.re = re
			}
		}
		return p
	case StepSplit:
		p := splitStep{sep: s.Separator}
		if c.required("field", s.Field) {
			p.from = c.path("field", s.Field)
			p.to = p.from
		}
		c.required("separator", s.Separator)
		if len(s.Into) > 0 {
			p.into = c.paths("into", s.Into, false)
			if s.To != "" {
				c.add("to", s.To, "cannot be combined with into")
			}
		} else if s.To != "" {
			p.to = c.path("to", s.To)
		}
		return p
	case StepFlatten:
		p := flattenStep{sep: "."}
		if s.Field != "" {
			p.field = c.path("field", s.Field)
		}
		if s.Separator != "" {
			p.sep = s.Separator
		}
		return p
	case StepCast:
		p := castStep{paths: c.paths("fields", s.Fields, true), as: s.As}
		if !slices.Contains([]string{"int", "float", "string", "bool"}, s.As) {
			c.add("as", s.As, "must be one of int, float, string, bool")
		}
		return p
	case StepKey, StepValue:
		p := fieldOrExpr{}
		switch {
		case s.Field == "" && s.Expr == "":
			c.add("field", "", "is required (or expr)")
		case s.Field != "" && s.Expr != "":
			c.add("expr", s.Expr, "cannot be combined with field")
		case s.Field != "":
			p.path = c.path("field", s.Field)
		default:
			p.expr = c.expr("expr", s.Expr, false)
		}
		if s.Type == StepKey {
			return keyStep{p}
		}
		return valueStep{p}
	case StepInsertMetadata:
		p := metadataStep{zone: c.zone(s.Zone)}
		m := s.Metadata
		if m == nil || *m == (MetadataSpec{}) {
			c.add("metadata", "", "is required: set at least one of topic, partition, offset, timestamp")
			return p
		}
		for _, f := range []struct {
			name, val string
			dst       *path
		}{{"topic", m.Topic, &p.topic}, {"partition", m.Partition, &p.partition}, {"offset", m.Offset, &p.offset}, {"timestamp", m.Timestamp, &p.timestamp}} {
			if f.val != "" {
				*f.dst = c.path("metadata."+f.name, f.val)
			}
		}
		format := s.Format
		if format == "" {
			format = FormatUnixMilli
		} else if m.Timestamp == "" {
			c.add("format", s.Format, "is set but metadata.timestamp is not")
		}
		p.format = c.layout("format", format, false)
		return p
	case StepCopyHeaders:
		p := copyHeadersStep{names: s.Headers}
		for i, h := range s.Headers {
			if h == "" {
				c.add("headers["+strconv.Itoa(i)+"]", h, "is empty")
			}
		}
		if s.To != "" {
			p.to = c.path("to", s.To)
		}
		return p
	case StepSetHeaders:
		p := setHeadersStep{names: s.Fields}
		for i, f := range s.Fields {
			if f == "" {
				c.add("fields["+strconv.Itoa(i)+"]", f, "is empty")
			}
		}
		if s.From != "" {
			p.from = c.path("from", s.From)
		} else if len(s.Fields) == 0 {
			c.add("fields", "", "is required (or from)")
		}
		return p
	case StepDropHeaders:
		if len(s.Headers) == 0 {
			c.add("headers", "", "is required")
		}
		return dropHeadersStep{names: s.Headers}
	case StepRoute:
		p := routeStep{}
		if c.required("expr", s.Expr) {
			p.expr = c.expr("expr", s.Expr, false)
		}
		return p
	case StepFunction:
		f := s.Function
		if f == nil {
			c.add("function", "", "is required")
			return nil
		}
		c.required("function.module", f.Module)
		if f.MemoryLimit < 0 {
			c.add("function.memoryLimit", f.MemoryLimit.String(), "must not be negative")
		}
		if f.Timeout < 0 {
			c.add("function.timeout", f.Timeout.D().String(), "must not be negative")
		}
		for i, d := range f.AllowFS {
			if !strings.HasPrefix(d, "/") {
				c.add("function.allowFS["+strconv.Itoa(i)+"]", d, "must be an absolute path")
			}
		}
		return nil
	}
	return nil
}

// chainHash is the hex SHA-256 of the canonical spec (defaults filled in,
// encoded by encoding/json: fields in declaration order, map keys sorted)
// and of each function's module hash.
func chainHash(specs []StepSpec, steps []*step) string {
	if len(specs) == 0 {
		return ""
	}
	h := sha256.New()
	h.Write([]byte(hashVersion + "\n"))
	for i, s := range specs {
		b, _ := json.Marshal(withDefaults(s, steps[i].name)) // a StepSpec always encodes
		h.Write(b)
		h.Write([]byte("\n"))
		if steps[i].fn != nil {
			h.Write([]byte("function " + steps[i].fn.Hash() + "\n"))
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// withDefaults fills in the defaults of a valid step, so that a spec that
// spells out a default hashes as one that leaves it out.
func withDefaults(s StepSpec, name string) StepSpec {
	s.Name = name
	switch s.Type {
	case StepMask:
		if s.Hash == "" && s.Char == "" {
			s.Char = "*"
		}
	case StepTime:
		if s.To == "" {
			s.To = s.Field
		}
		if s.Format == "" {
			s.Format = FormatRFC3339
		}
	case StepSplit:
		if len(s.Into) == 0 && s.To == "" {
			s.To = s.Field
		}
	case StepFlatten:
		if s.Separator == "" {
			s.Separator = "."
		}
	case StepInsertMetadata:
		if s.Format == "" && s.Metadata.Timestamp != "" {
			s.Format = FormatUnixMilli
		}
	case StepFunction:
		f := *s.Function
		if f.MemoryLimit == 0 {
			f.MemoryLimit = DefaultFunctionMemoryLimit
		}
		if f.Timeout == 0 {
			f.Timeout = DefaultFunctionTimeout
		}
		s.Function = &f
	}
	if (s.Type == StepTime || s.Type == StepInsertMetadata) && s.Zone == "" {
		s.Zone = "UTC"
	}
	return s
}
