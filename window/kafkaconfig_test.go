package window

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

// optValues builds a client (it connects to nothing until used) and reads
// back the options set.
func optValues(t *testing.T, cfg map[string]any) *kgo.Client {
	t.Helper()
	opts, err := ReaderSpec{KafkaConfig: cfg}.KafkaOptions()
	require.NoError(t, err)
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers("127.0.0.1:1")}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

func TestKafkaOptions(t *testing.T) {
	cl := optValues(t, map[string]any{
		"client.id":                          "dumpflow-job",
		"client.rack":                        "cn-hangzhou-h",
		"fetch.max.bytes":                    "104857600", // a Java property string
		"max.partition.fetch.bytes":          float64(4 << 20),
		"fetch.min.bytes":                    float64(1),
		"fetch.max.wait.ms":                  float64(250),
		"request.timeout.ms":                 "30000",
		"socket.connection.setup.timeout.ms": float64(5000),
		"connections.max.idle.ms":            float64(60000),
		"metadata.max.age.ms":                float64(120000),
		"retry.backoff.ms":                   float64(100),
		"isolation.level":                    "read_committed",
	})
	for _, tc := range []struct {
		opt  any
		want any
	}{
		{kgo.ClientID, "dumpflow-job"},
		{kgo.Rack, "cn-hangzhou-h"},
		{kgo.FetchMaxBytes, int32(100 << 20)},
		{kgo.BrokerMaxReadBytes, int32(200 << 20)},
		{kgo.FetchMaxPartitionBytes, int32(4 << 20)},
		{kgo.FetchMinBytes, int32(1)},
		{kgo.FetchMaxWait, 250 * time.Millisecond},
		{kgo.RequestTimeoutOverhead, 30 * time.Second},
		{kgo.DialTimeout, 5 * time.Second},
		{kgo.ConnIdleTimeout, time.Minute},
		{kgo.MetadataMaxAge, 2 * time.Minute},
		{kgo.FetchIsolationLevel, int8(1)}, // read_committed
	} {
		require.Equal(t, tc.want, cl.OptValue(tc.opt), "%T", tc.opt)
	}
	backoff := cl.OptValue(kgo.RetryBackoffFn).(func(int) time.Duration)
	require.Equal(t, 100*time.Millisecond, backoff(7))

	// Always read_committed, even with no kafkaConfig; fetch.max.bytes
	// below 50MiB leaves franz-go's read limit alone.
	cl = optValues(t, map[string]any{"fetch.max.bytes": float64(1 << 20)})
	require.Equal(t, int8(1), cl.OptValue(kgo.FetchIsolationLevel))
	require.Equal(t, int32(100<<20), cl.OptValue(kgo.BrokerMaxReadBytes))
	cl = optValues(t, nil)
	require.Equal(t, int8(1), cl.OptValue(kgo.FetchIsolationLevel))
}

func TestKafkaConfigRefused(t *testing.T) {
	for _, tc := range []struct {
		key  string
		val  any
		rule string
	}{
		{"isolation.level", "read_uncommitted", "must be read_committed: dumpflow reads only committed records, so that a window never loads records of an aborted transaction"},
		{"group.id", "my-group", "is not accepted: the job keeps its position in its own group, window-<name>"},
		{"session.timeout.ms", float64(30000), "without joining a consumer group, so group settings do not apply"},
		{"heartbeat.interval.ms", float64(3000), "group settings do not apply"},
		{"enable.auto.commit", "false", "dumpflow commits the job's position itself"},
		{"auto.offset.reset", "earliest", "the positions are reader.begin and reader.end"},
		{"bootstrap.servers", "a:9092", "set reader.brokers instead"},
		{"value.deserializer", "org.apache.kafka.common.serialization.StringDeserializer", "set reader.valueType instead"},
		{"max.poll.records", float64(500), "dumpflow reads exact offset ranges"},
		{"sasl.jaas.config", "org.apache.kafka...", "set reader.sasl and reader.tls instead"},
		{"ssl.truststore.location", "/x", "set reader.sasl and reader.tls instead"},
		{"Fetch.Max.Bytes", float64(1 << 20), `did you mean "fetch.max.bytes"? (keys are case-sensitive)`},
		{"receive.buffer.bytes", float64(65536), "is not a known key (unknown keys are refused, not ignored); the keys are client.id, client.rack, fetch.max.bytes, max.partition.fetch.bytes, fetch.min.bytes, fetch.max.wait.ms, request.timeout.ms, socket.connection.setup.timeout.ms, connections.max.idle.ms, metadata.max.age.ms, retry.backoff.ms, isolation.level"},
		{"fetch.max.bytes", float64(1.5), "must be a whole number of bytes"},
		{"fetch.max.bytes", "50MB", "must be a whole number of bytes"},
		{"fetch.max.bytes", true, "must be a whole number of bytes"},
		{"fetch.max.bytes", float64(1 << 30), "must be 1024..268435456 bytes"},
		{"fetch.max.wait.ms", float64(0), "must be 1..60000 milliseconds"},
		{"request.timeout.ms", float64(100), "must be 1000..600000 milliseconds"},
		{"client.id", float64(5), "must be a non-empty string"},
		{"client.id", "", "must be a non-empty string"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			_, err := ReaderSpec{KafkaConfig: map[string]any{tc.key: tc.val}}.KafkaOptions()
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.rule)
			require.Contains(t, err.Error(), `reader.kafkaConfig["`+tc.key+`"]`)
		})
	}
}
