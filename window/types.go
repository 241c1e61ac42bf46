package window

import (
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"
)

// ValueTypes are the keyType and valueType names (DataWorks Kafka Reader's
// BYTEARRAY, DOUBLE, FLOAT, INTEGER, LONG, SHORT, and STRING).
var ValueTypes = []string{TypeByteArray, TypeDouble, TypeFloat, TypeInteger, TypeLong, TypeShort, TypeString}

// Decode reads a key's or a value's bytes as typ, the way Kafka's own
// serializers wrote them (big-endian, as java.nio.ByteBuffer and
// org.apache.kafka.common.serialization do):
//
//	BYTEARRAY  the bytes as they are ([]byte)
//	STRING     UTF-8 text (string); invalid UTF-8 fails the record
//	SHORT      2 bytes, a signed big-endian integer (int16)
//	INTEGER    4 bytes, a signed big-endian integer (int32)
//	LONG       8 bytes, a signed big-endian integer (int64)
//	FLOAT      4 bytes, a big-endian IEEE 754 single (float32)
//	DOUBLE     8 bytes, a big-endian IEEE 754 double (float64)
//
// A null key or value (nil) is nil for every type. Bytes of another length
// than the type's fail the record (it counts against errorLimit and goes
// to the dead-letter topic); they are never padded or cut.
func Decode(typ string, b []byte) (any, error) {
	if b == nil {
		return nil, nil
	}
	size := func(n int) error {
		if len(b) != n {
			return fmt.Errorf("%s needs %d bytes, the record has %d", typ, n, len(b))
		}
		return nil
	}
	switch typ {
	case TypeByteArray:
		return b, nil
	case TypeString:
		if !utf8.Valid(b) {
			return nil, fmt.Errorf("%s needs UTF-8 text, the record's bytes are not", typ)
		}
		return string(b), nil
	case TypeShort:
		if err := size(2); err != nil {
			return nil, err
		}
		return int16(binary.BigEndian.Uint16(b)), nil
	case TypeInteger:
		if err := size(4); err != nil {
			return nil, err
		}
		return int32(binary.BigEndian.Uint32(b)), nil
	case TypeLong:
		if err := size(8); err != nil {
			return nil, err
		}
		return int64(binary.BigEndian.Uint64(b)), nil
	case TypeFloat:
		if err := size(4); err != nil {
			return nil, err
		}
		return math.Float32frombits(binary.BigEndian.Uint32(b)), nil
	case TypeDouble:
		if err := size(8); err != nil {
			return nil, err
		}
		return math.Float64frombits(binary.BigEndian.Uint64(b)), nil
	}
	return nil, fmt.Errorf("type %q: must be one of BYTEARRAY, DOUBLE, FLOAT, INTEGER, LONG, SHORT, STRING", typ)
}

func validType(t string) bool {
	for _, v := range ValueTypes {
		if v == t {
			return true
		}
	}
	return false
}
