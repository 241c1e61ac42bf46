package format_test

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"

	"github.com/dumpflow/dumpflow/format"
	"github.com/dumpflow/dumpflow/transform"
)

// TestCSV: exact bodies for given and derived columns, every source, RFC
// 4180 quoting; each body reads back with encoding/csv to the cells written.
func TestCSV(t *testing.T) {
	keyed := withFields(t, 2, `{"id": 7, "user": {"name": "Zoë, \"Z\"", "a.b": true}, "tags": ["x"], "note": null}`)
	keyed.Key = []byte("k1")
	plain := val(3, " lead, comma")
	plain.Key = []byte{}
	cols := []format.Column{
		{Name: "id"},
		{Name: "name", Source: "user.name"},
		{Name: "dotted", Source: `user.a\.b`},
		{Name: "tags"},
		{Name: "note"},
		{Name: "missing", Source: "no.such"},
		{Name: "k", Source: "__key__"},
		{Name: "v", Source: "__value__"},
		{Name: "t", Source: "__topic__"},
		{Name: "p", Source: "__partition__"},
		{Name: "o", Source: "__offset__"},
		{Name: "ts", Source: "__timestamp__"},
	}
	for _, c := range []struct {
		name string
		spec format.Spec
		recs []*transform.Record
		want string
	}{
		{
			name: "columns",
			spec: format.Spec{Columns: cols},
			recs: []*transform.Record{keyed, plain},
			want: `id,name,dotted,tags,note,missing,k,v,t,p,o,ts
7,"Zoë, ""Z""",true,"[""x""]",,,k1,"{""id"":7,""user"":{""name"":""Zoë, \""Z\"""",""a.b"":true},""tags"":[""x""],""note"":null}",orders,3,2,2020-07-28T13:51:35.123Z
,,,,,,," lead, comma",orders,3,3,2020-07-28T13:51:35.123Z
`,
		},
		{
			name: "derived from fields",
			recs: []*transform.Record{
				withFields(t, 1, `{"a": "x", "b": 1.5, "c": {"d": [1]}}`),
				withFields(t, 2, `{"c": "multi\nline", "a": "q\"uote"}`),
				withFields(t, 3, `{}`),
			},
			want: "a,b,c\nx,1.5,\"{\"\"d\"\":[1]}\"\n\"q\"\"uote\",,\"multi\nline\"\n,,\n",
		},
		{
			name: "derived envelope",
			recs: []*transform.Record{plain, rec(4, nil), withFields(t, 5, `{"f":1}`)},
			want: "topic,partition,offset,timestamp,key,value\n" +
				"orders,3,3,2020-07-28T13:51:35.123Z,,\" lead, comma\"\n" +
				"orders,3,4,2020-07-28T13:51:35.123Z,,\n" +
				"orders,3,5,2020-07-28T13:51:35.123Z,,\"{\"\"f\"\":1}\"\n",
		},
		{
			name: "one column, empty cells",
			spec: format.Spec{Columns: []format.Column{{Name: "only", Source: "__value__"}}},
			recs: []*transform.Record{val(1, ""), val(2, "x"), rec(3, nil), val(4, `\.`)},
			want: "only\n\"\"\nx\n\"\"\n\"\\.\"\n",
		},
		{
			name: "no records, columns given",
			spec: format.Spec{Columns: cols[:2]},
			want: "id,name\n",
		},
		{
			name: "no records, derived",
			want: "",
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := c.spec
			spec.Type = "csv"
			body := mustEncode(t, spec, c.recs...)
			if string(body) != c.want {
				t.Errorf("body\n%s\nwant\n%s", body, c.want)
			}
			rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
			if err != nil {
				t.Fatalf("read back: %v", err)
			}
			if c.want != "" && len(rows) != len(c.recs)+1 {
				t.Errorf("read back %d rows, want a header and %d", len(rows), len(c.recs))
			}
		})
	}
}

