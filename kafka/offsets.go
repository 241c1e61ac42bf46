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
		c.shared.saw(topic, t.TopicID)
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
// cannot answer does not hide the others, nor hold them up. The result has
// an entry for every partition the cluster named.
//
// The offsets are asked of each partition's leader directly, from fresh
// metadata. A partition whose answer is a retriable error (a leader that
// moved) is asked once more, after a short pause and a metadata refresh;
// if it fails again, its Err says why. Bounds does not wait out a
// partition that stays unavailable: franz-go's sharded ListOffsets retries
// a request for as long as any of its partitions answers a retriable
// error (NOT_LEADER_FOR_PARTITION from an offline partition), which held up
// the healthy partitions of the same broker for its whole retry timeout.
//
// Bounds returns an error only when no partition answered in full: the
// topic does not exist (the error wraps ErrNoTopic), the cluster cannot be
// reached (the error names the brokers), or every partition failed. The map
// is returned with what is known even then.
//
// Bounds always asks the cluster: about three ListOffsets requests per
// broker. Pollers that ask again soon anyway share one look-up per topic
// through SharedBounds.
func (c *Client) Bounds(ctx context.Context, topic string) (map[int32]Bounds, error) {
	out := map[int32]Bounds{}
	t, err := c.topicMetadata(ctx, topic)
	if err != nil {
		return out, err
	}
	all := make([]int32, 0, len(t.Partitions))
	for _, p := range t.Partitions {
		all = append(all, p.Partition)
	}
	retry := c.listBounds(ctx, topic, t, all, out)
	if len(retry) > 0 {
		timer := time.NewTimer(boundsRetryPause)
		select {
		case <-ctx.Done():
			timer.Stop()
		case <-timer.C:
			if t, err := c.topicMetadata(ctx, topic); err == nil {
				c.listBounds(ctx, topic, t, retry, out)
			}
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
	case unknown:
		return out, fmt.Errorf("topic %q does not exist: %w", topic, ErrNoTopic)
	case firstErr != nil:
		return out, fmt.Errorf("no partition of %q answered: %w", topic, firstErr)
	default:
		return out, fmt.Errorf("no partition of %q answered", topic)
	}
}

// boundsRetryPause is how long Bounds waits before it asks again for the
// partitions that answered a retriable error.
const boundsRetryPause = 100 * time.Millisecond

// listBounds sets out[p] for each partition p of which, asking each
// partition's leader per meta for its log start, high watermark and last
// stable offset (three requests per leader, sent at once). It returns the
// partitions that failed with a retriable error.
func (c *Client) listBounds(ctx context.Context, topic string, meta *kmsg.MetadataResponseTopic, which []int32, out map[int32]Bounds) (retry []int32) {
	type list struct {
		what      string
		timestamp int64
		isolation int8
		set       func(*Bounds, int64)
	}
	lists := []list{
		{"start", -2, 0, func(b *Bounds, o int64) { b.Start = o }},
		{"end", -1, 0, func(b *Bounds, o int64) { b.End = o }},
		{"last stable", -1, 1, func(b *Bounds, o int64) { b.Stable = o }},
	}
	var (
		mu        sync.Mutex
		retriable = map[int32]bool{}
	)
	fail := func(p int32, again bool, err error) {
		b := out[p]
		if b.Err == nil {
			b.Err = err
		}
		out[p] = b
		retriable[p] = retriable[p] || again
	}
	leaders := map[int32][]int32{}
	for _, p := range which {
		out[p] = Bounds{Start: -1, End: -1, Stable: -1}
		i := slices.IndexFunc(meta.Partitions, func(mp kmsg.MetadataResponseTopicPartition) bool { return mp.Partition == p })
		switch {
		case i < 0:
			fail(p, true, fmt.Errorf("offsets of %s[%d]: the partition is not in the topic's metadata", topic, p))
		case meta.Partitions[i].Leader < 0:
			err := kerr.ErrorForCode(meta.Partitions[i].ErrorCode)
			if err == nil {
				err = kerr.LeaderNotAvailable
			}
			fail(p, true, fmt.Errorf("offsets of %s[%d]: no leader: %w", topic, p, err))
		default:
			leaders[meta.Partitions[i].Leader] = append(leaders[meta.Partitions[i].Leader], p)
		}
	}
	var wg sync.WaitGroup
	for leader, parts := range leaders {
		for _, l := range lists {
			wg.Go(func() {
				req := kmsg.NewPtrListOffsetsRequest()
				req.ReplicaID = -1
				req.IsolationLevel = l.isolation
				rt := kmsg.NewListOffsetsRequestTopic()
				rt.Topic = topic
				for _, p := range parts {
					rp := kmsg.NewListOffsetsRequestTopicPartition()
					rp.Partition = p
					rp.CurrentLeaderEpoch = -1
					rp.Timestamp = l.timestamp
					rp.MaxNumOffsets = 1
					rt.Partitions = append(rt.Partitions, rp)
				}
				req.Topics = append(req.Topics, rt)
				kresp, err := c.cl.Broker(int(leader)).Request(ctx, req)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					for _, p := range parts {
						fail(p, ctx.Err() == nil, fmt.Errorf("list %s offset of %s[%d] from broker %d: %w", l.what, topic, p, leader, err))
					}
					return
				}
				answered := map[int32]bool{}
				for _, t := range kresp.(*kmsg.ListOffsetsResponse).Topics {
					if t.Topic != topic {
						continue
					}
					for _, rp := range t.Partitions {
						if !slices.Contains(parts, rp.Partition) || answered[rp.Partition] {
							continue
						}
						answered[rp.Partition] = true
						if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
							var ke *kerr.Error
							fail(rp.Partition, errors.As(err, &ke) && ke.Retriable, fmt.Errorf("list %s offset of %s[%d]: %w", l.what, topic, rp.Partition, err))
							continue
						}
						o := rp.Offset
						if kresp.GetVersion() == 0 {
							o = -1
							if len(rp.OldStyleOffsets) > 0 {
								o = rp.OldStyleOffsets[0]
							}
						}
						b := out[rp.Partition]
						l.set(&b, o)
						out[rp.Partition] = b
					}
				}
				for _, p := range parts {
					if !answered[p] {
						fail(p, true, fmt.Errorf("list %s offset of %s[%d] from broker %d: no answer for the partition", l.what, topic, p, leader))
					}
				}
			})
		}
	}
	wg.Wait()
	// A partition is complete only when all three answered.
	for _, p := range which {
		b := out[p]
		if b.Err == nil && (b.Start < 0 || b.End < 0 || b.Stable < 0) {
			b.Err = fmt.Errorf("offsets of %s[%d] incomplete (start %d, end %d, last stable %d)", topic, p, b.Start, b.End, b.Stable)
			out[p] = b
		}
		if b.Err != nil && retriable[p] {
			retry = append(retry, p)
		}
	}
	return retry
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

// OffsetsAfter returns, per partition of topic, the first offset whose
// record timestamp is at or after t (ListOffsets by timestamp); a partition
// with no such record gets its high watermark. A partition that cannot
// answer fails the call, naming it.
func (c *Client) OffsetsAfter(ctx context.Context, topic string, t time.Time) (map[int32]int64, error) {
	resp, err := c.admin.ListOffsetsAfterMilli(ctx, t.UnixMilli(), topic)
	if err != nil {
		return nil, fmt.Errorf("offsets of %q at %s: %w", topic, t.Format(time.RFC3339), err)
	}
	out := map[int32]int64{}
	var firstErr error
	resp.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("offset of %s[%d] at %s: %w", o.Topic, o.Partition, t.Format(time.RFC3339), o.Err)
			}
			return
		}
		out[o.Partition] = o.Offset
	})
	return out, firstErr
}
