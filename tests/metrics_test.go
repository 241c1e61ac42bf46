package tests

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/metrics"
	"github.com/dumpflow/dumpflow/workers/runner"
	"github.com/dumpflow/dumpflow/workflows"
)

// mxStartWorker runs an in-process worker that serves its metrics
// (--metrics-addr) and returns the /metrics URL. Its Temporal client
// carries the worker's SDK metrics handler, as runner.Run's does.
func (s *stack) mxStartWorker() string {
	s.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(s.t, err)
	addr := ln.Addr().String()
	require.NoError(s.t, ln.Close())
	m, err := metrics.New(metrics.Options{})
	require.NoError(s.t, err)
	c := s.temporal.NewClientWithOptions(client.Options{MetricsHandler: m.TemporalHandler(), Logger: tlog.NewStructuredLogger(quietLogger())})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := runner.RunWithClient(ctx, c, runner.Config{Logger: quietLogger(), Metrics: m, MetricsAddr: addr}); err != nil {
			s.t.Errorf("worker: %v", err)
		}
	}()
	s.t.Cleanup(func() { cancel(); <-done })
	url := "http://" + addr + "/metrics"
	require.Eventually(s.t, func() bool {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	}, 10*time.Second, 50*time.Millisecond, "metrics endpoint %s", url)
	return url
}

// mxScrape reads /metrics as Prometheus does.
func mxScrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return mfs
}

// mxSample is the sum of the samples of family name whose labels include
// want (a counter or gauge; a histogram's sample count). ok is false when
// no sample matches.
func mxSample(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (v float64, ok bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, w := range want {
			if have[k] != w {
				continue next
			}
		}
		ok = true
		switch {
		case m.Counter != nil:
			v += m.GetCounter().GetValue()
		case m.Gauge != nil:
			v += m.GetGauge().GetValue()
		case m.Histogram != nil:
			v += float64(m.GetHistogram().GetSampleCount())
		case m.Untyped != nil:
			v += m.GetUntyped().GetValue()
		}
	}
	return v, ok
}

func mxPart(name, topic string, p int32, extra ...string) map[string]string {
	l := map[string]string{"connector": name, "topic": topic, "partition": strconv.Itoa(int(p))}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	return l
}

