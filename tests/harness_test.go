package tests

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	alioss "github.com/aliyun/aliyun-oss-go-sdk/oss"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/server/temporaltest"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/deploy/localstack/odpsemu"
	"github.com/dumpflow/dumpflow/deploy/localstack/ossfake"
	"github.com/dumpflow/dumpflow/kafka"
	ossink "github.com/dumpflow/dumpflow/sink/oss"
	"github.com/dumpflow/dumpflow/starter/verify"
	"github.com/dumpflow/dumpflow/workers/runner"
	"github.com/dumpflow/dumpflow/workflows"
)

const (
	bucket    = "dumpflow"
	credName  = "local"
	mcProject = "dumpflow"
)

// stack is the local stack of one test.
type stack struct {
	t        *testing.T
	temporal *temporaltest.TestServer
	client   client.Client
	kafka    *kfake.Cluster
	brokers  []string
	oss      *httptest.Server
	ossFake  *ossfake.Server // for fault injection
	ossDir   string
	ossParts atomic.Int64     // multipart UploadPart requests the OSS fake served
	mc       *httptest.Server // MaxCompute emulator: REST at mc.URL+"/api", tunnel at mc.URL
	mcEmu    *odpsemu.Server
	mcDir    string
	producer *kgo.Client
}

// Credentials are resolved on the worker, from the environment: every
// stack's servers take these. They are set for the whole test binary
// (not with t.Setenv) so that tests that mostly wait for the clock can run
// in parallel.
func init() {
	os.Setenv(connector.CredentialsEnvPrefix(credName)+"ACCESS_KEY_ID", "dumpflow")
	os.Setenv(connector.CredentialsEnvPrefix(credName)+"ACCESS_KEY_SECRET", "dumpflow-secret")
}

func newStack(t *testing.T) *stack {
	t.Helper()

	s := &stack{t: t}
	s.temporal = temporaltest.NewServer(temporaltest.WithT(t),
		temporaltest.WithBaseClientOptions(client.Options{Logger: tlog.NewStructuredLogger(quietLogger())}))
	s.client = s.temporal.GetDefaultClient()

	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	require.NoError(t, err)
	t.Cleanup(kc.Close)
	s.kafka, s.brokers = kc, kc.ListenAddrs()

	s.ossDir = t.TempDir()
	fake, err := ossfake.New(ossfake.Options{Dir: s.ossDir, Buckets: []string{bucket}})
	require.NoError(t, err)
	s.ossFake = fake
	s.oss = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Query().Has("partNumber") {
			s.ossParts.Add(1)
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(s.oss.Close)

	s.mcDir = t.TempDir()
	s.mcEmu, err = odpsemu.New(odpsemu.Options{Dir: s.mcDir, Projects: []string{mcProject}, AccessKeyID: "dumpflow", AccessKeySecret: "dumpflow-secret"})
	require.NoError(t, err)
	s.mc = httptest.NewServer(s.mcEmu)
	t.Cleanup(func() { s.mc.Close(); _ = s.mcEmu.Close() })

	s.producer, err = kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(8<<20))
	require.NoError(t, err)
	t.Cleanup(s.producer.Close)
	return s
}

// startWorker runs an in-process worker until the test ends.
func (s *stack) startWorker() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := runner.RunWithClient(ctx, s.client, runner.Config{Logger: quietLogger()})
		if err != nil {
			s.t.Errorf("worker: %v", err)
		}
	}()
	s.t.Cleanup(func() { cancel(); <-done })
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func (s *stack) createTopic(topic string, partitions int32) {
	s.t.Helper()
	kc, err := kafka.NewClient(kgo.SeedBrokers(s.brokers...))
	require.NoError(s.t, err)
	defer kc.Close()
	require.NoError(s.t, kc.EnsureTopic(context.Background(), topic, partitions))
}

