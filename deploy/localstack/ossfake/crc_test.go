package ossfake

import (
	"hash/crc64"
	"math/rand/v2"
	"testing"

	"github.com/aliyun/aliyun-oss-go-sdk/oss"
)

func TestCRC64Combine(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	for _, n := range []int{0, 1, 7, 8, 9, 100, 4096, 100 << 10, 1 << 20, 3 << 20} {
		for _, cut := range []int{0, 1, n / 3, n / 2, n - 1, n} {
			if cut < 0 || cut > n {
				continue
			}
			a, b := data[:cut], data[cut:n]
			ca, cb := crc64.Checksum(a, crcTable), crc64.Checksum(b, crcTable)
			want := crc64.Checksum(data[:n], crcTable)
			if got := crc64Combine(ca, cb, int64(len(b))); got != want {
				t.Errorf("n=%d cut=%d: crc64Combine = %x, want %x", n, cut, got, want)
			}
			if sdk := oss.CRC64Combine(ca, cb, uint64(len(b))); sdk != want {
				t.Errorf("n=%d cut=%d: oss.CRC64Combine = %x, want %x", n, cut, sdk, want)
			}
		}
	}
}
