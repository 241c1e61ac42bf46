package maxcompute

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aliyun/aliyun-odps-go-sdk/odps/data"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/tableschema"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/sink"
)

// Ledger is the offset coverage of one topic in the table, across all
// partitions: what verify compares with the committed offsets. Rows is
// count(*); the distinct offsets are count(distinct topic, partition, offset).
type Ledger struct {
	Topic string `json:"topic"`
	// Rows is how many rows of Topic the table holds.
	Rows int64 `json:"rows"`
	// Offsets are the distinct offsets present, per Kafka partition, ascending.
	Offsets map[int32][]int64 `json:"offsets"`
	// Duplicates are the offsets present more than once, per Kafka
	// partition, ascending, each listed once. Empty when the table holds
	// every record at most once.
	Duplicates map[int32][]int64 `json:"duplicates,omitempty"`
	// OtherTopics counts rows of other topics, which the ledger ignores.
	OtherTopics int64 `json:"otherTopics,omitempty"`
}

// Range is the offsets [Start, End).
type Range struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

// Distinct is how many distinct (partition, offset) pairs are present.
func (l *Ledger) Distinct() int64 {
	var n int64
	for _, offs := range l.Offsets {
		n += int64(len(offs))
	}
	return n
}

// Ranges returns the offsets present in Kafka partition p as maximal
// contiguous ranges, ascending: tiling [start, committed) means one range.
func (l *Ledger) Ranges(p int32) []Range {
	var out []Range
	for _, o := range l.Offsets[p] {
		if n := len(out); n > 0 && out[n-1].End == o {
			out[n-1].End++
			continue
		}
		out = append(out, Range{Start: o, End: o + 1})
	}
	return out
}

// ReadLedger reads the topic, partition and offset columns of every
// partition of spec's table and returns the coverage of spec's topic. The
// table must have those columns (formats TEXT and BINARY); a CSV table has
// no ledger and gives a SchemaMismatch.
func ReadLedger(ctx context.Context, spec *connector.Spec, creds connector.Credentials, opts ...Option) (*Ledger, error) {
	c, err := newClient(spec, creds, opts)
	if err != nil {
		return nil, err
	}
	schema, err := c.loadTable()
	if err != nil {
		if merr := c.missingTable(err); merr != nil {
			return nil, merr
		}
		return nil, sink.Permanent(ErrNoSuchTable, fmt.Errorf("table %s does not exist", c.name()))
	}
	cols := make([]string, 3)
	for i, want := range []string{"topic", "partition", "offset"} {
		j := slices.IndexFunc(schema.Columns, func(col tableschema.Column) bool { return strings.EqualFold(col.Name, want) })
		if j < 0 {
			return nil, sink.Permanent(ErrSchemaMismatch, fmt.Errorf("table %s is %s: a ledger needs topic, partition and offset columns",
				c.name(), describeSchema(schema)))
		}
		cols[i] = schema.Columns[j].Name
	}
	parts := []string{""}
	if len(schema.PartitionColumns) > 0 {
		if parts, err = c.partitions(ctx); err != nil {
			return nil, err
		}
	}
	l := &Ledger{Topic: spec.Kafka.Topic, Offsets: map[int32][]int64{}, Duplicates: map[int32][]int64{}}
	all := map[int32][]int64{}
	for _, part := range parts {
		err := c.download(ctx, part, cols, func(rec data.Record) error {
			topic, p, off, ok := ledgerRow(rec)
			if !ok {
				return nil // a row without coordinates is not the sink's
			}
			if topic != l.Topic {
				l.OtherTopics++
				return nil
			}
			l.Rows++
			all[p] = append(all[p], off)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for p, offs := range all {
		slices.Sort(offs)
		distinct := offs[:0:0]
		for i, o := range offs {
			switch {
			case i == 0 || o != offs[i-1]:
				distinct = append(distinct, o)
			case len(l.Duplicates[p]) == 0 || l.Duplicates[p][len(l.Duplicates[p])-1] != o:
				l.Duplicates[p] = append(l.Duplicates[p], o)
			}
		}
		l.Offsets[p] = distinct
	}
	return l, nil
}

func ledgerRow(rec data.Record) (topic string, p int32, off int64, ok bool) {
	if len(rec) != 3 {
		return "", 0, 0, false
	}
	t, ok1 := goValue(rec[0]).(string)
	pv, ok2 := goValue(rec[1]).(int64)
	ov, ok3 := goValue(rec[2]).(int64)
	return t, int32(pv), ov, ok1 && ok2 && ok3
}

// Row is one row of a table this sink writes, as verify reads it: its
// Kafka coordinates and, when asked for, its key and value columns (nil
// for NULL).
type Row struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	// Pt is the table partition holding the row ("pt=11-17-2020 14").
	Pt string
}

// ScanRows calls fn with every row of spec's table that carries Kafka
// coordinates (formats TEXT and BINARY), reading the key and value columns
// too when withData is set. Rows come in no particular order.
func ScanRows(ctx context.Context, spec *connector.Spec, creds connector.Credentials, withData bool, fn func(Row) error, opts ...Option) error {
	c, err := newClient(spec, creds, opts)
	if err != nil {
		return err
	}
	schema, err := c.loadTable()
	if err != nil {
		if merr := c.missingTable(err); merr != nil {
			return merr
		}
		return sink.Permanent(ErrNoSuchTable, fmt.Errorf("table %s does not exist", c.name()))
	}
	want := []string{"topic", "partition", "offset"}
	if withData {
		want = append(want, "key", "value")
	}
	cols := make([]string, len(want))
	for i, w := range want {
		j := slices.IndexFunc(schema.Columns, func(col tableschema.Column) bool { return strings.EqualFold(col.Name, w) })
		if j < 0 {
			return sink.Permanent(ErrSchemaMismatch, fmt.Errorf("table %s is %s: verify needs the columns %s",
				c.name(), describeSchema(schema), strings.Join(want, ", ")))
		}
		cols[i] = schema.Columns[j].Name
	}
	parts := []string{""}
	if len(schema.PartitionColumns) > 0 {
		if parts, err = c.partitions(ctx); err != nil {
			return err
		}
	}
	for _, part := range parts {
		err := c.download(ctx, part, cols, func(rec data.Record) error {
			topic, p, off, ok := ledgerRow(rec[:3])
			if !ok {
				return nil
			}
			r := Row{Topic: topic, Partition: p, Offset: off, Pt: part}
			if withData {
				r.Key, r.Value = bytesOf(goValue(rec[3])), bytesOf(goValue(rec[4]))
			}
			return fn(r)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func bytesOf(v any) []byte {
	switch x := v.(type) {
	case string:
		return []byte(x)
	case []byte:
		return x
	}
	return nil
}
