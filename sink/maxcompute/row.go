package maxcompute

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/aliyun/aliyun-odps-go-sdk/odps/data"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/datatype"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/tableschema"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/transform"
)

// DefaultDDL is the table the sink creates when createTable is set (seed 004).
const DefaultDDL = "CREATE TABLE IF NOT EXISTS %s(topic STRING, partition BIGINT, offset BIGINT, key STRING, value STRING) PARTITIONED BY (pt STRING)"

// AnyPartition is the MaxComputeSpec.Partition of a window load's sink: the
// load names the destination partition itself, so the table may have any
// partition columns.
const AnyPartition = "ANY"

// defaultColumns are the columns TEXT and BINARY write, in order.
var defaultColumns = []struct {
	name  string
	types []datatype.TypeID
}{
	{"topic", []datatype.TypeID{datatype.STRING}},
	{"partition", []datatype.TypeID{datatype.BIGINT}},
	{"offset", []datatype.TypeID{datatype.BIGINT}},
	{"key", []datatype.TypeID{datatype.STRING, datatype.BINARY}},
	{"value", []datatype.TypeID{datatype.STRING, datatype.BINARY}},
}

// converter turns records into rows of one table schema.
type converter struct {
	table   string // project.table, for messages
	mode    string
	format  string
	loc     *time.Location // for CSV DATETIME and TIMESTAMP fields
	cols    []tableschema.Column
	sources []columnSource // format FIELDS: each column's source
	// anyPartitions accepts any partition columns (window loads name the
	// partition themselves) instead of exactly one pt STRING.
	anyPartitions bool
}

// newConverter checks that schema fits the spec's mode and format and
// returns a converter for it; a misfit is a permanent SchemaMismatch.
func newConverter(table string, mc *connector.MaxComputeSpec, loc *time.Location, schema tableschema.TableSchema) (*converter, error) {
	c := &converter{table: table, mode: strings.ToUpper(mc.Mode), format: strings.ToUpper(mc.Format), loc: loc, cols: schema.Columns, anyPartitions: mc.Partition == AnyPartition}
	if c.mode == "" {
		c.mode = connector.ModeDefault
	}
	if c.format == "" {
		c.format = connector.FormatText
	}
	if err := c.check(schema); err != nil {
		return nil, sink.Permanent(ErrSchemaMismatch, err)
	}
	if c.format == connector.FormatFields {
		srcs, err := fieldColumns(table, mc.Columns, schema.Columns)
		if err != nil {
			return nil, sink.Permanent(ErrSchemaMismatch, err)
		}
		c.sources = srcs
	}
	return c, nil
}

func (c *converter) check(schema tableschema.TableSchema) error {
	pcs := schema.PartitionColumns
	if !c.anyPartitions && len(pcs) != 1 || !strings.EqualFold(pcs[0].Name, PartitionColumn) || pcs[0].Type.ID() != datatype.STRING {
		return fmt.Errorf("table %s is %s; the sink needs exactly one partition column %s STRING", c.table, describeSchema(schema), PartitionColumn)
	}
	switch c.format {
	case connector.FormatText, connector.FormatBinary:
		ok := len(schema.Columns) == len(defaultColumns)
		for i := 0; ok && i < len(defaultColumns); i++ {
			col := schema.Columns[i]
			ok = strings.EqualFold(col.Name, defaultColumns[i].name) && hasType(col, defaultColumns[i].types)
		}
		if !ok {
			return fmt.Errorf("table %s is %s; format %s needs (topic STRING, partition BIGINT, offset BIGINT, key STRING, value STRING) PARTITIONED BY (pt STRING)",
				c.table, describeSchema(schema), c.format)
		}
	case connector.FormatCSV:
		if c.mode != connector.ModeKey && c.mode != connector.ModeValue {
			return fmt.Errorf("format CSV works only with mode KEY or VALUE, not %s", c.mode)
		}
		if len(schema.Columns) == 0 {
			return fmt.Errorf("table %s has no columns for format CSV", c.table)
		}
		for _, col := range schema.Columns {
			if !csvType(col.Type.ID()) {
				return fmt.Errorf("table %s column %s has type %s, which format CSV cannot fill; use STRING, BIGINT, INT, SMALLINT, TINYINT, DOUBLE, FLOAT, DECIMAL, BOOLEAN, DATETIME, DATE, TIMESTAMP, VARCHAR, CHAR or BINARY",
					c.table, col.Name, col.Type.Name())
			}
		}
	case connector.FormatFields:
		if len(schema.Columns) == 0 {
			return fmt.Errorf("table %s has no columns for format FIELDS", c.table)
		}
		for _, col := range schema.Columns {
			if !csvType(col.Type.ID()) {
				return fmt.Errorf("table %s column %s has type %s, which format FIELDS cannot fill; use STRING, BIGINT, INT, SMALLINT, TINYINT, DOUBLE, FLOAT, DECIMAL, BOOLEAN, DATETIME, DATE, TIMESTAMP, VARCHAR, CHAR or BINARY",
					c.table, col.Name, col.Type.Name())
			}
		}
	default:
		return fmt.Errorf("format %q: must be TEXT, BINARY, CSV or FIELDS", c.format)
	}
	return nil
}

