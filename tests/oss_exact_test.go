package tests

// End-to-end tests of the OSS side of dumpflow's exactly-once promise
// (docs/exactly-once.md): cuts recorded before writes, sameRange, the meta
// object and resume by listing, one writer per connector name, strict specs
// through the Temporal path, verify and verify --deep, error
// classification, and credentials bound to where they may be used.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	alioss "github.com/aliyun/aliyun-oss-go-sdk/oss"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/server/temporaltest"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/deploy/localstack/ossfake"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/sink"
	ossink "github.com/dumpflow/dumpflow/sink/oss"
	"github.com/dumpflow/dumpflow/starter/verify"
	"github.com/dumpflow/dumpflow/workers/runner"
	"github.com/dumpflow/dumpflow/workflows"
)

// exTS is the timestamp of records whose object folder a test computes.
var exTS = time.Date(2024, 3, 5, 10, 30, 0, 0, time.UTC)

// exCRC is the CRC-64 (ECMA) OSS and dumpflow use.
var exCRC = crc64.MakeTable(crc64.ECMA)

// exBucket is the test bucket through the unmodified OSS SDK.
func (s *stack) exBucket() *alioss.Bucket {
	s.t.Helper()
	cl, err := alioss.New(s.oss.URL, "dumpflow", "dumpflow-secret", alioss.ForcePathStyle(true))
	require.NoError(s.t, err)
	b, err := cl.Bucket(bucket)
	require.NoError(s.t, err)
	return b
}

// exSink is spec's OSS sink, for its key functions and meta reads.
func (s *stack) exSink(spec *connector.Spec) *ossink.Sink {
	s.t.Helper()
	sk, err := ossink.New(spec, connector.Credentials{AccessKeyID: "dumpflow", AccessKeySecret: "dumpflow-secret"})
	require.NoError(s.t, err)
	return sk
}

// exKeys lists every key of the bucket under prefix.
func (s *stack) exKeys(prefix string) []string {
	s.t.Helper()
	b := s.exBucket()
	var keys []string
	token := ""
	for {
		opts := []alioss.Option{alioss.Prefix(prefix), alioss.MaxKeys(1000)}
		if token != "" {
			opts = append(opts, alioss.ContinuationToken(token))
		}
		res, err := b.ListObjectsV2(opts...)
		require.NoError(s.t, err)
		for _, o := range res.Objects {
			keys = append(keys, o.Key)
		}
		if !res.IsTruncated {
			return keys
		}
		token = res.NextContinuationToken
	}
}

// exFolder is the folder spec's path template gives a batch of topic's
// partition p whose first record has timestamp ts (as the sink expands it).
func exFolder(t *testing.T, spec *connector.Spec, p int32, ts time.Time) string {
	t.Helper()
	loc, err := connector.ParseTimeZone(spec.Sink.OSS.TimeZone)
	require.NoError(t, err)
	tt := ts.In(loc)
	f := strings.NewReplacer(
		"{topic}", spec.Kafka.Topic,
		"{partition}", strconv.Itoa(int(p)),
		"{yyyy}", tt.Format("2006"),
		"{MM}", tt.Format("01"),
		"{dd}", tt.Format("02"),
		"{HH}", tt.Format("15"),
		"{mm}", tt.Format("04"),
	).Replace(spec.Sink.OSS.Path)
	if f != "" && !strings.HasSuffix(f, "/") {
		f += "/"
	}
	return f
}

// exKey is the key of spec's data object for the range of partition p
// starting at first, whose first record has timestamp ts.
func exKey(t *testing.T, spec *connector.Spec, p int32, first int64, ts time.Time) string {
	return exFolder(t, spec, p, ts) + ossink.ObjectName(sink.BatchID{Connector: spec.Name, Topic: spec.Kafka.Topic, Partition: p, First: first})
}

// exBody is the object body dumpflow writes for values [from, to) of
// partition p as s.produce makes them.
func exBody(topic string, p int32, from, to, size int) []byte {
	var b bytes.Buffer
	for i := from; i < to; i++ {
		b.Write(value(topic, p, i, size))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// exProduceAt produces values [from, to) on every partition with
// timestamp ts.
func (s *stack) exProduceAt(topic string, partitions int32, from, to, size int, ts time.Time) {
	s.t.Helper()
	for p := int32(0); p < partitions; p++ {
		recs := make([]*kgo.Record, 0, to-from)
		for i := from; i < to; i++ {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Key: []byte(fmt.Sprintf("k%d", i)), Value: value(topic, p, i, size), Timestamp: ts})
		}
		require.NoError(s.t, s.producer.ProduceSync(context.Background(), recs...).FirstErr())
	}
}

// exStatus queries the status of connector name through c.
func exStatus(c client.Client, name string) (workflows.Status, error) {
	return workflows.ConnectorStatus(context.Background(), c, name)
}

// exPartition is partition p's row of st.
func exPartition(t *testing.T, st workflows.Status, p int32) workflows.PartitionStatus {
	t.Helper()
	for _, ps := range st.Partitions {
		if ps.Partition == p {
			return ps
		}
	}
	t.Fatalf("status has no partition %d: %+v", p, st)
	return workflows.PartitionStatus{}
}

// exKafka is an admin/read client of the stack's cluster.
func (s *stack) exKafka() *kafka.Client {
	s.t.Helper()
	kc, err := kafka.NewClient(kgo.SeedBrokers(s.brokers...))
	require.NoError(s.t, err)
	s.t.Cleanup(kc.Close)
	return kc
}

// exTopicRecords is the number of records in topic (0 if it is missing).
func (s *stack) exTopicRecords(topic string) int64 {
	s.t.Helper()
	b, err := s.exKafka().Bounds(context.Background(), topic)
	if errors.Is(err, kafka.ErrNoTopic) {
		return 0
	}
	require.NoError(s.t, err)
	var n int64
	for _, pb := range b {
		require.NoError(s.t, pb.Err)
		n += pb.End - pb.Start
	}
	return n
}

// exSignalResume signals resume to connector name.
func (s *stack) exSignalResume(name string) {
	s.t.Helper()
	require.NoError(s.t, s.client.SignalWorkflow(context.Background(), connector.WorkflowID(name), "", workflows.SignalResume, nil))
}

// exStopped is true when partition p is parked (stopped) with an error
// containing every one of want.
func exStopped(p int32, want ...string) func(workflows.Status) bool {
	return func(st workflows.Status) bool {
		for _, ps := range st.Partitions {
			if ps.Partition != p || ps.State != workflows.StateStopped {
				continue
			}
			for _, w := range want {
				if !strings.Contains(ps.LastError, w) {
					return false
				}
			}
			return true
		}
		return false
	}
}

