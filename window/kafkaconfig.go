package window

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaConfigKey is one kafkaConfig key dumpflow accepts: a Kafka (Java
// client) setting that franz-go supports and that applies to a direct
// consumer reading exact offset ranges.
type KafkaConfigKey struct {
	// Name is the key, e.g. "fetch.max.bytes".
	Name string
	// Unit is what the value is: "string", "bytes", "ms" or "enum".
	Unit string
	// Min and Max bound a number (bytes or ms).
	Min, Max int64
	// Maps says which franz-go option it sets.
	Maps string

	opts func(v value) []kgo.Opt
}

// value is a checked kafkaConfig value.
type value struct {
	s string
	n int64
}

func (v value) ms() time.Duration { return time.Duration(v.n) * time.Millisecond }

// KafkaConfigKeys are the keys of reader.kafkaConfig, in the order
// messages list them. Numbers may be written as numbers or as strings of
// digits (Java properties are strings).
var KafkaConfigKeys = []KafkaConfigKey{
	{Name: "client.id", Unit: "string", Maps: "kgo.ClientID", opts: func(v value) []kgo.Opt { return []kgo.Opt{kgo.ClientID(v.s)} }},
	{Name: "client.rack", Unit: "string", Maps: "kgo.Rack (fetch from a replica in this rack, KIP-392)", opts: func(v value) []kgo.Opt { return []kgo.Opt{kgo.Rack(v.s)} }},
	{Name: "fetch.max.bytes", Unit: "bytes", Min: 1 << 10, Max: 256 << 20, Maps: "kgo.FetchMaxBytes (and kgo.BrokerMaxReadBytes of twice it when that is above franz-go's 100MiB)", opts: func(v value) []kgo.Opt {
		o := []kgo.Opt{kgo.FetchMaxBytes(int32(v.n))}
		if 2*v.n > 100<<20 {
			o = append(o, kgo.BrokerMaxReadBytes(int32(2*v.n)))
		}
		return o
	}},
	{Name: "max.partition.fetch.bytes", Unit: "bytes", Min: 1 << 10, Max: 256 << 20, Maps: "kgo.FetchMaxPartitionBytes", opts: func(v value) []kgo.Opt { return []kgo.Opt{kgo.FetchMaxPartitionBytes(int32(v.n))} }},
	{Name: "fetch.min.bytes", Unit: "bytes", Min: 1, Max: 256 << 20, Maps: "kgo.FetchMinBytes", opts: func(v value) []kgo.Opt { return []kgo.Opt{kgo.FetchMinBytes(int32(v.n))} }},
	{Name: "fetch.max.wait.ms", Unit: "ms", Min: 1, Max: 60_000, Maps: "kgo.FetchMaxWait", opts: func(v value) []kgo.Opt { return []kgo.Opt{kgo.FetchMaxWait(v.ms())} }},
	{Name: "request.timeout.ms", Unit: "ms", Min: 1_000, Max: 600_000, Maps: "kgo.RequestTimeoutOverhead (franz-go adds a request's own timeout, such as a fetch's wait, on top)", opts: func(v value) []kgo.Opt { return []kgo.Opt{kgo.RequestTimeoutOverhead(v.ms())} }},
	{Name: "socket.connection.setup.timeout.ms", Unit: "ms", Min: 100, Max: 300_000, Maps: "kgo.DialTimeout", opts: func(v value) []kgo.Opt { return []kgo.Opt{kgo.DialTimeout(v.ms())} }},
	{Name: "connections.max.idle.ms", Unit: "ms", Min: 1_000, Max: 3_600_000, Maps: "kgo.ConnIdleTimeout", opts: func(v value) []kgo.Opt { return []kgo.Opt{kgo.ConnIdleTimeout(v.ms())} }},
	{Name: "metadata.max.age.ms", Unit: "ms", Min: 1_000, Max: 3_600_000, Maps: "kgo.MetadataMaxAge", opts: func(v value) []kgo.Opt { return []kgo.Opt{kgo.MetadataMaxAge(v.ms())} }},
	{Name: "retry.backoff.ms", Unit: "ms", Min: 1, Max: 60_000, Maps: "kgo.RetryBackoffFn (a constant backoff)", opts: func(v value) []kgo.Opt {
		d := v.ms()
		return []kgo.Opt{kgo.RetryBackoffFn(func(int) time.Duration { return d })}
	}},
	{Name: "isolation.level", Unit: "enum", Maps: "kgo.FetchIsolationLevel(kgo.ReadCommitted()); only read_committed", opts: func(value) []kgo.Opt { return nil }},
}

// Kafka client settings that do not apply to a window job, with the reason.
var refusedKafkaConfig = map[string]string{
	"bootstrap.servers":             "set reader.brokers instead",
	"group.id":                      "the job keeps its position in its own group, window-<name> (seekToLast reads it); it cannot be set",
	"group.instance.id":             "a window job reads its partitions directly, without joining a consumer group, so group settings do not apply",
	"group.protocol":                "a window job reads its partitions directly, without joining a consumer group, so group settings do not apply",
	"session.timeout.ms":            "a window job reads its partitions directly, without joining a consumer group, so group settings do not apply",
	"heartbeat.interval.ms":         "a window job reads its partitions directly, without joining a consumer group, so group settings do not apply",
	"max.poll.interval.ms":          "a window job reads its partitions directly, without joining a consumer group, so group settings do not apply",
	"partition.assignment.strategy": "a window job reads its partitions directly, without joining a consumer group, so group settings do not apply",
	"enable.auto.commit":            "dumpflow commits the job's position itself, once the window is loaded",
	"auto.commit.interval.ms":       "dumpflow commits the job's position itself, once the window is loaded",
	"auto.offset.reset":             "the positions are reader.begin and reader.end",
	"key.deserializer":              "set reader.keyType instead",
	"value.deserializer":            "set reader.valueType instead",
	"max.poll.records":              "dumpflow reads exact offset ranges; how many records one poll returns is not a setting",
	"security.protocol":             "set reader.sasl and reader.tls instead (credentials by name, never in the spec)",
}

func kafkaKey(name string) *KafkaConfigKey {
	for i := range KafkaConfigKeys {
		if KafkaConfigKeys[i].Name == name {
			return &KafkaConfigKeys[i]
		}
	}
	return nil
}

// kafkaConfigViolation is a rule for one key.
type kafkaConfigViolation struct {
	key, value, rule string
}

// checkKafkaConfig checks every key of cfg, in sorted order, and returns
// the options of the good ones.
func checkKafkaConfig(cfg map[string]any) ([]kgo.Opt, []kafkaConfigViolation) {
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var opts []kgo.Opt
	var vs []kafkaConfigViolation
	for _, k := range keys {
		raw := cfg[k]
		shown := showValue(raw)
		key := kafkaKey(k)
		if key == nil {
			vs = append(vs, kafkaConfigViolation{k, shown, unknownKafkaKey(k)})
			continue
		}
		v, err := key.parse(raw)
		if err != nil {
			vs = append(vs, kafkaConfigViolation{k, shown, err.Error()})
			continue
		}
		opts = append(opts, key.opts(v)...)
	}
	return opts, vs
}

func unknownKafkaKey(k string) string {
	lk := strings.ToLower(k)
	if reason, ok := refusedKafkaConfig[lk]; ok {
		return "is not accepted: " + reason
	}
	switch {
	case strings.HasPrefix(lk, "sasl.") || strings.HasPrefix(lk, "ssl."):
		return "is not accepted: set reader.sasl and reader.tls instead (credentials by name, never in the spec)"
	case kafkaKey(lk) != nil:
		return fmt.Sprintf("is not a known key; did you mean %q? (keys are case-sensitive)", lk)
	}
	names := make([]string, len(KafkaConfigKeys))
	for i, key := range KafkaConfigKeys {
		names[i] = key.Name
	}
	return "is not a known key (unknown keys are refused, not ignored); the keys are " + strings.Join(names, ", ")
}

func (key *KafkaConfigKey) parse(raw any) (value, error) {
	switch key.Unit {
	case "string":
		s, ok := raw.(string)
		if !ok || strings.TrimSpace(s) == "" {
			return value{}, errors.New("must be a non-empty string")
		}
		if len(s) > 255 {
			return value{}, errors.New("must be at most 255 characters")
		}
		return value{s: s}, nil
	case "enum": // isolation.level
		s, _ := raw.(string)
		if s != "read_committed" {
			return value{}, errors.New("must be read_committed: dumpflow reads only committed records, so that a window never loads records of an aborted transaction, and plans every read to the last stable offset")
		}
		return value{s: s}, nil
	}
	var n int64
	switch x := raw.(type) {
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return value{}, fmt.Errorf("must be a whole number of %s", unitName(key.Unit))
		}
		n = int64(x)
	case int:
		n = int64(x)
	case int64:
		n = x
	case string:
		p, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		if err != nil {
			return value{}, fmt.Errorf("must be a whole number of %s", unitName(key.Unit))
		}
		n = p
	default:
		return value{}, fmt.Errorf("must be a whole number of %s", unitName(key.Unit))
	}
	if n < key.Min || n > key.Max {
		return value{}, fmt.Errorf("must be %d..%d %s", key.Min, key.Max, unitName(key.Unit))
	}
	return value{n: n}, nil
}

func unitName(u string) string {
	if u == "ms" {
		return "milliseconds"
	}
	return u
}

func showValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case nil:
		return "null"
	}
	return fmt.Sprint(v)
}

// KafkaOptions returns the franz-go options of r.KafkaConfig (see
// KafkaConfigKeys), always ending with read_committed isolation. Append
// them after the connection options (brokers, SASL, TLS: package kafka's
// Options of r.KafkaSpec()), so that they take precedence. A key
// Validate would refuse is an error naming it.
func (r ReaderSpec) KafkaOptions() ([]kgo.Opt, error) {
	opts, vs := checkKafkaConfig(r.KafkaConfig)
	if len(vs) > 0 {
		msgs := make([]string, len(vs))
		for i, v := range vs {
			msgs[i] = fmt.Sprintf("reader.kafkaConfig[%q]: %q %s", v.key, v.value, v.rule)
		}
		return nil, errors.New(strings.Join(msgs, "; "))
	}
	return append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted())), nil
}
