package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aliyun/aliyun-odps-go-sdk/odps"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/account"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/data"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/tunnel"
	"github.com/aliyun/aliyun-oss-go-sdk/oss"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/deploy/localstack"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/sink/maxcompute"
	"github.com/dumpflow/dumpflow/starter/verify"
	"github.com/dumpflow/dumpflow/workers/runner"
	"github.com/dumpflow/dumpflow/workflows"
)

var (
	freshnessMode     = flag.Bool("freshness", false, "measure freshness instead: produce at -rate records/s for -freshness-duration into -partitions partitions while a worker process dumps them with an OSS connector at its defaults; latency = object visible in a listing - record timestamp")
	freshnessRate     = flag.Int("rate", 1000, "-freshness: records produced per second")
	freshnessDuration = flag.Duration("freshness-duration", 60*time.Second, "-freshness: how long to produce")
	freshnessPoll     = flag.Duration("freshness-poll", 150*time.Millisecond, "-freshness: how often to look at the sink (list the bucket; open download sessions on the table)")
	freshnessSink     = flag.String("freshness-sink", "oss", "-freshness: oss, or maxcompute (the local stack's emulator; the connector's default flush interval there is 60s)")
)

// freshnessSlack is what the target allows on top of the flush interval.
const freshnessSlack = 2 * time.Second

// watcher polls the sink for what became readable.
type watcher interface {
	// poll looks once and stamps what it sees for the first time.
	poll() error
	// visibility maps every record (partition, offset) to when it became
	// readable, checking each record is readable exactly once and holds
	// the value produced; it returns the objects or commits seen.
	visibility(hwm map[int32]int64, size int) (vis [][]time.Time, units int, err error)
	// stats describes the polling.
	stats() string
}

