package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.temporal.io/sdk/client"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/deploy/localstack"
	"github.com/dumpflow/dumpflow/starter/verify"
	"github.com/dumpflow/dumpflow/workers/runner"
	"github.com/dumpflow/dumpflow/workflows"
)

// memoryBound is the README's bound on a worker's peak resident memory,
// in bytes: (batch memory + 128MiB) x 1.1. The worker buffers at most its
// batch memory budget of batch bodies at once (-batch-memory, default
// 128MiB); its Go runtime has a soft memory limit of that plus 96MiB
// (-memory-limit) for everything else (the Temporal SDK, Kafka fetch
// buffers of about 2MiB per partition being read, clients), so the
// collector keeps the runtime's memory under the limit instead of letting
// the heap grow to twice what is live. The bound leaves 32MiB and 10% above
// that limit for resident memory the runtime does not count (the binary's
// text, its data).
func memoryBound(budget int64) int64 {
	limit := budget + 128<<20
	return limit + limit/10
}

// runMemory measures the peak resident memory of a worker process dumping
// a backlog with spec.Concurrency loops at the connector's default batch
// sizes, beside the bound memoryBound gives, and checks the dump is exact.
func runMemory(o options, out io.Writer, logger *slog.Logger, dir string) error {
	ctx := context.Background()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		return fmt.Errorf("kfake: %w", err)
	}
	defer kc.Close()
	brokers := kc.ListenAddrs()
	st, err := localstack.Start(ctx, localstack.Options{DataDir: filepath.Join(dir, "stack"), TemporalPort: 0, UIPort: -1, KafkaBrokers: brokers, OSSPort: 0, Logger: logger})
	if err != nil {
		return fmt.Errorf("local stack: %w", err)
	}
	defer func() { _ = st.Close() }()
	c, err := runner.Dial(ctx, runner.Config{TemporalAddress: st.TemporalAddress, Namespace: st.Namespace, Logger: logger})
	if err != nil {
		return err
	}
	defer c.Close()

	hwm, err := produce(ctx, brokers, topic, o.partitions, o.records, o.size)
	if err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	bin, err := buildWorker(dir)
	if err != nil {
		return err
	}
	w, err := startWorkerProc(bin, st.TemporalAddress, st.Namespace)
	if err != nil {
		return err
	}
	defer w.close()

	e := &env{stack: st, client: c}
	spec, err := e.spec(dumpConfig{Name: "memory", Topic: topic, Brokers: brokers, Concurrency: o.concurrency})
	if err != nil {
		return err
	}
	// Connector defaults, but for the loops.
	time.Sleep(time.Second) // let the worker start and be sampled
	idle, _ := w.peak()
	fmt.Fprintf(out, "memory: %d records x %d B over %d partitions, %d loops, batch.maxBytes %s, batch.maxRecords %d; worker idle VmRSS %.0f MiB\n",
		o.records, o.size, o.partitions, spec.Concurrency, spec.Batch.MaxBytes, spec.Batch.MaxRecords, mib(idle))
	w.resetPeak()
	cpu0, start := w.cpu(), time.Now()
	if _, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: spec.WorkflowID(), TaskQueue: workflows.TaskQueue}, workflows.ConnectorName, workflows.NewInput(spec)); err != nil {
		return err
	}
	var status workflows.Status
	for deadline := time.Now().Add(30 * time.Minute); ; {
		s, err := e.status(ctx, spec.Name)
		if err == nil && caughtUp(s, hwm) {
			status = s
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("connector did not catch up in 30m; last status %+v, error %v", s, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	wall, cpu := time.Since(start), w.cpu()-cpu0
	peak, hwmLife := w.peak()
	_ = c.TerminateWorkflow(ctx, spec.WorkflowID(), "", "benchmark done")

	cursors := map[int32]verify.Cursor{}
	var recs int64
	for _, p := range status.Partitions {
		cursors[p.Partition] = verify.Cursor{Start: p.Start, Committed: p.Next}
		recs += p.Records
	}
	rep, err := verify.Run(ctx, spec, cursors)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if !rep.OK || recs != int64(o.records) {
		return fmt.Errorf("ledger not exact (ok=%v) or %d records dumped, want %d", rep.OK, recs, o.records)
	}
	if n, _, err := checkContent(filepath.Join(st.OSSBucketDir, "memory", topic), o.size); err != nil || n != int64(o.records) {
		return fmt.Errorf("objects hold %d records (%v), want %d", n, err, o.records)
	}
	bound := memoryBound(runner.DefaultBatchMemory)
	mb := float64(o.records) * float64(o.size) / 1e6
	fmt.Fprintf(out, "memory: dumped in %.1fs: %.0f records/s, %.0f MB/s; worker CPU %.1fs\n", wall.Seconds(), float64(o.records)/wall.Seconds(), mb/wall.Seconds(), cpu.Seconds())
	verdict := "within"
	if peak > bound {
		verdict = "OVER"
	}
	fmt.Fprintf(out, "memory: worker peak RSS %.0f MiB (VmHWM %.0f MiB); README bound (batch memory %s + 128 MiB) x 1.1 = %.0f MiB: %s\n",
		mib(peak), mib(hwmLife), connector.ByteSize(runner.DefaultBatchMemory), mib(bound), verdict)
	if peak > bound {
		return fmt.Errorf("worker peak RSS %.0f MiB is over the README's bound %.0f MiB", mib(peak), mib(bound))
	}
	return nil
}
