package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

const readTopic = "reads"

// fetchBytes counts the bytes of fetch responses a client reads.
type fetchBytes struct{ n atomic.Int64 }

func (h *fetchBytes) OnBrokerRead(_ kgo.BrokerMetadata, key int16, n int, _, _ time.Duration, _ error) {
	if key == 1 { // Fetch
		h.n.Add(int64(n))
	}
}

// readCluster starts kfake with readTopic of partitions partitions.
func readCluster(t *testing.T, partitions int32) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, readTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func readClient(t *testing.T, brokers []string, extra ...kgo.Opt) *Client {
	t.Helper()
	c, err := NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// value is record i's value in partition p: a prefix naming it, then filler
// up to size bytes.
func value(p int32, i, size int) []byte {
	v := fmt.Sprintf("p%d-%06d|", p, i)
	if len(v) < size {
		v += strings.Repeat("x", size-len(v))
	}
	return []byte(v)
}

// produce appends n records of size bytes to readTopic[p], numbered from
// first, in uncompressed batches of at most 16 KiB.
func produce(t *testing.T, brokers []string, p int32, first, n, size int, extra ...kgo.Opt) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(16 << 10),
		kgo.ProducerBatchCompression(kgo.NoCompression()), // fetch bytes are value bytes
	}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: readTopic, Partition: p, Value: value(p, first+i, size)}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// readAll reads [from, to) of partition p and checks that it got exactly
// those offsets, each with the value produced for it (record i at offset i).
func readAll(ctx context.Context, c *Client, p int32, from, to int64, size int) error {
	next := from
	err := c.ReadRange(ctx, readTopic, p, from, to, ReadOptions{}, func(r *kgo.Record) (bool, error) {
		if r.Partition != p || r.Offset != next {
			return false, fmt.Errorf("got %s[%d]@%d, want [%d]@%d", r.Topic, r.Partition, r.Offset, p, next)
		}
		if want := value(p, int(r.Offset), size); string(r.Value) != string(want) {
			return false, fmt.Errorf("offset %d: value %.12q, want %.12q", r.Offset, r.Value, want)
		}
		next++
		return true, nil
	})
	if err != nil {
		return err
	}
	if next != to {
		return fmt.Errorf("read [%d,%d) of partition %d ended at %d", from, to, p, next)
	}
	return nil
}

func TestReadRangeExact(t *testing.T) {
	brokers := readCluster(t, 2)
	produce(t, brokers, 0, 0, 500, 100)
	produce(t, brokers, 1, 0, 300, 100)
	c := readClient(t, brokers)
	ctx := context.Background()
	for _, r := range []struct {
		p        int32
		from, to int64
	}{{0, 0, 1}, {0, 5, 17}, {0, 0, 500}, {0, 497, 500}, {1, 0, 300}, {1, 123, 124}, {0, 17, 300}, {1, 250, 300}} {
		if err := readAll(ctx, c, r.p, r.from, r.to, 100); err != nil {
			t.Fatal(err)
		}
	}
	called := false
	if err := c.ReadRange(ctx, readTopic, 0, 10, 10, ReadOptions{}, func(*kgo.Record) (bool, error) { called = true; return true, nil }); err != nil || called {
		t.Fatalf("empty range: err %v, called %v", err, called)
	}
}