// runFreshness measures how long a record takes from its Kafka timestamp
// to being readable in the sink, for a connector at its default batch
// settings (OSS: flush interval 10s; MaxCompute: 60s) fed at a steady
// rate, and checks the dump is exact. OSS: readable is its object visible
// in a ListObjectsV2 listing. MaxCompute: its row readable through a tunnel
// download session.
func runFreshness(o options, out io.Writer, logger *slog.Logger, dir string) error {
	ctx := context.Background()
	const name, fTopic = "fresh", "fresh"
	mc := false
	switch *freshnessSink {
	case "oss":
	case "maxcompute":
		mc = true
		for k, v := range map[string]string{"ACCESS_KEY_ID": localstack.LocalAccessKeyID, "ACCESS_KEY_SECRET": localstack.LocalAccessKeySecret} {
			if err := os.Setenv(connector.CredentialsEnvPrefix(mcCredName)+k, v); err != nil { // before the worker starts
				return err
			}
		}
	default:
		return fmt.Errorf("-freshness-sink %q: want oss or maxcompute", *freshnessSink)
	}
	pe, err := startProcEnv(ctx, dir, logger)
	if err != nil {
		return err
	}
	defer pe.close()
	var spec *connector.Spec
	if mc {
		spec, err = pe.mcSpec(name, fTopic, o.concurrency)
	} else {
		spec, err = pe.env.spec(dumpConfig{Name: name, Topic: fTopic, Brokers: pe.brokers, Concurrency: o.concurrency})
	}
	if err != nil {
		return err
	}
	runID, err := pe.startConnector(ctx, spec, o.partitions)
	if err != nil {
		return err
	}
	flush := spec.Batch.FlushInterval.D()
	var w watcher
	var how string
	if mc {
		how = fmt.Sprintf("table %s.%s (partition %s at %s) read every %s", spec.Sink.MaxCompute.Project, spec.Sink.MaxCompute.Table, spec.Sink.MaxCompute.Partition, spec.Sink.MaxCompute.TimeZone, *freshnessPoll)
		w, err = newMCWatcher(ctx, spec)
	} else {
		how = fmt.Sprintf("bucket listed every %s", *freshnessPoll)
		w, err = newListWatcher(spec, pe.stack.OSSBucketDir)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "freshness: %d records/s x %d B for %s into %d partitions; %s connector at its defaults (concurrency %d, batch.maxRecords %d, maxBytes %s, flushInterval %s); %s\n",
		*freshnessRate, o.size, *freshnessDuration, o.partitions, spec.Sink.Type, spec.Concurrency, spec.Batch.MaxRecords, spec.Batch.MaxBytes, flush, how)
	if err := w.poll(); err != nil { // the first look: nothing is there yet
		return err
	}
	stopPoll := make(chan struct{})
	pollDone := make(chan struct{})
	pollErrs := 0
	go func() {
		defer close(pollDone)
		t := time.NewTicker(*freshnessPoll)
		defer t.Stop()
		for {
			select {
			case <-stopPoll:
				return
			case <-t.C:
				if err := w.poll(); err != nil { // only delays what it would have seen
					if pollErrs++; pollErrs == 1 {
						logger.Warn("freshness poll", "error", err)
					}
				}
			}
		}
	}()

	busy0, cpu0, t0 := machineBusy(), pe.worker.cpu(), time.Now()
	wait := produceAsync(ctx, pe.brokers, fTopic, o.partitions, *freshnessRate, o.size, *freshnessDuration)
	prod, err := wait()
	if err != nil {
		close(stopPoll)
		return err
	}
	fmt.Fprintf(out, "freshness: produced %d records in %.1fs (%.0f records/s)\n", prod.Records, prod.Wall.Seconds(), float64(prod.Records)/prod.Wall.Seconds())
	status, err := pe.waitCaughtUp(ctx, name, prod.HWM, 5*time.Minute)
	close(stopPoll)
	<-pollDone
	if err != nil {
		return err
	}
	if err := w.poll(); err != nil { // what was written since the last look
		return err
	}
	busy, wcpu, wall := machineBusy()-busy0, pe.worker.cpu()-cpu0, time.Since(t0)
	hist, err := activityStats(ctx, pe.client, spec.WorkflowID(), runID)
	if err != nil {
		return err
	}
	_ = pe.client.TerminateWorkflow(ctx, spec.WorkflowID(), "", "benchmark done")
	ranges, err := pe.verifyLedger(ctx, spec, status, prod.HWM)
	if err != nil {
		return err
	}
	if !mc {
		if _, err := pe.checkObjects(spec, prod.HWM, o.size); err != nil {
			return err
		}
	}

	vis, units, err := w.visibility(prod.HWM, o.size)
	if err != nil {
		return err
	}
	var lat []time.Duration
	for p, ts := range vis {
		for off, t := range ts {
			lat = append(lat, t.Sub(prod.Stamps[p][off]))
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
	unit, readable := "objects listed", "object visible"
	if mc {
		unit, readable = "commits seen", "row readable"
	}
	fmt.Fprintf(out, "freshness: %d %s (%d ledger ranges); %s; %d polls failed\n", units, unit, ranges, w.stats(), pollErrs)
	if mw, ok := w.(*mcWatcher); ok {
		for _, l := range mw.commitLines(t0) {
			fmt.Fprintf(out, "freshness: %s\n", l)
		}
	}
	fmt.Fprintf(out, "freshness: latency (%s - record timestamp) over %d records: min %s p50 %s p90 %s p99 %s max %s\n",
		readable, len(lat), ms(lat[0]), ms(pct(0.5)), ms(pct(0.9)), ms(pct(0.99)), ms(lat[len(lat)-1]))
	fmt.Fprintf(out, "freshness: %s\n", hist)
	fmt.Fprintf(out, "freshness: from the first record to the last write: worker CPU %.1fs; the machine's CPU busy %.1fs of %.0fs x %d cores (every process)\n",
		wcpu.Seconds(), busy.Seconds(), wall.Seconds(), runtime.NumCPU())
	fmt.Fprintf(out, "freshness: target p99 <= flush interval + %s = %s: %s\n", freshnessSlack, target, verdict)
	what := "every object's lines are the expected values, every produced record in exactly one listed object"
	if mc {
		what = "every produced record in exactly one row, with the expected value"
	}
	fmt.Fprintf(out, "verify: ledger exact, %s (%d records)\n", what, len(lat))
	if verdict != "PASS" {
		return fmt.Errorf("freshness p99 %s is over the target %s", ms(pct(0.99)), target)
	}
	return nil
}

// coverage counts where each record was found.
type coverage struct {
	vis [][]time.Time
	n   [][]int8
}

func newCoverage(hwm map[int32]int64) *coverage {
	c := &coverage{vis: make([][]time.Time, len(hwm)), n: make([][]int8, len(hwm))}
	for p := range c.vis {
		c.vis[p] = make([]time.Time, hwm[int32(p)])
		c.n[p] = make([]int8, hwm[int32(p)])
	}
	return c
}

func (c *coverage) add(p int, off int64, at time.Time) error {
	if p < 0 || p >= len(c.n) || off < 0 || off >= int64(len(c.n[p])) {
		return fmt.Errorf("partition %d offset %d was never produced", p, off)
	}
	c.n[p][off]++
	c.vis[p][off] = at
	return nil
}

func (c *coverage) check(where string) error {
	for p, ns := range c.n {
		for off, n := range ns {
			if n != 1 {
				return fmt.Errorf("partition %d offset %d is in %d %s, want 1", p, off, n, where)
			}
		}
	}
	return nil
}

// listWatcher lists the connector's folder of the bucket and records when
// each key was first seen: the end of the first listing that returned it.
type listWatcher struct {
	bucket *oss.Bucket
	prefix string
	dir    string // the fake's directory of the folder

	mu      sync.Mutex
	seen    map[string]time.Time
	lists   int
	took    time.Duration
	maxTook time.Duration
}

func newListWatcher(spec *connector.Spec, bucketDir string) (*listWatcher, error) {
	creds, err := connector.ResolveCredentials(spec.Sink.OSS.Credentials)
	if err != nil {
		return nil, err
	}
	cl, err := oss.New(spec.Sink.OSS.Endpoint, creds.AccessKeyID, creds.AccessKeySecret, oss.ForcePathStyle(true), oss.Timeout(10, 60))
	if err != nil {
		return nil, err
	}
	bucket, err := cl.Bucket(spec.Sink.OSS.Bucket)
	if err != nil {
		return nil, err
	}
	prefix := spec.Name + "/" + spec.Kafka.Topic + "/"
	return &listWatcher{bucket: bucket, prefix: prefix, dir: filepath.Join(bucketDir, spec.Name, spec.Kafka.Topic), seen: map[string]time.Time{}}, nil
}

func (lw *listWatcher) poll() error {
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
			return fmt.Errorf("list %s: %w", lw.prefix, err)
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

func (lw *listWatcher) stats() string {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return fmt.Sprintf("%d listings took %s on average, %s at most", lw.lists, (lw.took / time.Duration(max(lw.lists, 1))).Round(time.Millisecond), lw.maxTook.Round(time.Millisecond))
}

// visibility reads every data object listed (from the fake's directory)
// and gives its records the object's visibility.
func (lw *listWatcher) visibility(hwm map[int32]int64, size int) ([][]time.Time, int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	c := newCoverage(hwm)
	objects := 0
	for key, at := range lw.seen {
		base := key[len(lw.prefix):]
		m := objectName.FindStringSubmatch(base)
		if m == nil {
			continue
		}
		objects++
		p, _ := strconv.Atoi(m[1])
		first, _ := strconv.ParseInt(m[2], 10, 64)
		data, err := os.ReadFile(filepath.Join(lw.dir, base))
		if err != nil {
			return nil, 0, err
		}
		n := int64(bytes.Count(data, []byte{'\n'}))
		for off := first; off < first+n; off++ {
			if err := c.add(p, off, at); err != nil {
				return nil, 0, fmt.Errorf("object %s: %w", key, err)
			}
		}
	}
	return c.vis, objects, c.check("listed objects")
}

// mcWatcher opens a tunnel download session on each of the table's
// partitions and reads the rows past those it read before, stamping them
// with the moment the session was created (they were readable then).
type mcWatcher struct {
	ctx    context.Context
	spec   *connector.Spec
	creds  connector.Credentials
	tunnel *tunnel.Tunnel

	mu      sync.Mutex
	read    map[string]int // rows read, by table partition
	rows    []mcRow
	commits int
	polls   int
	took    time.Duration
	maxTook time.Duration
}

type mcRow struct {
	partition int
	offset    int64
	value     string
	at        time.Time
}

func newMCWatcher(ctx context.Context, spec *connector.Spec) (*mcWatcher, error) {
	creds, err := connector.ResolveCredentials(spec.Sink.MaxCompute.Credentials)
	if err != nil {
		return nil, err
	}
	m := spec.Sink.MaxCompute
	o := odps.NewOdps(account.NewAliyunAccount(creds.AccessKeyID, creds.AccessKeySecret), m.Endpoint)
	o.SetDefaultProjectName(m.Project)
	return &mcWatcher{ctx: ctx, spec: spec, creds: creds, tunnel: tunnel.NewTunnel(o, m.TunnelEndpoint), read: map[string]int{}}, nil
}

func (w *mcWatcher) poll() error {
	t0 := time.Now()
	defer func() {
		w.mu.Lock()
		w.polls++
		w.took += time.Since(t0)
		w.maxTook = max(w.maxTook, time.Since(t0))
		w.mu.Unlock()
	}()
	pts, err := maxcompute.ListPartitions(w.ctx, w.spec, w.creds)
	if err != nil {
		if strings.Contains(err.Error(), "does not exist") {
			return nil // not created yet
		}
		return err
	}
	m := w.spec.Sink.MaxCompute
	for _, pt := range pts {
		ds, err := w.tunnel.CreateDownloadSession(m.Project, m.Table, tunnel.SessionCfg.WithPartitionKey(pt))
		if err != nil {
			return fmt.Errorf("download session on %s: %w", pt, err)
		}
		at := time.Now()
		w.mu.Lock()
		from := w.read[pt]
		w.mu.Unlock()
		n := ds.RecordCount()
		if n <= from {
			continue
		}
		r, err := ds.OpenRecordReader(from, n-from, []string{"partition", "offset", "value"})
		if err != nil {
			return fmt.Errorf("read rows %d..%d of %s: %w", from, n, pt, err)
		}
		var rows []mcRow
		for {
			rec, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				r.Close()
				return fmt.Errorf("read rows %d..%d of %s: %w", from, n, pt, err)
			}
			p, _ := rec[0].(data.BigInt)
			off, _ := rec[1].(data.BigInt)
			var v string
			switch x := rec[2].(type) {
			case data.String:
				v = string(x)
			case *data.String:
				v = string(*x)
			case data.Binary:
				v = string(x)
			}
			rows = append(rows, mcRow{partition: int(p), offset: int64(off), value: v, at: at})
		}
		r.Close()
		if len(rows) != n-from {
			return fmt.Errorf("rows %d..%d of %s: read %d", from, n, pt, len(rows))
		}
		w.mu.Lock()
		w.read[pt] = n
		w.rows = append(w.rows, rows...)
		w.commits++
		w.mu.Unlock()
	}
	return nil
}

func (w *mcWatcher) stats() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return fmt.Sprintf("%d polls (list partitions, a download session on each) took %s on average, %s at most", w.polls, (w.took / time.Duration(max(w.polls, 1))).Round(time.Millisecond), w.maxTook.Round(time.Millisecond))
}

// commitLines describes each batch of rows that became readable: when
// (since t0) and each Kafka partition's offsets in it.
func (w *mcWatcher) commitLines(t0 time.Time) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	type span struct{ first, last int64 }
	var lines []string
	for i := 0; i < len(w.rows); {
		at := w.rows[i].at
		spans := map[int]*span{}
		for ; i < len(w.rows) && w.rows[i].at.Equal(at); i++ {
			r := w.rows[i]
			if sp := spans[r.partition]; sp == nil {
				spans[r.partition] = &span{r.offset, r.offset}
			} else {
				sp.first, sp.last = min(sp.first, r.offset), max(sp.last, r.offset)
			}
		}
		var parts []string
		for _, p := range slices.Sorted(maps.Keys(spans)) {
			parts = append(parts, fmt.Sprintf("partition %d offsets %d..%d", p, spans[p].first, spans[p].last))
		}
		lines = append(lines, fmt.Sprintf("rows readable at +%.1fs: %s", at.Sub(t0).Seconds(), strings.Join(parts, ", ")))
	}
	return lines
}

