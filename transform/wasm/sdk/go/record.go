package dumpflow

import (
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"time"
)

// Header is one Kafka record header. A nil Value is a null value.
type Header struct {
	Key   string
	Value []byte
}

// Record is one Kafka record. In a handler's input, Key, Value and the
// headers' values alias a buffer that the next record reuses: copy what
// you keep past the handler's return.
//
// In an output, the key, value, headers and timestamp are the output's
// own (nil Key: a null key; zero Timestamp: none); the topic, partition
// and offset are ignored, since every output keeps its input's. Return
// the input with a new Value to keep its key, headers and timestamp.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time // zero when the record has none
	Key       []byte    // nil: a null key
	Value     []byte    // nil: a null value (a tombstone)
	Headers   []Header
}

// Header returns the value of the first header named key, and whether
// there is one.
func (r *Record) Header(key string) ([]byte, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}

var le = binary.LittleEndian

// appendRecord appends r in the ABI's layout to b.
func appendRecord(b []byte, r *Record) []byte {
	b = le.AppendUint32(b, uint32(len(r.Topic)))
	b = append(b, r.Topic...)
	b = le.AppendUint32(b, uint32(r.Partition))
	b = le.AppendUint64(b, uint64(r.Offset))
	ts := int64(-1)
	if !r.Timestamp.IsZero() {
		ts = r.Timestamp.UnixMilli()
	}
	b = le.AppendUint64(b, uint64(ts))
	b = appendNullable(b, r.Key)
	b = appendNullable(b, r.Value)
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
		return le.AppendUint32(b, math.MaxUint32) // -1
	}
	b = le.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

var errShort = errors.New("input record ends early")

// decodeRecord decodes a record in the ABI's layout; its byte slices alias
// b. headers is reused for the headers.
func decodeRecord(b []byte, headers []Header) (Record, error) {
	var r Record
	var err error
	take := func(n uint64) []byte {
		if err != nil {
			return nil
		}
		if n > uint64(len(b)) {
			err = errShort
			return nil
		}
		v := b[:n:n]
		b = b[n:]
		return v
	}
	u32 := func() uint32 {
		if v := take(4); v != nil {
			return le.Uint32(v)
		}
		return 0
	}
	nullable := func() []byte {
		n := int32(u32())
		if n < 0 || err != nil {
			return nil
		}
		return take(uint64(n))
	}
	r.Topic = string(take(uint64(u32())))
	r.Partition = int32(u32())
	if v := take(16); v != nil {
		r.Offset = int64(le.Uint64(v))
		if ts := int64(le.Uint64(v[8:])); ts != -1 {
			r.Timestamp = time.UnixMilli(ts).UTC()
		}
	}
	r.Key = nullable()
	r.Value = nullable()
	n := u32()
	if err == nil && uint64(n)*8 > uint64(len(b)) {
		err = errors.New("input record: header count " + strconv.FormatUint(uint64(n), 10) + " is more than the bytes left")
	}
	if err == nil && n > 0 {
		headers = headers[:0]
		for range n {
			k := string(take(uint64(u32())))
			headers = append(headers, Header{Key: k, Value: nullable()})
		}
		r.Headers = headers
	}
	if err == nil && len(b) > 0 {
		err = errors.New("input record: " + strconv.Itoa(len(b)) + " trailing bytes")
	}
	return r, err
}
