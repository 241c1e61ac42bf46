package wasm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/dumpflow/dumpflow/transform"
)

// Instance is one batch's sandbox: one instantiation of the module, reused
// record after record, and replaced after a call that trapped, exited or
// hit a limit. It is not safe for concurrent use.
type Instance struct {
	fn     *Function
	roots  []*os.Root
	closed bool

	mod         api.Module // nil before the first call and after a discarding failure
	onRecord    api.Function
	mem         *limitedMemory
	stderr      head
	clockMillis int64 // the guest's wall clock, ms since the epoch
	call        call
	input       []byte
	stack       [1]uint64
}

var _ transform.FunctionInstance = (*Instance)(nil)

// call is the state of one dumpflow_on_record call, which the host
// functions reach through the call's context.
type call struct {
	input   []byte
	outputs []decoded
	message string // set by set_error
	failed  bool   // set_error was called
	bad     error  // a malformed or one too many output
}

type callKey struct{}

// Call runs the function on one record. See "A call" in the package doc.
// A *CallError is the record's failure; any other error (the caller's
// context ended, the instance could not be made) is not the record's fault.
func (in *Instance) Call(ctx context.Context, r *transform.Record) ([]*transform.Record, error) {
	if in.closed {
		return nil, errors.New("function instance is closed")
	}
	if in.mod == nil {
		if err := in.instantiate(ctx); err != nil {
			return nil, err
		}
	}

	in.input = appendRecord(in.input[:0], r, r.Value)
	in.call = call{input: in.input, outputs: in.call.outputs[:0]}
	in.clockMillis = 0
	if !r.Timestamp.IsZero() {
		in.clockMillis = r.Timestamp.UnixMilli()
	}
	in.stderr.Reset()

	cctx, cancel := context.WithTimeout(ctx, in.fn.timeout)
	defer cancel()
	in.stack[0] = api.EncodeI32(int32(len(in.input)))
	err := in.onRecord.CallWithStack(context.WithValue(cctx, callKey{}, &in.call), in.stack[:])
	if err != nil {
		return nil, in.failed(ctx, err)
	}
	outs, err := in.result(r, api.DecodeI32(in.stack[0]))
	clear(in.call.outputs) // drop the references to the outputs' bytes
	return outs, err
}

// result is a finished call's outcome: its outputs, which keep r's
// topic, partition, offset and route, or the guest's error.
func (in *Instance) result(r *transform.Record, rc int32) ([]*transform.Record, error) {
	switch {
	case in.call.bad != nil:
		return nil, &CallError{Kind: ErrFunction, Detail: in.call.bad.Error()}
	case in.call.failed:
		return nil, &CallError{Kind: ErrFunction, Detail: in.call.message}
	case rc != 0:
		return nil, &CallError{Kind: ErrFunction, Detail: fmt.Sprintf("%s returned %d", exportOnRecord, rc)}
	case len(in.call.outputs) == 0:
		return nil, nil
	}
	recs := make([]transform.Record, len(in.call.outputs))
	out := make([]*transform.Record, len(recs))
	for i, d := range in.call.outputs {
		recs[i] = *r
		recs[i].Key, recs[i].Value, recs[i].Headers, recs[i].Fields = d.key, d.value, d.headers, nil
		recs[i].Timestamp = d.timestamp
		if !d.timestamp.IsZero() && !r.Timestamp.IsZero() && d.timestamp.UnixMilli() == r.Timestamp.UnixMilli() {
			recs[i].Timestamp = r.Timestamp // with its location and sub-millisecond part
		}
		out[i] = &recs[i]
	}
	return out, nil
}

// instantiate makes the instance's module and runs its _initialize.
func (in *Instance) instantiate(ctx context.Context) error {
	in.mem = &limitedMemory{limit: in.fn.memoryLimit}
	alloc := experimental.MemoryAllocatorFunc(func(capacity, _ uint64) experimental.LinearMemory {
		in.mem.buf = make([]byte, 0, min(capacity, in.mem.limit))
		return in.mem
	})
	in.clockMillis = 0
	in.stderr.Reset()
	ictx, cancel := context.WithTimeout(ctx, in.fn.timeout)
	defer cancel()
	mod, err := in.fn.host.runtime.InstantiateModule(experimental.WithMemoryAllocator(ictx, alloc), in.fn.compiled, in.moduleConfig())
	if err == nil && mod.IsClosed() { // _initialize called proc_exit(0)
		err = sys.NewExitError(0)
	}
	if err != nil {
		return in.classify(ctx, err, "initialisation: ")
	}
	in.mod, in.onRecord = mod, mod.ExportedFunction(exportOnRecord)
	return nil
}

// failed turns an error from a call into the record's failure, discarding
// the module: after a trap its state cannot be trusted.
func (in *Instance) failed(ctx context.Context, err error) error {
	err = in.classify(ctx, err, "")
	in.discard(ctx)
	return err
}

