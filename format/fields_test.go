package format_test

import (
	"bytes"
	"testing"

	"github.com/dumpflow/dumpflow/format"
	"github.com/dumpflow/dumpflow/transform"
)

// TestNamedColumnsReadUnchangedJSON: columns the spec names read field
// paths from a JSON value no transform step changed (a connector without
// transforms), while __value__ stays the value's own bytes.
func TestNamedColumnsReadUnchangedJSON(t *testing.T) {
	var body bytes.Buffer
	e, err := format.New(format.Spec{Type: "csv", Columns: []format.Column{
		{Name: "id", Source: "user.id"}, {Name: "raw", Source: "__value__"},
	}}, &body)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range []string{`{"user": {"id": 7}}`, `not json`} {
		if err := e.Write(&transform.Record{Topic: "t", Offset: int64(i), Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	want := "id,raw\n7,\"{\"\"user\"\": {\"\"id\"\": 7}}\"\n,not json\n"
	if got := body.String(); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
