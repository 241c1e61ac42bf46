package odpsemu

import (
	"fmt"
	"strconv"
	"strings"
)

// Column types the emulator stores. Their names are the MaxCompute type names.
const (
	typeString   = "STRING"
	typeBigint   = "BIGINT"
	typeDouble   = "DOUBLE"
	typeBoolean  = "BOOLEAN"
	typeDatetime = "DATETIME"
	typeBinary   = "BINARY"
)

// supportedColumnTypes are the data column types of the supported DDL subset.
var supportedColumnTypes = []string{typeString, typeBigint, typeDouble, typeBoolean, typeDatetime, typeBinary}

// supportedPartitionTypes are the partition column types the emulator accepts.
var supportedPartitionTypes = []string{typeString, typeBigint}

// Column is one column of a table schema.
type Column struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Comment string `json:"comment,omitempty"`
	NotNull bool   `json:"notNull,omitempty"`
}

// cell is one stored value. Which field holds the value depends on the column type:
// Int for BIGINT, DATETIME (milliseconds since the epoch) and BOOLEAN (0 or 1), Float for
// DOUBLE, Bytes for STRING and BINARY.
type cell struct {
	Null  bool
	Int   int64
	Float float64
	Bytes []byte
}

// row is one record, one cell per data column in schema order.
type row []cell

func isSupportedType(types []string, t string) bool {
	for _, s := range types {
		if s == t {
			return true
		}
	}
	return false
}

// partKV is one level of a partition spec.
type partKV struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// partSpec is a partition spec, ordered like the table's partition columns.
type partSpec []partKV

// name renders the spec the way the REST API names partitions: "pt=a/region=b".
func (p partSpec) name() string {
	parts := make([]string, len(p))
	for i, kv := range p {
		parts[i] = kv.Key + "=" + kv.Value
	}
	return strings.Join(parts, "/")
}

// sql renders the spec as in DDL: "pt='a',region='b'".
func (p partSpec) sql() string {
	parts := make([]string, len(p))
	for i, kv := range p {
		parts[i] = fmt.Sprintf("%s='%s'", kv.Key, kv.Value)
	}
	return strings.Join(parts, ",")
}

// parsePartitionSpec parses the partition specs clients send: "pt=a,region=b" (tunnel,
// Java style), "pt=a/region=b" (REST partition names) or "pt='a',region='b'" (DDL style).
// Keys are lower-cased; values keep their case.
func parsePartitionSpec(raw string) (partSpec, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, nil
	}
	fields := strings.FieldsFunc(raw, func(r rune) bool { return r == ',' || r == '/' })
	spec := make(partSpec, 0, len(fields))
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		k = strings.ToLower(strings.Trim(strings.TrimSpace(k), "`"))
		v = strings.Trim(strings.TrimSpace(v), `'"`)
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("invalid partition spec %q", raw)
		}
		spec = append(spec, partKV{Key: k, Value: v})
	}
	return spec, nil
}

// validatePartitionValue checks a value against its partition column type.
func validatePartitionValue(col Column, value string) error {
	if col.Type == typeBigint {
		if _, err := strconv.ParseInt(value, 10, 64); err != nil {
			return fmt.Errorf("value %q of partition column %s is not a BIGINT", value, col.Name)
		}
	}
	return nil
}
