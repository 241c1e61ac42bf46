package localstack_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aliyun/aliyun-oss-go-sdk/oss"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/dumpflow/dumpflow/deploy/localstack"
)

const (
	topic      = "localstack-test"
	group      = "localstack-test-group"
	objectKey  = "localstack/test.txt"
	workflowID = "localstack-restart-check"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func startStack(t *testing.T, dataDir string) *localstack.Stack {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// All ports 0: free ones.
	s, err := localstack.Start(ctx, localstack.Options{DataDir: dataDir, Logger: testLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestStackSurvivesRestart starts the whole stack, uses every component,
// restarts it on the same data dir and checks that the state is still there.
func TestStackSurvivesRestart(t *testing.T) {
	dataDir := t.TempDir()
	ctx := t.Context()

	s := startStack(t, dataDir)
	assert.Equal(t, "default", s.Namespace)
	assert.Equal(t, localstack.DefaultOSSBucket, s.OSSBucket)
	assert.DirExists(t, s.OSSBucketDir)

	tc := temporalClient(t, s)
	_, err := tc.CheckHealth(ctx, &client.CheckHealthRequest{})
	require.NoError(t, err)
	desc, err := tc.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: s.Namespace})
	require.NoError(t, err)
	assert.Equal(t, 7*24*time.Hour, desc.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration())

	// A workflow started by type name with no worker: it stays running.
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflowID, TaskQueue: "no-worker"}, "NoSuchWorkflow")
	require.NoError(t, err)
	requireListed(t, tc, run.GetRunID())

	// Kafka: two records; the group consumes and commits only the first.
	kc := kafkaClient(t, s, kgo.AllowAutoTopicCreation())
	require.NoError(t, kc.ProduceSync(ctx,
		&kgo.Record{Topic: topic, Value: []byte("one")},
		&kgo.Record{Topic: topic, Value: []byte("two")},
	).FirstErr())
	consumer := kafkaClient(t, s, kgo.ConsumeTopics(topic), kgo.ConsumerGroup(group), kgo.DisableAutoCommit())
	first := pollOne(t, consumer)
	assert.Equal(t, "one", string(first.Value))
	require.NoError(t, consumer.CommitRecords(ctx, first))
	consumer.Close()

	bucket := ossBucket(t, s)
	require.NoError(t, bucket.PutObject(objectKey, strings.NewReader("kept"), oss.Meta("stack", "local")))
	assert.Equal(t, "kept", getObject(t, bucket, objectKey))
	assert.FileExists(t, filepath.Join(s.OSSBucketDir, filepath.FromSlash(objectKey)))

	requireUI(t, s)

	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")

	// Same data dir, new ports.
	s = startStack(t, dataDir)

	tc = temporalClient(t, s)
	wf, err := tc.DescribeWorkflowExecution(ctx, workflowID, run.GetRunID())
	require.NoError(t, err)
	assert.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, wf.GetWorkflowExecutionInfo().GetStatus())
	assert.Equal(t, "NoSuchWorkflow", wf.GetWorkflowExecutionInfo().GetType().GetName())
	requireListed(t, tc, run.GetRunID())

	// The group resumes after its committed offset; the log still has both.
	consumer = kafkaClient(t, s, kgo.ConsumeTopics(topic), kgo.ConsumerGroup(group), kgo.DisableAutoCommit())
	assert.Equal(t, "two", string(pollOne(t, consumer).Value))
	consumer.Close()
	reader := kafkaClient(t, s, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	assert.Equal(t, "one", string(pollOne(t, reader).Value))

	bucket = ossBucket(t, s)
	assert.Equal(t, "kept", getObject(t, bucket, objectKey))
	meta, err := bucket.GetObjectDetailedMeta(objectKey)
	require.NoError(t, err)
	assert.Equal(t, "local", meta.Get("X-Oss-Meta-Stack"))

	requireUI(t, s)
}

func temporalClient(t *testing.T, s *localstack.Stack) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{
		HostPort:  s.TemporalAddress,
		Namespace: s.Namespace,
		Logger:    sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
	})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// requireListed waits for the workflow run to show in visibility, which is
