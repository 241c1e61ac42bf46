package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/client"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/deploy/localstack"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/metrics"
	"github.com/dumpflow/dumpflow/starter/verify"
	"github.com/dumpflow/dumpflow/workers/runner"
	"github.com/dumpflow/dumpflow/workflows"
)

const (
	demoCredName = "local" // the credentials name the example specs use
	demoTopic    = "demo"
)

// cmdDemo runs dumpflow's main job on the local stack: it starts Temporal
// (SQLite) and its Web UI, a Kafka broker, the OSS fake, the MaxCompute
// emulator and a worker in this process, creates the demo topic, produces
// sample records, starts the example connectors and reports progress until
// Ctrl-C. Everything persists in --data-dir, so running it again resumes.
func cmdDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	opts := localstack.DefaultOptions()
	fs.StringVar(&opts.DataDir, "data-dir", opts.DataDir, "where the local stack keeps its state")
	fs.StringVar(&opts.TemporalAddress, "temporal", "", "use this Temporal frontend instead of starting one")
	fs.IntVar(&opts.TemporalPort, "temporal-port", opts.TemporalPort, "embedded Temporal frontend port")
	fs.IntVar(&opts.UIPort, "ui-port", opts.UIPort, "Temporal Web UI port (-1: no UI)")
	brokers := fs.String("kafka", "", "use these Kafka brokers (comma-separated) instead of starting kfake")
	fs.IntVar(&opts.KafkaPort, "kafka-port", opts.KafkaPort, "kfake broker port")
	fs.StringVar(&opts.OSSEndpoint, "oss-endpoint", "", "use this OSS endpoint instead of starting the OSS fake")
	fs.IntVar(&opts.OSSPort, "oss-port", opts.OSSPort, "OSS fake port")
	fs.StringVar(&opts.MaxComputeEndpoint, "maxcompute-endpoint", "", "use this MaxCompute endpoint instead of starting the emulator")
	fs.IntVar(&opts.MaxComputePort, "maxcompute-port", opts.MaxComputePort, "MaxCompute emulator port")
	examples := fs.String("examples", "deploy/examples", "directory of connector specs to start (*.yaml)")
	records := fs.Int("records", 30000, "sample records topic demo should hold: produced on start while it holds fewer (a second run produces none)")
	rate := fs.Int("rate", 20, "records per second to keep producing while running (0: none)")
	once := fs.Bool("once", false, "exit once every connector has caught up (for scripts and CI)")
	timeout := fs.Duration("timeout", 10*time.Minute, "with --once: give up after this long")
	verbose := fs.Bool("v", false, "log every component at debug level")
	metricsAddr := fs.String("metrics-addr", "", "serve the in-process worker's Prometheus metrics at host:port/metrics (e.g. :9464)")
	verifyAfter := fs.Bool("verify", false, "with --once: verify every connector's ledger, reading the data (verify --deep), before exiting (exit 1 if not exact)")
	if _, err := parse(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	if *brokers != "" {
		opts.KafkaBrokers = strings.Split(*brokers, ",")
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	// Once shutdown starts, in-flight activities end with "context canceled";
	// that is expected, so the demo stops logging then.
	var stopping atomic.Bool
	logger := slog.New(&untilStopping{Handler: slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}), stopping: &stopping})
	opts.Logger = logger

	specs, err := loadExamples(*examples)
	if err != nil {
		return err
	}
	if err := demoCredentials(opts.DataDir); err != nil {
		return err
	}

	say("starting the local stack in %s ...", opts.DataDir)
	st, err := localstack.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		say("stopping the local stack ...")
		if err := st.Close(); err != nil {
			say("stop: %v", err)
		}
		say("stopped. Run the same command again to resume where it stopped.")
	}()

	wcfg := runner.Config{TemporalAddress: st.TemporalAddress, Namespace: st.Namespace, Logger: logger, Identity: "dumpflow-demo-worker", MetricsAddr: *metricsAddr}
	if *metricsAddr != "" {
		// One registry for the client (Temporal SDK metrics) and the worker.
		if wcfg.Metrics, err = metrics.New(metrics.Options{}); err != nil {
			return err
		}
	}
	c, err := runner.Dial(ctx, wcfg)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := ensureSearchAttributes(ctx, c, st.Namespace); err != nil {
		return err
	}
	workerCtx, stopWorker := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := runner.RunWithClient(workerCtx, c, wcfg); err != nil {
			say("worker: %v", err)
		}
	}()
	defer func() { stopping.Store(true); stopWorker(); wg.Wait() }()

	// Point the examples at the stack actually running.
	for _, s := range specs {
		s.Kafka.Brokers = st.KafkaBrokers
		if o := s.Sink.OSS; o != nil {
			o.Endpoint, o.Bucket = st.OSSEndpoint, st.OSSBucket
			o.PathStyle = st.OSSBucketDir != ""
		}
		if m := s.Sink.MaxCompute; m != nil {
			m.Endpoint, m.TunnelEndpoint, m.Project = st.MaxComputeEndpoint, st.MaxComputeTunnelEndpoint, st.MaxComputeProject
		}
	}

	kc, err := kafka.NewClient(kgo.SeedBrokers(st.KafkaBrokers...), kgo.ProducerBatchMaxBytes(4<<20))
	if err != nil {
		return err
	}
	defer kc.Close()
	if err := kc.EnsureTopic(ctx, demoTopic, 3); err != nil {
		return err
	}
	if err := produceTradeLog(ctx, kc, *examples); err != nil {
		return err
	}
	specs = demoFunctions(ctx, specs, *examples, opts.DataDir)
	if opts.MaxComputeEndpoint == "" { // the stack's own emulator
		if err := createWindowTables(st.MaxComputeEndpoint, st.MaxComputeProject, *examples); err != nil {
			return err
		}
	}
	if n, err := samplesToProduce(ctx, kc, *records); err != nil {
		return err
	} else if n > 0 {
		say("producing %d sample records to topic %q (3 partitions) ...", n, demoTopic)
		if err := produceSamples(ctx, kc.Kgo(), n, time.Now().Add(-2*time.Hour), time.Now()); err != nil {
			return err
		}
	}
	for _, s := range specs {
		if err := ensureConnector(ctx, c, s); err != nil {
			return err
		}
	}
	printWhereToLook(st, specs, opts.DataDir)

	if *rate > 0 && !*once {
		go trickle(ctx, kc.Kgo(), *rate)
	}
	if err := watch(ctx, c, kc, specs, *once, *timeout); err != nil {
		return err
	}
	if *once && *verifyAfter {
		return verifyAll(ctx, c, specs)
	}
	return nil
}

