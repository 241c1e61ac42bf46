package main

import (
	"bufio"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procStatusKB returns a "Vm...:" field of /proc/self/status in bytes, or 0
// where there is no procfs.
func procStatusKB(field string) int64 {
	f, err := os.Open("/proc/self/status")
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

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineBusy is the CPU time all processes have used since boot, from
// the first line of /proc/stat (user, nice, system, irq, softirq, steal).
func machineBusy() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fs := strings.Fields(line)
	if len(fs) < 9 || fs[0] != "cpu" {
		return 0
	}
	var ticks int64
	for i, f := range fs[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseInt(f, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / 100) // USER_HZ
}

// phaseStats is what a sampler saw during one phase.
type phaseStats struct {
	PeakRSS   int64 // highest VmRSS sampled
	PeakHeap  int64 // highest Go heap (live + unswept objects) sampled
	PeakGoMem int64 // highest memory mapped by the Go runtime sampled
	HWMAtEnd  int64 // VmHWM (process lifetime peak) at the end of the phase
	CPU       time.Duration
	Wall      time.Duration
	// Others is the CPU time other processes on the machine used during
	// the phase: a measurement with much of it is noisy.
	Others      time.Duration
	cpuAtStart  time.Duration
	busyAtStart time.Duration
	start       time.Time
}

// sampler samples VmRSS and the Go heap every interval, attributing the
// peaks to the current phase. VmHWM alone is monotonic over the process, so
// it cannot tell the phases apart.
type sampler struct {
	mu    sync.Mutex
	cur   *phaseStats
	stop  chan struct{}
	done  chan struct{}
	every time.Duration
}

func newSampler(every time.Duration) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{}), every: every}
	go s.run()
	return s
}

var memSamples = []metrics.Sample{
	{Name: "/memory/classes/heap/objects:bytes"},
	{Name: "/memory/classes/total:bytes"},
}

// heapBytes is the Go heap's object bytes now.
func heapBytes() int64 {
	ms := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(ms)
	return int64(ms[0].Value.Uint64())
}

func (s *sampler) sample() {
	rss := procStatusKB("VmRSS")
	ms := make([]metrics.Sample, len(memSamples))
	copy(ms, memSamples)
	metrics.Read(ms)
	heap, total := int64(ms[0].Value.Uint64()), int64(ms[1].Value.Uint64())
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.cur; p != nil {
		p.PeakRSS = max(p.PeakRSS, rss)
		p.PeakHeap = max(p.PeakHeap, heap)
		p.PeakGoMem = max(p.PeakGoMem, total)
	}
}

func (s *sampler) run() {
	defer close(s.done)
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.sample()
		}
	}
}

// begin starts attributing samples to a new phase.
func (s *sampler) begin() *phaseStats {
	p := &phaseStats{start: time.Now(), cpuAtStart: cpuTime(), busyAtStart: machineBusy()}
	s.mu.Lock()
	s.cur = p
	s.mu.Unlock()
	s.sample()
	return p
}

// end closes the current phase.
func (s *sampler) end(p *phaseStats) {
	s.sample()
	p.Wall = time.Since(p.start)
	p.CPU = cpuTime() - p.cpuAtStart
	p.Others = max(0, machineBusy()-p.busyAtStart-p.CPU)
	p.HWMAtEnd = procStatusKB("VmHWM")
	s.mu.Lock()
	if s.cur == p {
		s.cur = nil
	}
	s.mu.Unlock()
}

func (s *sampler) close() {
	close(s.stop)
	<-s.done
}
