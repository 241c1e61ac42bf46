package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aliyun/aliyun-oss-go-sdk/oss"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/client"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/deploy/localstack"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/starter/verify"
	"github.com/dumpflow/dumpflow/workers/runner"
	"github.com/dumpflow/dumpflow/workflows"
)

var (
	freshnessMode     = flag.Bool("freshness", false, "measure freshness instead: produce at -rate records/s for -freshness-duration into -partitions partitions while a worker process dumps them with an OSS connector at its defaults; latency = object visible in a listing - record timestamp")
	freshnessRate     = flag.Int("rate", 1000, "-freshness: records produced per second")
	freshnessDuration = flag.Duration("freshness-duration", 60*time.Second, "-freshness: how long to produce")
	freshnessPoll     = flag.Duration("freshness-poll", 150*time.Millisecond, "-freshness: how often to list the bucket")
)

// freshnessSlack is what the target allows on top of the flush interval.
const freshnessSlack = 2 * time.Second

// runFreshness measures how long a record takes from its Kafka timestamp
// to being readable in OSS (its object visible in a ListObjectsV2
// listing), for an OSS connector at its default batch settings (flush
// interval 10s) fed at a steady rate, and checks the dump is exact.
func runFreshness(o options, out io.Writer, logger *slog.Logger, dir string) error {
	ctx := context.Background()
	const name, fTopic = "fresh", "fresh"
	pe, err := startProcEnv(ctx, dir, logger)
	if err != nil {
		return err
	}
	defer pe.close()
	spec, runID, err := pe.startConnector(ctx, name, fTopic, o.partitions, o.concurrency)
	if err != nil {
		return err
	}
	flush := spec.Batch.FlushInterval.D()
	fmt.Fprintf(out, "freshness: %d records/s x %d B for %s into %d partitions; OSS connector at its defaults (concurrency %d, batch.maxRecords %d, maxBytes %s, flushInterval %s); bucket listed every %s\n",
		*freshnessRate, o.size, *freshnessDuration, o.partitions, spec.Concurrency, spec.Batch.MaxRecords, spec.Batch.MaxBytes, flush, *freshnessPoll)

	cl, err := oss.New(spec.Sink.OSS.Endpoint, "bench", "bench-secret", oss.ForcePathStyle(true), oss.Timeout(10, 60))
	if err != nil {
		return err
	}
	bucket, err := cl.Bucket(spec.Sink.OSS.Bucket)
	if err != nil {
		return err
	}
	prefix := name + "/" + fTopic + "/"
	lw := &listWatcher{bucket: bucket, prefix: prefix, seen: map[string]time.Time{}}
	if err := lw.list(); err != nil { // the first listing: nothing is there yet
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	stopList := make(chan struct{})
	listDone := make(chan struct{})
	go func() { defer close(listDone); lw.run(*freshnessPoll, stopList) }()

	busy0, cpu0, t0 := machineBusy(), pe.worker.cpu(), time.Now()
	wait := produceAsync(ctx, pe.brokers, fTopic, o.partitions, *freshnessRate, o.size, *freshnessDuration)
	prod, err := wait()
	if err != nil {
		close(stopList)
		return err
	}
	fmt.Fprintf(out, "freshness: produced %d records in %.1fs (%.0f records/s)\n", prod.Records, prod.Wall.Seconds(), float64(prod.Records)/prod.Wall.Seconds())
	status, err := pe.waitCaughtUp(ctx, name, prod.HWM, 5*time.Minute)
	close(stopList)
	<-listDone
	if err != nil {
		return err
	}
	if err := lw.list(); err != nil { // objects written since the last listing
		return err
	}
	busy, wcpu, wall := machineBusy()-busy0, pe.worker.cpu()-cpu0, time.Since(t0)
	hist, err := countHistory(ctx, pe.client, spec.WorkflowID(), runID)
	if err != nil {
		return err
	}
	_ = pe.client.TerminateWorkflow(ctx, spec.WorkflowID(), "", "benchmark done")
	ranges, _, err := pe.verifyExact(ctx, spec, status, prod.HWM, o.size)
	if err != nil {
		return err
	}

	// Map every record to its object's visibility.
	objDir := filepath.Join(pe.stack.OSSBucketDir, name, fTopic)
	covered := make([][]int8, o.partitions)
	for p := range covered {
		covered[p] = make([]int8, prod.HWM[int32(p)])
	}
	var lat []time.Duration
	var objects int
	for key, vis := range lw.snapshot() {
		base := key[len(prefix):]
		m := objectName.FindStringSubmatch(base)
		if m == nil {
			continue
		}
		objects++
		p, _ := strconv.Atoi(m[1])
		first, _ := strconv.ParseInt(m[2], 10, 64)
		data, err := os.ReadFile(filepath.Join(objDir, base))
		if err != nil {
			return err
		}
		n := int64(bytes.Count(data, []byte{'\n'}))
		if p >= o.partitions || first+n > int64(len(covered[p])) {
			return fmt.Errorf("object %s holds offsets [%d,%d) beyond partition %d's end", key, first, first+n, p)
		}
		for off := first; off < first+n; off++ {
			covered[p][off]++
			lat = append(lat, vis.Sub(prod.Stamps[p][off]))
		}
	}
	for p, cs := range covered {
		for off, c := range cs {
			if c != 1 {
				return fmt.Errorf("partition %d offset %d is in %d listed objects, want 1", p, off, c)
			}
		}
	}
	slices.Sort(lat)
	pct := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	target := flush + freshnessSlack
	verdict := "PASS"
	if pct(0.99) > target {
		verdict = "FAIL"
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }
	fmt.Fprintf(out, "freshness: %d objects listed (%d ledger ranges); %d listings (%d failed) took %s on average, %s at most\n",
		objects, ranges, lw.lists, lw.failed, (lw.took / time.Duration(max(lw.lists, 1))).Round(time.Millisecond), lw.maxTook.Round(time.Millisecond))
	fmt.Fprintf(out, "freshness: latency (object visible - record timestamp) over %d records: min %s p50 %s p90 %s p99 %s max %s\n",
		len(lat), ms(lat[0]), ms(pct(0.5)), ms(pct(0.9)), ms(pct(0.99)), ms(lat[len(lat)-1]))
	var acts []string
	for _, a := range []string{"FetchRanges", "WritePartition", "CommitOffsets"} {
		if n := hist.ByActivity[a]; n > 0 {
			acts = append(acts, fmt.Sprintf("%d %s of %s on average", n, a, ms(hist.ActTime[a]/time.Duration(n))))
		}
	}
	fmt.Fprintf(out, "freshness: the loops ran %s (scheduled to closed; FetchRanges includes the flush interval's wait)\n", strings.Join(acts, ", "))
	fmt.Fprintf(out, "freshness: from the first record to the last object: worker CPU %.1fs; the machine's CPU busy %.1fs of %.0fs x %d cores (every process)\n",
		wcpu.Seconds(), busy.Seconds(), wall.Seconds(), runtime.NumCPU())
	fmt.Fprintf(out, "freshness: target p99 <= flush interval + %s = %s: %s\n", freshnessSlack, target, verdict)
	fmt.Fprintf(out, "verify: ledger exact, every object's lines are the expected values, every produced record in exactly one listed object (%d records)\n", len(lat))
	if verdict != "PASS" {
		return fmt.Errorf("freshness p99 %s is over the target %s", ms(pct(0.99)), target)
	}
	return nil
}

// listWatcher lists a prefix of the bucket and records when each key was
// first seen: the end of the first listing that returned it.
type listWatcher struct {
	bucket *oss.Bucket
	prefix string

	mu      sync.Mutex
	seen    map[string]time.Time
	lists   int
	failed  int
	took    time.Duration
	maxTook time.Duration
}

func (lw *listWatcher) list() error {
	t0 := time.Now()
	var keys []string
	tok := ""
	for {
		opts := []oss.Option{oss.Prefix(lw.prefix), oss.MaxKeys(1000)}
		if tok != "" {
			opts = append(opts, oss.ContinuationToken(tok))
		}
		res, err := lw.bucket.ListObjectsV2(opts...)
		if err != nil {
			return err
		}
		for _, obj := range res.Objects {
			keys = append(keys, obj.Key)
		}
		if !res.IsTruncated {
			break
		}
		tok = res.NextContinuationToken
	}
	t1 := time.Now()
	lw.mu.Lock()
	defer lw.mu.Unlock()
	for _, k := range keys {
		if _, ok := lw.seen[k]; !ok {
			lw.seen[k] = t1
		}
	}
	lw.lists++
	lw.took += t1.Sub(t0)
	lw.maxTook = max(lw.maxTook, t1.Sub(t0))
	return nil
}

func (lw *listWatcher) run(every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if err := lw.list(); err != nil { // only delays what it would have seen
				lw.mu.Lock()
				lw.failed++
				lw.mu.Unlock()
			}
		}
	}
}

