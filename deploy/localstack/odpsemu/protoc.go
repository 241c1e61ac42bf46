package odpsemu

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// The tunnel record stream ("protoc" format) as the SDK writes it in
// tunnel/record_protoc_writer.go and reads it in tunnel/record_protoc_reader.go:
//
//	record  := field* tag(EndRecord, varint) varint(uint32 recordCRC)
//	field   := tag(columnIndex, wireType) value      columnIndex is 1-based; NULLs are omitted
//	trailer := tag(MetaCount, varint) zigzag(recordCount) tag(MetaChecksum, varint) varint(uint32 crcOfCRCs)
//	stream  := record* trailer
//
// Values: BIGINT and DATETIME (epoch milliseconds) are zigzag varints, BOOLEAN is a varint 0/1,
// DOUBLE is fixed64, STRING and BINARY are length-delimited bytes.
//
// CRCs are CRC32C (Castagnoli), as tunnel/crc32_checksum.go computes them: the record CRC is
// updated, for every non-NULL field, with the column index as a little-endian int32 and then
// the value (int64 little-endian for BIGINT/DATETIME, 1 byte for BOOLEAN, IEEE bits little-endian
// for DOUBLE, raw bytes for STRING/BINARY), and reset after each record. The stream checksum is
// the CRC32C of every record CRC written as a little-endian uint32.
const (
	tagMetaCount    = protowire.Number(33554430) // 2^25-2, tunnel/protoc_common.go MetaCount
	tagMetaChecksum = protowire.Number(33554431) // 2^25-1, MetaChecksum
	tagEndRecord    = protowire.Number(33553408) // 2^25-1024, EndRecord
)

// maxFieldSize is the MaxFieldSize the emulator reports in upload sessions (8 MiB, the
// service's default limit for one STRING/BINARY value).
const maxFieldSize = 8 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type crc32c struct{ v uint32 }

func (c *crc32c) bytes(b []byte) { c.v = crc32.Update(c.v, castagnoli, b) }

func (c *crc32c) uint32(v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	c.bytes(b[:])
}

func (c *crc32c) uint64(v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	c.bytes(b[:])
}

func (c *crc32c) bool(v bool) {
	if v {
		c.bytes([]byte{1})
	} else {
		c.bytes([]byte{0})
	}
}

// wireType is the protobuf wire type the SDK uses for a column type
// (RecordProtocWriter.writeFieldTag).
func wireType(colType string) protowire.Type {
	switch colType {
	case typeBigint, typeDatetime, typeBoolean:
		return protowire.VarintType
	case typeDouble:
		return protowire.Fixed64Type
	default:
		return protowire.BytesType
	}
}

// streamError is a problem with an uploaded record stream. corrupt distinguishes a checksum or
// count mismatch (the bytes were damaged) from a stream that does not parse against the
// table schema.
type streamError struct {
	corrupt bool
	msg     string
}

func (e *streamError) Error() string { return e.msg }

func malformed(format string, args ...any) error {
	return &streamError{msg: fmt.Sprintf(format, args...)}
}

func corrupted(format string, args ...any) error {
	return &streamError{corrupt: true, msg: fmt.Sprintf(format, args...)}
}

// decodeBlock reads one uploaded block, verifying every record CRC, the record count and the
// stream checksum, and calls emit for each record. It returns the number of records.
func decodeBlock(r io.Reader, cols []Column, emit func(row) error) (int64, error) {
	d := blockDecoder{r: bufio.NewReader(sourceReader{r}), cols: cols}
	return d.run(emit)
}

// sourceError is a failure of the reader under the decoder (the connection or the
// decompressor), as opposed to a stream that does not parse.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

type sourceReader struct{ r io.Reader }

func (s sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = &sourceError{err}
	}
	return n, err
}

type blockDecoder struct {
	r        *bufio.Reader
	cols     []Column
	count    int64
	crc      crc32c
	crcOfCRC crc32c
}

func (d *blockDecoder) run(emit func(row) error) (int64, error) {
	cur := make(row, len(d.cols))
	resetRow(cur)
	inRecord := false
	for {
		num, typ, err := d.tag()
		if errors.Is(err, io.EOF) {
			return 0, malformed("unexpected end of stream after %d records: missing record count and checksum", d.count)
		}
		if err != nil {
			return 0, err
		}
		switch num {
		case tagEndRecord:
			v, err := d.varint()
			if err != nil {
				return 0, err
			}
			if uint32(v) != d.crc.v {
				return 0, corrupted("checksum mismatch in record %d: the data stream was corrupted", d.count+1)
			}
			d.crcOfCRC.uint32(d.crc.v)
			d.crc = crc32c{}
			if err := emit(cur); err != nil {
				return 0, err
			}
			d.count++
			cur = make(row, len(d.cols))
			resetRow(cur)
			inRecord = false
		case tagMetaCount:
			if inRecord {
				return 0, malformed("record %d is not terminated", d.count+1)
			}
			return d.count, d.trailer()
		default:
			if err := d.field(cur, num, typ); err != nil {
				return 0, err
			}
			inRecord = true
		}
	}
}

func resetRow(r row) {
	for i := range r {
		r[i] = cell{Null: true}
	}
}

