package wasm

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dumpflow/dumpflow/transform"
)

// TestABI drives the host with hand-assembled modules: each case is the
// body of dumpflow_on_record(size).
func TestABI(t *testing.T) {
	identity := ops(
		i32Const(0), localGet(0), callFn(fnReadInput), opDrop,
		i32Const(0), localGet(0), callFn(fnWrite), opDrop,
		i32Const(0))
	rec := &transform.Record{Topic: "t", Partition: 1, Offset: 9, Timestamp: time.UnixMilli(5), Key: []byte("k"), Value: []byte("v"),
		Headers: []transform.Header{{Key: "h", Value: nil}}, Route: "r"}

	for _, c := range []struct {
		name    string
		module  rawModule
		kind    error  // nil: success
		want    string // in the error
		outputs int
	}{
		{name: "identity", module: abiModule(identity), outputs: 1},
		{name: "read into a short buffer", kind: ErrFunction, want: "dumpflow_on_record returned -1",
			module: abiModule(ops(i32Const(0), localGet(0), i32Const(1), opI32Sub, callFn(fnReadInput)))},
		{name: "read out of bounds", kind: ErrFunction, want: "dumpflow_on_record returned -2",
			module: abiModule(ops(i32Const(65530), localGet(0), callFn(fnReadInput)))},
		{name: "malformed output", kind: ErrFunction, want: "output record 1 is malformed: at byte 0: topic length (4 bytes): ends early, 3 bytes left",
			module: abiModule(ops(i32Const(0), i32Const(3), callFn(fnWrite), opDrop, i32Const(0)))},
		{name: "output out of bounds", kind: ErrFunction, want: "output record 1: [65530, 65630) is outside the guest's memory",
			module: abiModule(ops(i32Const(65530), i32Const(100), callFn(fnWrite), opDrop, i32Const(0)))},
		{name: "set_error then 0", kind: ErrFunction, want: "function returned an error: oops",
			module: func() rawModule {
				m := abiModule(ops(i32Const(1000), i32Const(4), callFn(fnSetError), opDrop, i32Const(0)))
				m.data = []rawData{{1000, []byte("oops")}}
				return m
			}()},
		{name: "non-zero without a message", kind: ErrFunction, want: "function returned an error: dumpflow_on_record returned 7",
			module: abiModule(i32Const(7))},
		{name: "trap", kind: ErrTrap, want: "function trapped: wasm error: unreachable",
			module: abiModule([]byte{opUnreachable})},
		{name: "grow past the limit", kind: ErrMemoryLimit, want: "function exceeded its memory limit: limit 1MiB, the guest asked for 6464KiB",
			module: abiModule(ops(i32Const(100), opMemoryGrow, 0x00, i32Const(-1), opI32Eq, opIf, blockVoid, opUnreachable, opEnd, i32Const(0)))},
		{name: "loop", kind: ErrTimeLimit, want: "function exceeded its time limit: limit 200ms",
			module: abiModule(ops(opLoop, blockVoid, opBr, 0, opEnd, i32Const(0)))},
		{name: "import during _initialize", kind: ErrFunction, want: "dumpflow_on_record returned -3",
			module: func() rawModule {
				// _initialize stores read_input's result at 2000; on_record returns it.
				m := abiModule(ops(i32Const(2000), opI32Load, 2, 0),
					rawFunc{typ: 0, body: ops(i32Const(2000), i32Const(0), i32Const(0), callFn(fnReadInput), opI32Store, 2, 0)})
				m.exports = append(m.exports, rawExport{exportInitialize, 5})
				return m
			}()},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := load(t, transform.FunctionSpec{Module: writeModule(t, c.module), MemoryLimit: 1 << 20, Timeout: transform.Duration(200 * time.Millisecond)})
			in := instance(t, f)
			outs, err := in.Call(context.Background(), rec)
			if c.kind == nil {
				if err != nil || len(outs) != c.outputs {
					t.Fatalf("got %d records, %v; want %d", len(outs), err, c.outputs)
				}
				if !reflect.DeepEqual(*outs[0], *rec) {
					t.Errorf("got %s, want %s", show(outs[0]), show(rec))
				}
				return
			}
			if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %v with %q", err, c.kind, c.want)
			}
		})
	}
}

func TestLoadABIErrors(t *testing.T) {
	h, err := testHost()
	if err != nil {
		t.Fatal(err)
	}
	with := func(edit func(*rawModule)) rawModule {
		m := abiModule(i32Const(0))
		edit(&m)
		return m
	}
	for _, c := range []struct {
		name   string
		module rawModule
		limit  transform.ByteSize
		want   string
	}{
		{"command", with(func(m *rawModule) { m.exports = append(m.exports, rawExport{exportStart, 3}) }),
			0, "exports _start: a WASI command exits when its main returns; build a reactor (Go: -buildmode=c-shared)"},
		{"no on_record", with(func(m *rawModule) { m.exports = m.exports[:1] }), 0, "exports no dumpflow_on_record"},
		{"on_record type", with(func(m *rawModule) { m.exports[1].fn = 3 }), 0, "export dumpflow_on_record has type () -> (), want (i32) -> i32"},
		{"foreign import", with(func(m *rawModule) { m.imports[2] = rawImport{"env", "abort", 2} }),
			0, `imports env.abort: a function may import only from "dumpflow" and "wasi_snapshot_preview1"`},
		{"unknown host function", with(func(m *rawModule) { m.imports[2].name = "log" }),
			0, "imports dumpflow.log: the host has no such function (it has read_input, write_output, set_error)"},
		{"host function type", with(func(m *rawModule) { m.imports[0].typ = 1 }),
			0, "imports dumpflow.read_input with type (i32) -> (i32), want (i32, i32) -> (i32)"},
		{"no memory", with(func(m *rawModule) { m.noMem = true }), 0, `exports no "memory" memory`},
		{"initial memory", with(func(m *rawModule) { m.memMin = 20 }), 1 << 20, "initial memory of 1280KiB is more than memoryLimit 1MiB"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := h.Load(transform.FunctionSpec{Module: writeModule(t, c.module), MemoryLimit: c.limit})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
	}
}
