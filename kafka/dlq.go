package kafka

import (
	"context"
	"fmt"
	"strconv"

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
)

// DeadLetter is one record routed to a dead-letter or error-data topic.
type DeadLetter struct {
	Record    *kgo.Record // the original record
	Connector string
	Stage     string // where it failed: size, convert, write
	Err       error
}

// ProduceDeadLetters writes records to topic synchronously, key, value,
// timestamp and headers copied, with the context headers added. It returns
// once every record is acknowledged. Each dead letter is keyed by its origin
// in the headers, so a consumer can de-duplicate the rare re-send after an
// activity retry.
func (c *Client) ProduceDeadLetters(ctx context.Context, topic string, dls []DeadLetter) error {
	if len(dls) == 0 {
		return nil
	}
	recs := make([]*kgo.Record, 0, len(dls))
	for _, d := range dls {
		r := d.Record
		hs := append([]kgo.RecordHeader(nil), r.Headers...)
		hs = append(hs,
			kgo.RecordHeader{Key: HeaderTopic, Value: []byte(r.Topic)},
			kgo.RecordHeader{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(r.Partition)))},
			kgo.RecordHeader{Key: HeaderOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
			kgo.RecordHeader{Key: HeaderConnector, Value: []byte(d.Connector)},
			kgo.RecordHeader{Key: HeaderStage, Value: []byte(d.Stage)},
			kgo.RecordHeader{Key: HeaderError, Value: []byte(errString(d.Err))},
		)
		recs = append(recs, &kgo.Record{
			Topic:     topic,
			Partition: 0, // dead letters keep their order in partition 0
			Key:       r.Key,
			Value:     r.Value,
			Timestamp: r.Timestamp,
			Headers:   hs,
		})
	}
	if err := c.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("produce %d dead letters to %q: %w", len(dls), topic, err)
	}
	return nil
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
		err := c.ReadRange(ctx, dlqTopic, p, b.Start, b.End, ReadOptions{}, func(r *kgo.Record) (bool, error) {
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
