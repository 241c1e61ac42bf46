package tests

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	alioss "github.com/aliyun/aliyun-oss-go-sdk/oss"
	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/deploy/localstack/ossfake"
	"github.com/dumpflow/dumpflow/format"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/sink"
	ossink "github.com/dumpflow/dumpflow/sink/oss"
	"github.com/dumpflow/dumpflow/transform"
	"github.com/dumpflow/dumpflow/transform/wasm"
	"github.com/dumpflow/dumpflow/workflows"
)

// Seed 002's convertAndFilter: its source record, the record it drops
// (sample.jsonl's second line), and the exact line it must produce.
const (
	tfSeedSource = `{"version":1,"componentName":"trade","timestamp":1595944295,"eventId":9128499,"returnValue":-1,"returnCode":101103,"returnMessage":"return has no deal return error[错误: 缺少 **c 参数][seqId:u3Becr8iz*]","seqId":"@kibana-highlighted-field@u3Becr8iz@/kibana-highlighted-field@*"}`
	tfSeedZero   = `{"version":1,"componentName":"trade","timestamp":1595944296,"eventId":9128500,"returnValue":0,"returnCode":0,"returnMessage":"ok","seqId":"x"}`
	tfSeedTarget = `{"timestamp":"2020-07-28 21:51:35","returnCode":101103,"returnError":"return has no deal return error","returnMessage":"错误: 缺少 **c 参数","requestId":"u3Becr8iz*"}`

	tfExamples = "../deploy/examples"
	tfGoFunc   = tfExamples + "/functions/convert-and-filter/go"
	tfASFunc   = tfExamples + "/functions/convert-and-filter/assemblyscript"
)

// tfSeedTS is the seed record's time (1595944295), its Kafka timestamp too.
var tfSeedTS = time.Unix(1595944295, 0)

// tfTrade is a generated trade-log record. tfGen(i) makes record i: every
// fifth has returnCode 0 (dropped by convertAndFilter), the others a code,
// an error, a message and a request id in the seed's
// "error[message][seqId:id]" shape.
type tfTrade struct {
	ts   int64
	code int64
	msg  string // returnMessage as produced
}

func tfGen(i int) tfTrade {
	tr := tfTrade{ts: tfSeedTS.Unix() + int64(i)*7, code: int64(100000 + i)}
	if i%5 == 0 {
		tr.code = 0
	}
	tr.msg = fmt.Sprintf("error %d[消息 %d: 缺少 *参数*][seqId:req%d*]", i, i, i)
	return tr
}

// value is the record's JSON value, in the seed's field order.
func (tr tfTrade) value(i int) []byte {
	return []byte(fmt.Sprintf(`{"version":1,"componentName":"trade","timestamp":%d,"eventId":%d,"returnValue":-1,"returnCode":%d,"returnMessage":%s,"seqId":"@kibana@%d@"}`,
		tr.ts, 9200000+i, tr.code, tfJSONString(tr.msg), i))
}

// target is the line convertAndFilter makes of it, computed here from the
// seed's rules (Python's split on "][" and "["; the producers' GMT+08:00),
// not by the code under test.
func (tr tfTrade) target() string {
	parts := strings.SplitN(tr.msg, "][", 2)
	errInfo := strings.SplitN(parts[0], "[", 2)
	req := strings.ReplaceAll(strings.ReplaceAll(parts[1], "]", ""), "seqId:", "")
	return fmt.Sprintf(`{"timestamp":%s,"returnCode":%d,"returnError":%s,"returnMessage":%s,"requestId":%s}`,
		tfJSONString(time.Unix(tr.ts, 0).In(gmt8).Format("2006-01-02 15:04:05")), tr.code,
		tfJSONString(errInfo[0]), tfJSONString(errInfo[1]), tfJSONString(req))
}

// tfJSONString is s as a JSON string without HTML escaping.
func tfJSONString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		panic(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// tfLoad reads an example spec with connector.Load and points it at this
// stack (brokers, OSS endpoint), with small batches and a short flush
// interval so a test does not wait for the defaults.
func (s *stack) tfLoad(file string) *connector.Spec {
	s.t.Helper()
	spec, err := connector.Load(filepath.Join(tfExamples, file))
	require.NoError(s.t, err)
	spec.Kafka.Brokers = s.brokers
	spec.Sink.OSS.Endpoint = s.oss.URL
	require.Equal(s.t, bucket, spec.Sink.OSS.Bucket)
	require.Equal(s.t, credName, spec.Sink.OSS.Credentials)
	spec.Batch.MaxRecords = 100
	spec.Batch.FlushInterval = connector.Duration(500 * time.Millisecond)
	require.NoError(s.t, spec.Validate())
	return spec
}

// tfSeedRecords produces the seed's source record (offset 0), its
// returnCode 0 record (offset 1) and n generated trade records (offsets
// 2..n+1) to partition 0 of topic, and returns the lines convertAndFilter
// must write for them and the number it must drop.
func (s *stack) tfSeedRecords(topic string, n int) (want map[string]int, dropped int) {
	s.t.Helper()
	recs := []*kgo.Record{
		{Topic: topic, Value: []byte(tfSeedSource), Timestamp: tfSeedTS},
		{Topic: topic, Value: []byte(tfSeedZero), Timestamp: tfSeedTS.Add(time.Second)},
	}
	want = map[string]int{tfSeedTarget: 1}
	dropped = 1
	for i := 0; i < n; i++ {
		tr := tfGen(i)
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("t%d", i)), Value: tr.value(i), Timestamp: time.Unix(tr.ts, 0)})
		if tr.code == 0 {
			dropped++
			continue
		}
		want[tr.target()]++
	}
	s.produceRecords(recs)
	return want, dropped
}

// tfZeros produces n returnCode 0 records: a batch the chain drops whole.
func (s *stack) tfZeros(topic string, n int) {
	s.t.Helper()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Value: []byte(fmt.Sprintf(`{"version":1,"timestamp":%d,"returnCode":0,"returnMessage":"ok","seqId":"z%d"}`, tfSeedTS.Unix()+int64(i), i)), Timestamp: tfSeedTS}
	}
	s.produceRecords(recs)
}

// tfObject is one object of the bucket, read through the OSS SDK.
type tfObject struct {
	Key  string
	Body []byte
	Meta http.Header
}

// tfObjects reads every object under prefix except meta objects, in key
// order.
func (s *stack) tfObjects(prefix string) []tfObject {
	s.t.Helper()
	b := s.exBucket()
	var out []tfObject
	for _, key := range s.exKeys(prefix) {
		if strings.HasPrefix(filepath.Base(key), ".oss_meta_file") {
			continue
		}
		rc, err := b.GetObject(key)
		require.NoError(s.t, err)
		body, err := io.ReadAll(rc)
		rc.Close()
		require.NoError(s.t, err)
		h, err := b.GetObjectDetailedMeta(key)
		require.NoError(s.t, err)
		out = append(out, tfObject{Key: key, Body: body, Meta: h})
	}
	return out
}

// tfKeys are the objects' keys.
func tfKeys(objs []tfObject) []string {
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = o.Key
	}
	return keys
}

func (o tfObject) meta(k string) string { return o.Meta.Get(alioss.HTTPHeaderOssMetaPrefix + k) }

// tfLines counts the lines of the data objects (kind data) among objs.
func tfLines(objs []tfObject) map[string]int {
	out := map[string]int{}
	for _, o := range objs {
		if o.meta("Dumpflow-Kind") != "data" {
			continue
		}
		for _, l := range strings.SplitAfter(string(o.Body), "\n") {
			if l == "" {
				continue
			}
			out[strings.TrimSuffix(l, "\n")]++
		}
	}
	return out
}

// tfRequireCounts asserts the connector's transform totals in status.
func tfRequireCounts(t *testing.T, st workflows.Status, want []transform.StepCounts) {
	t.Helper()
	require.Equal(t, want, st.Transform, "status's transform totals")
}

// tfSeedCounts are the built-in convertAndFilter's totals for in records
// of which dropped are dropped by the filter.
func tfSeedCounts(in, dropped int64) []transform.StepCounts {
	out := in - dropped
	return []transform.StepCounts{
		{Step: "drop-ok", Type: "filter", In: in, Out: out, Dropped: dropped},
		{Step: "local-time", Type: "time", In: out, Out: out},
		{Step: "split-message", Type: "extract", In: out, Out: out},
		{Step: "target-fields", Type: "keep", In: out, Out: out},
	}
}