// sameColumns reports whether c and o convert every record alike: both are
// built from one spec (newConverter's table, mc and loc) and their columns
// agree in what conversion reads (name, type, NOT NULL).
func (c *converter) sameColumns(o *converter) bool {
	if c.table != o.table || c.mode != o.mode || c.format != o.format || c.loc != o.loc || c.anyPartitions != o.anyPartitions || len(c.cols) != len(o.cols) {
		return false
	}
	for i, col := range c.cols {
		oc := o.cols[i]
		if col.Name != oc.Name || col.NotNull != oc.NotNull || col.Type.ID() != oc.Type.ID() || col.Type.Name() != oc.Type.Name() {
			return false
		}
	}
	return true
}

func hasType(col tableschema.Column, ids []datatype.TypeID) bool {
	for _, id := range ids {
		if col.Type.ID() == id {
			return true
		}
	}
	return false
}

func csvType(id datatype.TypeID) bool {
	switch id {
	case datatype.STRING, datatype.VARCHAR, datatype.CHAR, datatype.BINARY,
		datatype.BIGINT, datatype.INT, datatype.SMALLINT, datatype.TINYINT,
		datatype.DOUBLE, datatype.FLOAT, datatype.DECIMAL, datatype.BOOLEAN,
		datatype.DATETIME, datatype.DATE, datatype.TIMESTAMP:
		return true
	}
	return false
}

// describeSchema renders "(a STRING, b BIGINT) PARTITIONED BY (pt STRING)".
func describeSchema(s tableschema.TableSchema) string {
	out := "(" + describeColumns(s.Columns) + ")"
	if len(s.PartitionColumns) > 0 {
		out += " PARTITIONED BY (" + describeColumns(s.PartitionColumns) + ")"
	}
	return out
}

func describeColumns(cols []tableschema.Column) string {
	parts := make([]string, len(cols))
	for i, col := range cols {
		parts[i] = col.Name + " " + col.Type.Name()
	}
	return strings.Join(parts, ", ")
}

// row converts r. It returns the row and its approximate encoded size, or a
// *sink.RejectError naming the record and the rule it breaks.
func (c *converter) row(r *transform.Record) (data.Record, int64, error) {
	switch c.format {
	case connector.FormatCSV:
		return c.csvRow(r)
	case connector.FormatFields:
		return c.fieldsRow(r)
	}
	row := make(data.Record, len(defaultColumns))
	row[0] = data.String(r.Topic)
	row[1] = data.BigInt(r.Partition)
	row[2] = data.BigInt(r.Offset)
	size := int64(len(r.Topic)) + 24
	if c.mode != connector.ModeValue && r.Key != nil {
		v, err := c.bytesField(r, "key", r.Key, c.cols[3])
		if err != nil {
			return nil, 0, err
		}
		row[3], size = v, size+int64(len(r.Key))
	}
	if c.mode != connector.ModeKey && r.Value != nil {
		v, err := c.bytesField(r, "value", r.Value, c.cols[4])
		if err != nil {
			return nil, 0, err
		}
		row[4], size = v, size+int64(len(r.Value))
	}
	return row, size, nil
}

// accept returns the error row would return for r, without building the
// row when it need not: for formats TEXT and BINARY only the UTF-8 checks
// of row can fail, so they are all it runs; CSV and FIELDS convert the row
// (their checks are the conversion) and drop it.
func (c *converter) accept(r *transform.Record) error {
	switch c.format {
	case connector.FormatText:
		if c.mode != connector.ModeValue && r.Key != nil && !utf8.Valid(r.Key) {
			return c.invalidUTF8(r, "key")
		}
		if c.mode != connector.ModeKey && r.Value != nil && !utf8.Valid(r.Value) {
			return c.invalidUTF8(r, "value")
		}
		return nil
	case connector.FormatBinary:
		return nil
	}
	_, _, err := c.row(r)
	return err
}

func (c *converter) invalidUTF8(r *transform.Record, what string) error {
	return c.reject(r, "%s is not valid UTF-8: format TEXT takes UTF-8 text only (use format BINARY for raw bytes)", what)
}

// bytesField is a key or value as a STRING or BINARY column value. The
// value shares b's memory instead of copying it: a row lives only until
// the writer has encoded it (RecordProtocWriter.Write copies what it
// sends and keeps nothing), and b, the record's key or value, is not
// modified meanwhile. A row that outlives the record must not be built
// this way.
func (c *converter) bytesField(r *transform.Record, what string, b []byte, col tableschema.Column) (data.Data, error) {
	if c.format == connector.FormatText && !utf8.Valid(b) {
		return nil, c.invalidUTF8(r, what)
	}
	if col.Type.ID() == datatype.BINARY {
		return data.Binary(b), nil
	}
	return data.String(unsafe.String(unsafe.SliceData(b), len(b))), nil // MaxCompute STRING holds any bytes
}