// visibility checks every row's value and gives it its stamp. commits is
// how many times new rows appeared in a partition.
func (w *mcWatcher) visibility(hwm map[int32]int64, size int) ([][]time.Time, int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := newCoverage(hwm)
	want := make([]byte, size)
	for _, r := range w.rows {
		if err := c.add(r.partition, r.offset, r.at); err != nil {
			return nil, 0, err
		}
		fillValue(want, int32(r.partition), int(r.offset))
		if r.value != string(want) {
			return nil, 0, fmt.Errorf("row of partition %d offset %d holds %.40q..., want %.40q...", r.partition, r.offset, r.value, want)
		}
	}
	return c.vis, w.commits, c.check("rows")
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

// startConnector creates spec's topic with parts partitions, starts the
// connector and waits until its status query lists every partition. It
// returns the first run's id.
func (pe *procEnv) startConnector(ctx context.Context, spec *connector.Spec, parts int) (string, error) {
	kc, err := kafka.NewClient(kgo.SeedBrokers(pe.brokers...))
	if err != nil {
		return "", err
	}
	err = kc.EnsureTopic(ctx, spec.Kafka.Topic, int32(parts))
	kc.Close()
	if err != nil {
		return "", err
	}
	run, err := pe.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: spec.WorkflowID(), TaskQueue: workflows.TaskQueue}, workflows.ConnectorName, workflows.NewInput(spec))
	if err != nil {
		return "", err
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		s, err := pe.env.status(ctx, spec.Name)
		if err == nil && len(s.Partitions) == parts {
			return run.GetRunID(), nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("connector %s did not list its %d partitions in 1m; last status %+v, error %v", spec.Name, parts, s, err)
		}
	}
}

