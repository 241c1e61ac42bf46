package wasm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/dumpflow/dumpflow/transform"
)

// The tests build their modules from source, once per test binary.

// repoRoot is the module root, two levels up from this package.
var repoRoot = func() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return filepath.Join(wd, "..", "..")
}()

var (
	buildDir  string
	buildMu   sync.Mutex
	buildOnce = map[string]*buildResult{}
)

type buildResult struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dumpflow-wasm-test-")
	if err != nil {
		panic(err)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// built runs build once per name and returns the module's path.
func built(t testing.TB, name string, build func(out string) *exec.Cmd) string {
	t.Helper()
	buildMu.Lock()
	b, ok := buildOnce[name]
	if !ok {
		b = &buildResult{}
		buildOnce[name] = b
	}
	buildMu.Unlock()
	b.once.Do(func() {
		b.path = filepath.Join(buildDir, name+".wasm")
		cmd := build(b.path)
		b.out, b.err = cmd.CombinedOutput()
	})
	if b.err != nil {
		t.Fatalf("build %s: %v\n%s", name, b.err, b.out)
	}
	return b.path
}

// goModule builds the main package at pkg (relative to the repository
// root) for wasip1 with the given build mode.
func goModule(t testing.TB, pkg, buildmode string) string {
	return built(t, pkg+"@"+buildmode, func(out string) *exec.Cmd {
		cmd := exec.Command("go", "build", "-trimpath", "-buildmode="+buildmode, "-o", out, "./"+pkg)
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		return cmd
	})
}

// guestModule is testdata/guest, the suite's multi-purpose function.
func guestModule(t testing.TB) string {
	return goModule(t, "transform/wasm/testdata/guest", "c-shared")
}

const (
	goExample = "deploy/examples/functions/convert-and-filter/go"
	asExample = "deploy/examples/functions/convert-and-filter/assemblyscript"
)

// asModule builds the AssemblyScript example with its build script. It
// needs npm and the npm registry: a missing npm fails the test, unless
// DUMPFLOW_SKIP_ASC=1 says to skip it.
func asModule(t testing.TB) string {
	t.Helper()
	if os.Getenv("DUMPFLOW_SKIP_ASC") == "1" {
		t.Skip("DUMPFLOW_SKIP_ASC=1: not building the AssemblyScript example")
	}
	if _, err := exec.LookPath("npm"); err != nil {
		t.Fatalf("npm is needed to build the AssemblyScript example (set DUMPFLOW_SKIP_ASC=1 to skip it): %v", err)
	}
	return built(t, "assemblyscript", func(out string) *exec.Cmd {
		return exec.Command("bash", filepath.Join(repoRoot, asExample, "build.sh"), out)
	})
}

// testHost is the process's Host (the one Load uses), shared by the
// tests so that each module compiles once.
var testHost = defaultHost

// load loads a module into the tests' Host.
func load(t testing.TB, spec transform.FunctionSpec) *Function {
	t.Helper()
	h, err := testHost()
	if err != nil {
		t.Fatal(err)
	}
	f, err := h.load(spec)
	if err != nil {
		t.Fatalf("load %s: %v", spec.Module, err)
	}
	return f
}

// instance starts an instance of f, closed when the test ends.
func instance(t testing.TB, f *Function) *Instance {
	t.Helper()
	in, err := f.NewInstance(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(context.Background()) })
	return in.(*Instance)
}