// TestOSSCutInHistoryBeforeWrite proves the rule "what a write writes is
// decided before it, in history": it reads the connector's history through
// the SDK client. batch.maxBytes is small so that a plan holds many
// batches.
//
//   - A V2 WritePartition input carries an end, and its [first, end) is
//     exactly a range a FetchRanges result cut earlier in the same history.
//   - A V3 WritePartition (batched writes, the default since
//     batched-writes) carries the bounds [first, planEnd) of an uncut plan
//     recorded earlier (or of what is left of it after the partition's
//     previous write), and a batch count; it cuts its batches as it reads,
//     the same way on every attempt. Its result ends inside those bounds,
//     its batches hold at most batch.maxBytes plus one record each, and the
//     results tile each partition.
//
// A write that wrote past its recorded bounds, or whose ranges overlapped
// or left holes, fails the test; verify --deep then checks the objects.
func TestOSSCutInHistoryBeforeWrite(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, parts, n, size = "cuts", 2, 3000, 100
	s.createTopic(topic, parts)
	s.produce(topic, parts, n/2, size, time.Time{})
	spec := s.ossSpec("cuts-oss", topic)
	spec.Batch.MaxBytes = 20 << 10 // ~195 records: the byte limit cuts every full plan
	s.start(spec, 0)
	s.produce2(topic, parts, n/2, n, size)
	s.waitFor(spec.Name, 2*time.Minute, "all records", caughtUp(n))

	type rng struct{ first, end int64 }
	type planAt struct {
		event int64
		plan  activities.Plan
	}
	dc := converter.GetDefaultDataConverter()
	acts := s.historyActivities(spec.WorkflowID(), "")
	var plans []planAt // at the FetchRanges' completed event
	for _, a := range acts {
		if a.Name == activities.FetchRangesName && a.Completed != 0 {
			var res activities.FetchRangesResult
			require.NoError(t, dc.FromPayloads(a.Result, &res))
			for _, p := range res.Plans {
				plans = append(plans, planAt{a.Completed, p})
			}
		}
	}
	writes := s.writesOf(acts)
	require.NotEmpty(t, writes, "the history holds WritePartition activities")
	written := map[int32][]rng{}
	batches := 0
	for _, w := range writes {
		in := w.In
		require.NotNilf(t, w.Res, "WritePartition at event %d completed", w.Event)
		switch in.Version {
		case activities.V2:
			require.Greaterf(t, in.End, in.First, "WritePartition at event %d of partition %d has no end: %+v", w.Event, in.Partition, in)
			found := false
			for _, p := range plans {
				if p.event < w.Event && p.plan.Partition == in.Partition && p.plan.First == in.First && p.plan.End == in.End {
					found = true
					break
				}
			}
			require.Truef(t, found, "WritePartition at event %d writes partition %d [%d,%d), which no earlier FetchRanges result cut", w.Event, in.Partition, in.First, in.End)
			require.Equal(t, in.End, w.Res.End)
		case activities.V3:
			require.Positivef(t, in.Batches, "V3 WritePartition at event %d has a batch count", w.Event)
			found := false
			for _, p := range plans {
				if p.event < w.Event && p.plan.Partition == in.Partition && p.plan.First <= in.First && p.plan.PlanEnd == in.PlanEnd && p.plan.End == 0 {
					found = true
					break
				}
			}
			require.Truef(t, found, "V3 WritePartition at event %d writes partition %d within [%d,%d), bounds no earlier FetchRanges result planned", w.Event, in.Partition, in.First, in.PlanEnd)
			require.Greaterf(t, w.Res.End, in.First, "write at event %d moved", w.Event)
			require.LessOrEqualf(t, w.Res.End, in.PlanEnd, "write at event %d stayed within its recorded bounds", w.Event)
			require.LessOrEqual(t, w.Res.Batches, in.Batches)
			require.Positive(t, w.Res.Batches)
			// Values of 100 bytes: a batch cut at 20KiB holds at most
			// 20480/100 + 1 records.
			t.Logf("write %d: [%d,%d) batches %d records %d bytes %d objects %d", w.Event, in.First, w.Res.End, w.Res.Batches, w.Res.Written.Records, w.Res.Written.Bytes, len(w.Res.Written.Objects))
			require.LessOrEqualf(t, w.Res.Written.Records, int64(w.Res.Batches)*(20480/size+1), "write at event %d: its batches are cut at batch.maxBytes", w.Event)
			batches += w.Res.Batches
		default:
			t.Fatalf("WritePartition at event %d has version %d", w.Event, in.Version)
		}
		written[in.Partition] = append(written[in.Partition], rng{in.First, w.Res.End})
	}
	require.Greater(t, batches, len(writes), "batched writes write several batches each")
	// The writes recorded in history tile each partition.
	for p := int32(0); p < parts; p++ {
		next := int64(0)
		for _, r := range written[p] {
			require.Equalf(t, next, r.first, "partition %d: writes in history are contiguous", p)
			next = r.end
		}
		require.Equal(t, int64(n), next, "partition %d: the writes in history cover every record", p)
	}
	s.verifyLedger(spec)
	requireEachOnce(t, s.readValues(topic+"/"), topic, parts, n, size, nil)
}

// exPlant puts body at key with the dumpflow metadata of a data object of
// spec's partition p covering [first, end) with the given record count and
// CRC-64, and no writer.
func (s *stack) exPlant(spec *connector.Spec, key string, p int32, first, end, records int64, crc uint64, body []byte) {
	s.t.Helper()
	opts := []alioss.Option{
		alioss.Meta("Dumpflow-Connector", spec.Name),
		alioss.Meta("Dumpflow-Topic", spec.Kafka.Topic),
		alioss.Meta("Dumpflow-Partition", strconv.Itoa(int(p))),
		alioss.Meta("Dumpflow-First", strconv.FormatInt(first, 10)),
		alioss.Meta("Dumpflow-End", strconv.FormatInt(end, 10)),
		alioss.Meta("Dumpflow-Start", "0"),
		alioss.Meta("Dumpflow-Records", strconv.FormatInt(records, 10)),
		alioss.Meta("Dumpflow-Kind", "data"),
		alioss.Meta("Dumpflow-Crc64", strconv.FormatUint(crc, 10)),
	}
	require.NoError(s.t, s.exBucket().PutObject(key, bytes.NewReader(body), opts...))
}

