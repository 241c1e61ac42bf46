package kafka

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Partitions returns the topic's partition ids in ascending order, from a
// fresh metadata request (not franz-go's metadata cache, so a topic deleted
// a moment ago is seen as gone). A missing or deleted topic is an
// error naming it and wrapping ErrNoTopic; an unreachable cluster is an
// error naming the brokers.
func (c *Client) Partitions(ctx context.Context, topic string) ([]int32, error) {
	t, err := c.topicMetadata(ctx, topic)
	if err != nil {
		return nil, err
	}
	ps := make([]int32, 0, len(t.Partitions))
	for _, p := range t.Partitions {
		ps = append(ps, p.Partition)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps, nil
}

// TopicID returns the topic's id as hex, from fresh metadata, or "" when
// the cluster does not assign topic ids. A topic deleted and recreated
// under the same name has a new id: its offsets name other records.
func (c *Client) TopicID(ctx context.Context, topic string) (string, error) {
	t, err := c.topicMetadata(ctx, topic)
	if err != nil {
		return "", err
	}
	if t.TopicID == ([16]byte{}) {
		return "", nil
	}
	return hex.EncodeToString(t.TopicID[:]), nil
}

// topicMetadata asks the cluster (not franz-go's metadata cache) about
// topic. A missing topic wraps ErrNoTopic.
func (c *Client) topicMetadata(ctx context.Context, topic string) (*kmsg.MetadataResponseTopic, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	// A limit this short always asks the cluster, with franz-go's
	// bounded retries for metadata.
	resp, err := c.cl.RequestCachedMetadata(ctx, req, time.Nanosecond)
	if err != nil {
		return nil, fmt.Errorf("metadata of topic %q from brokers %v: %w", topic, c.cl.OptValue(kgo.SeedBrokers), err)
	}
	for i := range resp.Topics {
		t := &resp.Topics[i]
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		err := kerr.ErrorForCode(t.ErrorCode)
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("metadata of topic %q: %w", topic, err)
		}
		return t, nil
	}
	return nil, fmt.Errorf("topic %q does not exist: %w", topic, ErrNoTopic)
}

// ErrNoTopic is returned (wrapped) when a topic does not exist.
var ErrNoTopic = errors.New("unknown topic")

// Bounds are a partition's offsets: its log start, high watermark and last
// stable offset, or the error that kept them from being known.
type Bounds struct {
	// Start is the log start offset: the first offset that can be read.
	Start int64 `json:"start"`
	// End is the high watermark: one past the last offset written.
	End int64 `json:"end"`
	// Stable is the last stable offset: the first offset of a transaction
	// still open, or End when none is. A read_committed read (ReadRange)
	// gets nothing at or past it until the transaction ends, so ranges are
	// planned to Stable, not End.
	Stable int64 `json:"stable"`
	// Err is this partition's own error (offline, no leader, not leader,
	// ...). The offsets that could not be listed are then -1.
	Err error `json:"-"`
}

// Bounds returns the log start, high watermark and last stable offset of
// every partition of topic, each with its own error: one partition that
// cannot answer does not hide the others. The result has an entry for every
// partition the cluster named.
//
// Bounds returns an error only when no partition answered in full: the
// topic does not exist (the error wraps ErrNoTopic), the cluster cannot be
// reached (the error names the brokers), or every partition failed. The map
// is returned with what is known even then.
func (c *Client) Bounds(ctx context.Context, topic string) (map[int32]Bounds, error) {
	type listed struct {
		what string
		l    kadm.ListedOffsets
		err  error
		set  func(*Bounds, int64)
	}
	lists := []*listed{
		{what: "start", set: func(b *Bounds, o int64) { b.Start = o }},
		{what: "end", set: func(b *Bounds, o int64) { b.End = o }},
		{what: "last stable", set: func(b *Bounds, o int64) { b.Stable = o }},
	}
	var wg sync.WaitGroup
	for i, fn := range []func(context.Context, ...string) (kadm.ListedOffsets, error){
		c.admin.ListStartOffsets, c.admin.ListEndOffsets, c.admin.ListCommittedOffsets,
	} {
		wg.Go(func() { lists[i].l, lists[i].err = fn(ctx, topic) })
	}
	wg.Wait()

	out := map[int32]Bounds{}
	get := func(p int32) Bounds {
		b, ok := out[p]
		if !ok {
			b = Bounds{Start: -1, End: -1, Stable: -1}
		}
		return b
	}
	fail := func(p int32, err error) {
		b := get(p)
		if b.Err == nil {
			b.Err = err
		}
		out[p] = b
	}
	var topicErr, requestErr error
	for _, l := range lists {
		l.l.Each(func(o kadm.ListedOffset) {
			if o.Topic != topic {
				return
			}
			switch {
			case o.Partition < 0:
				if topicErr == nil {
					topicErr = o.Err
				}
			case o.Err != nil:
				fail(o.Partition, fmt.Errorf("list %s offset of %s[%d]: %w", l.what, topic, o.Partition, o.Err))
			default:
				b := get(o.Partition)
				l.set(&b, o.Offset)
				out[o.Partition] = b
			}
		})
		var se *kadm.ShardErrors
		switch {
		case l.err == nil:
		case errors.As(l.err, &se):
			// Partitions whose request piece failed.
			for _, e := range se.Errs {
				req, ok := e.Req.(*kmsg.ListOffsetsRequest)
				if !ok {
					continue
				}
				for _, t := range req.Topics {
					if t.Topic != topic {
						continue
					}
					for _, p := range t.Partitions {
						fail(p.Partition, fmt.Errorf("list %s offset of %s[%d] from broker %d: %w", l.what, topic, p.Partition, e.Broker.NodeID, e.Err))
					}
				}
			}
		default:
			if requestErr == nil {
				requestErr = fmt.Errorf("list %s offsets of %q from brokers %v: %w", l.what, topic, c.cl.OptValue(kgo.SeedBrokers), l.err)
			}
		}
	}
	// A request that failed as a whole fails every partition it did not
	// answer; a partition is complete only when all three answered.
	for p, b := range out {
		if b.Err == nil && (b.Start < 0 || b.End < 0 || b.Stable < 0) {
			err := requestErr
			if err == nil {
				err = fmt.Errorf("offsets of %s[%d] incomplete (start %d, end %d, last stable %d)", topic, p, b.Start, b.End, b.Stable)
			}
			b.Err = err
			out[p] = b
		}
	}
	var firstErr error
	unknown := len(out) > 0 // every partition unknown: the topic is gone
	ps := make([]int32, 0, len(out))
	for p := range out {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	for _, p := range ps {
		if out[p].Err == nil {
			return out, nil
		}
		if firstErr == nil {
			firstErr = out[p].Err
		}
		unknown = unknown && errors.Is(out[p].Err, kerr.UnknownTopicOrPartition)
	}
	switch {
	case errors.Is(topicErr, kerr.UnknownTopicOrPartition) || unknown:
		return out, fmt.Errorf("topic %q does not exist: %w", topic, ErrNoTopic)
	case topicErr != nil:
		return out, fmt.Errorf("offsets of topic %q: %w", topic, topicErr)
	case requestErr != nil:
		return out, requestErr
	case firstErr != nil:
		return out, fmt.Errorf("no partition of %q answered: %w", topic, firstErr)
	default:
		return out, fmt.Errorf("no partition of %q answered", topic)
	}
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
