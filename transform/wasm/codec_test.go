package wasm

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dumpflow/dumpflow/transform"
)

func TestDecodeRecord(t *testing.T) {
	full := appendRecord(nil, &transform.Record{Topic: "t", Partition: 1, Offset: 2, Timestamp: time.UnixMilli(3),
		Key: []byte{}, Value: nil, Headers: []transform.Header{{Key: "k", Value: []byte("v")}}}, []byte("value"))
	d, err := decodeRecord(full)
	if err != nil {
		t.Fatal(err)
	}
	want := decoded{timestamp: time.UnixMilli(3).UTC(), key: []byte{}, value: []byte("value"), headers: []transform.Header{{Key: "k", Value: []byte("v")}}}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("got %+v, want %+v", d, want)
	}

	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "at byte 0: topic length (4 bytes): ends early, 0 bytes left"},
		{"cut in the value", full[:36], "at byte 33: value (5 bytes): ends early, 3 bytes left"},
		{"trailing", append(full[:len(full):len(full)], 0), "at byte 52: 1 trailing bytes after the last header"},
		{"negative length", patch(full, 29, 0xfe, 0xff, 0xff, 0xff), "at byte 33: value length -2: want -1 (null) or a length"},
		{"negative timestamp", patch(full, 17, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), "at byte 25: timestamp -2: want milliseconds since the Unix epoch, or -1 for none"},
		{"header count", patch(full, 38, 0xff, 0xff, 0xff, 0x0f), "at byte 42: header count 268435455: more than the 10 bytes left can hold"},
	} {
		if _, err := decodeRecord(c.b); err == nil || err.Error() != c.want {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
}

func patch(b []byte, at int, with ...byte) []byte {
	b = append([]byte(nil), b...)
	copy(b[at:], with)
	return b
}

// FuzzDecodeRecord: what a guest writes never panics the host, and a record
// that decodes encodes back to bytes that decode the same.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendRecord(nil, &transform.Record{Topic: "t", Key: []byte("k"), Headers: []transform.Header{{Key: "h"}}}, []byte("v")))
	f.Add(appendRecord(nil, &transform.Record{Timestamp: time.UnixMilli(1595944295123)}, nil))
	f.Add([]byte(strings.Repeat("\xff", 40)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeRecord(b)
		if err != nil {
			return
		}
		r := transform.Record{Timestamp: d.timestamp, Key: d.key, Headers: d.headers}
		again, err := decodeRecord(appendRecord(nil, &r, d.value))
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, d) {
			t.Fatalf("round trip: got %+v, want %+v", again, d)
		}
	})
}