// tfRunSeed runs seed 002's scenario through spec (whose chain is some
// form of convertAndFilter): the seed's source record, its returnCode 0
// record and n generated trade records, then a batch of zeros the chain
// drops whole. It asserts that the objects hold exactly the lines the seed's
// rules give (the seed record's first, byte for byte), none of the dropped
// records, that the consumer group moved past the dropped ones, that the
// range the chain dropped whole is covered by a marker, and that verify and
// verify --deep are exact; it returns the final status and the first
// object's body.
func (s *stack) tfRunSeed(spec *connector.Spec, n int) (workflows.Status, int64, []byte) {
	t := s.t
	t.Helper()
	topic := spec.Kafka.Topic
	s.createTopic(topic, 1)
	want, dropped := s.tfSeedRecords(topic, n)
	total := int64(n + 2)
	// A short history: the connector continues as new several times, and
	// the totals carry over.
	s.start(spec, 30)
	s.waitFor(spec.Name, 2*time.Minute, "the seed records", caughtUp(total))

	// A batch of nothing but returnCode 0: dropped whole, still covered.
	const zeros = 30
	s.tfZeros(topic, zeros)
	total += zeros
	dropped += zeros
	st := s.waitFor(spec.Name, time.Minute, "the zeros", caughtUp(total))

	root, _, _ := strings.Cut(strings.ReplaceAll(spec.Sink.OSS.Path, "{topic}", topic), "{yyyy}")
	objs := s.tfObjects(root)
	require.NotEmpty(t, objs)
	require.Equal(t, want, tfLines(objs), "the objects hold exactly convertAndFilter's lines, each once, and none of the dropped records")
	var first *tfObject
	filtered := false
	for i, o := range objs {
		switch o.meta("Dumpflow-Kind") {
		case "data":
			require.Truef(t, strings.HasPrefix(o.Key, root+"2020/07/28/"), "object %s in the seed's day folder", o.Key)
			if o.meta("Dumpflow-First") == "0" {
				first = &objs[i]
			}
		case "filtered":
			f, _ := strconv.ParseInt(o.meta("Dumpflow-First"), 10, 64)
			require.GreaterOrEqual(t, f, total-zeros, "only the zeros' range is dropped whole")
			require.Empty(t, o.Body)
			filtered = true
		}
	}
	require.True(t, filtered, "the range of zeros is covered by a filtered marker: %v", tfKeys(objs))
	require.NotNil(t, first, "an object starts at offset 0")
	line, _, _ := bytes.Cut(first.Body, []byte("\n"))
	require.Equal(t, tfSeedTarget, string(line), "seed 002's record becomes exactly the seed's target line")
	require.Equal(t, int64(dropped), st.Transform[0].Dropped)

	var recs int64
	for _, p := range st.Partitions {
		recs += p.Records
	}
	require.Equal(t, total-int64(dropped), recs, "status counts the records written")
	require.Greater(t, st.Run, 0, "the connector continued as new")
	s.requireGroupOffsets(spec, total)
	s.verifyLedger(spec)
	return st, int64(dropped), first.Body
}

// tfHead is the first n lines of body.
func tfHead(body []byte, n int) string {
	lines := strings.SplitAfterN(string(body), "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "")
}

// TestTransformSeedBuiltinSteps proves seed 002's convertAndFilter as the
// built-in steps of deploy/examples/oss-convert-and-filter.yaml, through a
// real connector into OSS: the seed's record becomes exactly the seed's
// target line (timestamp at GMT+08:00, message cut apart, five fields in
// the seed's order, no spaces, no HTML escaping), returnCode 0 records are
// not written, status's per-step totals match what was produced, filtered
// offsets count as covered (the group moves past them, a batch filtered
// whole leaves a marker, verify finds no gap) and verify --deep, which
// replays every range through the chain, is exact. It fails if any step,
// the re-encoding, the counts or the coverage of dropped records breaks.
func TestTransformSeedBuiltinSteps(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	spec := s.tfLoad("oss-convert-and-filter.yaml")
	const n = 1000
	st, dropped, body := s.tfRunSeed(spec, n)
	tfRequireCounts(t, st, tfSeedCounts(n+2+30, dropped))
	t.Logf("seed 002 through the built-in steps: first lines of the object starting at offset 0:\n%s", tfHead(body, 3))
}

// tfBuildGo builds the Go convert-and-filter example with its build script
// into dir and returns the module's path.
func tfBuildGo(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "convert-and-filter-go.wasm")
	script, err := filepath.Abs(filepath.Join(tfGoFunc, "build.sh"))
	require.NoError(t, err)
	b, err := exec.Command("bash", script, out).CombinedOutput()
	require.NoError(t, err, "build the Go function: %s", b)
	return out
}

// tfBuildAS builds the AssemblyScript example with its build script, or
// skips the test when DUMPFLOW_SKIP_ASC=1 (as transform/wasm's tests do).
func tfBuildAS(t *testing.T, dir string) string {
	t.Helper()
	if os.Getenv("DUMPFLOW_SKIP_ASC") == "1" {
		t.Skip("DUMPFLOW_SKIP_ASC=1: not building the AssemblyScript example")
	}
	_, err := exec.LookPath("npm")
	require.NoError(t, err, "npm is needed to build the AssemblyScript example (set DUMPFLOW_SKIP_ASC=1 to skip it)")
	out := filepath.Join(dir, "convert-and-filter-as.wasm")
	script, err := filepath.Abs(filepath.Join(tfASFunc, "build.sh"))
	require.NoError(t, err)
	b, err := exec.Command("bash", script, out).CombinedOutput()
	require.NoError(t, err, "build the AssemblyScript function: %s", b)
	return out
}

// tfFunctionSpec is oss-convert-and-filter-wasm.yaml pointed at module and
// at this stack.
func (s *stack) tfFunctionSpec(module string) *connector.Spec {
	s.t.Helper()
	spec := s.tfLoad("oss-convert-and-filter-wasm.yaml")
	require.Len(s.t, spec.Transforms, 1)
	require.Equal(s.t, transform.StepFunction, spec.Transforms[0].Type)
	spec.Transforms[0].Function.Module = module
	require.NoError(s.t, spec.Validate())
	return spec
}

// TestTransformSeedWasmFunction proves seed 002's convertAndFilter as a
// function compiled to WebAssembly, in Go (built with its build script,
// GOOS=wasip1 -buildmode=c-shared) and in AssemblyScript, run by a real
// connector: the same exact target line, the same drops, the function
// step's totals in status, covered offsets and an exact verify --deep
// (which runs the module again on every range). It fails if the ABI, the
// sandbox's clock or zone, the output bytes or the counts break.
func TestTransformSeedWasmFunction(t *testing.T) {
	for _, lang := range []string{"go", "assemblyscript"} {
		t.Run(lang, func(t *testing.T) {
			var module string
			if lang == "go" {
				module = tfBuildGo(t, t.TempDir())
			} else {
				module = tfBuildAS(t, t.TempDir())
			}
			s := newStack(t)
			s.startWorker()
			spec := s.tfFunctionSpec(module)
			const n = 1000
			st, dropped, body := s.tfRunSeed(spec, n)
			in := int64(n + 2 + 30)
			tfRequireCounts(t, st, []transform.StepCounts{{Step: "convert-and-filter", Type: "function", In: in, Out: in - dropped, Dropped: dropped}})
			t.Logf("seed 002 through the %s function: first lines of the object starting at offset 0:\n%s", lang, tfHead(body, 3))
		})
	}
}

// tfRename gives spec another name and topic, with the group and
// dead-letter topics that go with the name.
func tfRename(t *testing.T, spec *connector.Spec, name, topic string) {
	t.Helper()
	spec.Name, spec.Kafka.Topic, spec.Kafka.Group = name, topic, ""
	spec.Errors.DeadLetterTopic, spec.Errors.ErrorDataTopic = "", ""
	spec.Default()
	require.NoError(t, spec.Validate())
}

// tfTrades produces n generated trade records to partition 0 of topic,
// record i replaced by bad[i] when set, and returns the lines
// convertAndFilter must write for the others and how many it drops.
func (s *stack) tfTrades(topic string, n int, bad map[int][]byte) (want map[string]int, dropped int) {
	s.t.Helper()
	want = map[string]int{}
	recs := make([]*kgo.Record, 0, n)
	for i := 0; i < n; i++ {
		tr := tfGen(i)
		v := tr.value(i)
		if b, ok := bad[i]; ok {
			v = b
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("t%d", i)), Value: v, Timestamp: time.Unix(tr.ts, 0)})
		switch {
		case bad[i] != nil:
		case tr.code == 0:
			dropped++
		default:
			want[tr.target()]++
		}
	}
	s.produceRecords(recs)
	return want, dropped
}

// tfRequireTransformLetter asserts that dead letter dl is record offset of
// topic, unchanged (key and value as produced), sent at stage transform
// by step (its name in __connect.errors.executing.class) with an error
// message that starts with prefix.
func tfRequireTransformLetter(t *testing.T, dl *kgo.Record, topic string, offset int64, key string, value []byte, step, prefix string) {
	t.Helper()
	h := headers(dl)
	require.Equal(t, topic, h[kafka.HeaderTopic])
	require.Equal(t, "0", h[kafka.HeaderPartition])
	require.Equal(t, strconv.FormatInt(offset, 10), h[kafka.HeaderOffset])
	require.Equal(t, "transform", h[kafka.HeaderStage])
	require.Equal(t, step, h[kafka.HeaderExecuting], "the step's name is in the executing.class header")
	require.True(t, strings.HasPrefix(h[kafka.HeaderError], prefix), "error %q starts with %q", h[kafka.HeaderError], prefix)
	require.Equal(t, key, string(dl.Key), "the dead letter is the record as it came from Kafka")
	require.Equal(t, string(value), string(dl.Value), "the dead letter is the record as it came from Kafka, not half transformed")
}

