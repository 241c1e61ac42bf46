package kafka

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Partitions returns the topic's partition ids in ascending order. A missing
// topic is an error naming it.
func (c *Client) Partitions(ctx context.Context, topic string) ([]int32, error) {
	md, err := c.admin.Metadata(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("metadata of topic %q from brokers %v: %w", topic, c.cl.OptValue(kgo.SeedBrokers), err)
	}
	td, ok := md.Topics[topic]
	if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
		return nil, fmt.Errorf("topic %q does not exist: %w", topic, ErrNoTopic)
	}
	if td.Err != nil {
		return nil, fmt.Errorf("metadata of topic %q: %w", topic, td.Err)
	}
	ps := make([]int32, 0, len(td.Partitions))
	for p := range td.Partitions {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps, nil
}

// ErrNoTopic is returned (wrapped) when a topic does not exist.
var ErrNoTopic = errors.New("unknown topic")

// Bounds are a partition's log start offset and high watermark.
type Bounds struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

// Bounds returns the log start and high watermark of every partition of topic.
func (c *Client) Bounds(ctx context.Context, topic string) (map[int32]Bounds, error) {
	starts, err := c.admin.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list start offsets of %q: %w", topic, err)
	}
	ends, err := c.admin.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %q: %w", topic, err)
	}
	out := map[int32]Bounds{}
	var firstErr error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil && firstErr == nil {
			firstErr = fmt.Errorf("end offset of %s[%d]: %w", o.Topic, o.Partition, o.Err)
		}
		out[o.Partition] = Bounds{End: o.Offset}
	})
	starts.Each(func(o kadm.ListedOffset) {
		if o.Err != nil && firstErr == nil {
			firstErr = fmt.Errorf("start offset of %s[%d]: %w", o.Topic, o.Partition, o.Err)
		}
		b := out[o.Partition]
		b.Start = o.Offset
		out[o.Partition] = b
	})
	return out, firstErr
}

// Committed is a group's committed offset for one partition, with the start
// offset dumpflow records in the commit metadata.
type Committed struct {
	Offset int64
	// Start is the first offset the connector wrote for this partition, or -1
	// if the commit carries no dumpflow metadata.
	Start int64
}

// CommittedOffsets returns group's committed offsets for topic.
func (c *Client) CommittedOffsets(ctx context.Context, group, topic string) (map[int32]Committed, error) {
	resp, err := c.admin.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return map[int32]Committed{}, nil // a group that never committed
	}
	if err != nil {
		return nil, fmt.Errorf("fetch offsets of group %q: %w", group, err)
	}
	out := map[int32]Committed{}
	var firstErr error
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic != topic {
			return
		}
		if o.Err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("committed offset of %s[%d] in %q: %w", o.Topic, o.Partition, group, o.Err)
			}
			return
		}
		if o.At < 0 {
			return
		}
		out[o.Partition] = Committed{Offset: o.At, Start: parseStart(o.Metadata)}
	})
	return out, firstErr
}

// Commit records offsets (partition → next offset to read) for group, with
// each partition's start offset in the commit metadata, so that lag tools
// show the connector's progress and verify knows where tiling begins.
func (c *Client) Commit(ctx context.Context, group, topic string, offsets map[int32]Committed) error {
	var os kadm.Offsets
	for p, o := range offsets {
		os.Add(kadm.Offset{Topic: topic, Partition: p, At: o.Offset, LeaderEpoch: -1, Metadata: formatStart(o.Start)})
	}
	resp, err := c.admin.CommitOffsets(ctx, group, os)
	if err != nil {
		return fmt.Errorf("commit offsets of group %q: %w", group, err)
	}
	if err := resp.Error(); err != nil {
		return fmt.Errorf("commit offsets of group %q: %w", group, err)
	}
	return nil
}

const startMeta = "dumpflow start="

func formatStart(start int64) string { return startMeta + strconv.FormatInt(start, 10) }

func parseStart(meta string) int64 {
	if !strings.HasPrefix(meta, startMeta) {
		return -1
	}
	n, err := strconv.ParseInt(strings.TrimPrefix(meta, startMeta), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// EnsureTopic creates topic with the given partitions if it does not exist.
func (c *Client) EnsureTopic(ctx context.Context, topic string, partitions int32) error {
	resp, err := c.admin.CreateTopic(ctx, partitions, -1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %q: %w", topic, err)
	}
	return nil
}
