package wasm

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/dumpflow/dumpflow/transform"
)

// Function is a compiled function module with its step's limits. It is safe
// for concurrent use: each batch takes its own Instance.
type Function struct {
	host        *Host
	compiled    wazero.CompiledModule
	hash        string
	memoryLimit uint64
	timeout     time.Duration
	dirs        []string    // read-only mounts, each at its own path
	env         [][2]string // in key order
}

var _ transform.Function = (*Function)(nil)

// Hash is "sha256:" and the hex SHA-256 of the module's bytes.
func (f *Function) Hash() string { return f.hash }

// checkMemory refuses a module whose initial memory is past the limit.
func (f *Function) checkMemory() error {
	def := f.compiled.ExportedMemories()[exportMemory]
	if initial := uint64(def.Min()) * wasmPage; initial > f.memoryLimit {
		return fmt.Errorf("initial memory of %s is more than memoryLimit %s",
			transform.ByteSize(initial), transform.ByteSize(f.memoryLimit))
	}
	return nil
}

// NewInstance returns a fresh sandbox for one batch. The module is
// instantiated (and its _initialize run) on the first call, so that an
// initialisation failure is reported as that record's failure and a batch
// that has no record costs nothing. The caller must Close it.
func (f *Function) NewInstance(ctx context.Context) (transform.FunctionInstance, error) {
	in := &Instance{fn: f, stderr: head{n: 4 << 10}}
	for _, dir := range f.dirs {
		root, err := os.OpenRoot(dir)
		if err != nil {
			in.closeRoots()
			return nil, fmt.Errorf("allowFS %q: %w", dir, err)
		}
		in.roots = append(in.roots, root)
	}
	return in, nil
}

// moduleConfig is the sandbox of one instantiation (see "The sandbox" in
// the package doc).
func (in *Instance) moduleConfig() wazero.ModuleConfig {
	var mono int64 = -millisecond
	cfg := wazero.NewModuleConfig().
		WithName(""). // anonymous: many instances of one compiled module
		WithStartFunctions(exportInitialize).
		WithStderr(&in.stderr).
		WithWalltime(in.walltime, millisecond).
		WithNanotime(func() int64 { mono += millisecond; return mono }, millisecond).
		WithRandSource(newRand())
	for _, kv := range in.fn.env {
		cfg = cfg.WithEnv(kv[0], kv[1])
	}
	if len(in.roots) > 0 {
		fs := wazero.NewFSConfig()
		for i, root := range in.roots {
			fs = fs.WithFSMount(root.FS(), in.fn.dirs[i])
		}
		cfg = cfg.WithFSConfig(fs)
	}
	return cfg
}

// walltime is the guest's wall clock: the current record's timestamp.
func (in *Instance) walltime() (sec int64, nsec int32) {
	sec, ms := in.clockMillis/1000, in.clockMillis%1000
	if ms < 0 { // before 1970: floor, so that nsec stays positive
		sec, ms = sec-1, ms+1000
	}
	return sec, int32(ms) * millisecond
}