// TestTransformDeadLetters proves that a record failing a step goes to the
// dead-letter topic as it came from Kafka, with stage "transform", the
// step's name in __connect.errors.executing.class and the error in
// __connect.errors.exception.message, counted as failed at that step, and
// that the rest is written; and that under tolerance stop the partition
// parks before such a record (its poison naming the stage and the step)
// until resume sends it to the dead-letter topic and goes on. verify --deep
// is exact in both cases (the replay refuses the same records and finds
// them in the dead-letter topic). It fails if a failing record is written,
// lost, sent without its step, or skipped under stop.
func TestTransformDeadLetters(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const n = 300
	badMsg := []byte(`{"version":1,"timestamp":1595944300,"returnCode":5,"returnMessage":"no brackets here","seqId":"x"}`)
	badTime := []byte(`{"version":1,"timestamp":"yesterday","returnCode":6,"returnMessage":"e[m][seqId:r]","seqId":"y"}`)

	t.Run("continue", func(t *testing.T) {
		spec := s.tfLoad("oss-convert-and-filter.yaml")
		tfRename(t, spec, "trade-dl", "trade-dl")
		s.createTopic(spec.Kafka.Topic, 1)
		want, dropped := s.tfTrades(spec.Kafka.Topic, n, map[int][]byte{77: badMsg, 78: badTime})
		s.start(spec, 0)
		st := s.waitFor(spec.Name, time.Minute, "all records", caughtUp(n))
		require.Equal(t, int64(2), st.Partitions[0].DeadLetters)
		out := int64(n - dropped)
		tfRequireCounts(t, st, []transform.StepCounts{
			{Step: "drop-ok", Type: "filter", In: n, Out: out, Dropped: int64(dropped)},
			{Step: "local-time", Type: "time", In: out, Out: out - 1, Failed: 1},
			{Step: "split-message", Type: "extract", In: out - 1, Out: out - 2, Failed: 1},
			{Step: "target-fields", Type: "keep", In: out - 2, Out: out - 2},
		})
		dls := s.deadLetters(spec.Errors.DeadLetterTopic, 2)
		require.Len(t, dls, 2)
		sort.Slice(dls, func(i, j int) bool { return headers(dls[i])[kafka.HeaderOffset] < headers(dls[j])[kafka.HeaderOffset] })
		tfRequireTransformLetter(t, dls[0], spec.Kafka.Topic, 77, "t77", badMsg, "split-message", `transform step 2 "split-message" (extract): `)
		tfRequireTransformLetter(t, dls[1], spec.Kafka.Topic, 78, "t78", badTime, "local-time", `transform step 1 "local-time" (time): `)
		require.Contains(t, headers(dls[1])[kafka.HeaderError], "yesterday")
		require.Equal(t, want, tfLines(s.tfObjects(spec.Kafka.Topic+"/")), "the rest is written, each once")
		s.verifyLedger(spec)
	})

	t.Run("stop", func(t *testing.T) {
		spec := s.tfLoad("oss-convert-and-filter.yaml")
		spec.Errors.Tolerance = connector.ToleranceStop
		tfRename(t, spec, "trade-stop", "trade-stop")
		s.createTopic(spec.Kafka.Topic, 1)
		const poisonAt = 77
		want, dropped := s.tfTrades(spec.Kafka.Topic, n, map[int][]byte{poisonAt: badMsg})
		s.start(spec, 0)
		st := s.waitFor(spec.Name, time.Minute, "the partition to stop", func(st workflows.Status) bool {
			return len(st.Partitions) == 1 && st.Partitions[0].State == workflows.StateStopped
		})
		p := st.Partitions[0]
		require.Equal(t, int64(poisonAt), p.Next, "everything before the failing record is written")
		require.NotNil(t, p.Poison)
		require.Equal(t, int64(poisonAt), p.Poison.Offset)
		require.Equal(t, "transform", p.Poison.Stage)
		require.Contains(t, p.Poison.Error, `"split-message" (extract)`)
		require.Zero(t, p.DeadLetters)
		require.Zero(t, s.exTopicRecords(spec.Errors.DeadLetterTopic), "nothing goes to the dead-letter topic while parked")

		s.exSignalResume(spec.Name)
		st = s.waitFor(spec.Name, time.Minute, "all records after resume", caughtUp(n))
		require.Equal(t, workflows.StateRunning, st.Partitions[0].State)
		require.Equal(t, int64(1), st.Partitions[0].DeadLetters)
		out := int64(n - dropped)
		tfRequireCounts(t, st, []transform.StepCounts{
			{Step: "drop-ok", Type: "filter", In: n, Out: out, Dropped: int64(dropped)},
			{Step: "local-time", Type: "time", In: out, Out: out},
			{Step: "split-message", Type: "extract", In: out, Out: out - 1, Failed: 1},
			{Step: "target-fields", Type: "keep", In: out - 1, Out: out - 1},
		})
		dls := s.deadLetters(spec.Errors.DeadLetterTopic, 1)
		require.Len(t, dls, 1)
		tfRequireTransformLetter(t, dls[0], spec.Kafka.Topic, poisonAt, "t77", badMsg, "split-message", `transform step 2 "split-message" (extract): `)
		require.Equal(t, want, tfLines(s.tfObjects(spec.Kafka.Topic+"/")), "the rest is written, each once")
		s.verifyLedger(spec)
	})
}

// tfDeterminismSpec is a connector whose chain is convertAndFilter as the
// Go function, then a built-in step that parses its output and adds the
// record's offset and time; its objects are JSON lines, gzip-compressed.
func (s *stack) tfDeterminismSpec(name, topic, module string) *connector.Spec {
	s.t.Helper()
	spec := s.tfFunctionSpec(module)
	spec.Transforms = append(spec.Transforms, transform.StepSpec{
		Name: "kafka-coordinates", Type: transform.StepInsertMetadata,
		Metadata: &transform.MetadataSpec{Offset: "kafka.offset", Timestamp: "kafka.time"}, Format: "rfc3339", Zone: "GMT+08:00",
	})
	spec.Sink.OSS.Path = "{topic}/{yyyy}/{MM}/{dd}"
	spec.Sink.OSS.Format = &format.Spec{Type: format.JSONL, Compression: format.Gzip}
	tfRename(s.t, spec, name, topic)
	return spec
}

// tfProduceTrades produces n generated trade records to each of
// partitions partitions and returns how many convertAndFilter keeps per
// partition.
func (s *stack) tfProduceTrades(topic string, partitions int32, n int) (kept int) {
	s.t.Helper()
	for p := int32(0); p < partitions; p++ {
		recs := make([]*kgo.Record, 0, n)
		for i := 0; i < n; i++ {
			tr := tfGen(i)
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Key: []byte(fmt.Sprintf("t%d", i)), Value: tr.value(i), Timestamp: time.Unix(tr.ts, 0)})
		}
		s.produceRecords(recs)
	}
	for i := 0; i < n; i++ {
		if tfGen(i).code != 0 {
			kept++
		}
	}
	return kept
}

// tfEnvelope is one line of a jsonl object.
type tfEnvelope struct {
	Topic     string            `json:"topic"`
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Timestamp string            `json:"timestamp"`
	Key       *string           `json:"key"`
	Value     json.RawMessage   `json:"value"`
	Headers   []json.RawMessage `json:"headers"`
}

// tfJSONL decodes the JSON lines of body, gunzipping it first when gz.
func tfJSONL(t *testing.T, body []byte, gz bool) []tfEnvelope {
	t.Helper()
	if gz {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		require.NoError(t, err)
		body, err = io.ReadAll(zr)
		require.NoError(t, err)
	}
	var out []tfEnvelope
	for _, l := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
		if l == "" {
			continue
		}
		var e tfEnvelope
		require.NoError(t, json.Unmarshal([]byte(l), &e), "line %q", l)
		out = append(out, e)
	}
	return out
}

// tfRequireDeterminismObjects decodes every data object of the
// determinism connector and asserts each kept record is there exactly
// once, converted, with its own offset inserted.
func (s *stack) tfRequireDeterminismObjects(spec *connector.Spec, partitions int32, n int) {
	t := s.t
	t.Helper()
	seen := map[string]int{}
	for _, o := range s.tfObjects(spec.Kafka.Topic + "/") {
		if o.meta("Dumpflow-Kind") != "data" {
			continue
		}
		require.True(t, strings.HasSuffix(o.Key, ".jsonl.gz"), o.Key)
		for _, e := range tfJSONL(t, o.Body, true) {
			seen[fmt.Sprintf("%d/%d", e.Partition, e.Offset)]++
			tr := tfGen(int(e.Offset))
			var v struct {
				ReturnCode int64  `json:"returnCode"`
				RequestID  string `json:"requestId"`
				Kafka      struct {
					Offset int64 `json:"offset"`
				} `json:"kafka"`
			}
			require.NoError(t, json.Unmarshal(e.Value, &v))
			require.Equal(t, tr.code, v.ReturnCode)
			require.Equal(t, fmt.Sprintf("req%d*", e.Offset), v.RequestID)
			require.Equal(t, e.Offset, v.Kafka.Offset)
		}
	}
	for p := int32(0); p < partitions; p++ {
		for i := 0; i < n; i++ {
			k := fmt.Sprintf("%d/%d", p, i)
			if tfGen(i).code == 0 {
				require.Zero(t, seen[k], "dropped record %s written", k)
				continue
			}
			require.Equal(t, 1, seen[k], "record %s written once", k)
		}
	}
}

