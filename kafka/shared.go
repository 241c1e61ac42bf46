package kafka

import (
	"context"
	"maps"
	"sync"
	"time"
)

// SharedBoundsMaxAge is how long a SharedBounds round's result is reused:
// below the 250 ms at which FetchRanges polls, so a poll never sees offsets
// older than the previous poll's.
const SharedBoundsMaxAge = 200 * time.Millisecond

// sharedRoundTimeout bounds one shared round, which runs detached from its
// callers' contexts.
const sharedRoundTimeout = 30 * time.Second

// SharedBounds is Bounds shared by every caller on this Client (one per
// worker process per cluster): callers asking for the same topic while a
// look-up is under way wait for it and share its answer, and a successful
// answer is reused for SharedBoundsMaxAge after its look-up began. So many
// partition loops polling one topic cost one round of ListOffsets per
// topic per max age, not one per loop per poll.
//
// Offsets from SharedBounds may predate the call: by up to
// SharedBoundsMaxAge, or by the duration of the round in progress that
// the caller joined. They are never older than an answer this Client's
// SharedBounds already gave for the topic (one round at a time per topic).
// Use it only where such offsets are good enough: a poll that asks again
// soon. Callers that must see the offsets as of now (checks right after a
// write, validation of an operator's target, the log start a gap is
// declared up to) use Bounds, which always asks the cluster and neither
// reads nor fills the shared answer.
//
// An answer is not reused once fresh metadata on this Client (TopicID,
// Partitions, Bounds) shows the topic with another id: it may be about
// the topic deleted and recreated under the name. An error is not reused:
// a round that fails fails its waiters, and the next call begins a new
// round. A caller whose ctx ends stops waiting with
// ctx's error; the round goes on for the others, bounded by its own
// timeout. The map returned is the caller's own copy.
func (c *Client) SharedBounds(ctx context.Context, topic string) (map[int32]Bounds, error) {
	r := c.shared.round(topic, func(ctx context.Context) (map[int32]Bounds, error) {
		return c.Bounds(ctx, topic)
	})
	select {
	case <-ctx.Done():
		return map[int32]Bounds{}, ctx.Err()
	case <-r.done:
		return maps.Clone(r.bounds), r.err
	}
}

// sharedBounds holds the latest SharedBounds round of each topic, and the
// id fresh metadata last gave each topic (an entry per topic: a worker
// polls few).
type sharedBounds struct {
	maxAge time.Duration // 0: SharedBoundsMaxAge (tests set it)
	mu     sync.Mutex
	rounds map[string]*boundsRound
	ids    map[string][16]byte
}

// saw records the id fresh metadata gave topic. A topic seen with another
// id than before was deleted and recreated: its round, which may be about
// the topic it replaced, is not reused (its waiters still get its answer).
// Every fresh metadata of the topic on the Client goes through here, so a
// caller that checked the topic's id (as FetchRanges does before it polls)
// never gets a shared answer about the topic it replaced.
func (s *sharedBounds) saw(topic string, id [16]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.ids[topic]; ok && old != id {
		delete(s.rounds, topic)
	}
	if s.ids == nil {
		s.ids = map[string][16]byte{}
	}
	s.ids[topic] = id
}

// boundsRound is one Bounds look-up shared by its callers. bounds and err
// are set before done is closed and never written after.
type boundsRound struct {
	began  time.Time
	done   chan struct{}
	bounds map[int32]Bounds
	err    error
}

// round returns the topic's round in progress, or its last round if that
// succeeded less than SharedBoundsMaxAge after it began, or starts a new
// round running list.
func (s *sharedBounds) round(topic string, list func(context.Context) (map[int32]Bounds, error)) *boundsRound {
	maxAge := s.maxAge
	if maxAge == 0 {
		maxAge = SharedBoundsMaxAge
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.rounds[topic]; r != nil {
		select {
		case <-r.done:
			if r.err == nil && time.Since(r.began) < maxAge {
				return r
			}
		default:
			return r // in progress
		}
	}
	if s.rounds == nil {
		s.rounds = map[string]*boundsRound{}
	}
	r := &boundsRound{began: time.Now(), done: make(chan struct{})}
	s.rounds[topic] = r
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), sharedRoundTimeout)
		defer cancel()
		r.bounds, r.err = list(ctx)
		close(r.done)
	}()
	return r
}