// TestMetricsMatchLedger dumps two partitions (one record over
// errors.maxRecordBytes goes to the dead-letter topic), scrapes the
// worker's /metrics and checks dumpflow's counters against the sink's own
// data: the objects listed in OSS (records, bytes, one object per batch),
// the ledger verify --deep reads, and the dead-letter topic. Lag is 0 and
// nothing is stopped; the Temporal SDK's and franz-go's metrics are
// served beside them. Then the connector is paused, more records arrive,
// and the lag — in status and in metrics — follows Kafka's high watermark
// while nothing is written, with stopped{reason="paused"} at 1.
func TestMetricsMatchLedger(t *testing.T) {
	s := newStack(t)
	url := s.mxStartWorker()
	const topic, n, size, poisonAt = "metered", 2500, 64, 700
	s.createTopic(topic, 2)
	s.producePoison(topic, n, size, poisonAt, 4096)
	s.mxProduce(topic, 1, 0, n, size)
	spec := s.ossSpec("metered", topic)
	spec.Errors.MaxRecordBytes = 1024
	in := withLimit(workflows.NewInput(spec), 0)
	in.RefreshInterval = connector.Duration(time.Second)
	_, err := s.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: spec.WorkflowID(), TaskQueue: workflows.TaskQueue}, workflows.ConnectorName, in)
	require.NoError(t, err)
	s.waitFor(spec.Name, 2*time.Minute, "caught up", caughtUp(n))
	rep := s.verifyLedger(spec)
	require.Len(t, rep.Partitions, 2)

	objs := s.ossObjects(spec)
	type sums struct{ records, bytes, objects, batches int64 }
	want := map[int32]*sums{0: {}, 1: {}}
	for _, o := range objs {
		if o.Kind != "data" {
			continue
		}
		w := want[o.Partition]
		w.records += o.Records
		w.bytes += o.Size
		w.objects++
		if o.Part == 0 {
			w.batches++
		}
	}
	dls := s.deadLetters(spec.Errors.DeadLetterTopic, 1)
	require.Len(t, dls, 1)

	// The write's metrics are recorded when its activity returns; the
	// cursor the status shows moved after that.
	mfs := mxScrape(t, url)
	for p := int32(0); p < 2; p++ {
		w := want[p]
		t.Logf("partition %d in the sink: %d records, %d bytes, %d objects, %d batches", p, w.records, w.bytes, w.objects, w.batches)
		for _, c := range []struct {
			name string
			want int64
		}{
			{metrics.RecordsWritten, w.records},
			{metrics.BytesWritten, w.bytes},
			{metrics.ObjectsWritten, w.objects},
			{metrics.BatchesWritten, w.batches},
			{metrics.WriteDuration, w.batches},
			{metrics.BatchRecords, w.batches},
		} {
			got, ok := mxSample(mfs, c.name, mxPart(spec.Name, topic, p))
			require.Truef(t, ok, "%s of partition %d is exported", c.name, p)
			require.EqualValuesf(t, c.want, got, "%s of partition %d", c.name, p)
		}
		lag, ok := mxSample(mfs, metrics.LagRecords, mxPart(spec.Name, topic, p))
		require.True(t, ok)
		require.Zero(t, lag, "lag of partition %d", p)
		age, _ := mxSample(mfs, metrics.LagSeconds, mxPart(spec.Name, topic, p))
		require.Zero(t, age, "lag seconds of partition %d", p)
		stopped, ok := mxSample(mfs, metrics.Stopped, mxPart(spec.Name, topic, p))
		require.True(t, ok)
		require.Zero(t, stopped, "partition %d is not stopped", p)
	}
	// verify's ledger (read from the sink, and --deep from the data) says
	// the same: records and ranges (batches) per partition.
	for _, p := range rep.Partitions {
		recs, _ := mxSample(mfs, metrics.RecordsWritten, mxPart(spec.Name, topic, p.Partition))
		require.EqualValues(t, p.Records, recs, "records of partition %d: metric and verify", p.Partition)
		batches, _ := mxSample(mfs, metrics.BatchesWritten, mxPart(spec.Name, topic, p.Partition))
		require.EqualValues(t, p.Ranges, batches, "batches of partition %d: metric and verify's ranges", p.Partition)
	}
	total, _ := mxSample(mfs, metrics.RecordsWritten, map[string]string{"connector": spec.Name})
	require.EqualValues(t, 2*n-1, total)

	stage := headers(dls[0])[kafka.HeaderStage]
	got, ok := mxSample(mfs, metrics.DeadLetters, mxPart(spec.Name, topic, 0, "stage", stage))
	require.Truef(t, ok, "dead letters of stage %q are exported", stage)
	require.EqualValues(t, len(dls), got)

	// The libraries' own metrics are served from the same endpoint.
	for _, name := range []string{"temporal_request_total", "temporal_activity_execution_latency_seconds", "kafka_read_bytes_total", "kafka_connects_total"} {
		_, ok := mxSample(mfs, name, nil)
		require.Truef(t, ok, "%s is exported", name)
	}

	// Paused, with records arriving: the lag stays true.
	require.NoError(t, s.client.SignalWorkflow(context.Background(), spec.WorkflowID(), "", workflows.SignalPause, nil))
	s.waitFor(spec.Name, 30*time.Second, "paused", func(st workflows.Status) bool {
		return st.Paused && len(st.Partitions) == 2 && st.Partitions[0].State == workflows.StatePaused
	})
	const more = 415
	s.mxProduce(topic, 0, n, more, size)
	st := s.waitFor(spec.Name, time.Minute, "true lag while paused", func(st workflows.Status) bool {
		return st.Partitions[0].Lag == more
	})
	require.EqualValues(t, n, st.Partitions[0].Next, "nothing is written while paused")
	var lag, paused float64
	require.Eventually(t, func() bool {
		mfs = mxScrape(t, url)
		lag, _ = mxSample(mfs, metrics.LagRecords, mxPart(spec.Name, topic, 0))
		paused, _ = mxSample(mfs, metrics.Stopped, mxPart(spec.Name, topic, 0, "reason", metrics.ReasonPaused))
		return lag == more && paused == 1
	}, 30*time.Second, 200*time.Millisecond, "lag records and stopped{reason=paused} while paused")
	age, _ := mxSample(mfs, metrics.LagSeconds, mxPart(spec.Name, topic, 0))
	require.Greater(t, age, 0.0, "the oldest unwritten record has an age")
	require.Less(t, age, 120.0)

	// Resumed: it catches up and the gauges say so.
	require.NoError(t, s.client.SignalWorkflow(context.Background(), spec.WorkflowID(), "", workflows.SignalResume, nil))
	s.waitFor(spec.Name, time.Minute, "caught up after resume", func(st workflows.Status) bool {
		return st.Partitions[0].Next == n+more && st.Partitions[0].Lag == 0
	})
	require.Eventually(t, func() bool {
		mfs = mxScrape(t, url)
		lag, _ := mxSample(mfs, metrics.LagRecords, mxPart(spec.Name, topic, 0))
		stopped, _ := mxSample(mfs, metrics.Stopped, mxPart(spec.Name, topic, 0))
		recs, _ := mxSample(mfs, metrics.RecordsWritten, mxPart(spec.Name, topic, 0))
		return lag == 0 && stopped == 0 && recs == float64(want[0].records+more)
	}, 30*time.Second, 200*time.Millisecond, "metrics after resume")

	// This run's history — with the refresh-parked-bounds version and
	// RefreshBounds activities while paused — replays deterministically.
	h := fetchRun(t, s, spec.WorkflowID(), "")
	refreshes := 0
	for _, e := range h.Events {
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == activities.RefreshBoundsName {
			refreshes++
		}
	}
	require.Positive(t, refreshes, "the paused connector refreshed its partitions' offsets")
	require.NoError(t, runner.Replay(h, spec.WorkflowID(), tlog.NewStructuredLogger(quietLogger())))
}

