package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/workflows"
)

var (
	idleMode     = flag.Bool("idle", false, "measure the peak memory of a worker process serving two OSS connectors (default batch settings, -partitions partitions each) fed at -idle-rate records/s each for -idle-duration")
	idleRate     = flag.Int("idle-rate", 200, "-idle: records per second produced to each connector's topic")
	idleDuration = flag.Duration("idle-duration", 60*time.Second, "-idle: how long to produce")
	idleProfile  = flag.String("idle-memprofile", "", "-idle: have the worker write a heap profile to this file when it stops (its -memprofile flag)")
	idleGCTrace  = flag.Bool("idle-gctrace", false, "-idle: run the worker with GODEBUG=gctrace=1 (its collections are logged to stderr)")
)

// idleBound is the target for a worker serving two idle connectors at low
// rates.
const idleBound = 100 << 20

// runIdle measures the peak resident memory of a worker process that
// serves two OSS connectors at their default batch settings, each on its
// own topic fed at a low rate, and checks both dumps are exact.
func runIdle(o options, out io.Writer, logger *slog.Logger, dir string) error {
	ctx := context.Background()
	var args []string
	if *idleProfile != "" {
		args = append(args, "-memprofile", *idleProfile)
	}
	if *idleGCTrace {
		if err := os.Setenv("GODEBUG", "gctrace=1"); err != nil { // read by the worker only: this process has started
			return err
		}
	}
	pe, err := startProcEnv(ctx, dir, logger, args...)
	if err != nil {
		return err
	}
	defer pe.close()
	w := pe.worker
	rs := &rssSplit{pid: w.cmd.Process.Pid, start: time.Now(), stop: make(chan struct{})}
	go rs.run()
	defer close(rs.stop)
	time.Sleep(time.Second) // let the worker start and be sampled
	idle, _ := w.peak()

	names := []string{"idle-a", "idle-b"}
	var specs []*connector.Spec
	for _, n := range names {
		spec, err := pe.env.spec(dumpConfig{Name: n, Topic: n, Brokers: pe.brokers, Concurrency: o.concurrency})
		if err != nil {
			return err
		}
		if _, err := pe.startConnector(ctx, spec, o.partitions); err != nil {
			return err
		}
		specs = append(specs, spec)
	}
	s := specs[0]
	fmt.Fprintf(out, "idle: one worker process, 2 OSS connectors x %d partitions (concurrency %d, batch.maxRecords %d, maxBytes %s, flushInterval %s), each fed %d records/s x %d B for %s\n",
		o.partitions, s.Concurrency, s.Batch.MaxRecords, s.Batch.MaxBytes, s.Batch.FlushInterval.D(), *idleRate, o.size, *idleDuration)
	started, _ := w.peak()
	fmt.Fprintf(out, "idle: worker VmRSS %.0f MiB before the connectors, peak %.0f MiB after starting both\n", mib(idle), mib(started))

	cpu0, prodStart := w.cpu(), time.Now()
	var waits []func() (*pacedResult, error)
	for _, n := range names {
		waits = append(waits, produceAsync(ctx, pe.brokers, n, o.partitions, *idleRate, o.size, *idleDuration))
	}
	var prods []*pacedResult
	for _, wait := range waits {
		p, err := wait()
		if err != nil {
			return err
		}
		prods = append(prods, p)
	}
	var total int
	var statuses []workflows.Status
	for i, n := range names {
		st, err := pe.waitCaughtUp(ctx, n, prods[i].HWM, 5*time.Minute)
		if err != nil {
			return err
		}
		statuses = append(statuses, st)
		total += prods[i].Records
	}
	caught := time.Now()
	cpu := w.cpu() - cpu0
	peak, hwm := w.peak()
	pid := w.cmd.Process.Pid
	anon, file := pidStatus(pid, "RssAnon"), pidStatus(pid, "RssFile")
	if *idleProfile != "" {
		pe.stopWorker() // writes the profile with both connectors still running
	}
	for i := range names {
		_ = pe.client.TerminateWorkflow(ctx, specs[i].WorkflowID(), "", "benchmark done")
	}
	fmt.Fprintf(out, "idle: produced %d records (%d + %d); worker CPU %.1fs over %.0fs (%.1f%% of a core)\n",
		total, prods[0].Records, prods[1].Records, cpu.Seconds(), prods[0].Wall.Seconds(), 100*cpu.Seconds()/prods[0].Wall.Seconds())
	worst := max(peak, hwm)
	verdict := "PASS"
	if worst > idleBound {
		verdict = "FAIL"
	}
	fmt.Fprintf(out, "idle: worker peak RSS %.0f MiB sampled every 20ms, VmHWM (lifetime peak) %.0f MiB; target <= %.0f MiB for two idle connectors at low rates: %s\n",
		mib(peak), mib(hwm), mib(idleBound), verdict)
	at := rs.get()
	fmt.Fprintf(out, "idle: at the sampled peak (%.1fs after the worker started; production ran from %.1fs to %.1fs, caught up at %.1fs): RssAnon %.0f MiB, RssFile %.0f MiB; RssAnon peaked at %.0f MiB\n",
		at.when.Seconds(), prodStart.Sub(rs.start).Seconds(), prodStart.Add(prods[0].Wall).Sub(rs.start).Seconds(), caught.Sub(rs.start).Seconds(), mib(at.anon), mib(at.file), mib(at.maxAnon))
	fmt.Fprintf(out, "idle: worker VmRSS at the end %.0f MiB: RssAnon %.0f MiB, RssFile %.0f MiB\n", mib(anon+file), mib(anon), mib(file))
	if *idleProfile != "" {
		fmt.Fprintf(out, "idle: worker heap profile in %s\n", *idleProfile)
	}
	for i, n := range names {
		ranges, recs, err := pe.verifyExact(ctx, specs[i], statuses[i], prods[i].HWM, o.size)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "verify %s: ledger exact over %d partitions, %d ranges; every object's lines are the expected values (%d records)\n", n, o.partitions, ranges, recs)
	}
	if verdict != "PASS" {
		return fmt.Errorf("worker peak RSS %.0f MiB is over the target %.0f MiB", mib(worst), mib(idleBound))
	}
	return nil
}

// rssSplit samples a process's VmRSS, RssAnon (heap, stacks: what the
// program allocates) and RssFile (mapped files: the binary) every 20ms and
// keeps the split at the highest VmRSS.
type rssSplit struct {
	pid   int
	start time.Time
	stop  chan struct{}

	mu   sync.Mutex
	peak rssPeak
}

// rssPeak is the split at the highest VmRSS sampled, when it was sampled
// (since start), and the highest RssAnon.
type rssPeak struct {
	rss, anon, file, maxAnon int64
	when                     time.Duration
}

func (r *rssSplit) run() {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			rss, anon, file := pidStatus(r.pid, "VmRSS"), pidStatus(r.pid, "RssAnon"), pidStatus(r.pid, "RssFile")
			r.mu.Lock()
			if rss > r.peak.rss {
				r.peak.rss, r.peak.anon, r.peak.file, r.peak.when = rss, anon, file, time.Since(r.start)
			}
			r.peak.maxAnon = max(r.peak.maxAnon, anon)
			r.mu.Unlock()
		}
	}
}

func (r *rssSplit) get() rssPeak {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.peak
}