// TestOSSSameRangeComparesCountAndCRC proves that an object already at a
// batch's key counts as written only when its record count and CRC-64
// equal the batch's. Objects are planted through the OSS SDK at exactly the
// keys ranges will get, with the connector's name and the range in their
// metadata but a truncated body:
//   - partitions 0 and 1, at their second range [1000,2000), planted while
//     the connector runs and before it writes that range: partition 0 with
//     the truncated body's count and CRC-64 (the count differs), partition
//     1 with the right count but the truncated body's CRC-64 (only the
//     CRC-64 differs);
//   - partition 2, at its first range [0,1000), planted before the
//     connector starts, with metadata consistent with the truncated body:
//     the connector finds it when it resumes from the sink.
//
// Every partition must park with ObjectConflict, keeping its range, writing
// nothing else and skipping nothing; once the planted objects are deleted,
// resume completes the dump exactly. If sameRange compared the range only,
// or the range and count only — or if resuming trusted a listed object's
// own metadata — a partition would count the truncated object as its batch
// and lose records silently.
func TestOSSSameRangeComparesCountAndCRC(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, parts, n, size, batch = "planted", 3, 2000, 100, 1000
	s.createTopic(topic, parts)
	spec := s.ossSpec("planted-oss", topic)
	require.Equal(t, batch, spec.Batch.MaxRecords)
	sk := s.exSink(spec)
	ctx := context.Background()

	// plant puts a truncated copy of partition p's range [first, first+batch)
	// at the range's key: half the records, with the given record count in
	// its metadata and the truncated body's CRC-64.
	planted := map[int32]string{}
	plant := func(p int32, first int64, records int64) {
		key := exKey(t, spec, p, first, exTS)
		trunc := exBody(topic, p, int(first), int(first)+batch/2, size)
		s.exPlant(spec, key, p, first, first+batch, records, crc64.Checksum(trunc, exCRC), trunc)
		planted[p] = key
	}
	requireUntouched := func(p int32, first int64) {
		rc, err := s.exBucket().GetObject(planted[p])
		require.NoError(t, err)
		body, err := io.ReadAll(rc)
		rc.Close()
		require.NoError(t, err)
		require.Equalf(t, exBody(topic, p, int(first), int(first)+batch/2, size), body, "partition %d: the planted object is untouched", p)
	}

	s.exProduceAt(topic, parts, 0, batch, size, exTS)
	plant(2, 0, batch/2)
	s.start(spec, 0)
	s.waitFor(spec.Name, time.Minute, "partitions 0 and 1 at 1000, partition 2 parked", func(st workflows.Status) bool {
		at := 0
		for _, ps := range st.Partitions {
			if ps.Partition < 2 && ps.Next == batch {
				at++
			}
		}
		return at == 2 && exStopped(2, "ObjectConflict")(st)
	})
	plant(0, batch, batch/2)
	plant(1, batch, batch)
	s.exProduceAt(topic, parts, batch, n, size, exTS)

	st := s.waitFor(spec.Name, time.Minute, "every partition parked on ObjectConflict", func(st workflows.Status) bool {
		return exStopped(0, "ObjectConflict")(st) && exStopped(1, "ObjectConflict")(st) && exStopped(2, "ObjectConflict")(st)
	})
	require.Contains(t, exPartition(t, st, 0).LastError, "record count")
	require.Contains(t, exPartition(t, st, 1).LastError, "CRC-64")
	require.Contains(t, exPartition(t, st, 2).LastError, "record count")
	require.Equal(t, "sink", exPartition(t, st, 2).From, "partition 2 found the planted object when it resumed from the sink")
	listing, err := sk.Objects(ctx, topic)
	require.NoError(t, err)
	for p := int32(0); p < parts; p++ {
		first := int64(batch)
		if p == 2 {
			first = 0
		}
		ps := exPartition(t, st, p)
		require.Equalf(t, first, ps.Next, "partition %d must not move past the conflicting range", p)
		require.Equal(t, first, ps.Records)
		require.NotNil(t, ps.Pending, "partition %d keeps its range", p)
		require.Equal(t, first, ps.Pending.First)
		require.Equal(t, first+batch, ps.Pending.End)
		require.Zero(t, ps.ErrorRecords, "nothing is routed")
		requireUntouched(p, first)
		// Nothing at or past the conflicting range but the planted object.
		for _, o := range listing.Objects {
			if o.Partition == p && o.First >= first {
				require.Equalf(t, planted[p], o.Key, "partition %d wrote nothing past %d", p, first)
			}
		}
	}
	require.Zero(t, s.exTopicRecords(spec.Errors.ErrorDataTopic), "nothing went to the error-data topic")

	for _, k := range planted {
		require.NoError(t, s.exBucket().DeleteObject(k))
	}
	s.exSignalResume(spec.Name)
	st = s.waitFor(spec.Name, time.Minute, "all records after resume", caughtUp(n))
	for _, ps := range st.Partitions {
		require.Equal(t, workflows.StateRunning, ps.State)
		require.Equal(t, int64(n), ps.Records)
	}
	s.verifyLedger(spec)
	requireEachOnce(t, s.readValues(topic+"/"), topic, parts, n, size, nil)
}

// TestOSSResumeListsPastMeta proves that a connector whose workflow was
// lost resumes from the sink, listing past the meta object: the meta PUT of
// partition 0 fails (persistently) so the data object of its second batch
// lands while the meta object still ends at the first batch; the workflow
// is terminated and the group offsets deleted, so only the sink can say
// where to resume. The new workflow must find the listed object and take
// its range as its pending range — confirming it against Kafka instead of
// trusting or rewriting it — so the object is not written again (same key,
// same writer, one object, no duplicate line) and verify --deep is exact;
// from the meta object alone it would write [1000,2000) a second time.
// Meanwhile a sampler checks that partition 0's meta object never moves
// backwards.
func TestOSSResumeListsPastMeta(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, parts, size = "lost", 2, 100
	s.createTopic(topic, parts)
	s.produce(topic, parts, 1000, size, time.Time{})
	spec := s.ossSpec("lost-oss", topic)
	sk := s.exSink(spec)
	ctx := context.Background()

	// Sample partition 0's meta object: its end must never decrease.
	var (
		mu       sync.Mutex
		lastEnd  int64
		backward []string
	)
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			m, ok, err := sk.ReadMeta(ctx, topic, 0)
			if err != nil || !ok {
				continue
			}
			mu.Lock()
			if m.End < lastEnd {
				backward = append(backward, fmt.Sprintf("%d after %d", m.End, lastEnd))
			}
			lastEnd = max(lastEnd, m.End)
			mu.Unlock()
		}
	}()
	defer func() {
		close(stop)
		<-sampled
	}()

	s.start(spec, 0)
	s.waitFor(spec.Name, time.Minute, "first 1000", caughtUp(1000))
	metaKey := sk.MetaKey(topic, 0)
	inj := s.ossFake.InjectFault(ossfake.InternalError(ossfake.Match{Ops: []ossfake.Op{ossfake.OpPutObject}, KeyPrefix: metaKey}))
	defer inj.Remove()
	s.produce2(topic, parts, 1000, 2000, size)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	require.NoError(t, inj.Wait(wctx, 1), "partition 0's meta update should fail")
	require.NoError(t, s.client.TerminateWorkflow(ctx, spec.WorkflowID(), "", "test: workflow lost between object and meta"))

	// The data object of [1000,2000) is there; the meta object still ends at 1000.
	m, ok, err := sk.ReadMeta(ctx, topic, 0)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(1000), m.End, "the meta update of [1000,2000) was lost")
	var second []ossink.Object
	for _, o := range s.ossObjects(spec) {
		if o.Partition == 0 && o.First == 1000 {
			second = append(second, o)
		}
	}
	require.Len(t, second, 1, "the data object of [1000,2000) landed")
	require.Equal(t, int64(2000), second[0].End)
	oldWriter := second[0].Writer
	require.NotEmpty(t, oldWriter)

	metaEnd := map[int32]int64{}
	for p := int32(0); p < parts; p++ {
		m, ok, err := sk.ReadMeta(ctx, topic, p)
		require.NoError(t, err)
		require.True(t, ok)
		metaEnd[p] = m.End
	}

	resp, err := s.exKafka().Admin().DeleteGroup(ctx, spec.Group())
	require.NoError(t, err)
	require.NoError(t, resp.Err)

	// Start again. The fault stays until the new run has resolved where
	// it starts, so no meta update of the old run can land meanwhile.
	s.start(spec, 0)
	st := s.waitFor(spec.Name, time.Minute, "partitions resolved", func(st workflows.Status) bool { return len(st.Partitions) == parts })
	p0 := exPartition(t, st, 0)
	require.Equal(t, "sink", p0.From)
	require.Equal(t, int64(0), p0.Start)
	require.Equal(t, int64(1000), p0.Next)
	require.NotNil(t, p0.Pending, "partition 0 has the listed object's range in hand, not a new plan from the meta's end")
	require.Equal(t, int64(1000), p0.Pending.First)
	require.Equal(t, int64(2000), p0.Pending.End)
	resumed := map[int32]int64{} // where the new run began: its cursor less what it covered so far
	for _, ps := range st.Partitions {
		require.Equal(t, "sink", ps.From, "partition %d resumes from the sink", ps.Partition)
		resumed[ps.Partition] = ps.Next - ps.Records
		require.GreaterOrEqualf(t, resumed[ps.Partition], metaEnd[ps.Partition], "partition %d: the new run covers nothing its meta object records", ps.Partition)
	}
	inj.Remove()

	s.produce2(topic, parts, 2000, 3000, size)
	st = s.waitFor(spec.Name, time.Minute, "caught up after the restart", caughtUp(3000))
	for _, ps := range st.Partitions {
		require.Equal(t, int64(3000)-resumed[ps.Partition], ps.Records, "partition %d: the new run covers only what the meta object does not (the pending range, confirmed, and the new records)", ps.Partition)
	}
	var again []ossink.Object
	for _, o := range s.ossObjects(spec) {
		if o.Partition == 0 && o.First == 1000 {
			again = append(again, o)
		}
	}
	require.Len(t, again, 1, "one object for [1000,2000)")
	require.Equal(t, second[0].Key, again[0].Key)
	require.Equal(t, oldWriter, again[0].Writer, "the listed object was confirmed, not rewritten")
	require.NotEqual(t, oldWriter, exWriterOf(t, sk, topic, 0), "the new run recorded the ranges since")
	m, ok, err = sk.ReadMeta(ctx, topic, 0)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(3000), m.End)
	mu.Lock()
	require.Empty(t, backward, "partition 0's meta object moved backwards")
	mu.Unlock()
	s.verifyLedger(spec)
	requireEachOnce(t, s.readValues(topic+"/"), topic, parts, 3000, size, nil)
}

