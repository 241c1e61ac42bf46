package transform

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// exprEnv is what an expression sees: the record under evaluation. Its
// fields are filled lazily, only those the expression names.
type exprEnv struct {
	// Key is the record key as a string; "" for a null key.
	Key string `expr:"key"`
	// Value is the parsed JSON value when the record value is JSON (objects
	// are maps, numbers int when whole and within int64, float64 otherwise),
	// else the value as a string; nil for a null value.
	Value any `expr:"value"`
	// Headers maps each header key to its value; the last wins for a key
	// given twice.
	Headers   map[string]string `expr:"headers"`
	Topic     string            `expr:"topic"`
	Partition int               `expr:"partition"`
	Offset    int               `expr:"offset"`
	// Timestamp is the record timestamp in unix milliseconds.
	Timestamp int `expr:"timestamp"`
}

// need says which lazily built parts of the environment an expression uses.
type need uint8

const (
	needKey need = 1 << iota
	needValue
	needHeaders
)

// program is one compiled expression.
type program struct {
	src   string
	prog  *vm.Program
	needs need
}

// disabledBuiltins are expr built-ins that read the clock or the machine's
// time zone (now, date, timezone) or whose result order follows Go's random
// map iteration (keys, values, toPairs: replaced by sorted versions below).
var disabledBuiltins = []string{"now", "date", "timezone", "keys", "values", "toPairs"}

// identCollector records the environment names an expression uses.
type identCollector struct{ needs need }

func (c *identCollector) Visit(node *ast.Node) {
	id, ok := (*node).(*ast.IdentifierNode)
	if !ok {
		return
	}
	switch id.Value {
	case "key":
		c.needs |= needKey
	case "value":
		c.needs |= needValue
	case "headers":
		c.needs |= needHeaders
	case "$env":
		c.needs |= needKey | needValue | needHeaders
	}
}

// compileExpr compiles src once. With asBool, a result known at compile
// time not to be a bool is an error (one known only at run time is checked
// then).
func compileExpr(src string, asBool bool) (*program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("is empty")
	}
	ids := &identCollector{}
	opts := []expr.Option{expr.Env(exprEnv{}), expr.Patch(ids)}
	for _, name := range disabledBuiltins {
		opts = append(opts, expr.DisableBuiltin(name))
	}
	opts = append(opts, helperOptions...)
	p, err := expr.Compile(src, opts...)
	if err != nil {
		msg := exprMessage(err)
		for _, name := range []string{"now", "date", "timezone"} {
			if strings.HasPrefix(msg, "unknown name "+name+" ") {
				msg += "; expressions have no clock and no machine time zone: use timestamp, parseTime and formatTime"
			}
		}
		return nil, fmt.Errorf("does not compile: %s", msg)
	}
	if t := p.Node().Type(); asBool && t != nil && t.Kind() != reflect.Bool && t.Kind() != reflect.Interface {
		return nil, fmt.Errorf("gives %s, want a bool", t)
	}
	return &program{src: src, prog: p, needs: ids.needs}, nil
}

// exprMessage renders an expr error on one line: the message and its
// position, without the source snippet.
func exprMessage(err error) string {
	var fe *file.Error
	if errors.As(err, &fe) {
		if fe.Line > 0 {
			return fmt.Sprintf("%s (%d:%d)", fe.Message, fe.Line, fe.Column+1)
		}
		return fe.Message
	}
	return err.Error()
}

// helperOptions are the functions dumpflow adds to expr's built-ins. All
// are pure: their results depend on their arguments only.
var helperOptions = []expr.Option{
	expr.Function("parseTime", helperParseTime,
		new(func(string, string) int), new(func(string, string, string) int)),
	expr.Function("formatTime", helperFormatTime,
		new(func(int, string) any), new(func(int, string, string) any)),
	expr.Function("regexFind", helperRegexFind, new(func(string, string) any)),
	expr.Function("regexFindAll", helperRegexFindAll, new(func(string, string) []any)),
	expr.Function("regexReplace", helperRegexReplace, new(func(string, string, string) string)),
	expr.Function("regexSubmatch", helperRegexSubmatch, new(func(string, string) []any)),
	expr.Function("sha256", helperSHA256, new(func(string) string)),
	expr.Function("keys", helperKeys, new(func(map[string]any) []any)),
	expr.Function("values", helperValues, new(func(map[string]any) []any)),
	expr.Function("toPairs", helperToPairs, new(func(map[string]any) []any)),
}

func argString(args []any, i int, fn string) (string, error) {
	s, ok := args[i].(string)
	if !ok {
		return "", fmt.Errorf("%s: argument %d is %s, want a string", fn, i+1, kindOf(args[i]))
	}
	return s, nil
}

func argZone(args []any, i int, fn string) (*time.Location, error) {
	if len(args) <= i {
		return time.UTC, nil
	}
	s, err := argString(args, i, fn)
	if err != nil {
		return nil, err
	}
	loc, err := zoneNamed(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", fn, err)
	}
	return loc, nil
}

// parseTime(text, layout[, zone]) reads a time and returns it in unix
// milliseconds. Text without a zone is read in zone (default UTC).
func helperParseTime(args ...any) (any, error) {
	layout, err := argString(args, 1, "parseTime")
	if err != nil {
		return nil, err
	}
	l, err := layoutNamed(layout, true)
	if err != nil {
		return nil, fmt.Errorf("parseTime: %v", err)
	}
	loc, err := argZone(args, 2, "parseTime")
	if err != nil {
		return nil, err
	}
	var in any
	switch x := args[0].(type) {
	case string:
		in = x
	case int:
		in = json.Number(strconv.Itoa(x))
	default:
		return nil, fmt.Errorf("parseTime: argument 1 is %s, want a string", kindOf(args[0]))
	}
	t, err := l.parse(in, loc)
	if err != nil {
		return nil, fmt.Errorf("parseTime: time %v", err)
	}
	return int(t.UnixMilli()), nil
}

