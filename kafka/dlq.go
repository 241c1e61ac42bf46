package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Dead-letter header names. They follow Kafka Connect's __connect.errors.*
// convention so existing DLQ tooling reads them.
const (
	HeaderTopic     = "__connect.errors.topic"
	HeaderPartition = "__connect.errors.partition"
	HeaderOffset    = "__connect.errors.offset"
	HeaderConnector = "__connect.errors.connector.name"
	HeaderStage     = "__connect.errors.stage"
	HeaderError     = "__connect.errors.exception.message"
	// HeaderExecuting names what was running when the record failed: the
	// transform step's name for stage transform (Kafka Connect names the
	// transformation's class here).
	HeaderExecuting = "__connect.errors.executing.class"
	// HeaderAttempt counts how many times the record failed: a record that
	// fails again when it is re-driven from the dead-letter topic comes
	// back with the attempt one higher. Absent means 1 (a first failure).
	HeaderAttempt = "__connect.errors.attempt"
)

// HeaderPrefix starts every dead-letter context header. Headers of an
// incoming record that start with it (a re-driven or forwarded dead letter)
// are dropped before the new ones are added.
const HeaderPrefix = "__connect.errors."

// MaxErrorHeaderBytes bounds the error text quoted in HeaderError; a longer
// text is cut on a UTF-8 boundary and "…" appended.
const MaxErrorHeaderBytes = 512

// Sizes of dead-letter records and topics.
const (
	// deadLetterHeadroom is what a dead letter may carry beyond the
	// key and value that errors.maxRecordBytes bounds: the original
	// headers, the context headers and the record and batch framing.
	deadLetterHeadroom = 256 << 10
	// defaultMaxMessageBytes is Kafka's default max.message.bytes.
	defaultMaxMessageBytes = 1048588
	// maxBatchBytes is the largest record batch franz-go produces.
	maxBatchBytes = 1 << 30
	// batchOverhead and recordOverhead bound the framing of a batch and
	// of a record around its key, value and headers.
	batchOverhead  = 61
	recordOverhead = 32
	headerOverhead = 10
)

// DeadLetterMaxMessageBytes is the max.message.bytes a dead-letter topic
// needs for records of up to maxRecordBytes of key and value (the
// connector's errors.maxRecordBytes): maxRecordBytes plus 256KiB for
// headers and framing, at least Kafka's default and at most 1GiB.
func DeadLetterMaxMessageBytes(maxRecordBytes int64) int64 {
	return min(max(maxRecordBytes+deadLetterHeadroom, defaultMaxMessageBytes), maxBatchBytes)
}

// DeadLetter is one record routed to a dead-letter or error-data topic.
type DeadLetter struct {
	Record    *kgo.Record // the original record
	Connector string
	Stage     string // where it failed: size, transform, format, convert, write
	// Step is the transform step the record failed (stage transform), in
	// HeaderExecuting; "" otherwise.
	Step string
	Err  error
	// Attempt is how many times the record has failed (HeaderAttempt);
	// 0 or 1 for a first failure, which carries no attempt header.
	Attempt int
}