// produce writes n records to each partition: value "<topic>-p<p>-<i>"
// padded to size bytes, timestamps starting at ts (zero: now).
func (s *stack) produce(topic string, partitions int32, n, size int, ts time.Time) {
	s.t.Helper()
	ctx := context.Background()
	for p := int32(0); p < partitions; p++ {
		recs := make([]*kgo.Record, 0, n)
		for i := 0; i < n; i++ {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Key: []byte(fmt.Sprintf("k%d", i)), Value: value(topic, p, i, size), Timestamp: ts})
		}
		require.NoError(s.t, s.producer.ProduceSync(ctx, recs...).FirstErr())
	}
}

func value(topic string, p int32, i, size int) []byte {
	v := fmt.Sprintf("%s-p%d-%08d", topic, p, i)
	if len(v) < size {
		v += strings.Repeat(".", size-len(v))
	}
	return []byte(v)
}

// ossSpec is an OSS connector spec for this stack.
func (s *stack) ossSpec(name, topic string) *connector.Spec {
	spec := &connector.Spec{
		Name:  name,
		Kafka: connector.KafkaSpec{Brokers: s.brokers, Topic: topic},
		Batch: connector.BatchSpec{MaxRecords: 1000, FlushInterval: connector.Duration(500 * time.Millisecond)},
		Sink: connector.SinkSpec{Type: connector.SinkOSS, OSS: &connector.OSSSpec{
			Endpoint: s.oss.URL, Bucket: bucket, Path: "{topic}/{yyyy}-{MM}-{dd}", Credentials: credName, PathStyle: true,
		}},
	}
	spec.Default()
	require.NoError(s.t, spec.Validate())
	return spec
}

// mcSpec is a MaxCompute connector spec for this stack, writing to table
// (created with the seed's default schema if missing).
func (s *stack) mcSpec(name, topic, table string) *connector.Spec {
	spec := &connector.Spec{
		Name:  name,
		Kafka: connector.KafkaSpec{Brokers: s.brokers, Topic: topic},
		Batch: connector.BatchSpec{MaxRecords: 1000, FlushInterval: connector.Duration(500 * time.Millisecond)},
		Sink: connector.SinkSpec{Type: connector.SinkMaxCompute, MaxCompute: &connector.MaxComputeSpec{
			Endpoint: s.mc.URL + "/api", TunnelEndpoint: s.mc.URL, Project: mcProject, Table: table, CreateTable: true, Credentials: credName,
		}},
	}
	spec.Default()
	require.NoError(s.t, spec.Validate())
	return spec
}

func (s *stack) start(spec *connector.Spec, historyLimit int) {
	s.t.Helper()
	_, err := s.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: spec.WorkflowID(), TaskQueue: workflows.TaskQueue,
	}, workflows.ConnectorName, withLimit(workflows.NewInput(spec), historyLimit))
	require.NoError(s.t, err)
}

func (s *stack) status(name string) (workflows.Status, error) {
	return workflows.ConnectorStatus(context.Background(), s.client, name)
}

