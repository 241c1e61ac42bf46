package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

var (
	buildOnce sync.Once
	workerBin string
	buildErr  error
)

// workerBinary builds ./workers once per test binary.
func workerBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dumpflow-worker")
		if err != nil {
			buildErr = err
			return
		}
		workerBin = filepath.Join(dir, "workers")
		out, err := exec.Command("go", "build", "-o", workerBin, "github.com/dumpflow/dumpflow/workers").CombinedOutput()
		if err != nil {
			buildErr = err
			workerBin = string(out)
		}
	})
	require.NoError(t, buildErr, "go build ./workers: %s", workerBin)
	return workerBin
}

// workerProcess is a dumpflow worker running as a separate OS process.
type workerProcess struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startWorkerProcess starts the worker binary against this stack's
// Temporal server, with the stack's credentials in its environment.
func (s *stack) startWorkerProcess() *workerProcess {
	s.t.Helper()
	cmd := exec.Command(workerBinary(s.t), "-temporal", s.temporal.GetFrontendHostPort(), "-namespace", s.temporal.GetDefaultNamespace(), "-log-level", "warn")
	cmd.Env = os.Environ() // carries the credentials set with t.Setenv
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	require.NoError(s.t, cmd.Start())
	w := &workerProcess{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(w.done) }()
	s.t.Cleanup(func() { w.kill() })
	return w
}

// kill sends SIGKILL: no graceful shutdown, in-flight activities are lost
// mid-write.
func (w *workerProcess) kill() {
	select {
	case <-w.done:
		return
	default:
	}
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.done
}