// verifyAll prints each connector's ledger and fails if one is not exact.
func verifyAll(ctx context.Context, c client.Client, specs []*connector.Spec) error {
	ok := true
	for _, s := range specs {
		st, err := queryStatus(ctx, c, s.Name)
		if err != nil {
			return err
		}
		cursors := map[int32]verify.Cursor{}
		for _, p := range st.Partitions {
			cursors[p.Partition] = verify.Cursor{Start: p.Start, Committed: p.Next}
		}
		rep, err := verify.Run(ctx, s, cursors, verify.Options{Deep: true})
		if err != nil {
			return fmt.Errorf("verify %s: %w", s.Name, err)
		}
		printReport(rep, "workflow "+s.WorkflowID())
		ok = ok && rep.OK
	}
	if !ok {
		return exitError(1)
	}
	return nil
}

// untilStopping drops log records once stopping is set.
type untilStopping struct {
	slog.Handler
	stopping *atomic.Bool
}

func (h *untilStopping) Enabled(ctx context.Context, l slog.Level) bool {
	return !h.stopping.Load() && h.Handler.Enabled(ctx, l)
}

func (h *untilStopping) WithAttrs(as []slog.Attr) slog.Handler {
	return &untilStopping{Handler: h.Handler.WithAttrs(as), stopping: h.stopping}
}

func (h *untilStopping) WithGroup(name string) slog.Handler {
	return &untilStopping{Handler: h.Handler.WithGroup(name), stopping: h.stopping}
}