// ProduceDeadLetters writes records to topic synchronously, key, value,
// timestamp and headers copied, with the context headers added. It returns
// once every record is acknowledged. Each dead letter is keyed by its origin
// in the headers, so a consumer can de-duplicate the rare re-send after an
// activity retry.
//
// Headers of the original record starting with HeaderPrefix are dropped
// first, so a re-driven dead letter carries one set of context headers. The
// error header quotes at most MaxErrorHeaderBytes of the error text.
//
// maxRecordBytes is the largest key plus value the connector lets through
// (errors.maxRecordBytes, up to 1GiB): the records are produced by a
// producer whose batches take records of that size (with headers), in
// requests no larger than the topic's max.message.bytes allows, one request
// at a time. The topic must take such records: create it with
// EnsureDeadLetterTopic. A record whose batch would exceed 1GiB cannot be
// produced.
func (c *Client) ProduceDeadLetters(ctx context.Context, topic string, dls []DeadLetter, maxRecordBytes int64) error {
	if len(dls) == 0 {
		return nil
	}
	recs := make([]*kgo.Record, 0, len(dls))
	for _, d := range dls {
		r := d.Record
		hs := make([]kgo.RecordHeader, 0, len(r.Headers)+6)
		for _, h := range r.Headers {
			if !strings.HasPrefix(h.Key, HeaderPrefix) {
				hs = append(hs, h)
			}
		}
		hs = append(hs,
			kgo.RecordHeader{Key: HeaderTopic, Value: []byte(r.Topic)},
			kgo.RecordHeader{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(r.Partition)))},
			kgo.RecordHeader{Key: HeaderOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
			kgo.RecordHeader{Key: HeaderConnector, Value: []byte(d.Connector)},
			kgo.RecordHeader{Key: HeaderStage, Value: []byte(d.Stage)},
			kgo.RecordHeader{Key: HeaderError, Value: []byte(cutUTF8(errString(d.Err), MaxErrorHeaderBytes))},
		)
		if d.Step != "" {
			hs = append(hs, kgo.RecordHeader{Key: HeaderExecuting, Value: []byte(d.Step)})
		}
		if d.Attempt > 1 {
			hs = append(hs, kgo.RecordHeader{Key: HeaderAttempt, Value: []byte(strconv.Itoa(d.Attempt))})
		}
		recs = append(recs, &kgo.Record{
			Topic:     topic,
			Partition: 0, // dead letters keep their order in partition 0
			Key:       r.Key,
			Value:     r.Value,
			Timestamp: r.Timestamp,
			Headers:   hs,
		})
	}
	limit := producerBatchBytes(maxRecordBytes)
	prod, err := c.deadLetterProducer(limit)
	if err != nil {
		return fmt.Errorf("produce %d dead letters to %q: %w", len(dls), topic, err)
	}
	// One request at a time, each within the topic's max.message.bytes
	// (a record larger than that goes alone, and the broker says so).
	reqMax := limit
	mmb, mmbErr := c.topicMaxMessageBytes(ctx, topic)
	if mmbErr == nil {
		reqMax = min(reqMax, mmb)
	}
	for first := 0; first < len(recs); {
		end, size := first+1, batchOverhead+recordSize(recs[first])
		for end < len(recs) && size+recordSize(recs[end]) <= reqMax {
			size += recordSize(recs[end])
			end++
		}
		if err := prod.ProduceSync(ctx, recs[first:end]...).FirstErr(); err != nil {
			err = fmt.Errorf("produce dead letters %d..%d of %d (%d bytes) to %q: %w", first, end-1, len(dls), size, topic, err)
			if errors.Is(err, kerr.MessageTooLarge) {
				limits := "unknown"
				if mmbErr == nil {
					limits = strconv.FormatInt(mmb, 10)
				}
				err = fmt.Errorf("%w (max.message.bytes of %q: %s, needed for errors.maxRecordBytes %d: %d; EnsureDeadLetterTopic raises it)",
					err, topic, limits, maxRecordBytes, DeadLetterMaxMessageBytes(maxRecordBytes))
			}
			return err
		}
		first = end
	}
	return nil
}

// recordSize bounds the encoded size of r in a batch.
func recordSize(r *kgo.Record) int64 {
	n := int64(recordOverhead + len(r.Key) + len(r.Value))
	for _, h := range r.Headers {
		n += int64(headerOverhead + len(h.Key) + len(h.Value))
	}
	return n
}

// producerBatchBytes is the batch limit of the producer for maxRecordBytes:
// DeadLetterMaxMessageBytes rounded up to a power of two, so that a worker
// keeps few producers.
func producerBatchBytes(maxRecordBytes int64) int64 {
	need := DeadLetterMaxMessageBytes(maxRecordBytes)
	b := int64(1 << 20)
	for b < need {
		b <<= 1
	}
	return min(b, maxBatchBytes)
}

