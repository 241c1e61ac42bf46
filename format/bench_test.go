package format_test

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/dumpflow/dumpflow/format"
	"github.com/dumpflow/dumpflow/transform"
)

// value512 is a 512-byte JSON object like the seed's events.
func value512(i int) []byte {
	v := fmt.Sprintf(`{"version":1,"componentName":"trade","timestamp":%d,"eventId":%d,"returnValue":-1,"returnCode":101103,"returnMessage":"return has no deal return error[错误: 缺少 **c 参数][seqId:u3Becr8iz*]","seqId":"@kibana-highlighted-field@u3Becr8iz@/kibana-highlighted-field@*","host":"10.0.%d.%d","note":"`,
		1595944295+i, 9128499+i, i%250, i%200)
	v += strings.Repeat("x", 512-len(v)-2) + `"}`
	return []byte(v)
}

// benchRecords is n records of 512-byte JSON values; with fields, each
// also carries its value parsed (as a transform step leaves it).
func benchRecords(b *testing.B, n int, fields bool) []*transform.Record {
	recs := make([]*transform.Record, n)
	for i := range recs {
		v := value512(i)
		if len(v) != 512 {
			b.Fatalf("value of %d bytes", len(v))
		}
		recs[i] = &transform.Record{Topic: "orders", Partition: 3, Offset: int64(i), Timestamp: ts, Key: []byte(fmt.Sprintf("key-%d", i)), Value: v,
			Headers: []transform.Header{{Key: "trace", Value: []byte("abc")}}}
		if fields {
			o, err := transform.ParseJSON(v)
			if err != nil {
				b.Fatal(err)
			}
			recs[i].Fields = o.(*transform.Object)
		}
	}
	return recs
}

// benchEncode encodes b.N records (an object every 10,000) and reports
// records/s; allocs/op is per record.
func benchEncode(b *testing.B, spec format.Spec, fields bool) {
	recs := benchRecords(b, 10_000, fields)
	b.SetBytes(512)
	b.ReportAllocs()
	b.ResetTimer()
	var e format.Encoder
	for i := range b.N {
		if i%len(recs) == 0 {
			if e != nil {
				if err := e.Close(); err != nil {
					b.Fatal(err)
				}
			}
			var err error
			if e, err = format.New(spec, io.Discard); err != nil {
				b.Fatal(err)
			}
		}
		if err := e.Write(recs[i%len(recs)]); err != nil {
			b.Fatal(err)
		}
	}
	if err := e.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkJSONL(b *testing.B) {
	b.Run("value", func(b *testing.B) { benchEncode(b, format.Spec{Type: "jsonl"}, false) })
	b.Run("fields", func(b *testing.B) { benchEncode(b, format.Spec{Type: "jsonl"}, true) })
	b.Run("value-gzip", func(b *testing.B) { benchEncode(b, format.Spec{Type: "jsonl", Compression: "gzip"}, false) })
	b.Run("value-zstd", func(b *testing.B) { benchEncode(b, format.Spec{Type: "jsonl", Compression: "zstd"}, false) })
}

func BenchmarkParquet(b *testing.B) {
	b.Run("fields", func(b *testing.B) { benchEncode(b, format.Spec{Type: "parquet"}, true) })
	b.Run("fields-zstd", func(b *testing.B) { benchEncode(b, format.Spec{Type: "parquet", Compression: "zstd"}, true) })
	b.Run("envelope", func(b *testing.B) { benchEncode(b, format.Spec{Type: "parquet"}, false) })
}

func BenchmarkRaw(b *testing.B) {
	b.Run("value", func(b *testing.B) { benchEncode(b, format.Spec{}, false) })
}