func loadExamples(dir string) ([]*connector.Spec, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no connector specs (*.yaml) in %s: run from the repository root or pass --examples", dir)
	}
	var specs []*connector.Spec
	for _, f := range files {
		s, err := connector.Load(f)
		if err != nil {
			return nil, err
		}
		specs = append(specs, s)
	}
	return specs, nil
}

// demoCredentials gives this process the local credentials, and writes them
// to <data-dir>/credentials/local.json for other processes (starter verify,
// a separate worker) to use with DUMPFLOW_CREDENTIALS_DIR.
func demoCredentials(dataDir string) error {
	p := connector.CredentialsEnvPrefix(demoCredName)
	if os.Getenv(p+"ACCESS_KEY_ID") == "" {
		os.Setenv(p+"ACCESS_KEY_ID", localstack.LocalAccessKeyID)
		os.Setenv(p+"ACCESS_KEY_SECRET", localstack.LocalAccessKeySecret)
	}
	dir := filepath.Join(dataDir, "credentials")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, _ := json.Marshal(connector.Credentials{AccessKeyID: localstack.LocalAccessKeyID, AccessKeySecret: localstack.LocalAccessKeySecret})
	return os.WriteFile(filepath.Join(dir, demoCredName+".json"), b, 0o600)
}

// produceSamples writes n JSON records spread over partitions, with
// timestamps evenly spread over [from, to) so HOUR partitions show.
func produceSamples(ctx context.Context, cl *kgo.Client, n int, from, to time.Time) error {
	span := to.Sub(from)
	recs := make([]*kgo.Record, 0, 1000)
	for i := 0; i < n; i++ {
		ts := from.Add(time.Duration(int64(span) * int64(i) / int64(n)))
		recs = append(recs, sampleRecord(i, ts))
		if len(recs) == cap(recs) || i == n-1 {
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				return fmt.Errorf("produce samples: %w", err)
			}
			recs = recs[:0]
		}
	}
	return nil
}

func sampleRecord(i int, ts time.Time) *kgo.Record {
	users := []string{"alice", "bob", "carol", "dave", "erin"}
	u := users[i%len(users)]
	v := fmt.Sprintf(`{"order":%d,"user":%q,"amount":%.2f,"ts":%q}`, i, u, float64(i%1000)/10, ts.UTC().Format(time.RFC3339))
	return &kgo.Record{Topic: demoTopic, Partition: int32(i % 3), Key: []byte(u), Value: []byte(v), Timestamp: ts}
}

// trickle keeps producing rate records per second until ctx is done.
func trickle(ctx context.Context, cl *kgo.Client, rate int) {
	t := time.NewTicker(time.Second / time.Duration(rate))
	defer t.Stop()
	for i := rand.IntN(1 << 20); ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			cl.Produce(ctx, sampleRecord(i, time.Now()), nil)
		}
	}
}

// ensureConnector starts the connector, or leaves it running if a previous
// run of the demo started it (its cursor lives in Temporal).
func ensureConnector(ctx context.Context, c client.Client, s *connector.Spec) error {
	desc, err := c.DescribeWorkflowExecution(ctx, s.WorkflowID(), "")
	if err == nil && desc.GetWorkflowExecutionInfo().GetStatus().String() == "Running" {
		say("connector %s is already running (workflow %s): it resumes where it stopped", s.Name, s.WorkflowID())
		return nil
	}
	if _, err := startConnector(ctx, c, s); err != nil {
		return err
	}
	say("started connector %s (workflow %s)", s.Name, s.WorkflowID())
	return nil
}