// TestTransformDeterministicRewrite proves that a batch written twice is
// byte-identical, with a chain of a WebAssembly function and a built-in
// step and gzip-compressed JSON lines:
//
//   - worker SIGKILL: the worker process is killed while batches are being
//     written; the new process writes the interrupted ranges again, and an
//     object already there counts as written only if its record count and
//     CRC-64 equal the new attempt's (else the partition parks on an
//     ObjectConflict and never catches up). verify --deep then compares
//     every object's CRC-64 with a replay of its range through the chain.
//   - rewrite: one range is written, its object and the partition's meta
//     object are deleted, and the connector is terminated and created
//     again, so a new writer writes the same range again: the object's
//     bytes must equal the first write's.
//
// It fails if the function's sandbox, the chain, the encoder or gzip
// leaks anything run-dependent (time, randomness, map order) into objects.
func TestTransformDeterministicRewrite(t *testing.T) {
	module := tfBuildGo(t, t.TempDir())

	t.Run("worker-sigkill", func(t *testing.T) {
		s := newStack(t)
		const topic, parts, n = "trade-kill", 3, 3000
		s.createTopic(topic, parts)
		kept := s.tfProduceTrades(topic, parts, n)
		spec := s.tfDeterminismSpec("trade-kill", topic, module)
		spec.Batch.MaxRecords = 200
		w := s.startWorkerProcess()
		s.start(spec, 0)
		mid := s.waitFor(spec.Name, 3*time.Minute, "first batches", func(st workflows.Status) bool {
			var recs int64
			for _, p := range st.Partitions {
				recs += p.Records
			}
			return recs >= 1000
		})
		w.kill()
		behind := false
		for _, p := range mid.Partitions {
			behind = behind || p.Next < n
		}
		require.True(t, behind, "the kill lands mid-run")

		s.startWorkerProcess()
		st := s.waitFor(spec.Name, 5*time.Minute, "all records after the restart", caughtUp(n))
		var recs int64
		for _, p := range st.Partitions {
			require.Equal(t, workflows.StateRunning, p.State, "partition %d: %s", p.Partition, p.LastError)
			recs += p.Records
		}
		require.Equal(t, int64(parts*kept), recs)
		s.verifyLedger(spec)
		s.tfRequireDeterminismObjects(spec, parts, n)
	})

	t.Run("rewrite", func(t *testing.T) {
		s := newStack(t)
		s.startWorker()
		const topic, n = "trade-again", 150
		s.createTopic(topic, 1)
		s.tfProduceTrades(topic, 1, n)
		spec := s.tfDeterminismSpec("trade-again", topic, module)
		spec.Batch.MaxRecords = 1000 // the whole topic is one range
		s.start(spec, 0)
		s.waitFor(spec.Name, time.Minute, "the range", caughtUp(n))
		objs := s.tfObjects(topic + "/")
		require.Len(t, tfKeys(objs), 1, "one range, one object")
		before := objs[0]
		require.Equal(t, "0", before.meta("Dumpflow-First"))
		require.Equal(t, strconv.Itoa(n), before.meta("Dumpflow-End"))

		ctx := context.Background()
		require.NoError(t, s.client.TerminateWorkflow(ctx, spec.WorkflowID(), "", "test: write the range again"))
		b := s.exBucket()
		require.NoError(t, b.DeleteObject(before.Key))
		require.NoError(t, b.DeleteObject(s.exSink(spec).MetaKey(topic, 0)))
		require.Empty(t, tfKeys(s.tfObjects(topic+"/")))
		_, err := s.exKafka().Admin().DeleteGroup(ctx, spec.Group())
		require.NoError(t, err)

		s.start(spec, 0)
		st := s.waitFor(spec.Name, time.Minute, "the range written again", caughtUp(n))
		require.Equal(t, int64(n-n/5), st.Partitions[0].Records, "the new connector wrote the range itself")
		objs = s.tfObjects(topic + "/")
		require.Len(t, tfKeys(objs), 1)
		after := objs[0]
		require.Equal(t, before.Key, after.Key, "the same range has the same name")
		require.NotEqual(t, before.meta("Dumpflow-Writer"), after.meta("Dumpflow-Writer"), "another writer wrote it")
		require.Equal(t, before.meta("Dumpflow-Crc64"), after.meta("Dumpflow-Crc64"))
		require.Equal(t, before.meta("Dumpflow-Transform"), after.meta("Dumpflow-Transform"))
		require.True(t, bytes.Equal(before.Body, after.Body), "the range written again is byte-identical")
		s.verifyLedger(spec)
	})
}

// Records of the format test: JSON objects, except record tfFmtText, a
// plain text value with a line break.
const (
	tfFmtN    = 300
	tfFmtText = 5
	tfFmtRaw  = "line one\nline two"
)

var tfFmtTS = time.Date(2024, 3, 5, 10, 30, 0, 0, time.UTC)

func tfFmtValue(i int) string {
	if i == tfFmtText {
		return tfFmtRaw
	}
	return fmt.Sprintf(`{"id":%d,"name":"item-%d","price":%d.%02d,"tags":["t"]}`, i, i, i*25/100, i*25%100)
}

// tfFmtOut is record i's value after the format test's chain.
func tfFmtOut(i int) string {
	if i == tfFmtText {
		return tfFmtRaw
	}
	parity := "odd"
	if i%2 == 0 {
		parity = "even"
	}
	v := tfFmtValue(i)
	return v[:len(v)-1] + `,"parity":"` + parity + `"}`
}

// tfFmtChain sets a field on the records whose value is a JSON object,
// so they carry fields; the plain text record passes unchanged.
func tfFmtChain(field string) []transform.StepSpec {
	return []transform.StepSpec{{Name: "parity", Type: transform.StepSet, If: `type(value) == "map"`, Field: field, Expr: `value.id % 2 == 0 ? "even" : "odd"`}}
}

// tfFmtConnector is one connector of the format test.
type tfFmtConnector struct {
	name   string
	format format.Spec
	ext    string // the objects' extension
	meta   string // Dumpflow-Format
	field  string // the chain's field
	spec   *connector.Spec
}

// tfParquetRows reads a parquet file's rows as column name → value.
func tfParquetRows(t *testing.T, body []byte) []map[string]parquet.Value {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(body), int64(len(body)))
	require.NoError(t, err)
	var names []string
	for _, fl := range f.Schema().Fields() {
		names = append(names, fl.Name())
	}
	require.Equal(t, []string{"id", "name", "price", "parity", "offset", "ts"}, names, "the schema given in the spec, in order")
	var out []map[string]parquet.Value
	for _, rg := range f.RowGroups() {
		rows := rg.Rows()
		buf := make([]parquet.Row, 64)
		for {
			n, err := rows.ReadRows(buf)
			for _, row := range buf[:n] {
				m := map[string]parquet.Value{}
				for _, v := range row {
					m[names[v.Column()]] = v.Clone()
				}
				out = append(out, m)
			}
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
		}
		require.NoError(t, rows.Close())
	}
	require.Equal(t, f.NumRows(), int64(len(out)))
	return out
}

