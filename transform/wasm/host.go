package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/dumpflow/dumpflow/transform"
)

// MaxMemoryLimit is the largest memory limit: wasm32's 4 GiB.
const MaxMemoryLimit = 1 << 32

const wasmPage = 1 << 16

// Export and import names of the ABI (see the package doc).
const (
	exportVersion    = "dumpflow_abi_version_1"
	exportOnRecord   = "dumpflow_on_record"
	exportMemory     = "memory"
	exportInitialize = "_initialize"
	exportStart      = "_start"
	hostModule       = "dumpflow"
)

// Host compiles function modules and makes their instances. One wazero
// runtime serves every module; a module is compiled once per content hash
// and the compiled code is shared by every Function loaded from it. A Host
// is safe for concurrent use.
type Host struct {
	runtime wazero.Runtime

	mu       sync.Mutex
	compiled map[string]*compileResult // by content hash
}

type compileResult struct {
	done chan struct{} // closed when mod and err are set
	mod  wazero.CompiledModule
	err  error
}

// NewHost starts a runtime with the WASI and "dumpflow" host modules.
// Close releases it and every compiled module.
func NewHost(ctx context.Context) (*Host, error) {
	cfg := wazero.NewRuntimeConfig().WithCloseOnContextDone(true)
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("instantiate WASI: %w", err)
	}
	if _, err := hostFunctions(rt.NewHostModuleBuilder(hostModule)).Instantiate(ctx); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("instantiate the %q host module: %w", hostModule, err)
	}
	return &Host{runtime: rt, compiled: make(map[string]*compileResult)}, nil
}

// Close releases the runtime. Instances still open fail their next call.
func (h *Host) Close(ctx context.Context) error { return h.runtime.Close(ctx) }

var defaultHost = sync.OnceValues(func() (*Host, error) { return NewHost(context.Background()) })

// Load is the transform.FunctionLoader of the process: it loads spec's
// module into a Host shared by the whole process and kept until it exits.
func Load(spec transform.FunctionSpec) (transform.Function, error) {
	h, err := defaultHost()
	if err != nil {
		return nil, err
	}
	return h.Load(spec)
}

var _ transform.FunctionLoader = Load

// Load reads, validates and compiles spec's module (compiled once per
// content hash) and checks the spec's limits and directories. Errors name
// the spec field, its value and the rule.
func (h *Host) Load(spec transform.FunctionSpec) (transform.Function, error) {
	f, err := h.load(spec)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (h *Host) load(spec transform.FunctionSpec) (*Function, error) {
	f := &Function{
		host:        h,
		memoryLimit: uint64(transform.DefaultFunctionMemoryLimit),
		timeout:     transform.DefaultFunctionTimeout.D(),
	}
	if spec.MemoryLimit != 0 {
		if spec.MemoryLimit < wasmPage || spec.MemoryLimit > MaxMemoryLimit {
			return nil, fmt.Errorf("memoryLimit %s: must be between 64KiB (one wasm page) and 4GiB", spec.MemoryLimit)
		}
		f.memoryLimit = uint64(spec.MemoryLimit)
	}
	if spec.Timeout != 0 {
		if spec.Timeout < 0 {
			return nil, fmt.Errorf("timeout %s: must be positive", spec.Timeout.D())
		}
		f.timeout = spec.Timeout.D()
	}
	for _, dir := range spec.AllowFS {
		if err := checkDir(dir); err != nil {
			return nil, err
		}
		f.dirs = append(f.dirs, filepath.Clean(dir))
	}
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(spec.Env[k], 0) {
			return nil, fmt.Errorf("env %q: a name must be non-empty without '=' or NUL, a value without NUL", k)
		}
		f.env = append(f.env, [2]string{k, spec.Env[k]})
	}

	if spec.Module == "" {
		return nil, errors.New("module: required: the path of a WebAssembly file")
	}
	bin, err := os.ReadFile(spec.Module)
	if err != nil {
		return nil, err // names the path
	}
	sum := sha256.Sum256(bin)
	f.hash = "sha256:" + hex.EncodeToString(sum[:])
	// The caller names the module: errors say what is wrong with it.
	if f.compiled, err = h.compile(f.hash, bin); err != nil {
		return nil, err
	}
	if err := f.checkMemory(); err != nil {
		return nil, err
	}
	return f, nil
}