// waitFor polls the status until cond holds.
func (s *stack) waitFor(name string, timeout time.Duration, what string, cond func(workflows.Status) bool) workflows.Status {
	s.t.Helper()
	var last workflows.Status
	var lastErr error
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		st, err := s.status(name)
		last, lastErr = st, err
		if err == nil && cond(st) {
			return st
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("timed out after %s waiting for %s; last status %+v (error %v)", timeout, what, last, lastErr)
	return last
}

// caughtUp is true when every partition's cursor reached want.
func caughtUp(want int64) func(workflows.Status) bool {
	return func(st workflows.Status) bool {
		if len(st.Partitions) == 0 {
			return false
		}
		for _, p := range st.Partitions {
			if p.Next < want {
				return false
			}
		}
		return true
	}
}

// cursors are the workflow's cursors, as starter verify reads them.
func (s *stack) cursors(spec *connector.Spec) map[int32]verify.Cursor {
	s.t.Helper()
	st, err := s.status(spec.Name)
	require.NoError(s.t, err)
	cursors := map[int32]verify.Cursor{}
	for _, p := range st.Partitions {
		cursors[p.Partition] = verify.Cursor{Start: p.Start, Committed: p.Next}
	}
	return cursors
}

// ossObjects lists the connector's data objects with their ranges.
func (s *stack) ossObjects(spec *connector.Spec) []ossink.Object {
	s.t.Helper()
	sk, err := ossink.New(spec, connector.Credentials{AccessKeyID: "dumpflow", AccessKeySecret: "dumpflow-secret"})
	require.NoError(s.t, err)
	listing, err := sk.Objects(context.Background(), spec.Kafka.Topic)
	require.NoError(s.t, err)
	var objs []ossink.Object
	for _, o := range listing.Objects {
		if o.Connector == spec.Name {
			objs = append(objs, o)
		}
	}
	require.NotEmpty(s.t, objs)
	return objs
}

// verifyLedger asserts the offset-coverage ledger is exact, from the
// sink's metadata and — deep — from the data itself compared with Kafka.
func (s *stack) verifyLedger(spec *connector.Spec) verify.Report {
	s.t.Helper()
	rep, err := verify.Run(context.Background(), spec, s.cursors(spec))
	require.NoError(s.t, err)
	require.Truef(s.t, rep.OK, "ledger not exact: %+v", rep)
	deep := s.verifyDeep(spec)
	return deep
}

// verifyDeep runs verify --deep and asserts it is exact.
func (s *stack) verifyDeep(spec *connector.Spec) verify.Report {
	s.t.Helper()
	rep, err := verify.Run(context.Background(), spec, s.cursors(spec), verify.Options{Deep: true})
	require.NoError(s.t, err)
	require.Truef(s.t, rep.OK, "deep ledger not exact: %+v", rep)
	for _, p := range rep.Partitions {
		require.Equalf(s.t, p.Ranges, p.Checked+len(p.Gone), "verify --deep checked every range of partition %d that Kafka still holds", p.Partition)
	}
	return rep
}

// readValues reads every data object of the bucket through the OSS SDK and
// returns the lines per value, so tests can count duplicates.
func (s *stack) readValues(prefix string) map[string]int {
	s.t.Helper()
	cl, err := alioss.New(s.oss.URL, "dumpflow", "dumpflow-secret", alioss.ForcePathStyle(true))
	require.NoError(s.t, err)
	b, err := cl.Bucket(bucket)
	require.NoError(s.t, err)
	counts := map[string]int{}
	token := ""
	for {
		opts := []alioss.Option{alioss.Prefix(prefix), alioss.MaxKeys(1000)}
		if token != "" {
			opts = append(opts, alioss.ContinuationToken(token))
		}
		res, err := b.ListObjectsV2(opts...)
		require.NoError(s.t, err)
		for _, o := range res.Objects {
			if strings.HasPrefix(filepath.Base(o.Key), ".oss_meta_file") {
				continue
			}
			rc, err := b.GetObject(o.Key)
			require.NoError(s.t, err)
			data, err := io.ReadAll(rc)
			rc.Close()
			require.NoError(s.t, err)
			sc := bufio.NewScanner(bytes.NewReader(data))
			sc.Buffer(make([]byte, 1<<20), 16<<20)
			for sc.Scan() {
				counts[sc.Text()]++
			}
		}
		if !res.IsTruncated {
			break
		}
		token = res.NextContinuationToken
	}
	return counts
}

// requireEachOnce asserts every expected value is present exactly once.
func requireEachOnce(t *testing.T, counts map[string]int, topic string, partitions int32, n, size int, except map[string]bool) {
	t.Helper()
	missing, dup := 0, 0
	for p := int32(0); p < partitions; p++ {
		for i := 0; i < n; i++ {
			v := string(value(topic, p, i, size))
			if except[v] {
				require.Zero(t, counts[v], "excluded value %q must not be in the sink", v)
				continue
			}
			switch c := counts[v]; {
			case c == 0:
				missing++
			case c > 1:
				dup++
			}
		}
	}
	require.Zero(t, missing, "values missing from the sink")
	require.Zero(t, dup, "values present more than once")
}

func withLimit(in workflows.ConnectorInput, limit int) workflows.ConnectorInput {
	in.HistoryLimit = limit
	return in
}