// mcSpec is a MaxCompute connector on the emulator at its defaults,
// writing to table <name> (created by the sink).
func (pe *procEnv) mcSpec(name, topic string, concurrency int) (*connector.Spec, error) {
	st := pe.stack
	spec := &connector.Spec{
		Name:        name,
		Kafka:       connector.KafkaSpec{Brokers: pe.brokers, Topic: topic},
		Concurrency: concurrency,
		Sink: connector.SinkSpec{Type: connector.SinkMaxCompute, MaxCompute: &connector.MaxComputeSpec{
			Endpoint: st.MaxComputeEndpoint, TunnelEndpoint: st.MaxComputeTunnelEndpoint, Project: st.MaxComputeProject,
			Table: name, CreateTable: true, Credentials: mcCredName,
		}},
	}
	spec.Default()
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	return spec, nil
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

// verifyExact checks that a caught-up OSS connector dumped every produced
// record exactly once: verifyLedger, then checkObjects. It returns the
// ledger's ranges (objects) and the records found in the objects.
func (pe *procEnv) verifyExact(ctx context.Context, spec *connector.Spec, status workflows.Status, hwm map[int32]int64, size int) (ranges int, records int64, err error) {
	if ranges, err = pe.verifyLedger(ctx, spec, status, hwm); err != nil {
		return 0, 0, err
	}
	records, err = pe.checkObjects(spec, hwm, size)
	return ranges, records, err
}

// verifyLedger checks a caught-up connector's status (no partition error,
// every produced record counted) and its offset-coverage ledger
// (starter/verify), and returns the ledger's ranges.
func (pe *procEnv) verifyLedger(ctx context.Context, spec *connector.Spec, status workflows.Status, hwm map[int32]int64) (ranges int, err error) {
	var want, recs int64
	for _, end := range hwm {
		want += end
	}
	cursors := map[int32]verify.Cursor{}
	for _, p := range status.Partitions {
		if p.LastError != "" || p.Stopped || p.DeadLetters > 0 || p.ErrorRecords > 0 {
			return 0, fmt.Errorf("%s partition %d: error %q stopped %v dead letters %d error records %d", spec.Name, p.Partition, p.LastError, p.Stopped, p.DeadLetters, p.ErrorRecords)
		}
		cursors[p.Partition] = verify.Cursor{Start: p.Start, Committed: p.Next}
		recs += p.Records
	}
	rep, err := verify.Run(ctx, spec, cursors)
	if err != nil {
		return 0, fmt.Errorf("verify %s: %w", spec.Name, err)
	}
	var ledger int64
	for _, p := range rep.Partitions {
		ledger += p.Records
		ranges += p.Ranges
	}
	if !rep.OK || recs != want || ledger != want {
		return 0, fmt.Errorf("%s: ledger not exact (ok=%v, %d records in the ledger) or %d records dumped; want %d: %+v", spec.Name, rep.OK, ledger, recs, want, rep)
	}
	return ranges, nil
}

// checkObjects reads every object of an OSS connector from the fake's
// directory (checkContent: each line the expected value of its offset) and
// checks they hold every produced record.
func (pe *procEnv) checkObjects(spec *connector.Spec, hwm map[int32]int64, size int) (int64, error) {
	var want int64
	for _, end := range hwm {
		want += end
	}
	n, _, err := checkContent(filepath.Join(pe.stack.OSSBucketDir, spec.Name, spec.Kafka.Topic), size)
	if err != nil || n != want {
		return 0, fmt.Errorf("%s: objects hold %d records (%v), want %d", spec.Name, n, err, want)
	}
	return n, nil
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

// actStats is what the connector's activities did, over every run.
type actStats struct {
	runs, events int
	scheduled    map[string]int
	closed       map[string]int           // completed, failed or timed out
	took         map[string]time.Duration // scheduled to closed, summed
	// retried, timedOut, failed and cancelled describe the activities
	// that took more than one attempt or did not complete: each one
	// restarts a FetchRanges' flush wait or a write.
	retried, timedOut, failed, cancelled []string
}

// activityStats follows the continue-as-new chain from firstRun and
// collects actStats.
func activityStats(ctx context.Context, c client.Client, id, firstRun string) (actStats, error) {
	as := actStats{scheduled: map[string]int{}, closed: map[string]int{}, took: map[string]time.Duration{}}
	for run := firstRun; run != ""; {
		as.runs++
		next := ""
		type sched struct {
			name string
			at   time.Time
		}
		scheduled := map[int64]sched{}
		closed := func(id int64, at time.Time) string {
			sc := scheduled[id]
			as.closed[sc.name]++
			as.took[sc.name] += at.Sub(sc.at)
			return sc.name
		}
		it := c.GetWorkflowHistory(ctx, id, run, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				return as, fmt.Errorf("history of %s/%s: %w", id, run, err)
			}
			as.events++
			at := ev.GetEventTime().AsTime()
			switch ev.GetEventType() {
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
				name := ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
				as.scheduled[name]++
				scheduled[ev.GetEventId()] = sched{name, at}
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
				if a := ev.GetActivityTaskStartedEventAttributes(); a.GetAttempt() > 1 {
					as.retried = append(as.retried, fmt.Sprintf("%s attempt %d", scheduled[a.GetScheduledEventId()].name, a.GetAttempt()))
				}
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
				closed(ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId(), at)
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
				a := ev.GetActivityTaskTimedOutEventAttributes()
				as.timedOut = append(as.timedOut, fmt.Sprintf("%s (%s)", closed(a.GetScheduledEventId(), at), a.GetFailure().GetMessage()))
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED:
				a := ev.GetActivityTaskFailedEventAttributes()
				as.failed = append(as.failed, fmt.Sprintf("%s (%s)", closed(a.GetScheduledEventId(), at), a.GetFailure().GetMessage()))
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED:
				as.cancelled = append(as.cancelled, scheduled[ev.GetActivityTaskCancelRequestedEventAttributes().GetScheduledEventId()].name)
			case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
				next = ev.GetWorkflowExecutionContinuedAsNewEventAttributes().GetNewExecutionRunId()
			}
		}
		run = next
	}
	return as, nil
}

func (as actStats) String() string {
	list := func(xs []string) string {
		if len(xs) == 0 {
			return "0"
		}
		return fmt.Sprintf("%d (%s)", len(xs), strings.Join(xs, "; "))
	}
	var acts []string
	for _, a := range []string{"FetchRanges", "PrepareWrite", "WritePartition", "CommitOffsets"} {
		if n := as.closed[a]; n > 0 {
			acts = append(acts, fmt.Sprintf("%d %s of %.2fs on average", n, a, (as.took[a]/time.Duration(n)).Seconds()))
		}
	}
	return fmt.Sprintf("the loops ran %s (scheduled to closed; FetchRanges includes the flush interval's wait); %d runs, %d events; activity attempts past the first %s, timed out %s, failed %s, cancel requested %s",
		strings.Join(acts, ", "), as.runs, as.events, list(as.retried), list(as.timedOut), list(as.failed), list(as.cancelled))
}
