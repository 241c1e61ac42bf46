package format

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/dumpflow/dumpflow/transform"
)

// jsonlFormat writes one JSON envelope a line:
//
//	{"topic":"t","partition":0,"offset":5,"timestamp":"2020-07-28T13:51:35.000Z",
//	 "key":…,["keyEncoding":"base64",]"value":…,["valueEncoding":"base64",]
//	 "headers":[{"key":"h","value":"v"},…]}
//
// (on one line, no spaces). Members are always in this order.
type jsonlFormat struct {
	w          io.Writer
	key, value string // embedding modes
	line       []byte
	fields     []byte // the fields' JSON
	compact    bytes.Buffer
}

func (f *jsonlFormat) write(r *transform.Record, fields *transform.Object) error {
	b := append(f.line[:0], `{"topic":`...)
	if !utf8.ValidString(r.Topic) {
		return reject(r, "topic", "is not valid UTF-8")
	}
	b = appendString(b, r.Topic)
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(r.Partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, r.Offset, 10)
	b = append(b, `,"timestamp":"`...)
	b = appendTimestamp(b, r.Timestamp)
	b = append(b, `","key":`...)
	b, rej := f.embed(b, r, "key", f.key, r.Key, false)
	if rej != nil {
		return rej
	}
	b = append(b, `,"value":`...)
	if fields != nil {
		var err error
		if f.fields, err = fields.AppendJSON(f.fields[:0]); err != nil {
			return reject(r, "fields", "cannot be encoded as JSON: "+err.Error())
		}
		b, rej = f.embed(b, r, "value", f.value, f.fields, true)
	} else {
		b, rej = f.embed(b, r, "value", f.value, r.Value, false)
	}
	if rej != nil {
		return rej
	}
	b = append(b, `,"headers":[`...)
	for i, h := range r.Headers {
		if i > 0 {
			b = append(b, ',')
		}
		if !utf8.ValidString(h.Key) {
			return reject(r, "headers["+strconv.Itoa(i)+"].key", show([]byte(h.Key))+" is not valid UTF-8, which a JSON string cannot hold")
		}
		b = append(b, `{"key":`...)
		b = appendString(b, h.Key)
		b = append(b, `,"value":`...)
		switch {
		case h.Value == nil:
			b = append(b, "null"...)
		case utf8.Valid(h.Value):
			b = appendString(b, h.Value)
		default:
			b = appendBase64(b, h.Value)
			b = append(b, `,"valueEncoding":"base64"`...)
		}
		b = append(b, '}')
	}
	b = append(b, "]}\n"...)
	f.line = b
	_, err := f.w.Write(b)
	return err
}

// embed appends v (the record's key or value; what names it) as mode says,
// followed by ,"<what>Encoding":"base64" when it wrote base64. isJSON says v
// is the record's fields: compact JSON already.
func (f *jsonlFormat) embed(b []byte, r *transform.Record, what, mode string, v []byte, isJSON bool) ([]byte, *RejectError) {
	if v == nil {
		return append(b, "null"...), nil
	}
	switch mode {
	case EmbedAuto:
		switch {
		case isJSON:
			return append(b, v...), nil
		case !utf8.Valid(v):
			// base64, below
		case embeddable(v) && f.compactJSON(v):
			return append(b, f.compact.Bytes()...), nil
		default:
			return appendString(b, v), nil
		}
	case EmbedJSON:
		switch {
		case isJSON:
			return append(b, v...), nil
		case utf8.Valid(v) && f.compactJSON(v):
			return append(b, f.compact.Bytes()...), nil
		}
		return nil, reject(r, what, show(v)+" is not valid UTF-8 JSON (format."+what+" is json)")
	case EmbedString:
		if utf8.Valid(v) {
			return appendString(b, v), nil
		}
		return nil, reject(r, what, show(v)+" is not valid UTF-8, which a JSON string cannot hold (format."+what+" is string; auto or base64 would write it as base64)")
	}
	b = appendBase64(b, v)
	b = append(b, `,"`...)
	b = append(b, what...)
	return append(b, `Encoding":"base64"`...), nil
}

// embeddable reports whether auto may embed v as JSON, by its first byte:
// the top level must not be a string or null, which would read back as a
// plain value or a null record, and must start like JSON at all (so plain
// text costs no failed parse).
func embeddable(v []byte) bool {
	v = bytes.TrimLeft(v, " \t\r\n")
	if len(v) == 0 {
		return false
	}
	switch c := v[0]; c {
	case '{', '[', 't', 'f', '-':
		return true
	default:
		return '0' <= c && c <= '9'
	}
}

// compactJSON compacts v into f.compact and reports whether v is valid JSON.
func (f *jsonlFormat) compactJSON(v []byte) bool {
	f.compact.Reset()
	return json.Compact(&f.compact, v) == nil
}

func appendBase64(dst, v []byte) []byte {
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, v)
	return append(dst, '"')
}

func (f *jsonlFormat) close() error { return nil }

// check returns the rejection write would give r, without building the
// line (see Check): the same rules, in the same order, with the same
// messages.
func (f *jsonlFormat) check(r *transform.Record, fields *transform.Object) *RejectError {
	if !utf8.ValidString(r.Topic) {
		return reject(r, "topic", "is not valid UTF-8")
	}
	if rej := checkEmbed(r, "key", f.key, r.Key, false); rej != nil {
		return rej
	}
	v, isJSON := r.Value, false
	if fields != nil {
		var err error
		if f.fields, err = fields.AppendJSON(f.fields[:0]); err != nil {
			return reject(r, "fields", "cannot be encoded as JSON: "+err.Error())
		}
		v, isJSON = f.fields, true
	}
	if rej := checkEmbed(r, "value", f.value, v, isJSON); rej != nil {
		return rej
	}
	for i, h := range r.Headers {
		if !utf8.ValidString(h.Key) {
			return reject(r, "headers["+strconv.Itoa(i)+"].key", show([]byte(h.Key))+" is not valid UTF-8, which a JSON string cannot hold")
		}
	}
	return nil
}

// checkEmbed returns the rejection embed would give v, or nil.
func checkEmbed(r *transform.Record, what, mode string, v []byte, isJSON bool) *RejectError {
	if v == nil || isJSON {
		return nil
	}
	switch mode {
	case EmbedJSON:
		if !utf8.Valid(v) || !json.Valid(v) {
			return reject(r, what, show(v)+" is not valid UTF-8 JSON (format."+what+" is json)")
		}
	case EmbedString:
		if !utf8.Valid(v) {
			return reject(r, what, show(v)+" is not valid UTF-8, which a JSON string cannot hold (format."+what+" is string; auto or base64 would write it as base64)")
		}
	}
	return nil
}