// deadLetterProducer returns the Client's producer whose batches take up to
// limit bytes, building it on first use.
func (c *Client) deadLetterProducer(limit int64) (*kgo.Client, error) {
	c.dlqMu.Lock()
	defer c.dlqMu.Unlock()
	if c.dlqClosed {
		return nil, errors.New("kafka client closed")
	}
	if p, ok := c.dlqProducers[limit]; ok {
		return p, nil
	}
	p, err := kgo.NewClient(append(append([]kgo.Opt(nil), c.opts...),
		kgo.ProducerLinger(0),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(int32(limit)),
		kgo.BrokerMaxWriteBytes(int32(min(max(limit+1<<20, 100<<20), maxBatchBytes))),
		// Writing and acknowledging a large request takes a while.
		kgo.RequestTimeoutOverhead(10*time.Second+time.Duration(limit/(8<<20))*time.Second),
		kgo.RetryTimeout(30*time.Second),
		kgo.DialTimeout(5*time.Second),
	)...)
	if err != nil {
		return nil, fmt.Errorf("dead-letter producer: %w", err)
	}
	if c.dlqProducers == nil {
		c.dlqProducers = map[int64]*kgo.Client{}
	}
	c.dlqProducers[limit] = p
	return p, nil
}

// EnsureDeadLetterTopic creates topic (one partition) for dead letters of
// up to maxRecordBytes of key and value, with max.message.bytes set to
// DeadLetterMaxMessageBytes(maxRecordBytes). When the topic exists with a
// smaller max.message.bytes, it raises it with an incremental alter configs
// request; a larger one is left alone.
func (c *Client) EnsureDeadLetterTopic(ctx context.Context, topic string, maxRecordBytes int64) error {
	want := DeadLetterMaxMessageBytes(maxRecordBytes)
	v := strconv.FormatInt(want, 10)
	resp, err := c.admin.CreateTopic(ctx, 1, -1, map[string]*string{"max.message.bytes": &v}, topic)
	if err == nil {
		err = resp.Err
	}
	if err == nil {
		return nil
	}
	if !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create dead-letter topic %q: %w", topic, err)
	}
	have, err := c.topicMaxMessageBytes(ctx, topic)
	if err != nil {
		return err
	}
	if have >= want {
		return nil
	}
	alter, err := c.admin.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "max.message.bytes", Value: &v}}, topic)
	if err == nil {
		var r kadm.AlterConfigsResponse
		if r, err = alter.On(topic, nil); err == nil {
			err = r.Err
		}
	}
	if err != nil {
		return fmt.Errorf("raise max.message.bytes of dead-letter topic %q from %d to %d: %w", topic, have, want, err)
	}
	return nil
}

