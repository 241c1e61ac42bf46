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
	// Fields is the value as ordered named fields, once a transform step
	// parsed and changed it (a JSON object); nil otherwise. When set, Value
	// is its encoding. Encoders may read it instead of parsing Value; they
	// must not modify it.
	Fields *Object
	// Route is the folder a route step chose for the record, already
	// checked by the route rule (see CheckRoute); "" otherwise.
	Route string
}

// Size is the record's key plus value length, the measure batch limits use.
func (r *Record) Size() int64 { return int64(len(r.Key) + len(r.Value)) }
