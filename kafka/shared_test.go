package kafka

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const sharedTopic = "shared"

// listOffsetsCluster starts kfake with brokers brokers and sharedTopic of
// partitions partitions, and counts the ListOffsets requests it serves.
// With delay set, each is answered after it (without holding up other
// connections).
func listOffsetsCluster(t *testing.T, brokers int, partitions int32, delay time.Duration) ([]string, *atomic.Int64) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(brokers), kfake.SeedTopics(partitions, sharedTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	n := new(atomic.Int64)
	c.ControlKey(int16(kmsg.ListOffsets), func(kmsg.Request) (kmsg.Response, error, bool) {
		n.Add(1)
		if delay > 0 {
			c.SleepControl(func() { time.Sleep(delay) })
		}
		return nil, nil, false // counted, then served as usual
	})
	return c.ListenAddrs(), n
}

// produceTo appends n records to sharedTopic[p].
func produceTo(t *testing.T, brokers []string, p int32, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: sharedTopic, Partition: p, Value: []byte("v")}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// One round of ListOffsets with one broker: start, end and last stable.
const listsPerRound = 3

// Concurrent callers of one topic share one round of ListOffsets, and each
// gets its own copy of the answer.
func TestSharedBoundsConcurrentCallersShareOneRound(t *testing.T) {
	brokers, lists := listOffsetsCluster(t, 1, 8, 100*time.Millisecond)
	produceTo(t, brokers, 3, 5)
	c := readClient(t, brokers)
	c.shared.maxAge = time.Minute // every caller of this test may reuse the round

	const callers = 32
	got := make([]map[int32]Bounds, callers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range callers {
		wg.Go(func() {
			<-start
			b, err := c.SharedBounds(context.Background(), sharedTopic)
			if err != nil {
				t.Error(err)
			}
			got[i] = b
		})
	}
	close(start)
	wg.Wait()
	if n := lists.Load(); n != listsPerRound {
		t.Fatalf("%d callers made %d ListOffsets requests, want one round (%d)", callers, n, listsPerRound)
	}
	for i, b := range got {
		if len(b) != 8 || b[3].End != 5 || b[3].Stable != 5 || b[0].End != 0 {
			t.Fatalf("caller %d: bounds %v", i, b)
		}
	}
	// The maps are the callers' own.
	got[0][3] = Bounds{End: -7}
	delete(got[0], 4)
	if b := got[1]; b[3].End != 5 || len(b) != 8 {
		t.Fatalf("a caller's edit showed in another's bounds: %v", b)
	}
	if b, _ := c.SharedBounds(context.Background(), sharedTopic); b[3].End != 5 || len(b) != 8 {
		t.Fatalf("a caller's edit showed in the shared answer: %v", b)
	}
}

// An answer is reused until it is older than the max age; then a new round
// sees records written meanwhile.
func TestSharedBoundsNewRoundAfterMaxAge(t *testing.T) {
	brokers, lists := listOffsetsCluster(t, 1, 4, 0)
	c := readClient(t, brokers)
	c.shared.maxAge = 500 * time.Millisecond

	began := time.Now()
	b, err := c.SharedBounds(context.Background(), sharedTopic)
	if err != nil || b[1].End != 0 {
		t.Fatalf("first round: %v, %v", b, err)
	}
	produceTo(t, brokers, 1, 3)
	if b, err := c.SharedBounds(context.Background(), sharedTopic); time.Since(began) < c.shared.maxAge {
		if err != nil || b[1].End != 0 || lists.Load() != listsPerRound {
			t.Fatalf("within the max age: bounds %v, %v, %d requests; want the first round's answer", b, err, lists.Load())
		}
	}
	time.Sleep(time.Until(began.Add(c.shared.maxAge + 50*time.Millisecond)))
	b, err = c.SharedBounds(context.Background(), sharedTopic)
	if err != nil || b[1].End != 3 || b[1].Stable != 3 {
		t.Fatalf("after the max age: %v, %v; want partition 1 to end at 3", b, err)
	}
	if n := lists.Load(); n != 2*listsPerRound {
		t.Fatalf("%d ListOffsets requests, want two rounds (%d)", n, 2*listsPerRound)
	}
}

// A caller that gives up does not end the round for the others.
func TestSharedBoundsCancelledCallerDoesNotFailOthers(t *testing.T) {
	brokers, lists := listOffsetsCluster(t, 1, 4, 300*time.Millisecond)
	produceTo(t, brokers, 2, 4)
	c := readClient(t, brokers)
	c.shared.maxAge = time.Minute

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	type answer struct {
		b   map[int32]Bounds
		err error
	}
	patient := make(chan answer, 1)
	go func() {
		b, err := c.SharedBounds(context.Background(), sharedTopic)
		patient <- answer{b, err}
	}()
	if _, err := c.SharedBounds(ctx, sharedTopic); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled caller: %v, want its context's error", err)
	}
	a := <-patient
	if a.err != nil || a.b[2].End != 4 {
		t.Fatalf("patient caller: %v, %v", a.b, a.err)
	}
	if n := lists.Load(); n != listsPerRound {
		t.Fatalf("%d ListOffsets requests, want one round (%d)", n, listsPerRound)
	}
}

