package format_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/dumpflow/dumpflow/format"
	"github.com/dumpflow/dumpflow/transform"
)

// ts is the timestamp test records carry: seed 002's 1595944295, plus 123ms.
var ts = time.UnixMilli(1595944295123)

// rec is a record of topic "orders", partition 3, with value v (nil: none).
func rec(offset int64, v []byte) *transform.Record {
	return &transform.Record{Topic: "orders", Partition: 3, Offset: offset, Timestamp: ts, Value: v}
}

func val(offset int64, s string) *transform.Record { return rec(offset, []byte(s)) }

// withFields is a record whose fields are the JSON object js.
func withFields(t testing.TB, offset int64, js string) *transform.Record {
	t.Helper()
	v, err := transform.ParseJSON([]byte(js))
	if err != nil {
		t.Fatalf("ParseJSON(%s): %v", js, err)
	}
	o, ok := v.(*transform.Object)
	if !ok {
		t.Fatalf("%s is not an object", js)
	}
	r := val(offset, js)
	r.Fields = o
	return r
}

// encode writes recs under spec and returns the body and the rejections, in
// order. Any other error fails the test.
func encode(t testing.TB, spec format.Spec, recs ...*transform.Record) ([]byte, []*format.RejectError) {
	t.Helper()
	var body bytes.Buffer
	e, err := format.New(spec, &body)
	if err != nil {
		t.Fatalf("New(%+v): %v", spec, err)
	}
	var rejects []*format.RejectError
	for _, r := range recs {
		if err := e.Write(r); err != nil {
			var re *format.RejectError
			if !errors.As(err, &re) {
				t.Fatalf("Write(%s[%d]@%d): %v, not a *RejectError", r.Topic, r.Partition, r.Offset, err)
			}
			rejects = append(rejects, re)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return body.Bytes(), rejects
}

// mustEncode is encode where no record may be rejected.
func mustEncode(t testing.TB, spec format.Spec, recs ...*transform.Record) []byte {
	t.Helper()
	body, rejects := encode(t, spec, recs...)
	for _, re := range rejects {
		t.Errorf("rejected: %v", re)
	}
	return body
}
