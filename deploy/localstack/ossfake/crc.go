package ossfake

import "hash/crc64"

// crcTable is the CRC-64/ECMA table OSS and its SDK use (oss.CrcTable).
var crcTable = crc64.MakeTable(crc64.ECMA)

// crc64Combine returns the CRC-64/ECMA of A followed by B, given crc1 of A,
// crc2 of B and len2, B's length, without reading either: the CRC of the
// concatenation is crc1 multiplied by x^(8·len2) modulo the polynomial,
// plus crc2 (the pre- and post-inversion cancel out). This is zlib's
// crc32_combine for 64 bits; it agrees with the SDK's oss.CRC64Combine.
func crc64Combine(crc1, crc2 uint64, len2 int64) uint64 {
	if len2 <= 0 {
		return crc1
	}
	return gfMulModP(x8nModP(uint64(len2)), crc1) ^ crc2
}

// GF(2) polynomials are reflected, as in the CRC: bit 63 is x^0.
const gfOne = uint64(1) << 63

// x2nTable[k] is x^(2^k) modulo the polynomial.
var x2nTable = func() (t [64]uint64) {
	t[0] = gfOne >> 1 // x^1
	for k := 1; k < len(t); k++ {
		t[k] = gfMulModP(t[k-1], t[k-1])
	}
	return t
}()

// gfMulModP returns a·b modulo the CRC polynomial.
func gfMulModP(a, b uint64) uint64 {
	var p uint64
	for m := gfOne; a != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
			a ^= m
		}
		if b&1 != 0 {
			b = b>>1 ^ crc64.ECMA
		} else {
			b >>= 1
		}
	}
	return p
}

// x8nModP returns x^(8·n) modulo the polynomial: the operator that appends
// n zero bytes.
func x8nModP(n uint64) uint64 {
	p := gfOne
	for k := 3; n != 0; k++ {
		if n&1 != 0 {
			p = gfMulModP(x2nTable[k&63], p)
		}
		n >>= 1
	}
	return p
}