// what `temporal workflow list` and the UI read.
func requireListed(t *testing.T, c client.Client, runID string) {
	t.Helper()
	require.Eventually(t, func() bool {
		res, err := c.ListWorkflow(t.Context(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowId = %q", workflowID),
		})
		return err == nil && len(res.GetExecutions()) == 1 &&
			res.GetExecutions()[0].GetExecution().GetRunId() == runID
	}, 10*time.Second, 50*time.Millisecond)
}

func kafkaClient(t *testing.T, s *localstack.Stack, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	c, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.KafkaBrokers...)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// pollOne returns the first record the consumer fetches.
func pollOne(t *testing.T, c *kgo.Client) *kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		fs := c.PollRecords(ctx, 1)
		require.NoError(t, ctx.Err(), "no record fetched")
		for _, err := range fs.Errors() {
			require.NoError(t, err.Err)
		}
		if recs := fs.Records(); len(recs) > 0 {
			return recs[0]
		}
	}
}

func ossBucket(t *testing.T, s *localstack.Stack) *oss.Bucket {
	t.Helper()
	c, err := oss.New(s.OSSEndpoint, "local", "local", oss.ForcePathStyle(true))
	require.NoError(t, err)
	b, err := c.Bucket(s.OSSBucket)
	require.NoError(t, err)
	return b
}

func getObject(t *testing.T, b *oss.Bucket, key string) string {
	t.Helper()
	rc, err := b.GetObject(key)
	require.NoError(t, err)
	defer rc.Close()
	data, err := io.ReadAll(rc)
	require.NoError(t, err)
	return string(data)
}

// requireUI checks the UI serves its page and reaches Temporal through its
// API proxy.
func requireUI(t *testing.T, s *localstack.Stack) {
	t.Helper()
	body := httpGet(t, s.UIURL+"/")
	assert.Contains(t, body, "<html")

	body = httpGet(t, s.UIURL+"/api/v1/namespaces/"+s.Namespace+"/workflows")
	assert.Contains(t, body, workflowID)
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", url, body)
	return string(body)
}

func TestStartFailsOnPortInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port

	for name, opts := range map[string]localstack.Options{
		"kafka":       {KafkaPort: port},
		"oss":         {OSSPort: port},
		"temporal":    {TemporalPort: port},
		"temporal ui": {UIPort: port},
	} {
		t.Run(name, func(t *testing.T) {
			opts.DataDir = t.TempDir()
			opts.Logger = testLogger(t)
			_, err := localstack.Start(t.Context(), opts)
			require.ErrorIs(t, err, syscall.EADDRINUSE)
			assert.True(t, strings.HasPrefix(err.Error(), fmt.Sprintf("%s: listen 127.0.0.1:%d: address already in use", name, port)), err.Error())
			assert.Contains(t, err.Error(), "is another local stack running?")
		})
	}
}

func TestExternalComponentsStartNothing(t *testing.T) {
	opts := localstack.Options{
		DataDir:         t.TempDir(),
		TemporalAddress: "temporal.example:7233",
		KafkaBrokers:    []string{"kafka.example:9092"},
		OSSEndpoint:     "https://oss-cn-hangzhou.aliyuncs.com",
		OSSBucket:       "prod-bucket",
		Logger:          testLogger(t),
	}
	s, err := localstack.Start(t.Context(), opts)
	require.NoError(t, err)
	assert.Equal(t, opts.TemporalAddress, s.TemporalAddress)
	assert.Equal(t, opts.KafkaBrokers, s.KafkaBrokers)
	assert.Equal(t, opts.OSSEndpoint, s.OSSEndpoint)
	assert.Equal(t, "prod-bucket", s.OSSBucket)
	assert.Empty(t, s.UIURL)
	assert.Empty(t, s.OSSBucketDir)
	require.NoError(t, s.Close())
}

func TestDefaultOptions(t *testing.T) {
	o := localstack.DefaultOptions()
	assert.Equal(t, 7233, o.TemporalPort)
	assert.Equal(t, 8233, o.UIPort)
	assert.Equal(t, 9092, o.KafkaPort)
	assert.Equal(t, 9300, o.OSSPort)
	assert.Equal(t, ".dumpflow-local", o.DataDir)
	assert.Equal(t, "dumpflow", o.OSSBucket)
}