// exWriterOf is the writer partition p's meta object records.
func exWriterOf(t *testing.T, sk *ossink.Sink, topic string, p int32) string {
	t.Helper()
	m, ok, err := sk.ReadMeta(context.Background(), topic, p)
	require.NoError(t, err)
	require.True(t, ok)
	return m.Writer
}

// TestOSSMetaKeyNamesTopic proves that a meta object's key includes the
// topic whenever the path template's static folder does not: two
// connectors of different topics share the bucket with the template
// "dump/{partition}" (no {topic}). Their meta objects must be different
// keys, each recording its own topic; were the key seed 000's
// .oss_meta_file_partition_<p>, the two connectors would overwrite each
// other's meta object (and refuse each other's batches as another
// connector's). Both dumps verify exact.
func TestOSSMetaKeyNamesTopic(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const parts, n, size = 2, 2000, 100
	topics := []string{"alpha", "beta"}
	var specs []*connector.Spec
	for _, tp := range topics {
		s.createTopic(tp, parts)
		s.produce(tp, parts, n/2, size, time.Time{})
		spec := s.ossSpec(tp+"-oss", tp)
		spec.Sink.OSS.Path = "dump/{partition}"
		specs = append(specs, spec)
		s.start(spec, 0)
	}
	for _, tp := range topics {
		s.produce2(tp, parts, n/2, n, size)
	}
	for _, spec := range specs {
		s.waitFor(spec.Name, 2*time.Minute, spec.Name+" caught up", caughtUp(n))
	}
	ctx := context.Background()
	for p := int32(0); p < parts; p++ {
		a, b := s.exSink(specs[0]).MetaKey(topics[0], p), s.exSink(specs[1]).MetaKey(topics[1], p)
		require.NotEqual(t, a, b, "partition %d: the two topics' meta keys differ", p)
		require.Contains(t, a, topics[0])
		require.Contains(t, b, topics[1])
		for i, spec := range specs {
			m, ok, err := s.exSink(spec).ReadMeta(ctx, topics[i], p)
			require.NoError(t, err)
			require.True(t, ok, "%s has a meta object for partition %d", spec.Name, p)
			require.Equal(t, topics[i], m.Topic)
			require.Equal(t, spec.Name, m.Connector)
			require.Equal(t, int64(n), m.End)
		}
	}
	for _, spec := range specs {
		rep := s.verifyLedger(spec)
		require.Positive(t, rep.OtherConnectors, "%s shares its folder with the other connector", spec.Name)
	}
	vals := s.readValues("dump/")
	for _, tp := range topics {
		requireEachOnce(t, vals, tp, parts, n, size, nil)
	}
}

// TestOSSWrongWorkflowIDFails proves that a connector runs only as
// connector-<name>: started through the SDK client as connector-dup-oss-2
// with a spec named dup-oss, the workflow fails with a WrongWorkflowID
// application error before doing anything. Without the check, a second
// workflow could write the same connector's data.
func TestOSSWrongWorkflowIDFails(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	spec := s.ossSpec("dup-oss", "dup")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := s.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "connector-dup-oss-2", TaskQueue: workflows.TaskQueue},
		workflows.ConnectorName, workflows.NewInput(spec))
	require.NoError(t, err)
	err = run.Get(ctx, nil)
	require.Error(t, err)
	var appErr *temporal.ApplicationError
	require.Truef(t, errors.As(err, &appErr), "want an application error, got %v", err)
	require.Equal(t, "WrongWorkflowID", appErr.Type())
	require.Contains(t, appErr.Error(), "connector-dup-oss")
	require.Empty(t, s.exKeys(""), "nothing was written")
}