func (c *converter) csvRow(r *transform.Record) (data.Record, int64, error) {
	what, src := "value", r.Value
	if c.mode == connector.ModeKey {
		what, src = "key", r.Key
	}
	if src == nil {
		return nil, 0, c.reject(r, "%s is null: format CSV needs %d comma-separated fields", what, len(c.cols))
	}
	if !utf8.Valid(src) {
		return nil, 0, c.reject(r, "%s is not valid UTF-8: format CSV takes UTF-8 text only", what)
	}
	fields := strings.Split(string(src), ",")
	if len(fields) != len(c.cols) {
		return nil, 0, c.reject(r, "%s has %d comma-separated fields, table %s has %d columns (%s)",
			what, len(fields), c.table, len(c.cols), describeColumns(c.cols))
	}
	row := make(data.Record, len(c.cols))
	for i, f := range fields {
		col := c.cols[i]
		v, err := c.field(f, col)
		if err != nil {
			return nil, 0, c.reject(r, "%s field %d %q for column %s %s: %v", what, i, transform.ShortPrefix([]byte(f), 64), col.Name, col.Type.Name(), err)
		}
		row[i] = v
	}
	return row, int64(len(src) + 4*len(c.cols)), nil
}

// Layouts CSV DATETIME, DATE and TIMESTAMP fields may use; times without an
// offset are read in the spec's time zone.
var (
	datetimeLayouts  = []string{"2006-01-02 15:04:05", time.RFC3339}
	timestampLayouts = []string{"2006-01-02 15:04:05.999999999", time.RFC3339Nano}
)

// field converts one CSV field to col's type. An empty field is NULL for
// every type but STRING, VARCHAR, CHAR and BINARY, where it is "".
func (c *converter) field(f string, col tableschema.Column) (data.Data, error) {
	t := col.Type
	switch t.ID() {
	case datatype.STRING:
		return data.String(f), nil
	case datatype.BINARY:
		return data.Binary(f), nil
	case datatype.VARCHAR:
		return data.MakeVarChar(t.(datatype.VarcharType).Length, f)
	case datatype.CHAR:
		return data.MakeChar(t.(datatype.CharType).Length, f)
	}
	s := strings.TrimSpace(f)
	if s == "" {
		if col.NotNull {
			return nil, fmt.Errorf("empty, and the column is NOT NULL")
		}
		return nil, nil
	}
	switch t.ID() {
	case datatype.BIGINT, datatype.INT, datatype.SMALLINT, datatype.TINYINT:
		bits := map[datatype.TypeID]int{datatype.BIGINT: 64, datatype.INT: 32, datatype.SMALLINT: 16, datatype.TINYINT: 8}[t.ID()]
		n, err := strconv.ParseInt(s, 10, bits)
		if err != nil {
			return nil, fmt.Errorf("not a %d-bit integer", bits)
		}
		switch t.ID() {
		case datatype.INT:
			return data.Int(n), nil
		case datatype.SMALLINT:
			return data.SmallInt(n), nil
		case datatype.TINYINT:
			return data.TinyInt(n), nil
		}
		return data.BigInt(n), nil
	case datatype.DOUBLE:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("not a number")
		}
		return data.Double(x), nil
	case datatype.FLOAT:
		x, err := strconv.ParseFloat(s, 32)
		if err != nil {
			return nil, fmt.Errorf("not a 32-bit number")
		}
		return data.Float(x), nil
	case datatype.DECIMAL:
		if _, ok := new(big.Rat).SetString(s); !ok {
			return nil, fmt.Errorf("not a decimal number")
		}
		d := t.(datatype.DecimalType)
		return data.NewDecimal(int(d.Precision), int(d.Scale), s), nil
	case datatype.BOOLEAN:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("not a boolean (true/false/1/0)")
		}
		return data.Bool(b), nil
	case datatype.DATETIME:
		tm, err := c.parseTime(s, datetimeLayouts)
		if err != nil {
			return nil, fmt.Errorf("not a datetime like 2020-11-17 14:05:00")
		}
		return data.DateTime(tm), nil
	case datatype.TIMESTAMP:
		tm, err := c.parseTime(s, timestampLayouts)
		if err != nil {
			return nil, fmt.Errorf("not a timestamp like 2020-11-17 14:05:00.123")
		}
		return data.Timestamp(tm), nil
	case datatype.DATE:
		d, err := data.NewDate(s)
		if err != nil {
			return nil, fmt.Errorf("not a date like 2020-11-17")
		}
		return d, nil
	}
	return nil, fmt.Errorf("type %s is not supported by format CSV", t.Name())
}

func (c *converter) parseTime(s string, layouts []string) (time.Time, error) {
	var err error
	for _, l := range layouts {
		var t time.Time
		if t, err = time.ParseInLocation(l, s, c.loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}

func (c *converter) reject(r *transform.Record, format string, args ...any) error {
	return sink.Reject("convert", fmt.Errorf("topic %s partition %d offset %d: "+format,
		append([]any{r.Topic, r.Partition, r.Offset}, args...)...))
}
