package format

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/dumpflow/dumpflow/transform"
)

// Encoder writes the records of one object, in order, to the writer New
// was given. It belongs to one goroutine.
type Encoder interface {
	// Write encodes r. A *RejectError means r cannot be encoded under the
	// spec (nothing of it was written; the caller sends it to the
	// dead-letter topic and goes on); any other error is the writer's and
	// fails the object. Write does not keep r, its Key, Value or Fields past
	// its return.
	Write(r *transform.Record) error
	// Close flushes everything; the writer then holds the whole object body.
	// Close does not close the writer.
	Close() error
	// ContentType is the body's MIME type, for the object's Content-Type.
	ContentType() string
}

// Stage is the dead-letter stage of records the format rejects.
const Stage = "format"

// RejectError says one record cannot be encoded. Its message names the
// record's coordinates, what of it is at fault and the rule it breaks;
// record bytes appear only as a short prefix (transform.ShortPrefix). The
// sink turns it into a dead-letter rejection with sink.Reject(e.Stage, e).
type RejectError struct {
	Stage     string // always "format"
	Topic     string
	Partition int32
	Offset    int64
	// Field is what of the record is at fault: "value", "key",
	// "headers[2].key", or a column ("column 3 (amount)").
	Field string
	// Rule is the rule it breaks, naming the spec option that governs it.
	Rule string
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("record %s[%d]@%d: %s %s", e.Topic, e.Partition, e.Offset, e.Field, e.Rule)
}

func reject(r *transform.Record, field, rule string) *RejectError {
	return &RejectError{Stage: Stage, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Field: field, Rule: rule}
}

// prefixLen is how many bytes of a record's data an error quotes.
const prefixLen = 32

// show quotes at most prefixLen bytes of record data b for an error, as
// transform.ShortPrefix does, but always as a Go string literal (so a
// newline in b does not break the message).
func show(b []byte) string {
	s := transform.ShortPrefix(b, prefixLen)
	head, suffix := s, ""
	if len(b) > prefixLen {
		i := strings.LastIndex(s, "…(")
		head, suffix = s[:i], s[i:]
	}
	if len(head) <= len(b) && string(b[:len(head)]) == head {
		return strconv.Quote(head) + suffix // valid UTF-8, shown as is
	}
	return s // ShortPrefix quoted it already
}

// formatter is one format's encoder. fields is the record's fields, or nil
// when it has none.
type formatter interface {
	write(r *transform.Record, fields *transform.Object) error
	close() error
}

// New returns an Encoder writing the records to w as spec says. A spec with
// violations is a *ValidationError (paths under "format").
func New(spec Spec, w io.Writer) (Encoder, error) {
	if vs := spec.Validate("format"); len(vs) > 0 {
		return nil, &ValidationError{Violations: vs}
	}
	spec.Default()
	e := &encoder{columnsGiven: len(spec.Columns) > 0 && (spec.Type == CSV || spec.Type == Parquet)}
	var z io.WriteCloser
	switch spec.Compression {
	case Gzip:
		if spec.Type != Parquet {
			gz, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
			if err != nil {
				return nil, err
			}
			// No name, no comment, MTIME 0 ("no time stamp"): the header is
			// the same for every object. (The zero time.Time would write the
			// low 32 bits of year 1's Unix time instead.)
			gz.Header = gzip.Header{ModTime: time.Unix(0, 0), OS: 255}
			z, e.contentType = gz, "application/gzip"
		}
	case Zstd:
		if spec.Type != Parquet {
			zw, err := zstd.NewWriter(w,
				zstd.WithEncoderLevel(zstd.SpeedDefault),
				zstd.WithEncoderConcurrency(1), // one stream, no goroutines: the same bytes always
				zstd.WithZeroFrames(true),      // an empty object is still a valid frame
			)
			if err != nil {
				return nil, err
			}
			z, e.contentType = zw, "application/zstd"
		}
	}
	if z != nil {
		e.z, w = z, z
	}
	switch spec.Type {
	case Raw:
		e.f = &rawFormat{w: w, escape: spec.Newlines == NewlinesEscape}
		e.contentType = cmp.Or(e.contentType, "text/plain; charset=utf-8")
	case JSONL:
		e.f = &jsonlFormat{w: w, key: spec.Key, value: spec.Value}
		e.contentType = cmp.Or(e.contentType, "application/x-ndjson")
	case CSV:
		e.f = newCSV(w, spec.Columns)
		e.contentType = cmp.Or(e.contentType, "text/csv; charset=utf-8; header=present")
	case Parquet:
		e.f = newParquet(w, spec)
		e.contentType = "application/vnd.apache.parquet"
	}
	return e, nil
}