// TestOSSTwoWritersOneConnector proves "one connector name, one writer"
// across Temporal clusters: a second Temporal server (its own namespace)
// with its own in-process worker runs the same spec over the same Kafka
// topic and bucket while records keep arriving. The sink must refuse one
// of the writers — at least one partition of one of them parks with
// ConcurrentWriter (or ObjectConflict) — and the bucket must hold every
// record exactly once. The first build wrote 2,334 duplicates here: both
// writers wrote overlapping objects under different names.
func TestOSSTwoWritersOneConnector(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, parts, n, size = "dup", 3, 6000, 100
	s.createTopic(topic, parts)
	spec := s.ossSpec("dup-oss", topic)
	// Batches end at the flush interval, not at a record count, so each
	// writer's cuts depend on when it planned: the writers meet at the same
	// offsets with different cuts. (Two writers that always cut alike
	// "retry" each other's identical objects, which the sink accepts.)
	spec.Batch.MaxRecords = 100_000

	ts2 := temporaltest.NewServer(temporaltest.WithT(t),
		temporaltest.WithBaseClientOptions(client.Options{Logger: tlog.NewStructuredLogger(quietLogger())}))
	c2 := ts2.GetDefaultClient()
	require.NotEqual(t, s.temporal.GetDefaultNamespace(), ts2.GetDefaultNamespace())
	wctx, stopWorker := context.WithCancel(context.Background())
	workerDone := make(chan struct{})
	go func() {
		defer close(workerDone)
		if err := runner.RunWithClient(wctx, c2, runner.Config{Logger: quietLogger()}); err != nil {
			t.Errorf("second worker: %v", err)
		}
	}()
	t.Cleanup(func() { stopWorker(); <-workerDone })

	// Records arrive in uneven chunks while both writers run, so their
	// plans differ and they meet at the same offsets with different cuts.
	s.exProduceChunk(topic, parts, 0, 300, size)
	s.start(spec, 0)
	_, err := c2.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: spec.WorkflowID(), TaskQueue: workflows.TaskQueue},
		workflows.ConnectorName, workflows.NewInput(spec))
	require.NoError(t, err)
	for i, next := 0, 300; next < n; i++ {
		chunk := min(n-next, 11+(i*7919)%61)
		s.exProduceChunk(topic, parts, next, next+chunk, size)
		next += chunk
		time.Sleep(15 * time.Millisecond) // pacing a live stream, not waiting for a condition
	}

	clients := map[string]client.Client{"first": s.client, "second": c2}
	var (
		last    map[string]workflows.Status
		refused []string
	)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		last = map[string]workflows.Status{}
		refused = nil
		covered := map[int32]int64{}
		for who, c := range clients {
			st, err := exStatus(c, spec.Name)
			if err != nil {
				continue
			}
			last[who] = st
			for _, p := range st.Partitions {
				covered[p.Partition] = max(covered[p.Partition], p.Next)
				if p.State == workflows.StateStopped && (strings.Contains(p.LastError, sink.ErrConcurrentWriter) || strings.Contains(p.LastError, "ObjectConflict")) {
					refused = append(refused, fmt.Sprintf("%s writer, partition %d: %s", who, p.Partition, p.LastError))
				}
			}
		}
		done := len(covered) == parts
		for _, next := range covered {
			done = done && next == n
		}
		if done && len(refused) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out: want every partition covered to %d by one of the writers and one writer refused; statuses %+v", n, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("refused: %s", strings.Join(refused, "\n"))

	requireEachOnce(t, s.readValues(topic+"/"), topic, parts, n, size, nil)
	// The ledger, with each partition committed as far as either writer got.
	cursors := map[int32]verify.Cursor{}
	for _, st := range last {
		for _, p := range st.Partitions {
			c := cursors[p.Partition]
			c.Start, c.Committed = p.Start, max(c.Committed, p.Next)
			cursors[p.Partition] = c
		}
	}
	for _, deep := range []bool{false, true} {
		rep, err := verify.Run(context.Background(), spec, cursors, verify.Options{Deep: deep})
		require.NoError(t, err)
		require.Truef(t, rep.OK, "ledger (deep %v) not exact over both writers: %+v", deep, rep)
	}
	s.verifyLedger(spec)
}

// exProduceChunk produces values [from, to) on every partition (keys
// "k<i>", timestamps now).
func (s *stack) exProduceChunk(topic string, partitions int32, from, to, size int) {
	s.exProduceAt(topic, partitions, from, to, size, time.Time{})
}

// TestOSSUnknownSpecFieldsThroughTemporal proves that the Connector
// workflow decodes its input strictly when started through the SDK client
// with raw JSON (as the temporal CLI or the Web UI would): a misspelt
// optional field ("batch": {"flushIntervl": ...}), a mis-cased top-level
// key ("KAFKA") and a field given in two cases ("concurrency" and
// "Concurrency") each fail the workflow with an InvalidSpec application
// error naming the field. Temporal's default converter is lenient, so
// without the strict decode each of these specs would run with defaults in
// place of what the user wrote.
func TestOSSUnknownSpecFieldsThroughTemporal(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	base, err := json.Marshal(s.ossSpec("strict-oss", "strict"))
	require.NoError(t, err)
	doc := func(edit func(m map[string]any)) json.RawMessage {
		var m map[string]any
		require.NoError(t, json.Unmarshal(base, &m))
		edit(m)
		b, err := json.Marshal(m)
		require.NoError(t, err)
		return b
	}
	cases := []struct {
		name string
		spec json.RawMessage
		want []string
	}{
		{"misspelt batch field", doc(func(m map[string]any) {
			m["batch"].(map[string]any)["flushIntervl"] = "5s"
		}), []string{"batch.flushIntervl", "flushInterval"}},
		{"mis-cased top-level key", doc(func(m map[string]any) {
			m["KAFKA"] = m["kafka"]
			delete(m, "kafka")
		}), []string{"KAFKA"}},
		{"field in two cases", doc(func(m map[string]any) {
			m["concurrency"] = 2
			m["Concurrency"] = 3
		}), []string{"Concurrency"}},
	}
	for i, tc := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		run, err := s.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: connector.WorkflowID("strict-oss") + "-" + strconv.Itoa(i), TaskQueue: workflows.TaskQueue},
			workflows.ConnectorName, workflows.ConnectorInput{Spec: tc.spec})
		require.NoError(t, err, tc.name)
		err = run.Get(ctx, nil)
		cancel()
		require.Errorf(t, err, "%s: the workflow must fail", tc.name)
		var appErr *temporal.ApplicationError
		require.Truef(t, errors.As(err, &appErr), "%s: want an application error, got %v", tc.name, err)
		require.Equal(t, "InvalidSpec", appErr.Type(), tc.name)
		for _, w := range tc.want {
			require.Containsf(t, appErr.Error(), w, "%s: the error names %s", tc.name, w)
		}
	}
	require.Empty(t, s.exKeys(""), "nothing was written")
}

