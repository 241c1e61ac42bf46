package oss

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dumpflow/dumpflow/format"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/transform"
)

// pathToken is a literal piece of the path template, or a variable.
type pathToken struct {
	lit string
	v   string              // the variable, without braces: "topic", "value.a.b", ...
	fp  transform.FieldPath // {value.<path>}
}

// parseTemplate splits a validated path template into tokens.
func parseTemplate(t string) []pathToken {
	var out []pathToken
	for t != "" {
		i := strings.IndexByte(t, '{')
		j := strings.IndexByte(t[max(i, 0):], '}')
		if i < 0 || j < 0 {
			out = append(out, pathToken{lit: t})
			break
		}
		j += i
		if i > 0 {
			out = append(out, pathToken{lit: t[:i]})
		}
		tok := pathToken{v: t[i+1 : j]}
		if p, ok := strings.CutPrefix(tok.v, "value."); ok {
			tok.fp, _ = transform.ParseFieldPath(p) // valid: the spec was validated
		}
		out = append(out, tok)
		t = t[j+1:]
	}
	return out
}

// expand fills the template for record r of a batch whose first record has
// timestamp ts, with a trailing '/' (or "" for an empty template). Without
// a record (r nil) it fills topic, partition and time and ends at the last
// folder before the first record variable: a folder no record can be
// routed to (a record variable is never empty), never a folder named after
// the variable's text.
//
// A record variable ({key}, {value.<path>}, {header.<name>}, {route}) takes
// its value from the record and must stay inside the prefix: {route} (set
// by a route step) obeys transform.CheckRoute, and the others must be one
// folder name obeying the same rule (no '/', not "." or "..", no control
// characters or '\', 1..255 bytes). A record whose value breaks it is
// rejected (stage "route") rather than rewritten, so two records never land
// in one folder by accident.
func (s *Sink) expand(topic string, partition int32, ts time.Time, r *transform.Record) (string, error) {
	t := ts.In(s.loc)
	var b strings.Builder
	for _, tok := range s.tmpl {
		if tok.v == "" {
			b.WriteString(tok.lit)
			continue
		}
		switch tok.v {
		case "topic":
			b.WriteString(topic)
		case "partition":
			b.WriteString(strconv.Itoa(int(partition)))
		case "yyyy":
			b.WriteString(t.Format("2006"))
		case "MM":
			b.WriteString(t.Format("01"))
		case "dd":
			b.WriteString(t.Format("02"))
		case "HH":
			b.WriteString(t.Format("15"))
		case "mm":
			b.WriteString(t.Format("04"))
		default:
			if r == nil {
				p := b.String()
				return p[:strings.LastIndex(p, "/")+1], nil
			}
			v, err := recordVar(tok, r)
			if err != nil {
				return "", fmt.Errorf("path variable {%s}: %w", tok.v, err)
			}
			b.WriteString(v)
		}
	}
	return withSlash(b.String()), nil
}

// recordVar is a record variable's value, checked.
func recordVar(tok pathToken, r *transform.Record) (string, error) {
	var v string
	switch {
	case tok.v == "route":
		if r.Route == "" {
			return "", errors.New("no route step set a route for this record")
		}
		return r.Route, transform.CheckRoute(r.Route)
	case tok.v == "key":
		if r.Key == nil {
			return "", errors.New("the record has no key")
		}
		v = string(r.Key)
	case strings.HasPrefix(tok.v, "header."):
		name := strings.TrimPrefix(tok.v, "header.")
		found := false
		for _, h := range r.Headers {
			if h.Key == name {
				v, found = string(h.Value), true
				break
			}
		}
		if !found {
			return "", fmt.Errorf("the record has no header %q", name)
		}
	default: // value.<path>
		fields := r.Fields
		if fields == nil {
			parsed, err := transform.ParseJSON(r.Value)
			obj, ok := parsed.(*transform.Object)
			if err != nil || !ok {
				return "", errors.New("the value is not a JSON object")
			}
			fields = obj
		}
		x, ok := tok.fp.Get(fields)
		if !ok || x == nil {
			return "", fmt.Errorf("the value has no field %s", tok.fp)
		}
		switch y := x.(type) {
		case string:
			v = y
		default:
			b, err := transform.AppendJSON(nil, y)
			if err != nil {
				return "", err
			}
			v = string(b)
		}
	}
	if strings.Contains(v, "/") {
		return "", fmt.Errorf("%q holds a '/': a variable fills one folder name", transform.ShortPrefix([]byte(v), 64))
	}
	return v, transform.CheckRoute(v)
}

var _ sink.Rejecter = (*Sink)(nil)

// Reject implements sink.Rejecter: it returns the rejection Batch.Add would
// give r for its folder (stage "route": a record variable of the path
// template breaks the rule, see expand) or its format (stage "format", see
// format.Check), so that under tolerance stop a plan ends before the
// record, as for records that fail a transform step. A format rejection
// that depends on the records before r in its object (CSV or Parquet
// columns derived from the object's first record) is found only when the
// batch is written.
func (s *Sink) Reject(r *transform.Record) error {
	for _, tok := range s.tmpl {
		if !isRecordVar(tok.v) {
			continue
		}
		if _, err := recordVar(tok, r); err != nil {
			return sink.Reject("route", fmt.Errorf("path variable {%s}: %w", tok.v, err))
		}
	}
	if err := format.Check(s.format, r); err != nil {
		var re *format.RejectError
		if errors.As(err, &re) {
			return sink.Reject(re.Stage, re)
		}
		return err
	}
	return nil
}

// isRecordVar reports whether path variable v takes its value from each
// record.
func isRecordVar(v string) bool {
	return v == "key" || v == "route" || strings.HasPrefix(v, "value.") || strings.HasPrefix(v, "header.")
}