func (lw *listWatcher) snapshot() map[string]time.Time {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	m := make(map[string]time.Time, len(lw.seen))
	for k, v := range lw.seen {
		m[k] = v
	}
	return m
}

// procEnv is kfake, the local stack and a worker in its own OS process
// (the set-up of the -idle and -freshness modes).
type procEnv struct {
	brokers []string
	stack   *localstack.Stack
	client  client.Client
	env     *env
	worker  *workerProc
	// stopWorker stops the worker process (SIGTERM, wait); close calls it
	// too.
	stopWorker func()
	close      func()
}

func startProcEnv(ctx context.Context, dir string, logger *slog.Logger, workerArgs ...string) (*procEnv, error) {
	pe := &procEnv{}
	var closers []func()
	pe.close = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		return nil, fmt.Errorf("kfake: %w", err)
	}
	closers = append(closers, kc.Close)
	pe.brokers = kc.ListenAddrs()
	st, err := localstack.Start(ctx, localstack.Options{DataDir: filepath.Join(dir, "stack"), TemporalPort: 0, UIPort: -1, KafkaBrokers: pe.brokers, OSSPort: 0, Logger: logger})
	if err != nil {
		pe.close()
		return nil, fmt.Errorf("local stack: %w", err)
	}
	closers = append(closers, func() { _ = st.Close() })
	pe.stack = st
	c, err := runner.Dial(ctx, runner.Config{TemporalAddress: st.TemporalAddress, Namespace: st.Namespace, Logger: logger})
	if err != nil {
		pe.close()
		return nil, err
	}
	closers = append(closers, c.Close)
	pe.client = c
	pe.env = &env{stack: st, client: c}
	bin, err := buildWorker(dir)
	if err != nil {
		pe.close()
		return nil, err
	}
	w, err := startWorkerProc(bin, st.TemporalAddress, st.Namespace, workerArgs...)
	if err != nil {
		pe.close()
		return nil, err
	}
	pe.worker = w
	pe.stopWorker = sync.OnceFunc(w.close)
	closers = append(closers, pe.stopWorker)
	return pe, nil
}

