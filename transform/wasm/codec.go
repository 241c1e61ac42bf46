package wasm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/dumpflow/dumpflow/transform"
)

// noTimestamp is the layout's timestamp for a record that has none.
const noTimestamp = -1

// nullLen is the layout's length of a null key, value or header value.
const nullLen = -1

// encodedSize is the length of r's encoding with value as its value.
func encodedSize(r *transform.Record, value []byte) int {
	n := 4 + len(r.Topic) + 4 + 8 + 8 + 4 + len(r.Key) + 4 + len(value) + 4
	for _, h := range r.Headers {
		n += 4 + len(h.Key) + 4 + len(h.Value)
	}
	return n
}

// appendRecord appends r, with value as its value, in the ABI's layout
// (see the package doc) to b.
func appendRecord(b []byte, r *transform.Record, value []byte) []byte {
	le := binary.LittleEndian
	b = le.AppendUint32(b, uint32(len(r.Topic)))
	b = append(b, r.Topic...)
	b = le.AppendUint32(b, uint32(r.Partition))
	b = le.AppendUint64(b, uint64(r.Offset))
	ts := int64(noTimestamp)
	if !r.Timestamp.IsZero() {
		ts = r.Timestamp.UnixMilli()
	}
	b = le.AppendUint64(b, uint64(ts))
	b = appendNullable(b, r.Key)
	b = appendNullable(b, value)
	b = le.AppendUint32(b, uint32(len(r.Headers)))
	for _, h := range r.Headers {
		b = le.AppendUint32(b, uint32(len(h.Key)))
		b = append(b, h.Key...)
		b = appendNullable(b, h.Value)
	}
	return b
}

func appendNullable(b, v []byte) []byte {
	if v == nil {
		return binary.LittleEndian.AppendUint32(b, math.MaxUint32) // -1
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// decoded is an output record as the guest wrote it. Its byte slices alias
// the buffer it was decoded from.
type decoded struct {
	timestamp time.Time
	key       []byte
	value     []byte
	headers   []transform.Header
}

var errShort = errors.New("ends early")

// decodeRecord decodes one record in the ABI's layout. The topic, partition
// and offset are checked for framing but dropped (outputs keep their input's).
// Key, value and header values alias b.
func decodeRecord(b []byte) (decoded, error) {
	d := decoder{b: b}
	var r decoded
	topicLen := d.u32("topic length")
	d.bytes("topic", topicLen)
	d.skip("partition", 4)
	d.skip("offset", 8)
	if ts := int64(d.u64("timestamp")); ts != noTimestamp && d.err == nil {
		if ts < 0 {
			d.fail("timestamp %d: want milliseconds since the Unix epoch, or -1 for none", ts)
		}
		r.timestamp = time.UnixMilli(ts).UTC()
	}
	r.key = d.nullable("key")
	r.value = d.nullable("value")
	n := d.u32("header count")
	if d.err == nil && uint64(n)*8 > uint64(len(d.b)-d.off) {
		d.fail("header count %d: more than the %d bytes left can hold", n, len(d.b)-d.off)
	}
	if d.err == nil && n > 0 {
		r.headers = make([]transform.Header, n)
		for i := range r.headers {
			kl := d.u32("header key length")
			r.headers[i].Key = string(d.bytes("header key", kl))
			r.headers[i].Value = d.nullable("header value")
		}
	}
	if d.err == nil && d.off != len(d.b) {
		d.fail("%d trailing bytes after the last header", len(d.b)-d.off)
	}
	if d.err != nil {
		return decoded{}, d.err
	}
	return r, nil
}

// decoder reads the layout's fields in order; the first error sticks and
// names the field and its byte offset.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("at byte %d: "+format, append([]any{d.off}, args...)...)
	}
}

func (d *decoder) take(field string, n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail("%s (%d bytes): %w, %d bytes left", field, n, errShort, len(d.b)-d.off)
		return nil
	}
	v := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return v
}

func (d *decoder) skip(field string, n uint64) { d.take(field, n) }

func (d *decoder) u32(field string) uint32 {
	if v := d.take(field, 4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64(field string) uint64 {
	if v := d.take(field, 8); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

func (d *decoder) bytes(field string, n uint32) []byte {
	return d.take(field, uint64(n))
}

// nullable reads an i32 length (-1 = null) and that many bytes.
func (d *decoder) nullable(field string) []byte {
	n := int32(d.u32(field + " length"))
	switch {
	case d.err != nil:
		return nil
	case n == nullLen:
		return nil
	case n < 0:
		d.fail("%s length %d: want -1 (null) or a length", field, n)
		return nil
	}
	return d.take(field, uint64(n))
}
