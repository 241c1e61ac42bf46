package oss

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/aliyun/aliyun-oss-go-sdk/oss"

	"github.com/dumpflow/dumpflow/sink"
)

// Meta is the content of a partition's meta object,
// .oss_meta_file_partition_<p>: the last committed range. It is enough to
// resume the partition after the workflow is lost.
type Meta struct {
	Connector string    `json:"connector"`
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Start     int64     `json:"start"` // first offset ever written
	First     int64     `json:"first"` // last committed range [First, End)
	End       int64     `json:"end"`
	Object    string    `json:"object"`
	Records   int64     `json:"records"`
	Updated   time.Time `json:"updated"`
}

// MetaKey is the key of partition's meta object.
func (s *Sink) MetaKey(topic string, partition int32) string {
	return s.root(topic, partition) + fmt.Sprintf(".oss_meta_file_partition_%d", partition)
}

func (s *Sink) writeMeta(ctx context.Context, id sink.BatchID, object string, records int64) error {
	m := Meta{Connector: id.Connector, Topic: id.Topic, Partition: id.Partition, Start: id.Start,
		First: id.First, End: id.End, Object: object, Records: records, Updated: time.Now().UTC()}
	data, _ := json.MarshalIndent(m, "", "  ")
	key := s.MetaKey(id.Topic, id.Partition)
	if err := s.bucket.PutObject(key, bytes.NewReader(data), oss.ContentType("application/json"), oss.WithContext(ctx)); err != nil {
		return classify(fmt.Errorf("write meta %s: %w", key, err))
	}
	return nil
}

// ReadMeta returns partition's meta object, or ok=false if there is none.
func (s *Sink) ReadMeta(ctx context.Context, topic string, partition int32) (m Meta, ok bool, err error) {
	key := s.MetaKey(topic, partition)
	rc, err := s.bucket.GetObject(key, oss.WithContext(ctx))
	if isCode(err, "NoSuchKey") {
		return Meta{}, false, nil
	}
	if err != nil {
		return Meta{}, false, classify(fmt.Errorf("read meta %s: %w", key, err))
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return Meta{}, false, fmt.Errorf("read meta %s: %w", key, err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return Meta{}, false, fmt.Errorf("meta %s is not dumpflow meta JSON: %w", key, err)
	}
	return m, true, nil
}

var (
	_ sink.Resumer = (*Sink)(nil)
	_ sink.Checker = (*Sink)(nil)
)

// Resume implements sink.Resumer from the partition's meta object.
func (s *Sink) Resume(ctx context.Context, connectorName, topic string, partition int32) (start, next int64, ok bool, err error) {
	m, ok, err := s.ReadMeta(ctx, topic, partition)
	if err != nil || !ok {
		return 0, 0, false, err
	}
	if m.Connector != connectorName {
		return 0, 0, false, sink.Permanent("ObjectConflict", fmt.Errorf("meta object %s belongs to connector %q, not %q: give each connector its own path", s.MetaKey(topic, partition), m.Connector, connectorName))
	}
	return m.Start, m.End, true, nil
}