// TestOSSVerifyCountsRoutedRange proves that a range routed to the
// error-data topic is accounted for: the data PUT of [1000,2000) fails with
// a persistent 500 under tolerance continue, so after its retries the range
// goes to the error-data topic and a routed marker takes its place. verify
// must be OK and list the range as Routed with its 1,000 records, and
// verify --deep must find every one of them in the error-data topic. A
// routed range without a marker would be a gap; a marker without its
// records in the topic would be a silent loss.
func TestOSSVerifyCountsRoutedRange(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, n, size = "routed", 3000, 100
	s.createTopic(topic, 1)
	spec := s.ossSpec("routed-oss", topic)
	require.Equal(t, connector.ToleranceContinue, spec.Errors.Tolerance)
	s.exProduceAt(topic, 1, 0, n, size, exTS)
	key := exKey(t, spec, 0, 1000, exTS)
	inj := s.ossFake.InjectFault(ossfake.InternalError(ossfake.Match{Ops: []ossfake.Op{ossfake.OpPutObject}, KeyPrefix: key,
		Func: func(r *http.Request) bool { return r.Header.Get("X-Oss-Meta-Dumpflow-Kind") == "data" }}))
	defer inj.Remove()

	s.start(spec, 0)
	st := s.waitFor(spec.Name, 5*time.Minute, "all records, [1000,2000) routed", caughtUp(n))
	inj.Remove()
	require.GreaterOrEqual(t, inj.Fired(), 2, "the write was retried before it was routed")
	p := exPartition(t, st, 0)
	require.Equal(t, int64(1000), p.ErrorRecords)
	require.Equal(t, int64(n-1000), p.Records)
	require.Equal(t, int64(1000), s.exTopicRecords(spec.Errors.ErrorDataTopic))

	rep := s.verifyLedger(spec)
	require.Len(t, rep.Partitions, 1)
	routed := rep.Partitions[0].Routed
	require.Len(t, routed, 1)
	require.Equal(t, int64(1000), routed[0].First)
	require.Equal(t, int64(2000), routed[0].End)
	require.Equal(t, int64(1000), routed[0].Records)
	require.Equal(t, key, routed[0].Object, "the marker is where the range's object would be")
	meta, err := verify.Run(context.Background(), spec, s.cursors(spec))
	require.NoError(t, err)
	require.True(t, meta.OK)
	require.Equal(t, routed, meta.Partitions[0].Routed, "metadata verify lists it too")

	except := map[string]bool{}
	for i := 1000; i < 2000; i++ {
		except[string(value(topic, 0, i, size))] = true
	}
	requireEachOnce(t, s.readValues(topic+"/"), topic, 1, n, size, except)
	// Every routed record is in the error-data topic with its offset.
	seen := map[string]bool{}
	for _, r := range s.deadLetters(spec.Errors.ErrorDataTopic, 1000) {
		h := headers(r)
		require.Equal(t, "write", h[kafka.HeaderStage])
		seen[string(r.Value)] = true
	}
	require.Len(t, seen, 1000)
	for v := range except {
		require.True(t, seen[v], "routed value %q is in the error-data topic", v)
	}
}