func (in *Instance) classify(ctx context.Context, err error, during string) error {
	if ctx.Err() != nil { // the caller gave up: not the record's fault
		return fmt.Errorf("function call interrupted: %w", ctx.Err())
	}
	stderr := transform.ShortPrefix(bytes.TrimSpace(in.stderr.buf), MaxErrorMessage)
	var exit *sys.ExitError
	isExit := errors.As(err, &exit)
	switch {
	case isExit && exit.ExitCode() == sys.ExitCodeDeadlineExceeded:
		return &CallError{Kind: ErrTimeLimit, Detail: during + "limit " + in.fn.timeout.String(), Stderr: stderr}
	case in.mem != nil && in.mem.refused > 0:
		return &CallError{Kind: ErrMemoryLimit, Stderr: stderr, Detail: fmt.Sprintf("%slimit %s, the guest asked for %s (%s)",
			during, transform.ByteSize(in.mem.limit), transform.ByteSize(in.mem.refused), firstLine(err))}
	case isExit:
		return &CallError{Kind: ErrExit, Detail: fmt.Sprintf("%sexit code %d", during, exit.ExitCode()), Stderr: stderr}
	}
	return &CallError{Kind: ErrTrap, Detail: during + firstLine(err), Stderr: stderr}
}

// firstLine is an error's message without wazero's stack trace.
func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

func (in *Instance) discard(ctx context.Context) {
	if in.mod != nil {
		in.mod.Close(ctx)
		in.mod, in.onRecord, in.mem = nil, nil, nil
	}
}

// Close releases the instance's module and directory handles.
func (in *Instance) Close(ctx context.Context) error {
	if in.closed {
		return nil
	}
	in.closed = true
	in.discard(ctx)
	in.closeRoots()
	return nil
}

func (in *Instance) closeRoots() {
	for _, r := range in.roots {
		r.Close()
	}
	in.roots = nil
}

// Error codes the host functions return (see the package doc).
const (
	errnoTooSmall  = -1
	errnoBounds    = -2
	errnoNoCall    = -3
	errnoMalformed = -4
	errnoTooMany   = -5
)

// hostSignatures are the "dumpflow" imports' types, as signature prints them.
var hostSignatures = map[string]string{
	"read_input":   "(i32, i32) -> (i32)",
	"write_output": "(i32, i32) -> (i32)",
	"set_error":    "(i32, i32) -> (i32)",
}

// hostFunctions defines the "dumpflow" host module's functions on b.
func hostFunctions(b wazero.HostModuleBuilder) wazero.HostModuleBuilder {
	i32x2 := []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}
	i32 := []api.ValueType{api.ValueTypeI32}
	define := func(name string, fn func(c *call, mem api.Memory, ptr, n uint32) int32) {
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
			c, _ := ctx.Value(callKey{}).(*call)
			if c == nil {
				stack[0] = api.EncodeI32(errnoNoCall)
				return
			}
			stack[0] = api.EncodeI32(fn(c, m.Memory(), api.DecodeU32(stack[0]), api.DecodeU32(stack[1])))
		}), i32x2, i32).Export(name)
	}
	define("read_input", readInput)
	define("write_output", writeOutput)
	define("set_error", setError)
	return b
}

func readInput(c *call, mem api.Memory, ptr, n uint32) int32 {
	if uint64(n) < uint64(len(c.input)) {
		return errnoTooSmall
	}
	if !mem.Write(ptr, c.input) {
		return errnoBounds
	}
	return int32(len(c.input))
}

func writeOutput(c *call, mem api.Memory, ptr, n uint32) int32 {
	view, ok := mem.Read(ptr, n)
	if !ok {
		if c.bad == nil {
			c.bad = fmt.Errorf("output record %d: [%d, %d) is outside the guest's memory", len(c.outputs)+1, ptr, uint64(ptr)+uint64(n))
		}
		return errnoBounds
	}
	if len(c.outputs) == MaxOutputs {
		if c.bad == nil {
			c.bad = fmt.Errorf("output record %d: more than %d outputs for one record", len(c.outputs)+1, MaxOutputs)
		}
		return errnoTooMany
	}
	d, err := decodeRecord(bytes.Clone(view))
	if err != nil {
		if c.bad == nil {
			c.bad = fmt.Errorf("output record %d is malformed: %w", len(c.outputs)+1, err)
		}
		return errnoMalformed
	}
	c.outputs = append(c.outputs, d)
	return 0
}

func setError(c *call, mem api.Memory, ptr, n uint32) int32 {
	c.failed = true
	view, ok := mem.Read(ptr, n)
	if !ok {
		c.message = fmt.Sprintf("set_error: [%d, %d) is outside the guest's memory", ptr, uint64(ptr)+uint64(n))
		return errnoBounds
	}
	c.message = transform.ShortPrefix(view, MaxErrorMessage)
	return 0
}