// TestCSVRejects: a cell CSV cannot hold faithfully, a missing required
// field, and a field outside derived columns each reject the record, naming
// it and the column; the other records are written. A rejected first record
// does not fix the derived columns.
func TestCSVRejects(t *testing.T) {
	binKey := val(2, "v")
	binKey.Key = []byte{0xff}
	body, rejects := encode(t, format.Spec{Type: "csv", Columns: []format.Column{
		{Name: "key", Source: "__key__"},
		{Name: "value", Source: "__value__"},
		{Name: "id", Required: true},
	}},
		withFields(t, 1, `{"id": 1}`),
		binKey,
		withFields(t, 3, `{"id": "a\r\nb"}`),
		withFields(t, 4, `{"other": 1}`),
		val(5, "no fields"),
		withFields(t, 6, `{"id": null}`),
		withFields(t, 7, `{"id": "a\rb\nc"}`),
	)
	if want := "key,value,id\n,\"{\"\"id\"\":1}\",1\n,\"{\"\"id\"\":\"\"a\\rb\\nc\"\"}\",\"a\rb\nc\"\n"; string(body) != want {
		t.Errorf("body %q, want %q", body, want)
	}
	wantRejects := []string{
		`record orders[3]@2: column 1 (key) "\xff" is not valid UTF-8, which CSV text cannot hold`,
		`record orders[3]@3: column 3 (id) "a\r\nb" contains "\r\n", which CSV readers read back as "\n"`,
		`record orders[3]@4: column 3 (id) is missing or null, and the column is required`,
		`record orders[3]@5: column 3 (id) is missing or null, and the column is required`,
		`record orders[3]@6: column 3 (id) is missing or null, and the column is required`,
	}
	checkRejects(t, rejects, wantRejects)

	body, rejects = encode(t, format.Spec{Type: "csv"},
		withFields(t, 0, `{"ok": 1, "": 2}`),
		withFields(t, 1, `{"bad": "x\r\ny"}`),
		withFields(t, 2, `{"a": 1, "b": 2}`),
		withFields(t, 3, `{"b": 3, "c": 4}`),
		val(4, "no fields"),
		withFields(t, 5, `{"a": 5}`),
	)
	if want := "a,b\n1,2\n5,\n"; string(body) != want {
		t.Errorf("derived: body %q, want %q", body, want)
	}
	checkRejects(t, rejects, []string{
		`record orders[3]@0: field "" cannot name a column: a derived column's name must be non-empty UTF-8 without control characters (set format.columns to name the columns)`,
		`record orders[3]@1: column 1 (bad) "x\r\ny" contains "\r\n"`,
		`record orders[3]@3: field "c" is not a column (the columns were derived from the first record of the object: a, b; set format.columns to choose them)`,
		`record orders[3]@4: value has no fields, but the columns were derived from the fields of the first record of the object (a, b); set format.columns to choose them`,
	})
}

func checkRejects(t *testing.T, got []*format.RejectError, want []string) {
	t.Helper()
	var msgs []string
	for _, re := range got {
		if re.Stage != "format" {
			t.Errorf("%v: stage %q", re, re.Stage)
		}
		msgs = append(msgs, re.Error())
	}
	if len(msgs) != len(want) {
		t.Fatalf("rejects\n%s\nwant\n%s", strings.Join(msgs, "\n"), strings.Join(want, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(msgs[i], want[i]) {
			t.Errorf("reject %d:\n%s\nwant prefix\n%s", i, msgs[i], want[i])
		}
	}
}

type flag bool

// TestCSVGoValues: fields set by transform steps may hold Go values; they
// are written as their JSON encoding says (transform.AppendJSON).
func TestCSVGoValues(t *testing.T) {
	o := &transform.Object{}
	o.Set("int", 5)
	o.Set("float", 2.5)
	o.Set("bytes", []byte("hi, there"))
	o.Set("map", map[string]any{"z": 1, "a": "x"})
	o.Set("flag", flag(true))
	o.Set("nil", []int(nil))
	r := val(1, "ignored")
	r.Fields = o
	body := mustEncode(t, format.Spec{Type: "csv"}, r)
	if want := "int,float,bytes,map,flag,nil\n5,2.5,\"hi, there\",\"{\"\"a\"\":\"\"x\"\",\"\"z\"\":1}\",true,\n"; string(body) != want {
		t.Errorf("body %q, want %q", body, want)
	}
	body = mustEncode(t, format.Spec{Type: "parquet", Columns: []format.Column{{Name: "int", Type: "int64"}, {Name: "float", Type: "double"}, {Name: "flag", Type: "boolean"}, {Name: "bytes", Type: "bytes"}}}, r)
	if _, rows := readParquet(t, body); len(rows) != 1 || rows[0] != `int=5 float=2.5 flag=true bytes="hi, there"` {
		t.Errorf("parquet rows %q", rows)
	}
}
