package window

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		typ  string
		in   []byte
		want any
		err  string
	}{
		{TypeByteArray, []byte{0, 1, 0xff}, []byte{0, 1, 0xff}, ""},
		{TypeByteArray, []byte{}, []byte{}, ""},
		{TypeString, []byte("héllo"), "héllo", ""},
		{TypeString, []byte{0xff}, nil, "STRING needs UTF-8 text"},
		{TypeShort, []byte{0xff, 0xfe}, int16(-2), ""},
		{TypeShort, []byte{1, 2, 3}, nil, "SHORT needs 2 bytes, the record has 3"},
		{TypeInteger, []byte{0, 0, 1, 0}, int32(256), ""},
		{TypeInteger, []byte{0x80, 0, 0, 0}, int32(math.MinInt32), ""},
		{TypeInteger, []byte{1}, nil, "INTEGER needs 4 bytes"},
		{TypeLong, []byte{0, 0, 0, 0, 0, 0, 0x30, 0x39}, int64(12345), ""},
		{TypeLong, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, int64(-1), ""},
		{TypeLong, []byte("12345"), nil, "LONG needs 8 bytes, the record has 5"},
		{TypeFloat, []byte{0x3f, 0xc0, 0, 0}, float32(1.5), ""},
		{TypeFloat, []byte{0, 0}, nil, "FLOAT needs 4 bytes"},
		{TypeDouble, []byte{0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18}, math.Pi, ""},
		{TypeDouble, []byte{0x3f, 0xc0, 0, 0}, nil, "DOUBLE needs 8 bytes"},
		{"JSON", []byte("{}"), nil, `type "JSON": must be one of BYTEARRAY, DOUBLE, FLOAT, INTEGER, LONG, SHORT, STRING`},
	} {
		got, err := Decode(tc.typ, tc.in)
		if tc.err != "" {
			require.Error(t, err, tc.typ)
			require.Contains(t, err.Error(), tc.err)
			continue
		}
		require.NoError(t, err, tc.typ)
		require.Equal(t, tc.want, got, tc.typ)
	}
	// A null key or value is nil for every type.
	for _, typ := range ValueTypes {
		got, err := Decode(typ, nil)
		require.NoError(t, err)
		require.Nil(t, got, typ)
	}
}
