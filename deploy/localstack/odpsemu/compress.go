package odpsemu

import (
	"compress/zlib"
	"fmt"
	"io"
	"strings"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/zstd"
)

// Content encodings of tunnel bodies, as named by the SDK's compressors (tunnel/compressor.go):
// "deflate" is zlib (RFC 1950) framing, "x-snappy-framed" the snappy framing format, "zstd" a
// zstd stream. The SDK sends Content-Encoding on block uploads and Accept-Encoding on
// downloads, and decodes a download by the response's Content-Encoding (WrapByCompressor).
const (
	encodingDeflate = "deflate"
	encodingSnappy  = "x-snappy-framed"
	encodingZstd    = "zstd"
)

// decodingReader undoes the Content-Encoding of an uploaded block.
func decodingReader(contentEncoding string, r io.Reader) (io.ReadCloser, error) {
	switch enc := strings.ToLower(strings.TrimSpace(contentEncoding)); enc {
	case "", "identity":
		return io.NopCloser(r), nil
	case encodingDeflate:
		zr, err := zlib.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("open deflate stream: %w", err)
		}
		return zr, nil
	case encodingSnappy:
		return io.NopCloser(snappy.NewReader(r)), nil
	case encodingZstd:
		zr, err := zstd.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("open zstd stream: %w", err)
		}
		return zr.IOReadCloser(), nil
	default:
		return nil, fmt.Errorf("unsupported Content-Encoding %q (supported: %s, %s, %s)",
			contentEncoding, encodingDeflate, encodingSnappy, encodingZstd)
	}
}

// encodingWriter picks the first encoding of Accept-Encoding the emulator can produce and
// returns its name ("" for none) and a writer that must be closed to flush the stream.
func encodingWriter(acceptEncoding string, w io.Writer) (string, io.WriteCloser) {
	for _, part := range strings.Split(acceptEncoding, ",") {
		name, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		switch strings.ToLower(name) {
		case encodingDeflate:
			return encodingDeflate, zlib.NewWriter(w)
		case encodingSnappy:
			return encodingSnappy, snappy.NewBufferedWriter(w)
		case encodingZstd:
			zw, err := zstd.NewWriter(w)
			if err == nil {
				return encodingZstd, zw
			}
		}
	}
	return "", nopWriteCloser{w}
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
