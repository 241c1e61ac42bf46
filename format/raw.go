package format

import (
	"bytes"
	"fmt"
	"io"

	"github.com/dumpflow/dumpflow/transform"
)

// rawFormat writes each value followed by "\n" (seed 000). A value is the
// record's fields' JSON when it has fields.
type rawFormat struct {
	w      io.Writer
	escape bool
	buf    []byte
	fields []byte // the fields' JSON
}

var newline = []byte{'\n'}

func (f *rawFormat) write(r *transform.Record, fields *transform.Object) error {
	v := r.Value
	if fields != nil {
		var err error
		if f.fields, err = fields.AppendJSON(f.fields[:0]); err != nil {
			return reject(r, "fields", "cannot be encoded as JSON: "+err.Error())
		}
		v = f.fields
	}
	if !f.escape {
		if i := lineBreak(v); i >= 0 {
			what := "a line feed"
			if v[i] == '\r' {
				what = "a carriage return"
			}
			return reject(r, "value", fmt.Sprintf("%s contains %s at byte %d, which would split the line (format.newlines is reject; escape writes it as a backslash sequence)",
				show(v), what, i))
		}
		if _, err := f.w.Write(v); err != nil {
			return err
		}
		_, err := f.w.Write(newline)
		return err
	}
	f.buf = appendEscaped(f.buf[:0], v)
	f.buf = append(f.buf, '\n')
	_, err := f.w.Write(f.buf)
	return err
}

func (f *rawFormat) close() error { return nil }

// lineBreak is the index of the first "\n" or "\r" in v, or -1. Two
// IndexByte scans (vectorised) beat one IndexAny (a byte loop) on the
// values of a dump, which hold neither.
func lineBreak(v []byte) int {
	i := bytes.IndexByte(v, '\n')
	if j := bytes.IndexByte(v, '\r'); j >= 0 && (i < 0 || j < i) {
		return j
	}
	return i
}

// appendEscaped appends v with "\\" as `\\`, "\n" as `\n` and "\r" as `\r`.
func appendEscaped(dst, v []byte) []byte {
	for {
		i := bytes.IndexAny(v, "\\\n\r")
		if i < 0 {
			return append(dst, v...)
		}
		dst = append(dst, v[:i]...)
		switch v[i] {
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		}
		v = v[i+1:]
	}
}