func (d *blockDecoder) field(cur row, num protowire.Number, typ protowire.Type) error {
	if num < 1 || int(num) > len(d.cols) {
		return malformed("record %d has field %d but the table has %d columns: record does not match the table schema",
			d.count+1, num, len(d.cols))
	}
	col := d.cols[num-1]
	if want := wireType(col.Type); typ != want {
		return malformed("record %d: column %s is %s but the value has protobuf wire type %d (want %d): record does not match the table schema",
			d.count+1, col.Name, col.Type, typ, want)
	}
	d.crc.uint32(uint32(num))
	var c cell
	switch col.Type {
	case typeBigint, typeDatetime:
		v, err := d.varint()
		if err != nil {
			return err
		}
		c.Int = protowire.DecodeZigZag(v)
		d.crc.uint64(uint64(c.Int))
	case typeBoolean:
		v, err := d.varint()
		if err != nil {
			return err
		}
		b := protowire.DecodeBool(v)
		if b {
			c.Int = 1
		}
		d.crc.bool(b)
	case typeDouble:
		var b [8]byte
		if _, err := io.ReadFull(d.r, b[:]); err != nil {
			return d.readErr(err)
		}
		bits := binary.LittleEndian.Uint64(b[:])
		c.Float = math.Float64frombits(bits)
		d.crc.uint64(bits)
	default: // STRING, BINARY
		n, err := d.varint()
		if err != nil {
			return err
		}
		if n > maxFieldSize {
			return malformed("record %d: value of column %s is %d bytes, more than the %d byte limit", d.count+1, col.Name, n, maxFieldSize)
		}
		c.Bytes = make([]byte, n)
		if _, err := io.ReadFull(d.r, c.Bytes); err != nil {
			return d.readErr(err)
		}
		d.crc.bytes(c.Bytes)
	}
	cur[num-1] = c
	return nil
}

func (d *blockDecoder) trailer() error {
	v, err := d.varint()
	if err != nil {
		return err
	}
	if n := protowire.DecodeZigZag(v); n != d.count {
		return corrupted("record count mismatch: stream says %d, received %d", n, d.count)
	}
	num, _, err := d.tag()
	if err != nil {
		return d.readErr(err)
	}
	if num != tagMetaChecksum {
		return malformed("expected the stream checksum after the record count, got field %d", num)
	}
	sum, err := d.varint()
	if err != nil {
		return err
	}
	if uint32(sum) != d.crcOfCRC.v {
		return corrupted("stream checksum mismatch: the data stream was corrupted")
	}
	if _, err := d.r.ReadByte(); !errors.Is(err, io.EOF) {
		if err != nil {
			return d.readErr(err)
		}
		return malformed("unexpected data after the stream checksum")
	}
	return nil
}

func (d *blockDecoder) tag() (protowire.Number, protowire.Type, error) {
	v, err := binary.ReadUvarint(d.r)
	if errors.Is(err, io.EOF) {
		return 0, 0, io.EOF
	}
	if err != nil {
		return 0, 0, d.readErr(err)
	}
	num, typ := protowire.DecodeTag(v)
	if num < protowire.MinValidNumber {
		return 0, 0, malformed("invalid protobuf tag %d", v)
	}
	return num, typ, nil
}

func (d *blockDecoder) varint() (uint64, error) {
	v, err := binary.ReadUvarint(d.r)
	if err != nil {
		return 0, d.readErr(err)
	}
	return v, nil
}

// readErr classifies a read failure: a failure of the source (connection, decompressor) is
// passed on; a short stream or an invalid varint is malformed.
func (d *blockDecoder) readErr(err error) error {
	var se *streamError
	var src *sourceError
	switch {
	case errors.As(err, &se), errors.As(err, &src):
		return err
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return malformed("unexpected end of stream in record %d", d.count+1)
	default: // binary.ReadUvarint overflow
		return malformed("invalid varint in record %d: %v", d.count+1, err)
	}
}

// rowEncoder writes records in the tunnel stream format for a download, mirroring
// RecordProtocWriter so that RecordProtocReader's checks pass. Field numbers are 1-based
// positions in cols, the (possibly projected) column list the client asked for.
type rowEncoder struct {
	w        *bufio.Writer
	cols     []Column
	crc      crc32c
	crcOfCRC crc32c
	count    int64
	buf      []byte
}

func newRowEncoder(w io.Writer, cols []Column) *rowEncoder {
	return &rowEncoder{w: bufio.NewWriterSize(w, 64<<10), cols: cols}
}

func (e *rowEncoder) write(r row) error {
	b := e.buf[:0]
	for i, c := range r {
		if c.Null {
			continue
		}
		col := e.cols[i]
		num := protowire.Number(i + 1)
		e.crc.uint32(uint32(num))
		b = protowire.AppendTag(b, num, wireType(col.Type))
		switch col.Type {
		case typeBigint, typeDatetime:
			b = protowire.AppendVarint(b, protowire.EncodeZigZag(c.Int))
			e.crc.uint64(uint64(c.Int))
		case typeBoolean:
			b = protowire.AppendVarint(b, protowire.EncodeBool(c.Int != 0))
			e.crc.bool(c.Int != 0)
		case typeDouble:
			bits := math.Float64bits(c.Float)
			b = protowire.AppendFixed64(b, bits)
			e.crc.uint64(bits)
		default:
			b = protowire.AppendBytes(b, c.Bytes)
			e.crc.bytes(c.Bytes)
		}
	}
	b = protowire.AppendTag(b, tagEndRecord, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(e.crc.v))
	e.crcOfCRC.uint32(e.crc.v)
	e.crc = crc32c{}
	e.count++
	e.buf = b
	_, err := e.w.Write(b)
	return err
}

// finish writes the record count and stream checksum and flushes.
func (e *rowEncoder) finish() error {
	b := protowire.AppendTag(e.buf[:0], tagMetaCount, protowire.VarintType)
	b = protowire.AppendVarint(b, protowire.EncodeZigZag(e.count))
	b = protowire.AppendTag(b, tagMetaChecksum, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(e.crcOfCRC.v))
	if _, err := e.w.Write(b); err != nil {
		return err
	}
	return e.w.Flush()
}
