// Package transform owns the record model that flows from Kafka to a sink,
// and the conversions every sink shares. A Record is one Kafka record with
// its coordinates; it never enters workflow history.
package transform

import "time"

// Header is one Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Record is one Kafka record. Key and Value alias the fetch buffers: a sink
// that keeps them past Add must copy them.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time
	Key       []byte
	Value     []byte
	Headers   []Header
}

// Size is the record's key plus value length, the measure batch limits use.
func (r *Record) Size() int64 { return int64(len(r.Key) + len(r.Value)) }
