package dumpflow

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRecordRoundTrip(t *testing.T) {
	for _, r := range []Record{
		{},
		{Topic: "主题", Partition: 7, Offset: 1 << 40, Timestamp: time.UnixMilli(1595944295123).UTC(),
			Key: []byte{}, Value: []byte("v"), Headers: []Header{{Key: "a"}, {Key: "", Value: []byte{}}}},
	} {
		got, err := decodeRecord(appendRecord(nil, &r), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("got %+v, want %+v", got, r)
		}
	}
	b := appendRecord(nil, &Record{Value: []byte("value")})
	if _, err := decodeRecord(b[:len(b)-1], nil); !errors.Is(err, errShort) {
		t.Errorf("cut record: %v", err)
	}
	if _, err := decodeRecord(append(b, 0), nil); err == nil || !strings.Contains(err.Error(), "1 trailing bytes") {
		t.Errorf("trailing byte: %v", err)
	}
}

// TestOnRecord runs the export's body against a fake host.
func TestOnRecord(t *testing.T) {
	defer func() { handler = nil }()
	in := appendRecord(nil, &Record{Key: []byte("k"), Value: []byte("v")})
	var written [][]byte
	read := func(b []byte) int32 { return int32(copy(b, in)) }
	write := func(b []byte) int32 { written = append(written, append([]byte(nil), b...)); return 0 }

	if err := onRecord(int32(len(in)), read, write); err == nil || !strings.Contains(err.Error(), "call dumpflow.Handle") {
		t.Errorf("no handler: %v", err)
	}

	Handle(func(r Record) ([]Record, error) {
		switch string(r.Value) {
		case "v":
			r.Value = []byte("V")
			return []Record{r, {Value: []byte("second")}}, nil
		case "err":
			return nil, errors.New("bad value")
		}
		panic("boom")
	})
	if err := onRecord(int32(len(in)), read, write); err != nil || len(written) != 2 {
		t.Fatalf("got %d outputs, %v", len(written), err)
	}
	if got, _ := decodeRecord(written[0], nil); string(got.Key) != "k" || string(got.Value) != "V" {
		t.Errorf("output 1: %+v", got)
	}
	for value, want := range map[string]string{"err": "bad value", "x": "panic: boom"} {
		in = appendRecord(nil, &Record{Value: []byte(value)})
		if err := onRecord(int32(len(in)), read, write); err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %q", value, err, want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("a second Handle did not panic")
		}
	}()
	Handle(func(Record) ([]Record, error) { return nil, nil })
}