// startConnector creates topic with parts partitions, starts an OSS
// connector on it at the connector's default batch settings (objects under
// <name>/<topic>/) and waits until its status query lists every partition.
// It returns the spec and the first run's id.
func (pe *procEnv) startConnector(ctx context.Context, name, topic string, parts, concurrency int) (*connector.Spec, string, error) {
	kc, err := kafka.NewClient(kgo.SeedBrokers(pe.brokers...))
	if err != nil {
		return nil, "", err
	}
	err = kc.EnsureTopic(ctx, topic, int32(parts))
	kc.Close()
	if err != nil {
		return nil, "", err
	}
	spec, err := pe.env.spec(dumpConfig{Name: name, Topic: topic, Brokers: pe.brokers, Concurrency: concurrency})
	if err != nil {
		return nil, "", err
	}
	run, err := pe.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: spec.WorkflowID(), TaskQueue: workflows.TaskQueue}, workflows.ConnectorName, workflows.NewInput(spec))
	if err != nil {
		return nil, "", err
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		s, err := pe.env.status(ctx, name)
		if err == nil && len(s.Partitions) == parts {
			return spec, run.GetRunID(), nil
		}
		if time.Now().After(deadline) {
			return nil, "", fmt.Errorf("connector %s did not list its %d partitions in 1m; last status %+v, error %v", name, parts, s, err)
		}
	}
}

// waitCaughtUp polls the status until every cursor is at its high watermark.
func (pe *procEnv) waitCaughtUp(ctx context.Context, name string, hwm map[int32]int64, timeout time.Duration) (workflows.Status, error) {
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		s, err := pe.env.status(ctx, name)
		if err == nil && caughtUp(s, hwm) {
			return s, nil
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("connector %s did not catch up in %s; last status %+v, error %v", name, timeout, s, err)
		}
	}
}