// formatTime(millis, layout[, zone]) renders unix milliseconds in zone
// (default UTC): a string, or a number for the unix layouts.
func helperFormatTime(args ...any) (any, error) {
	var ms int64
	switch x := args[0].(type) {
	case int:
		ms = int64(x)
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<62 {
			return nil, fmt.Errorf("formatTime: argument 1 is %v, want whole milliseconds", x)
		}
		ms = int64(x)
	default:
		return nil, fmt.Errorf("formatTime: argument 1 is %s, want unix milliseconds", kindOf(args[0]))
	}
	layout, err := argString(args, 1, "formatTime")
	if err != nil {
		return nil, err
	}
	l, err := layoutNamed(layout, false)
	if err != nil {
		return nil, fmt.Errorf("formatTime: %v", err)
	}
	loc, err := argZone(args, 2, "formatTime")
	if err != nil {
		return nil, err
	}
	v := l.format(time.UnixMilli(ms).UTC(), loc)
	if n, ok := v.(json.Number); ok {
		return numberView(n), nil
	}
	return v, nil
}

var regexMemo memo[*regexp.Regexp]

func regexArgs(args []any, fn string) (string, *regexp.Regexp, error) {
	s, err := argString(args, 0, fn)
	if err != nil {
		return "", nil, err
	}
	pat, err := argString(args, 1, fn)
	if err != nil {
		return "", nil, err
	}
	re, err := regexMemo.get(pat, regexp.Compile)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %v", fn, err)
	}
	return s, re, nil
}

// regexFind(text, regex) is the first match, or nil.
func helperRegexFind(args ...any) (any, error) {
	s, re, err := regexArgs(args, "regexFind")
	if err != nil {
		return nil, err
	}
	loc := re.FindStringIndex(s)
	if loc == nil {
		return nil, nil
	}
	return s[loc[0]:loc[1]], nil
}

// regexFindAll(text, regex) lists every match.
func helperRegexFindAll(args ...any) (any, error) {
	s, re, err := regexArgs(args, "regexFindAll")
	if err != nil {
		return nil, err
	}
	out := []any{}
	for _, m := range re.FindAllString(s, -1) {
		out = append(out, m)
	}
	return out, nil
}

// regexReplace(text, regex, replacement) replaces every match; $1 and
// ${name} in replacement expand to groups.
func helperRegexReplace(args ...any) (any, error) {
	s, re, err := regexArgs(args, "regexReplace")
	if err != nil {
		return nil, err
	}
	repl, err := argString(args, 2, "regexReplace")
	if err != nil {
		return nil, err
	}
	return re.ReplaceAllString(s, repl), nil
}

// regexSubmatch(text, regex) is [match, group 1, group 2, ...] for the first
// match (nil for a group that took no part), or nil.
func helperRegexSubmatch(args ...any) (any, error) {
	s, re, err := regexArgs(args, "regexSubmatch")
	if err != nil {
		return nil, err
	}
	idx := re.FindStringSubmatchIndex(s)
	if idx == nil {
		return nil, nil
	}
	out := make([]any, len(idx)/2)
	for i := range out {
		if idx[2*i] >= 0 {
			out[i] = s[idx[2*i]:idx[2*i+1]]
		}
	}
	return out, nil
}

// sha256(text) is the lowercase hex SHA-256 of text's UTF-8 bytes.
func helperSHA256(args ...any) (any, error) {
	s, err := argString(args, 0, "sha256")
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:]), nil
}

func sortedKeys(args []any, fn string) (reflect.Value, []string, error) {
	m := reflect.ValueOf(args[0])
	if m.Kind() != reflect.Map || m.Type().Key().Kind() != reflect.String {
		return m, nil, fmt.Errorf("%s: argument is %s, want an object", fn, kindOf(args[0]))
	}
	keys := make([]string, 0, m.Len())
	for _, k := range m.MapKeys() {
		keys = append(keys, k.String())
	}
	slices.Sort(keys)
	return m, keys, nil
}

// keys(object) lists the keys in sorted order.
func helperKeys(args ...any) (any, error) {
	_, keys, err := sortedKeys(args, "keys")
	if err != nil {
		return nil, err
	}
	out := make([]any, len(keys))
	for i, k := range keys {
		out[i] = k
	}
	return out, nil
}

// values(object) lists the values in sorted key order.
func helperValues(args ...any) (any, error) {
	m, keys, err := sortedKeys(args, "values")
	if err != nil {
		return nil, err
	}
	out := make([]any, len(keys))
	for i, k := range keys {
		out[i] = m.MapIndex(reflect.ValueOf(k).Convert(m.Type().Key())).Interface()
	}
	return out, nil
}

// toPairs(object) lists [key, value] pairs in sorted key order.
func helperToPairs(args ...any) (any, error) {
	m, keys, err := sortedKeys(args, "toPairs")
	if err != nil {
		return nil, err
	}
	out := make([]any, len(keys))
	for i, k := range keys {
		out[i] = []any{k, m.MapIndex(reflect.ValueOf(k).Convert(m.Type().Key())).Interface()}
	}
	return out, nil
}
