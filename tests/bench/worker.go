package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// workerProc is a dumpflow worker running as its own OS process, so its
// memory and CPU are its own, not the Temporal server's, kfake's or the OSS
// fake's. Its resident set is sampled every 20ms.
type workerProc struct {
	cmd  *exec.Cmd
	done chan struct{}

	mu      sync.Mutex
	peakRSS int64 // bytes, sampled VmRSS
	stop    chan struct{}
}

// buildWorker builds ./workers into dir.
func buildWorker(dir string) (string, error) {
	bin := filepath.Join(dir, "dumpflow-worker")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/dumpflow/dumpflow/workers").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./workers: %v: %s", err, out)
	}
	return bin, nil
}

// startWorkerProc starts the worker binary against a Temporal frontend.
func startWorkerProc(bin, temporal, namespace string, extra ...string) (*workerProc, error) {
	args := append([]string{"-temporal", temporal, "-namespace", namespace, "-log-level", "error"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = os.Environ() // carries the credentials
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	w := &workerProc{cmd: cmd, done: make(chan struct{}), stop: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(w.done) }()
	go w.sample()
	return w, nil
}

func (w *workerProc) sample() {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-w.done:
			return
		case <-t.C:
			rss := pidStatus(w.cmd.Process.Pid, "VmRSS")
			w.mu.Lock()
			w.peakRSS = max(w.peakRSS, rss)
			w.mu.Unlock()
		}
	}
}

// resetPeak starts a new peak (VmRSS sampled from now on).
func (w *workerProc) resetPeak() {
	w.mu.Lock()
	w.peakRSS = 0
	w.mu.Unlock()
}

// peak is the highest VmRSS sampled since the last reset, and the
// process's lifetime peak (VmHWM).
func (w *workerProc) peak() (sampled, hwm int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peakRSS, pidStatus(w.cmd.Process.Pid, "VmHWM")
}

// cpu is the worker's user+system CPU time so far, from /proc/<pid>/stat.
func (w *workerProc) cpu() time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", w.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start at ')'.
	s := string(data)
	fs := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fs) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(fs[11], 10, 64)
	st, _ := strconv.ParseInt(fs[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// close stops the worker with SIGTERM and waits.
func (w *workerProc) close() {
	close(w.stop)
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.done
	}
}

// pidStatus returns a "Vm...:" field of /proc/<pid>/status in bytes.
func pidStatus(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, field+":") {
			continue
		}
		fs := strings.Fields(strings.TrimPrefix(line, field+":"))
		if len(fs) == 0 {
			return 0
		}
		n, _ := strconv.ParseInt(fs[0], 10, 64)
		return n << 10
	}
	return 0
}