// TestTransformOutputFormats proves the OSS output formats end to end, one
// connector each on the same records (JSON objects that a set step gives
// fields, and one plain text value holding a line break): every object is
// read back with an independent decoder — JSON lines, encoding/csv,
// parquet-go, gzip, raw lines unescaped by the documented rule — and holds
// each record once with the right values; the text value goes to the
// dead-letter topic (stage format) where the format cannot hold it (raw
// under newlines reject; csv whose columns came from fields) and the rest
// is written; names carry the extension; metadata names the format and the
// chain hash, the same for every object of a connector and another for a
// changed chain; verify --deep (replaying through the encoders) is exact.
// It fails if an encoder splits a line, loses or alters a record, is not
// deterministic, or mislabels an object.
func TestTransformOutputFormats(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic = "fmt-src"
	s.createTopic(topic, 1)
	recs := make([]*kgo.Record, tfFmtN)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(tfFmtValue(i)),
			Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte(fmt.Sprintf("tr-%d", i))}}, Timestamp: tfFmtTS.Add(time.Duration(i) * time.Millisecond)}
	}
	s.produceRecords(recs)

	parquetCols := []format.Column{
		{Name: "id", Type: format.TypeInt64}, {Name: "name"}, {Name: "price", Type: format.TypeDouble}, {Name: "parity"},
		{Name: "offset", Source: format.SourceOffset}, {Name: "ts", Source: format.SourceTimestamp},
	}
	conns := []*tfFmtConnector{
		{name: "fmt-jsonl", format: format.Spec{Type: format.JSONL}, ext: ".jsonl", meta: "jsonl"},
		{name: "fmt-csv", format: format.Spec{Type: format.CSV}, ext: ".csv", meta: "csv"},
		{name: "fmt-parquet", format: format.Spec{Type: format.Parquet, Columns: parquetCols}, ext: ".parquet", meta: "parquet"},
		{name: "fmt-jsonl-gz", format: format.Spec{Type: format.JSONL, Compression: format.Gzip}, ext: ".jsonl.gz", meta: "jsonl+gzip"},
		{name: "fmt-raw-escape", format: format.Spec{Newlines: format.NewlinesEscape}, ext: "", meta: "raw"},
		{name: "fmt-raw", format: format.Spec{}, ext: "", meta: "raw"},
		{name: "fmt-changed", format: format.Spec{Type: format.JSONL}, ext: ".jsonl", meta: "jsonl", field: "side"},
	}
	for _, c := range conns {
		spec := s.ossSpec(c.name, topic)
		spec.Batch.MaxRecords = 100
		spec.Sink.OSS.Path = "{topic}/" + c.name
		f := c.format
		spec.Sink.OSS.Format = &f
		spec.Transforms = tfFmtChain(cmp.Or(c.field, "parity"))
		spec.Default()
		require.NoError(t, spec.Validate())
		c.spec = spec
		s.start(spec, 0)
	}
	for _, c := range conns {
		s.waitFor(c.name, 2*time.Minute, c.name+" caught up", caughtUp(tfFmtN))
	}

	hashes := map[string]string{}
	for _, c := range conns {
		t.Run(c.name, func(t *testing.T) {
			chain, err := transform.Compile(c.spec.Transforms, transform.Options{Functions: wasm.Load})
			require.NoError(t, err)
			require.NotEmpty(t, chain.Hash())
			objs := s.tfObjects(topic + "/" + c.name + "/")
			var data []tfObject
			for _, o := range objs {
				require.Equal(t, "data", o.meta("Dumpflow-Kind"), o.Key)
				require.Regexp(t, `/partition_0_offset_\d+_[0-9a-f]{8}`+regexp.QuoteMeta(c.ext)+`$`, o.Key)
				require.Equal(t, c.meta, o.meta("Dumpflow-Format"), o.Key)
				require.Equal(t, chain.Hash(), o.meta("Dumpflow-Transform"), "%s carries the chain's hash", o.Key)
				data = append(data, o)
			}
			require.Len(t, data, tfFmtN/100, "one object a batch")
			hashes[c.name] = chain.Hash()

			var letters []*kgo.Record
			switch c.name {
			case "fmt-jsonl", "fmt-jsonl-gz", "fmt-changed":
				var got []tfEnvelope
				for _, o := range data {
					got = append(got, tfJSONL(t, o.Body, c.format.Compression == format.Gzip)...)
				}
				require.Len(t, got, tfFmtN)
				for i, e := range got {
					require.Equal(t, int64(i), e.Offset)
					require.Equal(t, topic, e.Topic)
					require.Equal(t, tfFmtTS.Add(time.Duration(i)*time.Millisecond).Format("2006-01-02T15:04:05.000Z"), e.Timestamp)
					require.Equal(t, fmt.Sprintf("k%d", i), *e.Key)
					require.Len(t, e.Headers, 1)
					require.JSONEq(t, fmt.Sprintf(`{"key":"trace","value":"tr-%d"}`, i), string(e.Headers[0]))
					want := tfFmtOut(i)
					if c.field != "" {
						want = strings.Replace(want, `"parity"`, `"`+c.field+`"`, 1)
					}
					if i == tfFmtText {
						var txt string
						require.NoError(t, json.Unmarshal(e.Value, &txt), "a text value is a JSON string: %s", e.Value)
						require.Equal(t, tfFmtRaw, txt)
						continue
					}
					require.Equal(t, want, string(e.Value), "the value embedded as JSON, as the chain made it")
				}
			case "fmt-csv":
				var rows [][]string
				for _, o := range data {
					cr := csv.NewReader(bytes.NewReader(o.Body))
					all, err := cr.ReadAll()
					require.NoError(t, err)
					require.Equal(t, []string{"id", "name", "price", "tags", "parity"}, all[0], "header row: the columns of the first record's fields")
					rows = append(rows, all[1:]...)
				}
				require.Len(t, rows, tfFmtN-1, "every record but the text one")
				for _, r := range rows {
					i, err := strconv.Atoi(r[0])
					require.NoError(t, err)
					require.NotEqual(t, tfFmtText, i)
					require.Equal(t, []string{r[0], fmt.Sprintf("item-%d", i), fmt.Sprintf("%d.%02d", i*25/100, i*25%100), `["t"]`, map[bool]string{true: "even", false: "odd"}[i%2 == 0]}, r)
				}
				letters = s.deadLetters(c.spec.Errors.DeadLetterTopic, 1)
			case "fmt-parquet":
				var rows []map[string]parquet.Value
				for _, o := range data {
					rows = append(rows, tfParquetRows(t, o.Body)...)
				}
				require.Len(t, rows, tfFmtN)
				for i, r := range rows {
					require.Equal(t, int64(i), r["offset"].Int64())
					require.Equal(t, tfFmtTS.Add(time.Duration(i)*time.Millisecond).UnixMicro(), r["ts"].Int64())
					if i == tfFmtText {
						require.True(t, r["id"].IsNull() && r["name"].IsNull() && r["parity"].IsNull(), "a record without fields has null field columns")
						continue
					}
					require.Equal(t, int64(i), r["id"].Int64())
					require.Equal(t, fmt.Sprintf("item-%d", i), string(r["name"].ByteArray()))
					require.InDelta(t, float64(i)*0.25, r["price"].Double(), 1e-9)
				}
			case "fmt-raw-escape":
				var lines []string
				for _, o := range data {
					require.True(t, bytes.HasSuffix(o.Body, []byte("\n")))
					lines = append(lines, strings.Split(strings.TrimSuffix(string(o.Body), "\n"), "\n")...)
				}
				require.Len(t, lines, tfFmtN, "one line a record: the line break is escaped")
				unescape := strings.NewReplacer(`\\`, `\`, `\n`, "\n", `\r`, "\r")
				for i, l := range lines {
					require.Equal(t, tfFmtOut(i), unescape.Replace(l))
				}
				require.Equal(t, `line one\nline two`, lines[tfFmtText])
			case "fmt-raw":
				var lines []string
				for _, o := range data {
					lines = append(lines, strings.Split(strings.TrimSuffix(string(o.Body), "\n"), "\n")...)
				}
				require.Len(t, lines, tfFmtN-1, "every record but the one with a line break")
				for j, l := range lines {
					i := j
					if j >= tfFmtText {
						i++
					}
					require.Equal(t, tfFmtOut(i), l)
				}
				letters = s.deadLetters(c.spec.Errors.DeadLetterTopic, 1)
			}
			if letters != nil {
				require.Len(t, letters, 1)
				h := headers(letters[0])
				require.Equal(t, "format", h[kafka.HeaderStage])
				require.Equal(t, strconv.Itoa(tfFmtText), h[kafka.HeaderOffset])
				require.Equal(t, tfFmtRaw, string(letters[0].Value))
				t.Logf("%s dead letter: %s", c.name, h[kafka.HeaderError])
			} else {
				require.Zero(t, s.exTopicRecords(c.spec.Errors.DeadLetterTopic), "no dead letters")
			}
			st, err := s.status(c.name)
			require.NoError(t, err)
			require.Equal(t, int64(len(letters)), st.Partitions[0].DeadLetters)
			s.verifyLedger(c.spec)
		})
	}
	require.Equal(t, hashes["fmt-jsonl"], hashes["fmt-raw"], "the chain hash does not depend on the format")
	require.NotEqual(t, hashes["fmt-jsonl"], hashes["fmt-changed"], "a changed chain has another hash")
}

// tfRouteRec is one record of the routing test.
type tfRouteRec struct {
	key    []byte // nil: no key
	kind   string // the route step's folder
	region string // {value.region}
	// stage and step are where the record must be refused ("" for a
	// record that is written).
	stage, step string
}

func (r tfRouteRec) value(p int32, i int) string {
	return fmt.Sprintf(`{"p":%d,"id":%d,"kind":%s,"region":%s}`, p, i, tfJSONString(r.kind), tfJSONString(r.region))
}

// folder is the folder the record must land in under the template
// "{topic}/{route}/region={value.region}/k={key}".
func (r tfRouteRec) folder(topic string) string {
	return topic + "/" + r.kind + "/region=" + r.region + "/k=" + string(r.key) + "/"
}

// tfRouteRecords are the routing test's records of partition p: valid ones
// spread over kinds, regions and keys, and on partition 0 hostile route
// values at offsets 10 and up.
func tfRouteRecords(p int32, n int) []tfRouteRec {
	out := make([]tfRouteRec, n)
	for i := range out {
		out[i] = tfRouteRec{key: []byte(fmt.Sprintf("c%d", i%3)), kind: []string{"a", "b/c"}[i%2], region: []string{"cn", "us"}[(i/2)%2]}
	}
	if p != 0 {
		return out
	}
	region := func(v string) func(*tfRouteRec) { return func(r *tfRouteRec) { r.region, r.stage = v, "route" } }
	key := func(v []byte) func(*tfRouteRec) { return func(r *tfRouteRec) { r.key, r.stage = v, "route" } }
	kind := func(v string) func(*tfRouteRec) {
		return func(r *tfRouteRec) { r.kind, r.stage, r.step = v, "transform", "by-kind" }
	}
	hostile := []func(*tfRouteRec){
		region("../evil"), region("/abs"),
		region("a/b"), // a single-folder variable holds no '/'
		region("x\x01y"), region(""), region(".."), region("."), region(`a\b`),
		key([]byte("../evil")), key([]byte("..")), key(nil),
		kind("../evil"), kind("/abs"), kind("a//b"), kind("a\nb"), kind(""), kind("a/.."),
	}
	for j, h := range hostile {
		h(&out[10+j])
	}
	return out
}

// TestTransformRouting proves per-record folders: a path template using
// {route} (set by a route step), {value.region} and {key} sends the records
// of one batch to several folders, one object per folder, each named
// folder + the range's deterministic name (computed here from the
// connector, topic, partition and first offset), each holding exactly the
// batch's records of its folder; the union of a range's objects tiles it
// (verify and verify --deep exact, the replay giving the same names). And
// hostile values never leave the connector's prefix: "../evil", "/abs",
// "a/b" in a single-folder variable, "." and "..", a control character,
// a backslash, an empty value and a missing key are refused to the
// dead-letter topic with stage "route"; a route step whose route breaks
// the route rule fails that step (stage "transform", the step's name, as
// docs/transforms.md says). Every key of the bucket is then listed and
// must lie under the prefix, in clean form. It fails if a record lands in
// the wrong folder, a folder gets two objects, a name depends on anything
// but the range, or a value escapes the prefix.
func TestTransformRouting(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, parts, n = "routes", 2, 400
	s.createTopic(topic, parts)
	byPart := map[int32][]tfRouteRec{}
	refused := map[int64]tfRouteRec{}
	for p := int32(0); p < parts; p++ {
		rs := tfRouteRecords(p, n)
		byPart[p] = rs
		recs := make([]*kgo.Record, n)
		for i, r := range rs {
			recs[i] = &kgo.Record{Topic: topic, Partition: p, Key: r.key, Value: []byte(r.value(p, i)), Timestamp: tfFmtTS}
			if r.stage != "" {
				require.Zero(t, p)
				refused[int64(i)] = r
			}
		}
		s.produceRecords(recs)
	}
	spec := s.ossSpec("routes-oss", topic)
	spec.Batch.MaxRecords = 100
	spec.Sink.OSS.Path = "{topic}/{route}/region={value.region}/k={key}"
	spec.Transforms = []transform.StepSpec{{Name: "by-kind", Type: transform.StepRoute, Expr: "value.kind"}}
	spec.Default()
	require.NoError(t, spec.Validate())
	s.start(spec, 0)
	st := s.waitFor(spec.Name, 2*time.Minute, "all records", caughtUp(n))
	_, dead := totals(st)
	require.Equal(t, int64(len(refused)), dead)

	// The hostile records are in the dead-letter topic, each at its stage.
	dls := s.deadLetters(spec.Errors.DeadLetterTopic, len(refused))
	require.Len(t, dls, len(refused))
	for _, dl := range dls {
		h := headers(dl)
		off, err := strconv.ParseInt(h[kafka.HeaderOffset], 10, 64)
		require.NoError(t, err)
		r, ok := refused[off]
		require.True(t, ok, "offset %d is not a hostile record: %s", off, h[kafka.HeaderError])
		require.Equal(t, "0", h[kafka.HeaderPartition])
		require.Equal(t, r.stage, h[kafka.HeaderStage], "offset %d (%q, %q, key %q): %s", off, r.kind, r.region, r.key, h[kafka.HeaderError])
		require.Equal(t, r.step, h[kafka.HeaderExecuting])
		require.Equal(t, r.value(0, int(off)), string(dl.Value))
		delete(refused, off)
	}
	require.Empty(t, refused)

	// Nothing outside the prefix, nothing in unclean form.
	all := s.exKeys("")
	require.NotEmpty(t, all)
	for _, k := range all {
		require.True(t, strings.HasPrefix(k, topic+"/"), "key %q outside the connector's prefix", k)
		require.Equal(t, path.Clean(k), k, "key %q is not in clean form", k)
		require.False(t, strings.ContainsFunc(k, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }), "key %q", k)
	}

	// Each range: one object per folder, named folder + the range's name,
	// holding exactly the range's records of that folder.
	type rng struct {
		p     int32
		first int64
	}
	groups := map[rng][]tfObject{}
	seen := map[string]int{}
	multi := 0
	for _, o := range s.tfObjects(topic + "/") {
		require.Equal(t, "data", o.meta("Dumpflow-Kind"), o.Key)
		p64, _ := strconv.ParseInt(o.meta("Dumpflow-Partition"), 10, 32)
		first, _ := strconv.ParseInt(o.meta("Dumpflow-First"), 10, 64)
		end, _ := strconv.ParseInt(o.meta("Dumpflow-End"), 10, 64)
		p := int32(p64)
		g := rng{p, first}
		groups[g] = append(groups[g], o)
		folder := o.Key[:strings.LastIndex(o.Key, "/")+1]
		name := ossink.ObjectName(sink.BatchID{Connector: spec.Name, Topic: topic, Partition: p, First: first})
		require.Equal(t, folder+name, o.Key, "the object's name is its folder and the range's name")
		lines := strings.Split(strings.TrimSuffix(string(o.Body), "\n"), "\n")
		require.Equal(t, o.meta("Dumpflow-Records"), strconv.Itoa(len(lines)))
		for _, l := range lines {
			var v struct {
				P  int32 `json:"p"`
				ID int   `json:"id"`
			}
			require.NoError(t, json.Unmarshal([]byte(l), &v))
			require.Equal(t, p, v.P)
			require.True(t, int64(v.ID) >= first && int64(v.ID) < end, "record %d in range [%d,%d)", v.ID, first, end)
			r := byPart[p][v.ID]
			require.Empty(t, r.stage, "a refused record was written")
			require.Equal(t, r.folder(topic), folder, "record %d/%d in its own folder", p, v.ID)
			require.Equal(t, r.value(p, v.ID), l)
			seen[fmt.Sprintf("%d/%d", p, v.ID)]++
		}
	}
	for g, objs := range groups {
		folders := map[string]bool{}
		var partsMeta []string
		for _, o := range objs {
			folder := o.Key[:strings.LastIndex(o.Key, "/")+1]
			require.False(t, folders[folder], "range %v has two objects in %s", g, folder)
			folders[folder] = true
			partsMeta = append(partsMeta, o.meta("Dumpflow-Part"))
		}
		if len(objs) > 1 {
			multi++
			var want []string
			for i := range objs {
				want = append(want, fmt.Sprintf("%d/%d", i, len(objs)))
			}
			require.ElementsMatch(t, want, partsMeta, "range %v: its objects are its parts", g)
		}
	}
	require.Greater(t, multi, 0, "a batch's records land in several folders")
	t.Logf("%d ranges, %d of them in several folders; %d keys in the bucket", len(groups), multi, len(all))
	for p := int32(0); p < parts; p++ {
		for i, r := range byPart[p] {
			if r.stage == "" {
				require.Equal(t, 1, seen[fmt.Sprintf("%d/%d", p, i)], "record %d/%d written once", p, i)
			}
		}
	}
	s.verifyLedger(spec)
}

// TestTransformMaxComputeFields proves format FIELDS end to end: a table
// (event_time DATETIME, code BIGINT, message STRING, topic STRING,
// partition BIGINT, offset BIGINT) PARTITIONED BY (pt STRING) created with
// DDL through the emulator, filled from the output fields of seed 002's
// chain (event_time from the converted timestamp, code and message from
// fields, topic/partition/offset from the record through
// sink.maxcompute.columns). The rows read back through a tunnel download
// are exactly the kept records with the values the seed's rules give; a
// value that does not convert to its column (a returnCode of 1.5 into
// BIGINT) goes to the dead-letter topic with stage "convert"; the ledger
// rows carry the chain's hash; verify --deep (which replays each range
// through the chain and the conversion) is exact. It fails if a column
// takes the wrong source, a time is read in the wrong zone, a bad value is
// written or lost, or the ledger is not exact.
func TestTransformMaxComputeFields(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, table, n = "trade-mc", "trades", 200
	s.mcExec("CREATE TABLE " + table + " (event_time DATETIME, code BIGINT, message STRING, topic STRING, partition BIGINT, offset BIGINT) PARTITIONED BY (pt STRING)")
	s.createTopic(topic, 1)
	const badAt = 33 // returnCode 1.5: passes the chain, does not convert to BIGINT
	bad := []byte(`{"version":1,"timestamp":1595944400,"returnCode":1.5,"returnMessage":"e[m][seqId:r]","seqId":"y"}`)
	s.tfTrades(topic, n, map[int][]byte{badAt: bad})

	seed := s.tfLoad("oss-convert-and-filter.yaml")
	spec := s.mcSpec("trade-mc", topic, table)
	spec.Transforms = seed.Transforms
	spec.Batch.MaxRecords = 60
	mc := spec.Sink.MaxCompute
	mc.Format = connector.FormatFields
	mc.Columns = []connector.ColumnSpec{
		{Name: "topic", Source: "__topic__"}, {Name: "partition", Source: "__partition__"}, {Name: "offset", Source: "__offset__"},
		{Name: "event_time", Source: "timestamp"}, {Name: "code", Source: "returnCode"}, {Name: "message", Source: "returnMessage"},
	}
	spec.Default()
	require.NoError(t, spec.Validate())
	s.start(spec, 0)
	st := s.waitFor(spec.Name, 2*time.Minute, "all records", caughtUp(n))
	records, dead := totals(st)
	require.Equal(t, int64(1), dead)

	dls := s.deadLetters(spec.Errors.DeadLetterTopic, 1)
	require.Len(t, dls, 1)
	h := headers(dls[0])
	require.Equal(t, "convert", h[kafka.HeaderStage])
	require.Equal(t, strconv.Itoa(badAt), h[kafka.HeaderOffset])
	require.Contains(t, h[kafka.HeaderError], "column code BIGINT")
	require.Equal(t, string(bad), string(dls[0].Value))

	type row struct {
		at      time.Time
		code    int64
		message string
	}
	got := map[int64]row{}
	for _, part := range s.mcPartitions(spec) {
		for _, r := range s.mcRows(spec, part) {
			require.Len(t, r, 7, "six columns and pt")
			require.Equal(t, topic, r[3])
			require.Equal(t, int64(0), r[4])
			off := r[5].(int64)
			_, dup := got[off]
			require.False(t, dup, "offset %d twice", off)
			at := r[0].(time.Time)
			require.Equal(t, "pt="+at.In(gmt8).Format("01-02-2006 15"), "pt="+r[6].(string), "offset %d in the partition of its time", off)
			got[off] = row{at: at, code: r[1].(int64), message: r[2].(string)}
		}
	}
	want := map[int64]row{}
	for i := 0; i < n; i++ {
		tr := tfGen(i)
		if i == badAt || tr.code == 0 {
			continue
		}
		msg := strings.SplitN(strings.SplitN(tr.msg, "][", 2)[0], "[", 2)[1]
		want[int64(i)] = row{at: time.Unix(tr.ts, 0), code: tr.code, message: msg}
	}
	require.Equal(t, int64(len(want)), records)
	require.Len(t, got, len(want))
	for off, w := range want {
		g, ok := got[off]
		require.True(t, ok, "offset %d has no row", off)
		require.True(t, w.at.Equal(g.at), "offset %d: event_time %s, want %s (the converted local time read in GMT+08:00)", off, g.at, w.at)
		require.Equal(t, w.code, g.code)
		require.Equal(t, w.message, g.message)
	}

	chain, err := transform.Compile(spec.Transforms, transform.Options{})
	require.NoError(t, err)
	entries := s.mcxLedgerEntries(spec)[0]
	require.NotEmpty(t, entries)
	for _, e := range entries {
		require.Equal(t, "transform "+chain.Hash(), e.Note, "the ledger row of [%d,%d) carries the chain's hash", e.First, e.End)
	}
	s.verifyLedger(spec)
}

// tfStarter builds ./starter into dir.
func tfStarter(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "starter")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/dumpflow/dumpflow/starter").CombinedOutput()
	require.NoError(t, err, "go build ./starter: %s", out)
	return bin
}

// tfTrace is `starter transform test --json`'s output.
type tfTrace struct {
	Offset int64  `json:"offset"`
	Input  string `json:"input"`
	Steps  []struct {
		Step    string   `json:"step"`
		Type    string   `json:"type"`
		Outputs []string `json:"outputs"`
		Result  string   `json:"result"`
	} `json:"steps"`
}

// tfRunStarter runs the starter binary and returns its standard output.
func tfRunStarter(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "starter %s: %s", strings.Join(args, " "), stderr.String())
	return stdout.String()
}

// tfRequireSeedTrace asserts a trace of seed 002's two sample records:
// every step's output for the first, ending in the seed's target line
// (then suffix), and "dropped" at the filter for the second.
func tfRequireSeedTrace(t *testing.T, traces []tfTrace, suffix string) {
	t.Helper()
	require.Len(t, traces, 2)
	first, second := traces[0], traces[1]
	require.Equal(t, tfSeedSource, first.Input)
	var steps []string
	for _, st := range first.Steps {
		steps = append(steps, st.Step+" ("+st.Type+")")
		require.Empty(t, st.Result, "step %s", st.Step)
		require.Len(t, st.Outputs, 1, "step %s", st.Step)
	}
	require.Equal(t, []string{"drop-ok (filter)", "local-time (time)", "split-message (extract)", "target-fields (keep)"}, steps)
	require.Equal(t, tfSeedSource+suffix, first.Steps[0].Outputs[0], "the filter passes the record unchanged")
	require.True(t, strings.HasPrefix(first.Steps[1].Outputs[0], `{"version":1,"componentName":"trade","timestamp":"2020-07-28 21:51:35",`), first.Steps[1].Outputs[0])
	require.Contains(t, first.Steps[2].Outputs[0], `"returnError":"return has no deal return error","requestId":"u3Becr8iz*"`)
	require.Equal(t, tfSeedTarget+suffix, first.Steps[3].Outputs[0])
	require.Equal(t, tfSeedZero, second.Input)
	require.Len(t, second.Steps, 1, "the chain stops at the step that dropped the record")
	require.Equal(t, "drop-ok", second.Steps[0].Step)
	require.Equal(t, "dropped", second.Steps[0].Result)
}

// TestTransformStarterTest proves `starter transform test`, built from
// ./starter and run as a command: on deploy/examples'
// oss-convert-and-filter.yaml with --input sample.jsonl it shows each
// step's result for the seed record (ending in the seed's target line)
// and "dropped" at the filter for the returnCode 0 record, as text and as
// JSON; with --topic it reads the same records, with a key and a header,
// from a real Kafka (kfake) through the spec's brokers and shows the same.
// It fails if the command runs the wrong prefix of the chain, mislabels a
// step, or misses a drop.
func TestTransformStarterTest(t *testing.T) {
	dir := t.TempDir()
	bin := tfStarter(t, dir)
	specFile := filepath.Join(tfExamples, "oss-convert-and-filter.yaml")
	sample := filepath.Join(tfExamples, "functions/convert-and-filter/sample.jsonl")

	t.Run("input", func(t *testing.T) {
		text := tfRunStarter(t, bin, "transform", "test", "-f", specFile, "--input", sample)
		t.Logf("starter transform test --input:\n%s", text)
		blocks := strings.Split(text, "record 2 (offset 1): ")
		require.Len(t, blocks, 2, "two records")
		require.True(t, strings.HasPrefix(blocks[0], "record 1 (offset 0): "+tfSeedSource[:100]), blocks[0])
		for _, step := range []string{"drop-ok", "local-time", "split-message"} {
			require.Regexp(t, `(?m)^  `+step+` +\(\w+\) +\{`, blocks[0])
		}
		require.Regexp(t, `(?m)^  target-fields +\(keep\) +`+regexp.QuoteMeta(tfSeedTarget)+`$`, blocks[0])
		require.Regexp(t, `(?m)^  drop-ok +\(filter\) +dropped$`, blocks[1])
		require.NotContains(t, blocks[1], "local-time", "nothing runs after the drop")

		var traces []tfTrace
		require.NoError(t, json.Unmarshal([]byte(tfRunStarter(t, bin, "transform", "test", "-f", specFile, "--input", sample, "--json")), &traces))
		tfRequireSeedTrace(t, traces, "")
	})

	t.Run("envelope", func(t *testing.T) {
		// Envelopes with headers in a given order, and a null value.
		specYAML := `name: envelope-test
kafka: {brokers: ["127.0.0.1:9092"], topic: trade-log}
transforms:
  - {name: not-null, type: filter, if: "value != nil"}
  - {name: headers-in, type: copyHeaders, to: h}
sink:
  type: oss
  oss: {endpoint: "http://127.0.0.1:9300", bucket: dumpflow, credentials: local, pathStyle: true}
`
		specPath := filepath.Join(dir, "envelope.yaml")
		require.NoError(t, os.WriteFile(specPath, []byte(specYAML), 0o600))
		input := `{"key":"k1","value":` + tfSeedSource + `,"headers":{"c":"3","a":"1","b":"2","h":"8","e":"5","d":"4","g":"7","f":"6"},"timestamp":"2020-07-28T13:51:35Z"}` + "\n" +
			`{"key":"k2","value":null,"headers":{"c":"3"}}` + "\n"
		inPath := filepath.Join(dir, "envelope.jsonl")
		require.NoError(t, os.WriteFile(inPath, []byte(input), 0o600))
		// Header order must not depend on the run (a map's order would:
		// with eight headers, six runs in the same order are no accident).
		for run := 0; run < 6; run++ {
			var traces []tfTrace
			out := tfRunStarter(t, bin, "transform", "test", "-f", specPath, "--input", inPath, "--envelope", "--json")
			require.NoError(t, json.Unmarshal([]byte(out), &traces), out)
			require.Len(t, traces, 2)
			first := traces[0]
			require.Len(t, first.Steps, 2)
			require.Equal(t, []string{tfSeedSource + "  [key=k1, header c=3, header a=1, header b=2, header h=8, header e=5, header d=4, header g=7, header f=6]"}, first.Steps[0].Outputs, "run %d: the headers in the envelope's order", run)
			require.Len(t, first.Steps[1].Outputs, 1)
			require.Contains(t, first.Steps[1].Outputs[0], `"h":{"c":"3","a":"1","b":"2","h":"8","e":"5","d":"4","g":"7","f":"6"}}`, "run %d", run)
			require.Len(t, traces[1].Steps, 1)
			require.Equal(t, "dropped", traces[1].Steps[0].Result, "run %d: a null value is null, not an empty one", run)
		}
	})

	t.Run("topic", func(t *testing.T) {
		kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
		require.NoError(t, err)
		t.Cleanup(kc.Close)
		const topic = "trade-sample"
		cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(),
			kgo.RecordPartitioner(kgo.ManualPartitioner()))
		require.NoError(t, err)
		t.Cleanup(cl.Close)
		hs := []kgo.RecordHeader{{Key: "src", Value: []byte("app-7")}}
		require.NoError(t, cl.ProduceSync(context.Background(),
			&kgo.Record{Key: []byte("k1"), Value: []byte(tfSeedSource), Headers: hs, Timestamp: tfSeedTS},
			&kgo.Record{Key: []byte("k2"), Value: []byte(tfSeedZero), Headers: hs, Timestamp: tfSeedTS},
		).FirstErr())

		// The example spec with its brokers pointed at this Kafka.
		raw, err := os.ReadFile(specFile)
		require.NoError(t, err)
		brokers, err := json.Marshal(kc.ListenAddrs())
		require.NoError(t, err)
		local := strings.Replace(string(raw), `["127.0.0.1:9092"]`, string(brokers), 1)
		require.NotEqual(t, string(raw), local)
		localFile := filepath.Join(dir, "spec.yaml")
		require.NoError(t, os.WriteFile(localFile, []byte(local), 0o600))

		var traces []tfTrace
		out := tfRunStarter(t, bin, "transform", "test", "-f", localFile, "--topic", topic, "--json")
		require.NoError(t, json.Unmarshal([]byte(out), &traces), out)
		tfRequireSeedTrace(t, traces, "  [key=k1, header src=app-7]")
		require.Equal(t, int64(0), traces[0].Offset)
		require.Equal(t, int64(1), traces[1].Offset)

		text := tfRunStarter(t, bin, "transform", "test", "-f", localFile, "--topic", topic)
		require.Regexp(t, `(?m)^  target-fields +\(keep\) +`+regexp.QuoteMeta(tfSeedTarget)+`  \[key=k1, header src=app-7\]$`, text)
		require.Regexp(t, `(?m)^  drop-ok +\(filter\) +dropped$`, text)
	})
}

// TestTransformStopOnSinkReject proves that tolerance stop applies to the
// records the OSS sink refuses as it does to records that fail a step
// (docs/transforms.md: "tolerance continue/stop applies as for sink
// rejections"; exactly-once.md: "Under tolerance stop the plan ends before
// it and the partition parks until resume"): a raw value with a line break
// (stage format) and a route that leaves its folder (stage route) each
// park the partition before them, and resume sends them to the dead-letter
// topic and goes on. It fails while the OSS sink cannot say before a write
// which records it would refuse: the write then sends them to the
// dead-letter topic without stopping.
func TestTransformStopOnSinkReject(t *testing.T) {
	for _, tc := range []struct {
		stage string
		path  string
		bad   []byte
	}{
		{"format", "{topic}", []byte("line one\nline two")},
		{"route", "{topic}/{value.region}", []byte(`{"region":"../evil"}`)},
	} {
		t.Run(tc.stage, func(t *testing.T) {
			s := newStack(t)
			s.startWorker()
			const topic, n, badAt = "stop-sink", 200, 70
			s.createTopic(topic, 1)
			recs := make([]*kgo.Record, n)
			for i := range recs {
				v := []byte(fmt.Sprintf(`{"region":"cn","id":%d}`, i))
				if i == badAt {
					v = tc.bad
				}
				recs[i] = &kgo.Record{Topic: topic, Value: v, Timestamp: tfFmtTS}
			}
			s.produceRecords(recs)
			spec := s.ossSpec("stop-sink", topic)
			spec.Sink.OSS.Path = tc.path
			spec.Errors.Tolerance = connector.ToleranceStop
			spec.Default()
			require.NoError(t, spec.Validate())
			s.start(spec, 0)
			st := s.waitFor(spec.Name, time.Minute, "the partition to stop or catch up", func(st workflows.Status) bool {
				return len(st.Partitions) == 1 && (st.Partitions[0].State == workflows.StateStopped || st.Partitions[0].Next == n)
			})
			p := st.Partitions[0]
			require.Equal(t, workflows.StateStopped, p.State, "tolerance stop parks the partition before the refused record (it went on with %d dead letters)", p.DeadLetters)
			require.Equal(t, int64(badAt), p.Next)
			require.NotNil(t, p.Poison)
			require.Equal(t, tc.stage, p.Poison.Stage)
			require.Zero(t, p.DeadLetters)

			s.exSignalResume(spec.Name)
			st = s.waitFor(spec.Name, time.Minute, "all records after resume", caughtUp(n))
			require.Equal(t, int64(1), st.Partitions[0].DeadLetters)
			dl := s.deadLetters(spec.Errors.DeadLetterTopic, 1)
			require.Equal(t, tc.stage, headers(dl[0])[kafka.HeaderStage])
			s.verifyLedger(spec)
		})
	}
}

// TestTransformRoutedRangeWithFolders proves that a range whose records
// go to several folders is routed to the error-data topic whole or not at
// all: one folder's object of a range is refused (a persistent 500) while
// the other folder's is written, so after its retries (tolerance
// continue) the range goes to the error-data topic. Then no record may be
// both in a data object and in the error-data topic, the marker must not
// lie in a folder named after an unexpanded variable ("{value.region}"),
// and verify must be exact. It fails while Mark puts the marker where no
// data object of the range can be (the template's record variables left
// as text) and routes the whole range although some of its objects are
// written: their records are then delivered twice.
func TestTransformRoutedRangeWithFolders(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, n = "routes-partial", 300
	s.createTopic(topic, 1)
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Value: []byte(fmt.Sprintf(`{"region":%q,"id":%d}`, []string{"cn", "us"}[i%2], i)), Timestamp: tfFmtTS}
	}
	s.produceRecords(recs)
	spec := s.ossSpec("routes-partial", topic)
	spec.Batch.MaxRecords = 100
	spec.Sink.OSS.Path = "{topic}/{value.region}"
	spec.Default()
	require.NoError(t, spec.Validate())
	inj := s.ossFake.InjectFault(ossfake.InternalError(ossfake.Match{Ops: []ossfake.Op{ossfake.OpPutObject}, KeyPrefix: topic + "/us/",
		Func: func(r *http.Request) bool {
			return r.Header.Get("X-Oss-Meta-Dumpflow-Kind") == "data" && r.Header.Get("X-Oss-Meta-Dumpflow-First") == "100"
		}}))
	defer inj.Remove()
	s.start(spec, 0)
	st := s.waitFor(spec.Name, 5*time.Minute, "all records, [100,200) routed", caughtUp(n))
	inj.Remove()
	require.GreaterOrEqual(t, inj.Fired(), 2, "the write was retried before it was routed")
	require.Equal(t, int64(100), st.Partitions[0].ErrorRecords)

	routed := map[string]bool{}
	for _, r := range s.deadLetters(spec.Errors.ErrorDataTopic, 100) {
		routed[string(r.Value)] = true
	}
	var twice []string
	for line := range tfLines(s.tfObjects(topic + "/")) {
		if routed[line] {
			twice = append(twice, line)
		}
	}
	sort.Strings(twice)
	for _, k := range s.exKeys("") {
		require.NotContains(t, k, "{", "key %q lies in a folder named after an unexpanded variable", k)
	}
	require.Empty(t, twice, "%d records are both in an object and in the error-data topic", len(twice))
	s.verifyLedger(spec)
}