// Bounds asks the cluster itself, and leaves the shared answer as it was.
func TestBoundsBypassesSharedAnswer(t *testing.T) {
	brokers, lists := listOffsetsCluster(t, 1, 4, 0)
	c := readClient(t, brokers)
	c.shared.maxAge = time.Minute

	if b, err := c.SharedBounds(context.Background(), sharedTopic); err != nil || b[0].End != 0 {
		t.Fatalf("shared: %v, %v", b, err)
	}
	produceTo(t, brokers, 0, 2)
	b, err := c.Bounds(context.Background(), sharedTopic)
	if err != nil || b[0].End != 2 {
		t.Fatalf("fresh: %v, %v; want partition 0 to end at 2", b, err)
	}
	if n := lists.Load(); n != 2*listsPerRound {
		t.Fatalf("%d ListOffsets requests, want the shared round and the fresh one (%d)", n, 2*listsPerRound)
	}
	if b, err := c.SharedBounds(context.Background(), sharedTopic); err != nil || b[0].End != 0 || lists.Load() != 2*listsPerRound {
		t.Fatalf("shared after fresh: %v, %v, %d requests; want the shared round's answer, reused", b, err, lists.Load())
	}
}

// A failed round is not reused: the next call asks again.
func TestSharedBoundsErrorNotReused(t *testing.T) {
	brokers, _ := listOffsetsCluster(t, 1, 4, 0)
	c := readClient(t, brokers)
	c.shared.maxAge = time.Minute

	if _, err := c.SharedBounds(context.Background(), "later"); !errors.Is(err, ErrNoTopic) {
		t.Fatalf("missing topic: %v, want ErrNoTopic", err)
	}
	if err := c.EnsureTopic(context.Background(), "later", 2); err != nil {
		t.Fatal(err)
	}
	if b, err := c.SharedBounds(context.Background(), "later"); err != nil || len(b) != 2 {
		t.Fatalf("after the topic was created: %v, %v", b, err)
	}
}

// A shared answer about a topic deleted and recreated is not reused once
// the caller has checked the topic's id (as FetchRanges does).
func TestSharedBoundsNotReusedAcrossRecreation(t *testing.T) {
	brokers, lists := listOffsetsCluster(t, 1, 4, 0)
	produceTo(t, brokers, 0, 6)
	c := readClient(t, brokers)
	c.shared.maxAge = time.Minute
	ctx := context.Background()

	old, err := c.TopicID(ctx, sharedTopic)
	if err != nil || old == "" {
		t.Fatalf("topic id %q, %v", old, err)
	}
	if b, err := c.SharedBounds(ctx, sharedTopic); err != nil || b[0].End != 6 {
		t.Fatalf("before recreation: %v, %v", b, err)
	}
	if _, err := c.Admin().DeleteTopic(ctx, sharedTopic); err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureTopic(ctx, sharedTopic, 4); err != nil {
		t.Fatal(err)
	}
	if b, err := c.SharedBounds(ctx, sharedTopic); err != nil || b[0].End != 6 || lists.Load() != listsPerRound {
		t.Fatalf("before the new id was seen: %v, %v, %d requests; want the old answer, reused", b, err, lists.Load())
	}
	id, err := c.TopicID(ctx, sharedTopic)
	if err != nil || id == old {
		t.Fatalf("recreated topic id %q, %v; want another than %q", id, err, old)
	}
	if b, err := c.SharedBounds(ctx, sharedTopic); err != nil || b[0].End != 0 {
		t.Fatalf("after the new id was seen: %v, %v; want the new topic's bounds", b, err)
	}
}

// TestSharedBoundsRequestRate measures the ListOffsets requests per second
// of 12 partition loops polling a 256-partition topic on 3 brokers every
// 250 ms (FetchRanges' poll), each asking Bounds (as before) or
// SharedBounds.
func TestSharedBoundsRequestRate(t *testing.T) {
	if testing.Short() {
		t.Skip("polls for seconds")
	}
	const (
		loops    = 12
		poll     = 250 * time.Millisecond
		duration = 2 * time.Second
	)
	brokers, lists := listOffsetsCluster(t, 3, 256, 0)
	c := readClient(t, brokers)
	rate := func(bounds func(context.Context, string) (map[int32]Bounds, error)) float64 {
		ctx, cancel := context.WithTimeout(context.Background(), duration)
		defer cancel()
		before := lists.Load()
		var wg sync.WaitGroup
		for i := range loops {
			wg.Go(func() {
				time.Sleep(time.Duration(i) * poll / loops) // loops poll out of step
				tick := time.NewTicker(poll)
				defer tick.Stop()
				for {
					if _, err := bounds(ctx, sharedTopic); err != nil && ctx.Err() == nil {
						t.Error(err)
					}
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
				}
			})
		}
		wg.Wait()
		return float64(lists.Load()-before) / duration.Seconds()
	}
	fresh := rate(c.Bounds)
	shared := rate(c.SharedBounds)
	t.Logf("ListOffsets requests/s, %d loops polling a 256-partition topic on 3 brokers every %v: %.0f with Bounds per loop, %.0f with SharedBounds", loops, poll, fresh, shared)
	// At most one round (3 requests per broker) per max age; the fresh
	// figure depends on the machine's load (rounds slower than a poll skip
	// ticks), so it is only logged.
	if most := 3 * 3 * (duration.Seconds()/SharedBoundsMaxAge.Seconds() + 1) / duration.Seconds(); shared > most {
		t.Errorf("shared look-ups made %.0f requests/s, want at most %.0f (a round per %v)", shared, most, SharedBoundsMaxAge)
	}
}