// verifyExact checks that a caught-up connector dumped every produced
// record exactly once: no partition error, the status's record count, the
// offset-coverage ledger (starter/verify) and every object's lines (the
// expected value of each offset, checkContent). It returns the ledger's
// ranges (objects) and the records found in the objects.
func (pe *procEnv) verifyExact(ctx context.Context, spec *connector.Spec, status workflows.Status, hwm map[int32]int64, size int) (ranges int, records int64, err error) {
	var want, recs int64
	for _, end := range hwm {
		want += end
	}
	cursors := map[int32]verify.Cursor{}
	for _, p := range status.Partitions {
		if p.LastError != "" || p.Stopped || p.DeadLetters > 0 || p.ErrorRecords > 0 {
			return 0, 0, fmt.Errorf("%s partition %d: error %q stopped %v dead letters %d error records %d", spec.Name, p.Partition, p.LastError, p.Stopped, p.DeadLetters, p.ErrorRecords)
		}
		cursors[p.Partition] = verify.Cursor{Start: p.Start, Committed: p.Next}
		recs += p.Records
	}
	rep, err := verify.Run(ctx, spec, cursors)
	if err != nil {
		return 0, 0, fmt.Errorf("verify %s: %w", spec.Name, err)
	}
	var ledger int64
	for _, p := range rep.Partitions {
		ledger += p.Records
		ranges += p.Ranges
	}
	if !rep.OK || recs != want || ledger != want {
		return 0, 0, fmt.Errorf("%s: ledger not exact (ok=%v, %d records in the ledger) or %d records dumped; want %d: %+v", spec.Name, rep.OK, ledger, recs, want, rep)
	}
	n, _, err := checkContent(filepath.Join(pe.stack.OSSBucketDir, spec.Name, spec.Kafka.Topic), size)
	if err != nil || n != want {
		return 0, 0, fmt.Errorf("%s: objects hold %d records (%v), want %d", spec.Name, n, err, want)
	}
	return ranges, n, nil
}

// pacedResult is what producePaced wrote.
type pacedResult struct {
	Records int
	HWM     map[int32]int64
	// Stamps[p][o] is the Kafka timestamp (CreateTime, set by the
	// producer when it handed the record to the client) of offset o of
	// partition p.
	Stamps [][]time.Time
	Wall   time.Duration
}

// producePaced writes rate x d records of size bytes to topic (which must
// exist with parts partitions and be empty), evenly over d, record i to
// partition i % parts with value fillValue(p, i/parts), so that a record's
// offset is its sequence number in its partition. Each record's timestamp
// is the moment it was handed to the client.
func producePaced(ctx context.Context, brokers []string, topic string, parts, rate, size int, d time.Duration) (*pacedResult, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
	)
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	defer cl.Close()
	res := &pacedResult{Stamps: make([][]time.Time, parts), HWM: map[int32]int64{}}
	var failed atomic.Int64
	var firstErr atomic.Value
	fail := func(err error) {
		if failed.Add(1) == 1 {
			firstErr.Store(err)
		}
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	total := int(float64(rate) * d.Seconds())
	start := time.Now()
	i := 0
	for i < total {
		for due := min(total, int(float64(rate)*time.Since(start).Seconds())); i < due; i++ {
			p, seq := int32(i%parts), i/parts
			v := make([]byte, size)
			fillValue(v, p, seq)
			now := time.Now()
			res.Stamps[p] = append(res.Stamps[p], now)
			cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: p, Value: v, Timestamp: now}, func(r *kgo.Record, err error) {
				switch {
				case err != nil:
					fail(err)
				case r.Offset != int64(seq):
					fail(fmt.Errorf("record %d of partition %d got offset %d", seq, p, r.Offset))
				}
			})
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, fmt.Errorf("flush: %w", err)
	}
	res.Wall = time.Since(start)
	res.Records = i
	if f := failed.Load(); f > 0 {
		return nil, fmt.Errorf("%d records failed to produce, first: %v", f, firstErr.Load())
	}
	kc, err := kafka.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	defer kc.Close()
	bounds, err := kc.Bounds(ctx, topic)
	if err != nil {
		return nil, err
	}
	for p := int32(0); p < int32(parts); p++ {
		b := bounds[p]
		if want := int64(len(res.Stamps[p])); b.Start != 0 || b.End != want {
			return nil, fmt.Errorf("partition %d holds [%d,%d), want [0,%d)", p, b.Start, b.End, want)
		}
		res.HWM[p] = b.End
	}
	return res, nil
}

// produceAsync runs producePaced in the background.
func produceAsync(ctx context.Context, brokers []string, topic string, parts, rate, size int, d time.Duration) func() (*pacedResult, error) {
	type out struct {
		r   *pacedResult
		err error
	}
	ch := make(chan out, 1)
	go func() {
		r, err := producePaced(ctx, brokers, topic, parts, rate, size, d)
		ch <- out{r, err}
	}()
	return func() (*pacedResult, error) {
		o := <-ch
		if o.err != nil {
			return nil, errors.Join(fmt.Errorf("produce to %s", topic), o.err)
		}
		return o.r, nil
	}
}
