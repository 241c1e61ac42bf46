package format

import (
	"encoding/csv"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/dumpflow/dumpflow/transform"
)

// csvFormat writes a header row, then one row a record (RFC 4180, through
// encoding/csv: "\n" line ends, fields quoted when they hold a comma, a
// quote, "\r", "\n" or start with a space).
type csvFormat struct {
	w         io.Writer
	cw        *csv.Writer
	t         table
	wroteHead bool
	row       []string
}

func newCSV(w io.Writer, cs []Column) *csvFormat {
	f := &csvFormat{w: w, cw: csv.NewWriter(w)}
	if len(cs) > 0 {
		f.t.cols = compile(cs)
	}
	return f
}

func (f *csvFormat) write(r *transform.Record, fields *transform.Object) error {
	derive := f.t.cols == nil
	if derive {
		if rej := f.t.derive(r, fields); rej != nil {
			return rej
		}
	}
	row, rej := f.render(r, fields)
	if rej != nil {
		if derive {
			f.t.underive()
		}
		return rej
	}
	if !f.wroteHead {
		if err := f.writeHead(); err != nil {
			return err
		}
	}
	return f.writeRow(row)
}

func (f *csvFormat) render(r *transform.Record, fields *transform.Object) ([]string, *RejectError) {
	data, rej := f.t.get(r, fields)
	if rej != nil {
		return nil, rej
	}
	f.row = f.row[:0]
	for i, d := range data {
		c := &f.t.cols[i]
		var s string
		switch d.kind {
		case dNull:
			if c.required {
				return nil, reject(r, c.label, "is missing or null, and the column is required")
			}
		case dString, dNumber, dJSON, dBytes:
			if !utf8.Valid(d.b) {
				return nil, reject(r, c.label, d.describe()+" is not valid UTF-8, which CSV text cannot hold")
			}
			s = string(d.b)
		case dBool:
			s = strconv.FormatBool(d.i == 1)
		case dInt:
			s = strconv.FormatInt(d.i, 10)
		case dTime:
			s = string(appendTimestamp(nil, d.t))
		}
		if strings.Contains(s, "\r\n") {
			return nil, reject(r, c.label, show([]byte(s))+` contains "\r\n", which CSV readers read back as "\n"`)
		}
		f.row = append(f.row, s)
	}
	return f.row, nil
}

func (f *csvFormat) writeHead() error {
	f.wroteHead = true
	head := make([]string, len(f.t.cols))
	for i, c := range f.t.cols {
		head[i] = c.name
	}
	return f.writeRow(head)
}

// writeRow writes one row. A row of one empty field is written as `""`:
// encoding/csv would write an empty line, which readers skip.
func (f *csvFormat) writeRow(row []string) error {
	if len(row) == 1 && row[0] == "" {
		f.cw.Flush()
		if err := f.cw.Error(); err != nil {
			return err
		}
		_, err := io.WriteString(f.w, "\"\"\n")
		return err
	}
	return f.cw.Write(row)
}

// close writes the header of an object without rows when the columns are
// given (derived columns need a record), then flushes.
func (f *csvFormat) close() error {
	if !f.wroteHead && f.t.cols != nil {
		if err := f.writeHead(); err != nil {
			return err
		}
	}
	f.cw.Flush()
	return f.cw.Error()
}