// encoder is every format's Encoder: a formatter, writing through the
// compressor when there is one.
type encoder struct {
	f            formatter
	columnsGiven bool           // csv or parquet with Spec.Columns: fields come from fieldsOf
	z            io.WriteCloser // the compressor, or nil
	contentType  string
	closed       bool
}

func (e *encoder) Write(r *transform.Record) error {
	if e.closed {
		return errClosed
	}
	if e.columnsGiven {
		return e.f.write(r, fieldsOf(r))
	}
	return e.f.write(r, r.Fields)
}

// fieldsOf is the record's fields for columns the spec names (csv,
// parquet): the transform chain's output, or else the value itself when it
// is a JSON object, so named field columns read JSON values that no step
// changed too. (Derived columns come from fields only; a record without
// them gets the envelope columns.)
func fieldsOf(r *transform.Record) *transform.Object {
	if r.Fields != nil || len(r.Value) == 0 || r.Value[0] != '{' && !bytes.HasPrefix(bytes.TrimLeft(r.Value, " \t\r\n"), []byte("{")) {
		return r.Fields
	}
	v, err := transform.ParseJSON(r.Value)
	if err != nil {
		return nil
	}
	o, _ := v.(*transform.Object)
	return o
}

func (e *encoder) Close() error {
	if e.closed {
		return errClosed
	}
	e.closed = true
	err := e.f.close()
	if e.z != nil {
		if zerr := e.z.Close(); err == nil {
			err = zerr
		}
	}
	return err
}

func (e *encoder) ContentType() string { return e.contentType }

var errClosed = errors.New("format: encoder is closed")

// timestampLayout is RFC 3339 with milliseconds, always in UTC ("Z").
const timestampLayout = "2006-01-02T15:04:05.000Z07:00"

func appendTimestamp(dst []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(dst, timestampLayout)
}

// checkEnvelope are the envelope columns Check reads records without
// fields through; render and row only read them.
var checkEnvelope = envelope()

// Check reports whether an encoder of spec that holds no record yet would
// reject r: it returns the *RejectError Write would return, or nil. It
// writes nothing, so a plan can end before a record its object would
// refuse (tolerance stop) without encoding the batch. A rejection that
// depends on the records before r in the object — a key that is not among
// the columns derived from the object's first record — is not found here:
// Write still returns it. spec must be valid (New checks it); Check does
// not validate it again for every record. It is safe for concurrent use.
func Check(spec Spec, r *transform.Record) error {
	spec.Default()
	switch spec.Type {
	case Raw:
		return (&rawFormat{w: io.Discard, escape: spec.Newlines == NewlinesEscape}).write(r, r.Fields)
	case JSONL:
		if rej := (&jsonlFormat{key: spec.Key, value: spec.Value}).check(r, r.Fields); rej != nil {
			return rej
		}
	case CSV:
		fields := r.Fields
		if len(spec.Columns) > 0 {
			fields = fieldsOf(r)
		}
		f := &csvFormat{} // no writer: render only checks and renders
		switch {
		case len(spec.Columns) > 0:
			f.t.cols = compile(spec.Columns)
		case fields == nil:
			f.t.cols = checkEnvelope
		}
		if f.t.cols == nil {
			if rej := f.t.derive(r, fields); rej != nil {
				return rej
			}
		}
		if _, rej := f.render(r, fields); rej != nil {
			return rej
		}
	case Parquet:
		// The row alone: no file is opened.
		fields := r.Fields
		if len(spec.Columns) > 0 {
			fields = fieldsOf(r)
		}
		f := newParquet(io.Discard, spec)
		derive := f.t.cols == nil
		if derive && fields == nil {
			f.t.cols, derive = checkEnvelope, false // typed already
		}
		if derive {
			if rej := f.t.derive(r, fields); rej != nil {
				return rej
			}
		}
		if _, rej := f.row(r, fields, derive); rej != nil {
			return rej
		}
	}
	return nil
}