func TestReadRangeEarlyStopContinues(t *testing.T) {
	brokers := readCluster(t, 1)
	produce(t, brokers, 0, 0, 200, 100)
	c := readClient(t, brokers)
	ctx := context.Background()

	var got []int64
	err := c.ReadRange(ctx, readTopic, 0, 10, 100, ReadOptions{}, func(r *kgo.Record) (bool, error) {
		got = append(got, r.Offset)
		return len(got) < 7, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 7 || got[0] != 10 || got[6] != 16 {
		t.Fatalf("early stop read %v, want 10..16", got)
	}
	// The next range starts where fn stopped: the same reader continues,
	// starting with the records it had already polled.
	if err := readAll(ctx, c, 0, 17, 100, 100); err != nil {
		t.Fatal(err)
	}
	if o, r := c.reads.opened.Load(), c.reads.reused.Load(); o != 1 || r != 1 {
		t.Fatalf("opened %d readers, reused %d; want 1, 1", o, r)
	}
	// A range elsewhere needs a reader of its own; the one at 100 stays.
	if err := readAll(ctx, c, 0, 50, 60, 100); err != nil {
		t.Fatal(err)
	}
	if err := readAll(ctx, c, 0, 100, 200, 100); err != nil {
		t.Fatal(err)
	}
	if o, r, n := c.reads.opened.Load(), c.reads.reused.Load(), c.reads.idleReaders(); o != 2 || r != 2 || n != 2 {
		t.Fatalf("opened %d readers, reused %d, %d idle; want 2, 2, 2", o, r, n)
	}
}

func TestReadRangeConsecutiveReuse(t *testing.T) {
	brokers := readCluster(t, 2)
	const n, size = 3000, 512
	produce(t, brokers, 0, 0, n, size)
	produce(t, brokers, 1, 0, n, size)
	c := readClient(t, brokers)
	ctx := context.Background()
	// Like activities.readCut: read to the planned end, cut at a byte budget.
	for p := int32(0); p < 2; p++ {
		batches := 0
		for from := int64(0); from < n; batches++ {
			next, bytes := from, 0
			err := c.ReadRange(ctx, readTopic, p, from, n, ReadOptions{FetchMaxPartitionBytes: 64 << 10}, func(r *kgo.Record) (bool, error) {
				if r.Offset != next || string(r.Value) != string(value(p, int(next), size)) {
					return false, fmt.Errorf("partition %d: got offset %d, want %d", p, r.Offset, next)
				}
				next++
				bytes += len(r.Value)
				return bytes < 100<<10, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			from = next
		}
		if batches < 10 {
			t.Fatalf("partition %d read in %d batches, want many", p, batches)
		}
	}
	if o, n := c.reads.opened.Load(), c.reads.idleReaders(); o != 2 || n != 2 {
		t.Fatalf("opened %d readers, %d idle; want one per partition", o, n)
	}
	c.Close()
	if n := c.reads.idleReaders(); n != 0 {
		t.Fatalf("%d idle readers after Close", n)
	}
	// Reads still work after Close, without pooling.
	if err := readAll(ctx, c, 0, 0, 10, size); err != nil {
		t.Fatal(err)
	}
	if n := c.reads.idleReaders(); n != 0 {
		t.Fatalf("%d idle readers after a read past Close", n)
	}
}

func TestReadRangeConcurrent(t *testing.T) {
	brokers := readCluster(t, 2)
	const n, size = 2000, 256
	produce(t, brokers, 0, 0, n, size)
	produce(t, brokers, 1, 0, n, size)
	c := readClient(t, brokers)
	ctx := context.Background()

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Go(func() {
			p := int32(g % 2)
			// Consecutive ranges of varying length, each goroutine its
			// own walk, all on two partitions at once.
			step := int64(97 + 31*g)
			for from := int64(g * 13); from < n; from += step {
				if err := readAll(ctx, c, p, from, min(from+step, n), size); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	// The same range at the same time, as a retry racing the attempt it
	// replaces.
	for range 4 {
		wg.Go(func() {
			for range 3 {
				if err := readAll(ctx, c, 0, 400, 900, size); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if idle := c.reads.idleReaders(); idle > 2*readerIdlePerPartition {
		t.Fatalf("%d idle readers over 2 partitions, want at most %d", idle, 2*readerIdlePerPartition)
	}
}

func TestReadRangePoolBounds(t *testing.T) {
	const parts = readerIdleMax + 4
	brokers := readCluster(t, parts)
	for p := int32(0); p < parts; p++ {
		produce(t, brokers, p, 0, 5, 10)
	}
	c := readClient(t, brokers)
	ctx := context.Background()
	for p := int32(0); p < parts; p++ {
		if err := readAll(ctx, c, p, 0, 5, 10); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.reads.idleReaders(); n != readerIdleMax {
		t.Fatalf("%d idle readers, want %d", n, readerIdleMax)
	}
	// The oldest were closed: partition 0 gets a new reader, the newest
	// partition continues its own.
	opened := c.reads.opened.Load()
	produce(t, brokers, 0, 5, 5, 10)
	produce(t, brokers, parts-1, 5, 5, 10)
	if err := readAll(ctx, c, 0, 5, 10, 10); err != nil {
		t.Fatal(err)
	}
	if err := readAll(ctx, c, parts-1, 5, 10, 10); err != nil {
		t.Fatal(err)
	}
	if got := c.reads.opened.Load() - opened; got != 1 {
		t.Fatalf("opened %d readers, want 1", got)
	}
}

func TestReadRangeErrorDropsReader(t *testing.T) {
	brokers := readCluster(t, 1)
	produce(t, brokers, 0, 0, 100, 100)
	c := readClient(t, brokers)
	ctx := context.Background()
	boom := errors.New("boom")
	err := c.ReadRange(ctx, readTopic, 0, 0, 100, ReadOptions{}, func(r *kgo.Record) (bool, error) {
		if r.Offset == 40 {
			return false, boom
		}
		return true, nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v, want boom", err)
	}
	if n := c.reads.idleReaders(); n != 0 {
		t.Fatalf("%d idle readers after a failed read", n)
	}
	// A retry of the range works.
	if err := readAll(ctx, c, 0, 0, 100, 100); err != nil {
		t.Fatal(err)
	}

}

func TestReadRangeCanceled(t *testing.T) {
	brokers := readCluster(t, 1)
	produce(t, brokers, 0, 0, 10, 100)
	c := readClient(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	// Offsets 10..19 do not exist yet: the read waits until canceled.
	err := c.ReadRange(ctx, readTopic, 0, 5, 20, ReadOptions{}, func(*kgo.Record) (bool, error) { return true, nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want deadline exceeded", err)
	}
	if n := c.reads.idleReaders(); n != 0 {
		t.Fatalf("%d idle readers after a canceled read", n)
	}
}

// TestReadRangeGapAtEnd reads a range whose last offset is a transaction's
// commit marker, which is never returned as a record.
func TestReadRangeGapAtEnd(t *testing.T) {
	brokers := readCluster(t, 1)
	produce(t, brokers, 0, 0, 10, 100)
	txn, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionalID("read-test"),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Close()
	ctx := context.Background()
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	recs := make([]*kgo.Record, 5)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: readTopic, Partition: 0, Value: value(0, 10+i, 100)}
	}
	if err := txn.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	c := readClient(t, brokers)
	end, err := c.Admin().ListEndOffsets(ctx, readTopic)
	if err != nil {
		t.Fatal(err)
	}
	hwm := end[readTopic][0].Offset
	if hwm != 16 {
		t.Fatalf("high watermark %d, want 16 (15 records and a commit marker)", hwm)
	}

	var got []int64
	start := time.Now()
	err = c.ReadRange(ctx, readTopic, 0, 0, hwm, ReadOptions{StallTimeout: 5 * time.Second}, func(r *kgo.Record) (bool, error) {
		got = append(got, r.Offset)
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 15 || got[14] != 14 {
		t.Fatalf("read offsets %v, want 0..14", got)
	}
	t.Logf("gap at the end resolved in %v", time.Since(start))

	// The reader continues past the gap.
	produce(t, brokers, 0, 16, 5, 100)
	if err := readAll(ctx, c, 0, 16, 21, 100); err != nil {
		t.Fatal(err)
	}
	if o, r := c.reads.opened.Load(), c.reads.reused.Load(); o != 1 || r != 1 {
		t.Fatalf("opened %d readers, reused %d; want 1, 1", o, r)
	}
}

// TestReadRangeFetchBytes checks that reading a partition in consecutive
// byte-cut ranges fetches about the partition's bytes once, not one extra
// fetch per range, and that an idle reader fetches nothing.
func TestReadRangeFetchBytes(t *testing.T) {
	brokers := readCluster(t, 1)
	const n, size = 4000, 1024
	produce(t, brokers, 0, 0, n, size)
	var fb fetchBytes
	c := readClient(t, brokers, kgo.WithHooks(&fb))
	ctx := context.Background()
	opt := ReadOptions{FetchMaxPartitionBytes: 64 << 10}
	const fetch = 64 << 10

	// One exact range on a new reader: the range plus at most the fetch
	// that crosses its end and one already in flight.
	var got int64
	err := c.ReadRange(ctx, readTopic, 0, 0, 500, opt, func(r *kgo.Record) (bool, error) {
		got += int64(len(r.Value))
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if f := fb.n.Load(); f > got*21/20+2*fetch {
		t.Errorf("range of %d value bytes fetched %d bytes", got, f)
	}
	// Paused between reads: nothing more is fetched.
	f0 := fb.n.Load()
	time.Sleep(600 * time.Millisecond)
	if f := fb.n.Load(); f != f0 {
		t.Errorf("an idle reader fetched %d bytes", f-f0)
	}

	// Consecutive byte-cut ranges to the end, as WritePartition reads.
	got = 0
	batches := 0
	for from := int64(500); from < n; batches++ {
		next, bytes := from, 0
		err := c.ReadRange(ctx, readTopic, 0, from, n, opt, func(r *kgo.Record) (bool, error) {
			next = r.Offset + 1
			bytes += len(r.Value)
			return bytes < 200<<10, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got += int64(bytes)
		from = next
	}
	f := fb.n.Load() - f0
	t.Logf("%d ranges of %d value bytes in all: fetched %d bytes (%.3fx)", batches, got, f, float64(f)/float64(got))
	if batches < 15 {
		t.Fatalf("%d ranges, want many", batches)
	}
	if f > got*21/20 {
		t.Errorf("%d ranges of %d value bytes in all fetched %d bytes (%.2fx), want at most 1.05x", batches, got, f, float64(f)/float64(got))
	}
	if o := c.reads.opened.Load(); o != 1 {
		t.Errorf("opened %d readers, want 1", o)
	}
}
