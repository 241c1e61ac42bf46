package wasm

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// rawModule assembles a small WebAssembly binary by hand, so that the tests
// can drive the ABI exactly (wrong sizes, bad pointers, malformed outputs,
// traps) without a guest SDK in the way.
type rawModule struct {
	types   []rawType
	imports []rawImport // function imports; they take the first indices
	funcs   []rawFunc
	memMin  uint32 // pages; the memory is always defined and exported as "memory"
	noMem   bool   // define no memory at all
	exports []rawExport
	data    []rawData
}

type rawType struct{ params, results []byte }

type rawImport struct {
	module, name string
	typ          uint32
}

type rawFunc struct {
	typ  uint32
	body []byte // instructions, without the final end
}

type rawExport struct {
	name string
	fn   uint32 // function index
}

type rawData struct {
	offset uint32
	bytes  []byte
}

const (
	i32 = 0x7f

	opUnreachable = 0x00
	opIf          = 0x04
	opEnd         = 0x0b
	opBr          = 0x0c
	opLoop        = 0x03
	opCall        = 0x10
	opDrop        = 0x1a
	opLocalGet    = 0x20
	opI32Load     = 0x28
	opI32Store    = 0x36
	opMemoryGrow  = 0x40
	opI32Const    = 0x41
	opI32Eq       = 0x46
	opI32Sub      = 0x6b
	blockVoid     = 0x40
)

// Instruction helpers.
func i32Const(v int32) []byte { return sleb128([]byte{opI32Const}, int64(v)) }

// sleb128 appends v in signed LEB128, wasm's encoding of constants.
func sleb128(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func callFn(idx uint32) []byte { return binary.AppendUvarint([]byte{opCall}, uint64(idx)) }

func localGet(idx uint32) []byte { return binary.AppendUvarint([]byte{opLocalGet}, uint64(idx)) }

func ops(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case byte:
			b = append(b, p)
		case int:
			b = append(b, byte(p))
		case []byte:
			b = append(b, p...)
		default:
			panic("ops: unknown part")
		}
	}
	return b
}

func (m rawModule) bytes() []byte {
	out := []byte("\x00asm\x01\x00\x00\x00")
	section := func(id byte, count int, body []byte) {
		if count == 0 {
			return
		}
		content := binary.AppendUvarint(nil, uint64(count))
		content = append(content, body...)
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(content)))
		out = append(out, content...)
	}
	name := func(b []byte, s string) []byte {
		return append(binary.AppendUvarint(b, uint64(len(s))), s...)
	}
	vec := func(b, items []byte) []byte {
		return append(binary.AppendUvarint(b, uint64(len(items))), items...)
	}

	var types []byte
	for _, t := range m.types {
		types = append(types, 0x60)
		types = vec(types, t.params)
		types = vec(types, t.results)
	}
	section(1, len(m.types), types)

	var imports []byte
	for _, im := range m.imports {
		imports = name(imports, im.module)
		imports = name(imports, im.name)
		imports = append(imports, 0x00)
		imports = binary.AppendUvarint(imports, uint64(im.typ))
	}
	section(2, len(m.imports), imports)

	var funcs []byte
	for _, f := range m.funcs {
		funcs = binary.AppendUvarint(funcs, uint64(f.typ))
	}
	section(3, len(m.funcs), funcs)

	if !m.noMem {
		section(5, 1, binary.AppendUvarint([]byte{0x00}, uint64(m.memMin)))
	}

	var exports []byte
	n := len(m.exports)
	for _, e := range m.exports {
		exports = name(exports, e.name)
		exports = append(exports, 0x00)
		exports = binary.AppendUvarint(exports, uint64(e.fn))
	}
	if !m.noMem {
		exports = name(exports, "memory")
		exports = append(exports, 0x02, 0x00)
		n++
	}
	section(7, n, exports)

	var code []byte
	for _, f := range m.funcs {
		body := append([]byte{0x00}, f.body...) // no locals
		body = append(body, opEnd)
		code = vec(code, body)
	}
	section(10, len(m.funcs), code)

	var data []byte
	for _, d := range m.data {
		data = append(data, 0x00)
		data = append(data, i32Const(int32(d.offset))...)
		data = append(data, opEnd)
		data = vec(data, d.bytes)
	}
	section(11, len(m.data), data)
	return out
}

// The function types and imports every ABI module below uses.
var (
	typeVoid    = rawType{}
	typeI32I32  = rawType{params: []byte{i32}, results: []byte{i32}}
	typePtrLen  = rawType{params: []byte{i32, i32}, results: []byte{i32}}
	abiImports  = []rawImport{{"dumpflow", "read_input", 2}, {"dumpflow", "write_output", 2}, {"dumpflow", "set_error", 2}}
	fnReadInput = uint32(0)
	fnWrite     = uint32(1)
	fnSetError  = uint32(2)
)

// abiModule is a version-1 module whose dumpflow_on_record(size) runs body
// (local 0 is size); more functions may follow (indices from 5).
func abiModule(body []byte, more ...rawFunc) rawModule {
	m := rawModule{
		types:   []rawType{typeVoid, typeI32I32, typePtrLen},
		imports: slices.Clone(abiImports),
		funcs:   append([]rawFunc{{typ: 0}, {typ: 1, body: body}}, more...),
		memMin:  1,
		exports: []rawExport{{exportVersion, 3}, {exportOnRecord, 4}},
	}
	return m
}

// writeModule writes m to a file of the test's and returns its path.
func writeModule(t testing.TB, m rawModule) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "m.wasm")
	if err := os.WriteFile(p, m.bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