// mxProduce writes n records to partition p, values as produce's from
// index from on.
func (s *stack) mxProduce(topic string, p int32, from, n, size int) {
	s.t.Helper()
	recs := make([]*kgo.Record, 0, n)
	for i := from; i < from+n; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: value(topic, p, i, size)})
	}
	require.NoError(s.t, s.producer.ProduceSync(context.Background(), recs...).FirstErr())
}

// TestMetricsStoppedOnPoison: under tolerance stop a partition parks on a
// record over errors.maxRecordBytes; while it waits, records keep
// arriving, and its lag in status and in metrics follows Kafka, with
// stopped{reason="poison"} at 1. Resumed, the record goes to the
// dead-letter topic and the gauges clear.
func TestMetricsStoppedOnPoison(t *testing.T) {
	s := newStack(t)
	url := s.mxStartWorker()
	const topic, n, size, poisonAt, more = "parked", 600, 64, 250, 100
	s.createTopic(topic, 1)
	s.producePoison(topic, n, size, poisonAt, 4096)
	spec := s.ossSpec("parked", topic)
	spec.Errors.MaxRecordBytes = 1024
	spec.Errors.Tolerance = connector.ToleranceStop
	in := workflows.NewInput(spec)
	in.RefreshInterval = connector.Duration(time.Second)
	_, err := s.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: spec.WorkflowID(), TaskQueue: workflows.TaskQueue}, workflows.ConnectorName, in)
	require.NoError(t, err)
	s.waitFor(spec.Name, time.Minute, "stopped on the poison record", func(st workflows.Status) bool {
		return len(st.Partitions) == 1 && st.Partitions[0].State == workflows.StateStopped && st.Partitions[0].Next == poisonAt
	})
	s.mxProduce(topic, 0, n, more, size)
	s.waitFor(spec.Name, time.Minute, "true lag while stopped", func(st workflows.Status) bool {
		return st.Partitions[0].Lag == n+more-poisonAt
	})
	require.Eventually(t, func() bool {
		mfs := mxScrape(t, url)
		lag, _ := mxSample(mfs, metrics.LagRecords, mxPart(spec.Name, topic, 0))
		poison, _ := mxSample(mfs, metrics.Stopped, mxPart(spec.Name, topic, 0, "reason", metrics.ReasonPoison))
		others, _ := mxSample(mfs, metrics.Stopped, mxPart(spec.Name, topic, 0))
		age, _ := mxSample(mfs, metrics.LagSeconds, mxPart(spec.Name, topic, 0))
		return lag == n+more-poisonAt && poison == 1 && others == 1 && age > 0
	}, 30*time.Second, 200*time.Millisecond, "lag and stopped{reason=poison} while stopped")

	require.NoError(t, s.client.SignalWorkflow(context.Background(), spec.WorkflowID(), "", workflows.SignalResume, nil))
	s.waitFor(spec.Name, time.Minute, "caught up after resume", caughtUp(n+more))
	dls := s.deadLetters(spec.Errors.DeadLetterTopic, 1)
	require.Len(t, dls, 1)
	stage := headers(dls[0])[kafka.HeaderStage]
	require.Eventually(t, func() bool {
		mfs := mxScrape(t, url)
		lag, _ := mxSample(mfs, metrics.LagRecords, mxPart(spec.Name, topic, 0))
		stopped, _ := mxSample(mfs, metrics.Stopped, mxPart(spec.Name, topic, 0))
		dl, _ := mxSample(mfs, metrics.DeadLetters, mxPart(spec.Name, topic, 0, "stage", stage))
		recs, _ := mxSample(mfs, metrics.RecordsWritten, mxPart(spec.Name, topic, 0))
		return lag == 0 && stopped == 0 && dl == float64(len(dls)) && recs == n+more-1
	}, 30*time.Second, 200*time.Millisecond, "metrics after resume")
	s.verifyLedger(spec)
}

