package oss

import (
	"errors"
	"hash/crc64"
	"io"
	"sync"
)

// chunkSize is the unit an object buffer grows by.
const chunkSize = 1 << 20

var chunkPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// crcTable is the CRC-64 (ECMA-182) table OSS and its SDK use for
// x-oss-hash-crc64ecma.
var crcTable = crc64.MakeTable(crc64.ECMA)

// buffer holds an object's body in 1 MiB chunks taken from a pool, so it
// grows with the data without copying what it holds, and keeps the body's
// CRC-64 as it is written.
type buffer struct {
	chunks [][]byte // each chunkSize long; the last holds n%chunkSize bytes
	n      int64
	crc    uint64
}

func (b *buffer) Write(p []byte) (int, error) {
	b.crc = crc64.Update(b.crc, crcTable, p)
	written := len(p)
	for len(p) > 0 {
		off := int(b.n % chunkSize)
		if off == 0 && int64(len(b.chunks))*chunkSize == b.n {
			b.chunks = append(b.chunks, *(chunkPool.Get().(*[]byte)))
		}
		c := copy(b.chunks[len(b.chunks)-1][off:], p)
		p = p[c:]
		b.n += int64(c)
	}
	return written, nil
}

func (b *buffer) WriteByte(c byte) error {
	_, err := b.Write([]byte{c})
	return err
}

// Len is the body's length.
func (b *buffer) Len() int64 { return b.n }

// release returns the chunks to the pool.
func (b *buffer) release() {
	for i := range b.chunks {
		c := b.chunks[i]
		chunkPool.Put(&c)
	}
	b.chunks, b.n, b.crc = nil, 0, 0
}

// reader returns a reader of [off, off+n) of the body. It has Len and Seek,
// so the OSS SDK knows the content length and can rewind on a retry.
func (b *buffer) reader(off, n int64) *sectionReader {
	return &sectionReader{b: b, start: off, end: off + n, pos: off}
}

type sectionReader struct {
	b               *buffer
	start, end, pos int64
}

func (r *sectionReader) Len() int { return int(r.end - r.pos) }

func (r *sectionReader) Read(p []byte) (int, error) {
	if r.pos >= r.end {
		return 0, io.EOF
	}
	total := 0
	for len(p) > 0 && r.pos < r.end {
		c := r.b.chunks[r.pos/chunkSize]
		off := r.pos % chunkSize
		lim := min(int64(len(c)), off+(r.end-r.pos))
		n := copy(p, c[off:lim])
		p = p[n:]
		r.pos += int64(n)
		total += n
	}
	return total, nil
}

func (r *sectionReader) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = r.start + offset
	case io.SeekCurrent:
		abs = r.pos + offset
	case io.SeekEnd:
		abs = r.end + offset
	default:
		return 0, errors.New("seek: bad whence")
	}
	if abs < r.start || abs > r.end {
		return 0, errors.New("seek: out of range")
	}
	r.pos = abs
	return abs - r.start, nil
}
