package maxcompute

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aliyun/aliyun-odps-go-sdk/odps/data"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/datatype"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/tableschema"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/transform"
)

// columnSource is where a FIELDS column takes its value from.
type columnSource struct {
	meta  string              // connector.Source*; "" for a field or a constant
	path  transform.FieldPath // a field of the record's fields
	konst *string             // a constant
}

// fieldColumns compiles the FIELDS mapping for schema's columns: a column
// named in sink.maxcompute.columns takes its source from there, every other
// column the record's field of its own name (matched exactly, else in any
// letter case), so a chain whose output fields are named like the table's
// columns needs no mapping. A mapping that names a column the table lacks is
// a SchemaMismatch.
func fieldColumns(table string, mapping []connector.ColumnSpec, cols []tableschema.Column) ([]columnSource, error) {
	byName := map[string]string{}
	for _, m := range mapping {
		byName[strings.ToLower(m.Name)] = m.Source
	}
	out := make([]columnSource, len(cols))
	for i, col := range cols {
		src, mapped := byName[strings.ToLower(col.Name)]
		delete(byName, strings.ToLower(col.Name))
		if !mapped || src == "" {
			src = col.Name
		}
		switch {
		case strings.HasPrefix(src, "__") && strings.HasSuffix(src, "__"):
			out[i].meta = src
		case strings.HasPrefix(src, "'") && strings.HasSuffix(src, "'") && len(src) >= 2:
			k := src[1 : len(src)-1]
			out[i].konst = &k
		default:
			p, err := transform.ParseFieldPath(src)
			if err != nil {
				return nil, fmt.Errorf("column %s: source %q: %v", col.Name, src, err)
			}
			out[i].path = p
		}
	}
	for name := range byName {
		return nil, fmt.Errorf("sink.maxcompute.columns names column %s, which table %s does not have (it has %s)", name, table, describeColumns(cols))
	}
	return out, nil
}

// fieldsRow converts r for format FIELDS: each column from its source,
// converted to the column's type (strings as CSV fields are; numbers,
// booleans and times as themselves; objects and arrays as JSON text into
// string columns). A record whose value is not a JSON object and that has
// no fields fills only metadata and constant columns; a value that does not
// convert rejects the record.
func (c *converter) fieldsRow(r *transform.Record) (data.Record, int64, error) {
	fields := r.Fields
	if fields == nil && len(r.Value) > 0 {
		if v, err := transform.ParseJSON(r.Value); err == nil {
			fields, _ = v.(*transform.Object)
		}
	}
	row := make(data.Record, len(c.cols))
	var size int64
	for i, col := range c.cols {
		src := c.sources[i]
		var v any
		switch {
		case src.konst != nil:
			v = *src.konst
		case src.meta != "":
			v = metaValue(src.meta, r)
		default:
			x, ok := src.path.Get(fields)
			if !ok {
				x = nil
			}
			v = x
		}
		d, n, err := c.fieldValue(v, col)
		if err != nil {
			return nil, 0, c.reject(r, "column %s %s: %v", col.Name, col.Type.Name(), err)
		}
		row[i] = d
		size += n
	}
	return row, size, nil
}

// metaValue is a metadata source's value.
func metaValue(src string, r *transform.Record) any {
	switch src {
	case connector.SourceKey:
		if r.Key == nil {
			return nil
		}
		return string(r.Key)
	case connector.SourceValue:
		if r.Value == nil {
			return nil
		}
		if r.Fields != nil {
			b, err := r.Fields.AppendJSON(nil)
			if err == nil {
				return string(b)
			}
		}
		return string(r.Value)
	case connector.SourceTopic:
		return r.Topic
	case connector.SourcePartition:
		return json.Number(strconv.Itoa(int(r.Partition)))
	case connector.SourceOffset:
		return json.Number(strconv.FormatInt(r.Offset, 10))
	case connector.SourceTimestamp:
		if r.Timestamp.IsZero() {
			return nil
		}
		return r.Timestamp
	case connector.SourceHeaders:
		o := &transform.Object{}
		for _, h := range r.Headers {
			o.Set(h.Key, string(h.Value))
		}
		b, _ := o.AppendJSON(nil)
		return string(b)
	}
	return nil
}

var errNotNull = errors.New("is null, and the column is NOT NULL")

// fieldValue converts one value to col's type.
func (c *converter) fieldValue(v any, col tableschema.Column) (data.Data, int64, error) {
	switch x := v.(type) {
	case nil:
		if col.NotNull {
			return nil, 0, errNotNull
		}
		return nil, 0, nil
	case string:
		d, err := c.field(x, col)
		return d, int64(len(x)), err
	case json.Number:
		d, err := c.field(x.String(), col)
		return d, 8, err
	case bool:
		d, err := c.field(strconv.FormatBool(x), col)
		return d, 1, err
	case time.Time:
		if col.Type.ID() == datatype.BIGINT {
			// __timestamp__ into a BIGINT column: epoch milliseconds, as
			// seed 003's Kafka Reader gives it (kafka_ts BIGINT).
			return data.BigInt(x.UnixMilli()), 8, nil
		}
		d, err := c.field(x.In(c.loc).Format("2006-01-02 15:04:05.999999999"), col)
		return d, 8, err
	default:
		b, err := transform.AppendJSON(nil, x)
		if err != nil {
			return nil, 0, err
		}
		d, err := c.field(string(b), col)
		return d, int64(len(b)), err
	}
}