// TestMetricsDataLost: a retention race — records deleted from Kafka
// while the connector was paused, before they were dumped — parks the
// partition as data-lost; the metrics say so (stopped{reason="data-lost"},
// what the DumpflowDataLost alert reads) until the loss is acknowledged.
func TestMetricsDataLost(t *testing.T) {
	s := newStack(t)
	url := s.mxStartWorker()
	const topic, n, size = "retained", 100, 32
	s.createTopic(topic, 1)
	s.mxProduce(topic, 0, 0, n, size)
	spec := s.ossSpec("retained", topic)
	in := workflows.NewInput(spec)
	in.RefreshInterval = connector.Duration(time.Second)
	_, err := s.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: spec.WorkflowID(), TaskQueue: workflows.TaskQueue}, workflows.ConnectorName, in)
	require.NoError(t, err)
	s.waitFor(spec.Name, time.Minute, "caught up", caughtUp(n))
	require.NoError(t, s.client.SignalWorkflow(context.Background(), spec.WorkflowID(), "", workflows.SignalPause, nil))
	s.waitFor(spec.Name, 30*time.Second, "paused", allInState(workflows.StatePaused))
	s.mxProduce(topic, 0, n, 200, size)
	s.deleteRecords(topic, n+150, 0)
	require.NoError(t, s.client.SignalWorkflow(context.Background(), spec.WorkflowID(), "", workflows.SignalResume, nil))
	s.waitFor(spec.Name, time.Minute, "data lost", allInState(workflows.StateDataLost))
	require.Eventually(t, func() bool {
		mfs := mxScrape(t, url)
		lost, _ := mxSample(mfs, metrics.Stopped, mxPart(spec.Name, topic, 0, "reason", metrics.ReasonDataLost))
		lag, _ := mxSample(mfs, metrics.LagRecords, mxPart(spec.Name, topic, 0))
		return lost == 1 && lag == 200
	}, 30*time.Second, 200*time.Millisecond, "stopped{reason=data-lost} and lag")

	require.NoError(t, s.client.SignalWorkflow(context.Background(), spec.WorkflowID(), "", workflows.SignalAckDataLoss, workflows.AckDataLoss{By: "metrics test"}))
	s.waitFor(spec.Name, time.Minute, "caught up after the acknowledged loss", caughtUp(n+200))
	require.Eventually(t, func() bool {
		mfs := mxScrape(t, url)
		stopped, _ := mxSample(mfs, metrics.Stopped, mxPart(spec.Name, topic, 0))
		lag, _ := mxSample(mfs, metrics.LagRecords, mxPart(spec.Name, topic, 0))
		recs, _ := mxSample(mfs, metrics.RecordsWritten, mxPart(spec.Name, topic, 0))
		return stopped == 0 && lag == 0 && recs == n+50
	}, 30*time.Second, 200*time.Millisecond, "metrics after the acknowledged loss")
}

// TestMetricsWorkerProcessFlag: the worker binary started with
// --metrics-addr serves /metrics: dumpflow's metrics, the Temporal SDK's
// (through the client it dials) and franz-go's.
func TestMetricsWorkerProcessFlag(t *testing.T) {
	s := newStack(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	cmd := exec.Command(workerBinary(t), "-temporal", s.temporal.GetFrontendHostPort(), "-namespace", s.temporal.GetDefaultNamespace(),
		"-log-level", "warn", "-metrics-addr", addr)
	cmd.Env = os.Environ()
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	require.NoError(t, cmd.Start())
	w := &workerProcess{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(w.done) }()
	t.Cleanup(w.kill)

	const topic, n = "flagged", 300
	s.createTopic(topic, 1)
	s.mxProduce(topic, 0, 0, n, 32)
	spec := s.ossSpec("flagged", topic)
	s.start(spec, 0)
	s.waitFor(spec.Name, time.Minute, "caught up", caughtUp(n))
	url := "http://" + addr + "/metrics"
	require.Eventually(t, func() bool {
		mfs := mxScrape(t, url)
		recs, _ := mxSample(mfs, metrics.RecordsWritten, mxPart(spec.Name, topic, 0))
		_, temporal := mxSample(mfs, "temporal_request_total", nil)
		_, kafka := mxSample(mfs, "kafka_connects_total", nil)
		return recs == n && temporal && kafka
	}, 30*time.Second, 200*time.Millisecond, "the worker process's /metrics")
}