// TestOSSVerifyRefusesBrokenListingAndForeignObjects proves two verify
// refusals after an exact dump. (b) A listing page that says it is
// truncated but gives no continuation token (ossfake
// TruncatedWithoutToken) makes verify return an error promptly: a lister
// that asked for the next page with an empty token would get the first
// page again, forever. (c) An object named like a dumpflow object but
// without dumpflow metadata, planted in the connector's folder, makes
// verify fail and lists it as foreign instead of skipping it.
func TestOSSVerifyRefusesBrokenListingAndForeignObjects(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, parts, n, size = "listing", 2, 2000, 100
	s.createTopic(topic, parts)
	s.exProduceAt(topic, parts, 0, n, size, exTS)
	spec := s.ossSpec("listing-oss", topic)
	s.start(spec, 0)
	s.waitFor(spec.Name, time.Minute, "all records", caughtUp(n))
	cursors := s.cursors(spec)

	// (b) A truncated page without a token.
	inj := s.ossFake.InjectFault(ossfake.TruncatedWithoutToken(ossfake.Match{Bucket: bucket}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	begin := time.Now()
	for _, deep := range []bool{false, true} {
		_, err := verify.Run(ctx, spec, cursors, verify.Options{Deep: deep})
		require.Errorf(t, err, "verify (deep %v) must refuse a broken listing", deep)
		require.NotErrorIs(t, err, context.DeadlineExceeded)
		require.Contains(t, err.Error(), "truncated")
	}
	cancel()
	require.Less(t, time.Since(begin), 10*time.Second, "verify returns promptly")
	require.Positive(t, inj.Fired())
	inj.Remove()

	// (c) A foreign object in the folder.
	foreign := exFolder(t, spec, 0, exTS) + "partition_0_offset_500_deadbeef"
	require.NoError(t, s.exBucket().PutObject(foreign, strings.NewReader("not dumpflow's\n")))
	for _, deep := range []bool{false, true} {
		rep, err := verify.Run(context.Background(), spec, cursors, verify.Options{Deep: deep})
		require.NoError(t, err)
		require.Falsef(t, rep.OK, "verify (deep %v) must fail on a foreign object", deep)
		require.Len(t, rep.Foreign, 1)
		require.Equal(t, foreign, rep.Foreign[0].Key)
		require.NotEmpty(t, rep.Foreign[0].Reason)
	}
	require.NoError(t, s.exBucket().DeleteObject(foreign))

	s.verifyLedger(spec)
	requireEachOnce(t, s.readValues(topic+"/"), topic, parts, n, size, nil)
}

// exRefuser answers matching requests itself with 400 and an OSS error
// body whose Code is empty, and passes the others on: the ossfake's
// Respond faults always carry a code (an empty Fault.Code defaults to
// InternalError), so an answer without one needs this front.
type exRefuser struct {
	next http.Handler

	mu      sync.Mutex
	match   func(*http.Request) bool
	refused int
}

func (f *exRefuser) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	hit := f.match != nil && f.match(r)
	if hit {
		f.refused++
	}
	f.mu.Unlock()
	if !hit {
		f.next.ServeHTTP(w, r)
		return
	}
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("x-oss-request-id", "exrefuser")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code></Code><Message>request refused</Message><RequestId>exrefuser</RequestId><HostId>local</HostId></Error>`)
}

func (f *exRefuser) set(match func(*http.Request) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.match = match
}

func (f *exRefuser) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refused
}

// TestOSSErrorClassification proves how OSS answers are classified. A 400
// answer with an EMPTY error code on a data PutObject is a request the
// service refuses, which no retry fixes: under tolerance continue the
// partition must park (stopped, LastError naming HTTP400) after one
// attempt, keeping its range, and nothing may go to the error-data topic;
// classifying it as retryable (an empty code is not in the permanent list)
// would retry it and then route the range — and every later one — to the
// error-data topic. After the cause is removed, resume completes exactly.
// Then 503 ServiceUnavailable and 429 throttling answers on a few PUTs are
// retried and the dump stays exact.
func TestOSSErrorClassification(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, parts, size = "classes", 2, 100
	s.createTopic(topic, parts)
	front := &exRefuser{next: s.ossFake}
	srv := httptest.NewServer(front)
	t.Cleanup(srv.Close)
	spec := s.ossSpec("classes-oss", topic)
	spec.Sink.OSS.Endpoint = srv.URL
	require.Equal(t, connector.ToleranceContinue, spec.Errors.Tolerance)

	s.exProduceAt(topic, parts, 0, 1000, size, exTS)
	key := exKey(t, spec, 0, 0, exTS)
	front.set(func(r *http.Request) bool {
		return r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/"+key) && len(r.URL.Query()) == 0
	})
	s.start(spec, 0)
	st := s.waitFor(spec.Name, time.Minute, "partition 0 parked on the 400", exStopped(0, "HTTP400", "signal resume"))
	p0 := exPartition(t, st, 0)
	require.Equal(t, int64(0), p0.Next)
	require.NotNil(t, p0.Pending, "the range is kept")
	require.Zero(t, p0.ErrorRecords)
	s.waitFor(spec.Name, time.Minute, "partition 1 written", func(st workflows.Status) bool {
		for _, ps := range st.Partitions {
			if ps.Partition == 1 {
				return ps.Next == 1000
			}
		}
		return false
	})
	require.Equal(t, 1, front.count(), "a 400 is not retried")
	require.Zero(t, s.exTopicRecords(spec.Errors.ErrorDataTopic), "nothing is routed to the error-data topic")

	front.set(nil)
	s.exSignalResume(spec.Name)
	s.waitFor(spec.Name, time.Minute, "caught up after resume", caughtUp(1000))

	// Server-busy and throttling answers are retried.
	putMatch := ossfake.Match{Ops: []ossfake.Op{ossfake.OpPutObject}, Bucket: bucket, KeyPrefix: topic + "/"}
	busy := ossfake.ServiceUnavailable(putMatch)
	busy.Times, busy.ConsumeBody = 2, true
	throttled := ossfake.Throttled(putMatch)
	throttled.Times = 2
	injBusy, injThrottled := s.ossFake.InjectFault(busy), s.ossFake.InjectFault(throttled)
	defer injBusy.Remove()
	defer injThrottled.Remove()
	s.exProduceAt(topic, parts, 1000, 2000, size, exTS)
	st = s.waitFor(spec.Name, 2*time.Minute, "caught up through 503 and 429", caughtUp(2000))
	require.Equal(t, 2, injBusy.Fired())
	require.Equal(t, 2, injThrottled.Fired())
	for _, ps := range st.Partitions {
		require.Equal(t, workflows.StateRunning, ps.State)
		require.Zero(t, ps.ErrorRecords)
		require.Equal(t, int64(2000), ps.Records)
	}
	require.Zero(t, s.exTopicRecords(spec.Errors.ErrorDataTopic))
	s.verifyLedger(spec)
	requireEachOnce(t, s.readValues(topic+"/"), topic, parts, 2000, size, nil)
}

// TestOSSCredentialsBoundToBucket proves that credentials whose allow-list
// names only another bucket are refused for this one before anything is
// written: the credentials come from a file in DUMPFLOW_CREDENTIALS_DIR
// whose "allowed" lists only "other-bucket"; the connector's status error
// must say the credentials may not be used for sink.oss.bucket and give
// the allowed list, and the bucket must stay empty. Without the check a
// worker would send the key wherever a spec points it.
func TestOSSCredentialsBoundToBucket(t *testing.T) {
	s := newStack(t)
	dir := t.TempDir()
	t.Setenv("DUMPFLOW_CREDENTIALS_DIR", dir)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, connector.CredentialsEnvPrefix(credName)) || strings.HasPrefix(k, connector.CredentialsEnvPrefix("bound")) {
			t.Setenv(k, "") // restored when the test ends
			require.NoError(t, os.Unsetenv(k))
		}
	}
	creds := `{"accessKeyId": "dumpflow", "accessKeySecret": "dumpflow-secret", "allowed": {"buckets": ["other-bucket"]}}`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bound.json"), []byte(creds), 0o600))
	s.startWorker()

	const topic = "bound"
	s.createTopic(topic, 1)
	s.produce(topic, 1, 100, 100, time.Time{})
	spec := s.ossSpec("bound-oss", topic)
	spec.Sink.OSS.Credentials = "bound"
	s.start(spec, 0)
	st := s.waitFor(spec.Name, time.Minute, "a credentials error in status", func(st workflows.Status) bool { return st.Error != "" })
	require.Contains(t, st.Error, `credentials "bound" may not be used for sink.oss.bucket "dumpflow"`)
	require.Contains(t, st.Error, "other-bucket")
	require.NotContains(t, st.Error, "dumpflow-secret")
	require.Empty(t, st.Partitions)
	require.Empty(t, s.exKeys(""), "nothing was written")
}

// TestOSSDeepVerifyFindsAlteredBody proves that verify --deep reads the
// data: after an exact dump one data object is overwritten through the OSS
// SDK with a body of the same length but one byte changed, keeping its
// dumpflow metadata. Metadata verify still says OK (the object's
// metadata tiles the offsets), but verify --deep must report a mismatch
// for exactly that range; a deep verify that trusted the metadata's count
// and CRC-64 would miss it. Restoring the body makes both exact again.
func TestOSSDeepVerifyFindsAlteredBody(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, n, size = "altered", 3000, 100
	s.createTopic(topic, 1)
	s.produce(topic, 1, n, size, time.Time{})
	spec := s.ossSpec("altered-oss", topic)
	s.start(spec, 0)
	s.waitFor(spec.Name, time.Minute, "all records", caughtUp(n))
	s.verifyLedger(spec)

	objs := s.ossObjects(spec)
	require.Len(t, objs, 3)
	target := objs[1]
	b := s.exBucket()
	h, err := b.GetObjectDetailedMeta(target.Key)
	require.NoError(t, err)
	var opts []alioss.Option
	for k, v := range h {
		if strings.HasPrefix(k, alioss.HTTPHeaderOssMetaPrefix) {
			opts = append(opts, alioss.Meta(strings.TrimPrefix(k, alioss.HTTPHeaderOssMetaPrefix), v[0]))
		}
	}
	require.NotEmpty(t, opts)
	rc, err := b.GetObject(target.Key)
	require.NoError(t, err)
	orig, err := io.ReadAll(rc)
	rc.Close()
	require.NoError(t, err)
	altered := bytes.Clone(orig)
	i := bytes.IndexByte(altered, '.') // a padding byte of the first value
	require.Positive(t, i)
	altered[i] = ','
	require.NoError(t, b.PutObject(target.Key, bytes.NewReader(altered), opts...))

	h2, err := b.GetObjectDetailedMeta(target.Key)
	require.NoError(t, err)
	for k, v := range h {
		if strings.HasPrefix(k, alioss.HTTPHeaderOssMetaPrefix) {
			require.Equal(t, v[0], h2.Get(k), "metadata %s kept", k)
		}
	}
	rep, err := verify.Run(context.Background(), spec, s.cursors(spec))
	require.NoError(t, err)
	require.Truef(t, rep.OK, "metadata verify sees only metadata: %+v", rep)
	deep, err := verify.Run(context.Background(), spec, s.cursors(spec), verify.Options{Deep: true})
	require.NoError(t, err)
	require.False(t, deep.OK, "verify --deep must find the altered byte")
	require.Len(t, deep.Partitions, 1)
	mm := deep.Partitions[0].Mismatches
	require.Len(t, mm, 1)
	require.Equal(t, target.First, mm[0].First)
	require.Equal(t, target.End, mm[0].End)
	require.Equal(t, target.Key, mm[0].Object)
	t.Logf("mismatch: %s", mm[0].Problem)

	require.NoError(t, b.PutObject(target.Key, bytes.NewReader(orig), opts...))
	s.verifyLedger(spec)
	requireEachOnce(t, s.readValues(topic+"/"), topic, 1, n, size, nil)
}

// TestOSSBatchedWriteReportsCommittedBatches proves the failure rule of
// batched writes (activities/batches.go): one WritePartition commits
// several batches of an uncut range, and when a batch fails after others
// of the same write committed, the write reports those instead of failing,
// and the next write starts at the failed batch. The meta object's PUT
// after the second batch is served but its answer lost: the first write
// ends at 500 with the error in its result's failed field (the object and
// meta of [500,1000) are in fact in the sink), and the second write finds
// [500,1000) there — the same object, count and CRC-64, the meta object
// recording that very range — counts it as written and goes on to 3000.
// Every value is in the bucket once and verify --deep is exact.
func TestOSSBatchedWriteReportsCommittedBatches(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, n, size = "lostmeta", 3000, 100
	s.createTopic(topic, 1)
	spec := s.ossSpec("lostmeta-oss", topic)
	spec.Batch.MaxRecords = 500
	require.Equal(t, connector.ToleranceContinue, spec.Errors.Tolerance)
	s.exProduceAt(topic, 1, 0, n, size, exTS)
	metaKey := s.exSink(spec).MetaKey(topic, 0)
	f := ossfake.AnswerLost(ossfake.Match{Ops: []ossfake.Op{ossfake.OpPutObject}, KeyPrefix: metaKey})
	f.Skip, f.Times = 1, 1 // the meta update of the second batch
	inj := s.ossFake.InjectFault(f)
	defer inj.Remove()

	s.start(spec, 0)
	st := s.waitFor(spec.Name, 3*time.Minute, "all records", caughtUp(n))
	require.Equal(t, 1, inj.Fired())
	p := exPartition(t, st, 0)
	require.Empty(t, p.LastError)
	require.False(t, p.Stopped)

	// History: two writes, [0,500) reporting the failure, then [500,3000).
	var ends []int64
	var results []activities.WriteResult
	for _, w := range s.historyWrites(spec.WorkflowID(), "") {
		if w.Res != nil {
			ends = append(ends, w.Res.End)
			results = append(results, *w.Res)
		}
	}
	require.Equal(t, []int64{500, n}, ends, "the first write reports its committed batch, the second writes the rest")
	require.Contains(t, results[0].Failed, "write meta")
	require.Equal(t, 1, results[0].Batches)
	require.Empty(t, results[1].Failed)
	require.Equal(t, 5, results[1].Batches, "[500,1000) found in the sink, then four more")
	require.Equal(t, int64(n), results[0].Written.Records+results[1].Written.Records, "[500,1000) is counted once")

	s.verifyLedger(spec)
	requireEachOnce(t, s.readValues(topic+"/"), topic, 1, n, size, nil)
}

// TestOSSBatchedWriteRetryAfterSIGKILL proves the retry rule of batched
// writes: a worker SIGKILLed in the middle of a WritePartition that had
// committed some of its batches leaves them in the sink and the meta object
// past them; the activity's retry (on a new worker process, after the
// heartbeat timeout) starts where the sink's data ends. A retry that
// started at the range's first offset would find the meta object past its
// first batch and be refused (ObjectConflict), parking the partition. Each
// data PUT is slowed to 300ms so the kill lands after the second object.
func TestOSSBatchedWriteRetryAfterSIGKILL(t *testing.T) {
	s := newStack(t)
	const topic, n, size = "killmid", 3000, 100
	s.createTopic(topic, 1)
	spec := s.ossSpec("killmid-oss", topic)
	spec.Batch.MaxRecords = 500
	s.exProduceAt(topic, 1, 0, n, size, exTS)
	slow := s.ossFake.InjectFault(ossfake.Slow(ossfake.Match{Ops: []ossfake.Op{ossfake.OpPutObject},
		Func: func(r *http.Request) bool { return r.Header.Get("X-Oss-Meta-Dumpflow-Kind") == "data" }}, 300*time.Millisecond))
	defer slow.Remove()

	w := s.startWorkerProcess()
	s.start(spec, 0)
	// Kill as soon as the second batch's object is in the bucket.
	deadline := time.Now().Add(time.Minute)
	for len(s.readValues(topic+"/")) < 1000 {
		require.True(t, time.Now().Before(deadline), "two batches written within a minute")
		time.Sleep(20 * time.Millisecond)
	}
	w.kill()
	slow.Remove()
	before := len(s.readValues(topic + "/"))
	require.Less(t, before, n, "killed before the write finished")
	s.startWorkerProcess()
	st := s.waitFor(spec.Name, 2*time.Minute, "all records", caughtUp(n))
	p := exPartition(t, st, 0)
	require.Empty(t, p.LastError)
	require.False(t, p.Stopped)
	require.Equal(t, int64(n), p.Records, "status counts the batches the killed attempt committed once (sink.Holder)")
	require.Equal(t, int64(6), p.Objects)

	// History: the write of [0,3000) took two attempts and ended at 3000.
	var attempts []int32
	var ends []int64
	for _, w := range s.historyWrites(spec.WorkflowID(), "") {
		if w.Attempt != 0 {
			attempts = append(attempts, w.Attempt)
		}
		if w.Res != nil {
			require.Empty(t, w.Res.Failed)
			ends = append(ends, w.Res.End)
		}
	}
	require.Equal(t, []int64{n}, ends, "one write, to the end")
	require.Equal(t, []int32{2}, attempts, "the killed write was retried once")

	s.verifyLedger(spec)
	requireEachOnce(t, s.readValues(topic+"/"), topic, 1, n, size, nil)
}

// TestOSSThrottledRangeWaitsNotRouted proves that throttling is not the
// data's fault: a range whose object PUT is answered 429 QpsLimitExceeded
// for longer than its write's retries last (about two minutes) is not
// routed to the error-data topic under tolerance continue, as a failing
// range is; it keeps its place, status says it is throttled, and once the
// throttling stops it is written. Nothing goes to the error-data topic and
// every value is in the bucket once.
func TestOSSThrottledRangeWaitsNotRouted(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, n, size = "throttled", 3000, 100
	s.createTopic(topic, 1)
	spec := s.ossSpec("throttled-oss", topic)
	spec.Batch.MaxRecords = 1000
	require.Equal(t, connector.ToleranceContinue, spec.Errors.Tolerance)
	s.exProduceAt(topic, 1, 0, n, size, exTS)
	key := exKey(t, spec, 0, 1000, exTS)
	inj := s.ossFake.InjectFault(ossfake.Throttled(ossfake.Match{Ops: []ossfake.Op{ossfake.OpPutObject, ossfake.OpInitiateMultipartUpload}, KeyPrefix: key}))
	defer inj.Remove()

	s.start(spec, 0)
	st := s.waitFor(spec.Name, 5*time.Minute, "the range throttled past its retries", func(st workflows.Status) bool {
		return len(st.Partitions) == 1 && strings.Contains(st.Partitions[0].LastError, "throttled by the destination")
	})
	p := exPartition(t, st, 0)
	require.Equal(t, int64(1000), p.Next, "the throttled range keeps its place")
	require.Zero(t, p.ErrorRecords)
	require.False(t, p.Stopped)
	inj.Remove()
	st = s.waitFor(spec.Name, 3*time.Minute, "all records once the throttling stopped", caughtUp(n))
	p = exPartition(t, st, 0)
	require.Zero(t, p.ErrorRecords)
	require.Equal(t, int64(n), p.Records)
	require.Zero(t, s.exTopicRecords(spec.Errors.ErrorDataTopic), "nothing was routed")
	rep := s.verifyLedger(spec)
	require.Empty(t, rep.Partitions[0].Routed)
	requireEachOnce(t, s.readValues(topic+"/"), topic, 1, n, size, nil)
}