func printWhereToLook(st *localstack.Stack, specs []*connector.Spec, dataDir string) {
	fmt.Println()
	fmt.Println("dumpflow is running. Where to look:")
	if st.UIURL != "" {
		fmt.Printf("  Temporal Web UI     %s/namespaces/%s/workflows\n", st.UIURL, st.Namespace)
	}
	fmt.Printf("  Temporal frontend   %s (temporal workflow list --address %s)\n", st.TemporalAddress, st.TemporalAddress)
	fmt.Printf("  Kafka               %s (kcat -b %s -L)\n", strings.Join(st.KafkaBrokers, ","), st.KafkaBrokers[0])
	if st.OSSBucketDir != "" {
		fmt.Printf("  OSS bucket on disk  %s\n", st.OSSBucketDir)
	}
	fmt.Printf("  OSS endpoint        %s (bucket %s)\n", st.OSSEndpoint, st.OSSBucket)
	if st.MaxComputeEndpoint != "" {
		fmt.Printf("  MaxCompute          %s (project %s; emulator)\n", st.MaxComputeEndpoint, st.MaxComputeProject)
	}
	creds, _ := filepath.Abs(filepath.Join(dataDir, "credentials"))
	fmt.Println("\nIn another terminal:")
	for _, s := range specs {
		fmt.Printf("  go run ./starter status %s\n", s.Name)
	}
	for _, s := range specs {
		fmt.Printf("  DUMPFLOW_CREDENTIALS_DIR=%s go run ./starter verify %s\n", creds, s.Name)
		if s.Sink.Type == connector.SinkMaxCompute {
			fmt.Printf("  DUMPFLOW_CREDENTIALS_DIR=%s go run ./starter table partitions %s\n", creds, s.Name)
		}
	}
	fmt.Println("\nCtrl-C stops everything; running the demo again resumes where it stopped.")
	fmt.Println()
}

// watch prints one progress line per connector every few seconds. With
// once, it returns when every connector has caught up with its topic.
func watch(ctx context.Context, c client.Client, kc *kafka.Client, specs []*connector.Spec, once bool, timeout time.Duration) error {
	t := time.NewTicker(3 * time.Second)
	defer t.Stop()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-ctx.Done():
			fmt.Println()
			return nil
		case <-t.C:
		}
		done := true
		ends := map[string]map[int32]kafka.Bounds{}
		for _, s := range specs {
			if _, ok := ends[s.Kafka.Topic]; ok {
				continue
			}
			b, err := kc.Bounds(ctx, s.Kafka.Topic)
			if err != nil {
				say("kafka: %v", err)
				done = false
			}
			ends[s.Kafka.Topic] = b
		}
		for _, s := range specs {
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			st, err := queryStatus(qctx, c, s.Name)
			cancel()
			if err != nil {
				say("%-18s waiting for the worker (%s)", s.Name, sentence(err.Error()))
				done = false
				continue
			}
			var recs, lag, dlq, objs int64
			stopped := 0
			for _, p := range st.Partitions {
				lag += max(0, ends[s.Kafka.Topic][p.Partition].End-p.Next)
				recs, dlq, objs = recs+p.Records, dlq+p.DeadLetters, objs+p.Objects
				if p.State == workflows.StateStopped {
					stopped++
				}
			}
			unit := "objects"
			if s.Sink.Type == connector.SinkMaxCompute {
				unit = "sessions"
			}
			line := fmt.Sprintf("%-18s %8d records written  %5d %s  lag %6d  dead letters %d", s.Name, recs, objs, unit, lag, dlq)
			if stopped > 0 {
				line += fmt.Sprintf("  %d partition(s) STOPPED: starter status %s", stopped, s.Name)
			}
			if st.Error != "" {
				line += "  error: " + sentence(st.Error)
			}
			say("%s", line)
			if lag > 0 || len(st.Partitions) == 0 {
				done = false
			}
		}
		if once && done {
			say("every connector has caught up")
			return nil
		}
		if once && time.Now().After(deadline) {
			return errors.New("timed out waiting for the connectors to catch up")
		}
	}
}

func say(format string, args ...any) {
	fmt.Printf("%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// samplesToProduce is how many of the want sample records the demo topic
// still lacks: a demo run again on the same data directory finds the
// records of the first run there (Kafka keeps them) and produces no more,
// so running the demo twice does not double the sample.
func samplesToProduce(ctx context.Context, kc *kafka.Client, want int) (int, error) {
	if want <= 0 {
		return 0, nil
	}
	bounds, err := kc.Bounds(ctx, demoTopic)
	if err != nil {
		return 0, fmt.Errorf("cannot read the offsets of topic %s: %w", demoTopic, err)
	}
	var have int64
	for _, b := range bounds {
		have += b.End
	}
	if have >= int64(want) {
		say("topic %q already holds %d records; producing no more samples", demoTopic, have)
		return 0, nil
	}
	return want - int(have), nil
}