// compile compiles and validates bin once per hash; concurrent loads of
// the same module wait for the first.
func (h *Host) compile(hash string, bin []byte) (wazero.CompiledModule, error) {
	h.mu.Lock()
	c, ok := h.compiled[hash]
	if !ok {
		c = &compileResult{done: make(chan struct{})}
		h.compiled[hash] = c
	}
	h.mu.Unlock()
	if ok {
		<-c.done
		return c.mod, c.err
	}
	defer close(c.done)
	c.mod, c.err = h.runtime.CompileModule(context.Background(), bin)
	if c.err != nil {
		c.err = fmt.Errorf("not a valid WebAssembly module: %w", c.err)
		return nil, c.err
	}
	if c.err = checkABI(c.mod); c.err != nil {
		c.mod.Close(context.Background())
		c.mod = nil
	}
	return c.mod, c.err
}

// checkABI checks the exports and imports the ABI requires (see the
// package doc), so that a module built for something else fails to load
// with a message that says what is missing.
func checkABI(m wazero.CompiledModule) error {
	exports := m.ExportedFunctions()
	i32 := []api.ValueType{api.ValueTypeI32}
	if _, ok := exports[exportVersion]; !ok {
		return fmt.Errorf("exports no %s: not built for the dumpflow function ABI version 1 (see package transform/wasm)", exportVersion)
	}
	fn, ok := exports[exportOnRecord]
	if !ok {
		return fmt.Errorf("exports no %s", exportOnRecord)
	}
	if !slices.Equal(fn.ParamTypes(), i32) || !slices.Equal(fn.ResultTypes(), i32) {
		return fmt.Errorf("export %s has type %s, want (i32) -> i32", exportOnRecord, signature(fn))
	}
	_, hasStart := exports[exportStart]
	_, hasInit := exports[exportInitialize]
	if hasStart && !hasInit {
		return fmt.Errorf("exports %s: a WASI command exits when its main returns; build a reactor (Go: -buildmode=c-shared)", exportStart)
	}
	if _, ok := m.ExportedMemories()[exportMemory]; !ok {
		return fmt.Errorf("exports no %q memory", exportMemory)
	}
	for _, imp := range m.ImportedFunctions() {
		mod, name, _ := imp.Import()
		switch mod {
		case wasi_snapshot_preview1.ModuleName:
		case hostModule:
			want, ok := hostSignatures[name]
			if !ok {
				return fmt.Errorf("imports %s.%s: the host has no such function (it has read_input, write_output, set_error)", mod, name)
			}
			if got := signature(imp); got != want {
				return fmt.Errorf("imports %s.%s with type %s, want %s", mod, name, got, want)
			}
		default:
			return fmt.Errorf("imports %s.%s: a function may import only from %q and %q", mod, name, hostModule, wasi_snapshot_preview1.ModuleName)
		}
	}
	if mems := m.ImportedMemories(); len(mems) > 0 {
		mod, name, _ := mems[0].Import()
		return fmt.Errorf("imports memory %s.%s: a function must define its own memory", mod, name)
	}
	return nil
}

func signature(fn api.FunctionDefinition) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return strings.Join(s, ", ")
	}
	return "(" + names(fn.ParamTypes()) + ") -> (" + names(fn.ResultTypes()) + ")"
}

// checkDir checks an allowFS entry: an absolute path to a directory.
func checkDir(dir string) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("allowFS %q: must be an absolute path", dir)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("allowFS %q: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("allowFS %q: not a directory", dir)
	}
	return nil
}