// topicMaxMessageBytes returns topic's max.message.bytes.
func (c *Client) topicMaxMessageBytes(ctx context.Context, topic string) (int64, error) {
	rcs, err := c.admin.DescribeTopicConfigs(ctx, topic)
	var rc kadm.ResourceConfig
	if err == nil {
		if rc, err = rcs.On(topic, nil); err == nil {
			err = rc.Err
		}
	}
	if err != nil {
		return 0, fmt.Errorf("describe configs of topic %q: %w", topic, err)
	}
	for _, cfg := range rc.Configs {
		if cfg.Key == "max.message.bytes" && cfg.Value != nil {
			n, err := strconv.ParseInt(*cfg.Value, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("max.message.bytes of topic %q: %w", topic, err)
			}
			return n, nil
		}
	}
	return defaultMaxMessageBytes, nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// DeadLetterOffsets reads dlqTopic from its start to its end and returns,
// per source partition, the source offsets of the dead letters that
// connectorName routed from sourceTopic.
func (c *Client) DeadLetterOffsets(ctx context.Context, dlqTopic, connectorName, sourceTopic string) (map[int32][]int64, error) {
	out := map[int32][]int64{}
	bounds, err := c.Bounds(ctx, dlqTopic)
	if err != nil {
		return nil, err
	}
	for p, b := range bounds {
		if b.Err != nil {
			return nil, fmt.Errorf("read dead letters from %s: %w", dlqTopic, b.Err)
		}
		err := c.ReadRange(ctx, dlqTopic, p, b.Start, b.Stable, ReadOptions{}, func(r *kgo.Record) (bool, error) {
			h := map[string]string{}
			for _, kv := range r.Headers {
				h[kv.Key] = string(kv.Value)
			}
			if h[HeaderConnector] != connectorName || h[HeaderTopic] != sourceTopic {
				return true, nil
			}
			sp, err1 := strconv.ParseInt(h[HeaderPartition], 10, 32)
			off, err2 := strconv.ParseInt(h[HeaderOffset], 10, 64)
			if err1 != nil || err2 != nil {
				return true, nil
			}
			out[int32(sp)] = append(out[int32(sp)], off)
			return true, nil
		})
		if err != nil {
			return nil, fmt.Errorf("read dead letters from %s: %w", dlqTopic, err)
		}
	}
	return out, nil
}

// Letter is a dead letter read back from a dead-letter topic: where it is,
// where its record came from, and why it failed.
type Letter struct {
	// Partition and Offset are the dead letter's own place in the
	// dead-letter topic.
	Partition int32
	Offset    int64
	// Connector, Topic, OriginPartition and OriginOffset name the record's
	// origin (the context headers).
	Connector       string
	Topic           string
	OriginPartition int32
	OriginOffset    int64
	Stage           string
	Step            string
	Error           string
	// Attempt is HeaderAttempt, 1 when absent.
	Attempt int
}

// ParseLetter reads the context headers of r, a record of a dead-letter
// topic; ok is false when they do not name an origin.
func ParseLetter(r *kgo.Record) (l Letter, ok bool) {
	l = Letter{Partition: r.Partition, Offset: r.Offset, Attempt: 1}
	var hasP, hasO bool
	for _, h := range r.Headers {
		v := string(h.Value)
		switch h.Key {
		case HeaderConnector:
			l.Connector = v
		case HeaderTopic:
			l.Topic = v
		case HeaderPartition:
			p, err := strconv.ParseInt(v, 10, 32)
			l.OriginPartition, hasP = int32(p), err == nil
		case HeaderOffset:
			o, err := strconv.ParseInt(v, 10, 64)
			l.OriginOffset, hasO = o, err == nil
		case HeaderStage:
			l.Stage = v
		case HeaderExecuting:
			l.Step = v
		case HeaderError:
			l.Error = v
		case HeaderAttempt:
			if n, err := strconv.Atoi(v); err == nil && n > 1 {
				l.Attempt = n
			}
		}
	}
	return l, hasP && hasO && l.Topic != ""
}

// OriginalRecord rebuilds the record a dead letter was made from: its key,
// value, timestamp and headers (without the context headers), at its origin
// topic, partition and offset. It shares r's key and value.
func OriginalRecord(r *kgo.Record, l Letter) *kgo.Record {
	out := &kgo.Record{Topic: l.Topic, Partition: l.OriginPartition, Offset: l.OriginOffset, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
	for _, h := range r.Headers {
		if !strings.HasPrefix(h.Key, HeaderPrefix) {
			out.Headers = append(out.Headers, h)
		}
	}
	return out
}

// ReadLetters calls fn with every dead letter of dlqTopic, partition by
// partition in offset order, up to each partition's last stable offset.
// Records without context headers are passed with ok=false. A missing
// topic holds no letters.
func (c *Client) ReadLetters(ctx context.Context, dlqTopic string, fn func(r *kgo.Record, l Letter, ok bool) error) error {
	bounds, err := c.Bounds(ctx, dlqTopic)
	if errors.Is(err, ErrNoTopic) {
		return nil
	}
	if err != nil {
		return err
	}
	parts := make([]int32, 0, len(bounds))
	for p := range bounds {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	for _, p := range parts {
		b := bounds[p]
		if b.Err != nil {
			return fmt.Errorf("offsets of %s[%d]: %w", dlqTopic, p, b.Err)
		}
		err := c.ReadRange(ctx, dlqTopic, p, b.Start, min(b.End, max(b.Stable, b.Start)), ReadOptions{}, func(r *kgo.Record) (bool, error) {
			l, ok := ParseLetter(r)
			return true, fn(r, l, ok)
		})
		if err != nil {
			return fmt.Errorf("read dead letters from %s[%d]: %w", dlqTopic, p, err)
		}
	}
	return nil
}
