package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnLog writes to readTopic[0] with a transactional and a plain producer and
// remembers which offsets hold which kind of record.
type txnLog struct {
	t            *testing.T
	txn, plain   *kgo.Client
	committed    map[int64]bool // non-transactional or committed records
	aborted      map[int64]bool
	open         []int64 // offsets of the open transaction
	markers      []int64 // offsets of the markers, in order
	lastProduced int64
}

func newTxnLog(t *testing.T, brokers []string) *txnLog {
	t.Helper()
	mk := func(extra ...kgo.Opt) *kgo.Client {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner())}, extra...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	return &txnLog{
		t: t, txn: mk(kgo.TransactionalID("txn-test")), plain: mk(),
		committed: map[int64]bool{}, aborted: map[int64]bool{}, lastProduced: -1,
	}
}

func (l *txnLog) produce(cl *kgo.Client, v string) int64 {
	l.t.Helper()
	r := &kgo.Record{Topic: readTopic, Partition: 0, Value: []byte(v)}
	if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		l.t.Fatal(err)
	}
	l.lastProduced = r.Offset
	return r.Offset
}

// plainRecord writes a non-transactional record.
func (l *txnLog) plainRecord(v string) {
	l.committed[l.produce(l.plain, v)] = true
}

func (l *txnLog) begin() {
	l.t.Helper()
	if err := l.txn.BeginTransaction(); err != nil {
		l.t.Fatal(err)
	}
}

// txnRecord writes a record in the open transaction.
func (l *txnLog) txnRecord(v string) {
	l.open = append(l.open, l.produce(l.txn, v))
}

// end commits or aborts the open transaction, and finds its marker: the
// offset the high watermark passed that no record holds.
func (l *txnLog) end(ctx context.Context, c *Client, commit bool) {
	l.t.Helper()
	if err := l.txn.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		l.t.Fatal(err)
	}
	for _, o := range l.open {
		if commit {
			l.committed[o] = true
		} else {
			l.aborted[o] = true
		}
	}
	l.open = nil
	b, err := c.Bounds(ctx, readTopic)
	if err != nil {
		l.t.Fatal(err)
	}
	if b[0].End != l.lastProduced+2 || b[0].Stable != b[0].End {
		l.t.Fatalf("after the transaction's end: bounds %+v, want end and last stable %d", b[0], l.lastProduced+2)
	}
	l.markers = append(l.markers, l.lastProduced+1)
	l.lastProduced++
}

// TestReadRangeTransactions reads ranges of a partition that interleaves
// aborted and committed transactions with non-transactional records: only
// committed and non-transactional records are read, and ranges ending on or
// just before markers complete.
func TestReadRangeTransactions(t *testing.T) {
	_, brokers := cluster(t, 1, 1)
	c := readClient(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	l := newTxnLog(t, brokers)

	l.plainRecord("n0")
	l.plainRecord("n1")
	l.begin() // A: aborted, interleaved with plain records
	l.txnRecord("a0")
	l.txnRecord("a1")
	l.plainRecord("n2")
	l.txnRecord("a2")
	l.end(ctx, c, false)
	l.plainRecord("n3")
	l.begin() // B: committed, interleaved
	l.txnRecord("b0")
	l.txnRecord("b1")
	l.plainRecord("n4")
	l.txnRecord("b2")
	l.end(ctx, c, true)
	l.plainRecord("n5")
	l.begin() // C: aborted, the last records of the log before its marker
	l.txnRecord("c0")
	l.txnRecord("c1")
	cLast := l.lastProduced
	l.end(ctx, c, false)
	hwm := l.lastProduced + 1
	mA, mB, mC := l.markers[0], l.markers[1], l.markers[2]
	t.Logf("markers at %v, aborted %v, high watermark %d", l.markers, l.aborted, hwm)

	want := func(from, to int64) []int64 {
		var out []int64
		for o := range l.committed {
			if o >= from && o < to {
				out = append(out, o)
			}
		}
		slices.Sort(out)
		return out
	}
	read := func(from, to int64) {
		t.Helper()
		var got []int64
		err := c.ReadRange(ctx, readTopic, 0, from, to, ReadOptions{StallTimeout: 5 * time.Second}, func(r *kgo.Record) (bool, error) {
			if r.Attrs.IsControl() {
				return false, fmt.Errorf("control record at %d passed", r.Offset)
			}
			if l.aborted[r.Offset] || strings.HasPrefix(string(r.Value), "a") || strings.HasPrefix(string(r.Value), "c") {
				return false, fmt.Errorf("aborted record %q at %d passed", r.Value, r.Offset)
			}
			got = append(got, r.Offset)
			return true, nil
		})
		if err != nil {
			t.Fatalf("read [%d,%d): %v", from, to, err)
		}
		if w := want(from, to); !slices.Equal(got, w) {
			t.Fatalf("read [%d,%d) got %v, want %v", from, to, got, w)
		}
	}

	read(0, hwm)
	// Consecutive ranges ending on each marker, on one pooled reader.
	reused := c.reads.reused.Load()
	read(0, mA+1)
	read(mA+1, mB+1)
	read(mB+1, mC+1)
	if got := c.reads.reused.Load() - reused; got != 2 {
		t.Errorf("consecutive ranges reused a reader %d times, want 2", got)
	}
	// Ranges whose last offsets are aborted records, followed by their
	// abort marker.
	read(0, mA)
	read(mB+1, cLast+1)
	read(cLast, cLast+1) // nothing in it but an aborted record
	read(cLast-1, hwm)   // aborted records and their marker only
	// Ranges starting inside transactions.
	read(l.markers[0]-2, mB)
	read(mA+2, hwm)
}

// TestBounds checks the last stable offset (held below the high watermark by
// an open transaction) and per-partition errors.
func TestBounds(t *testing.T) {
	kc, brokers := cluster(t, 1, 2)
	c := readClient(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := newTxnLog(t, brokers)
	for i := range 5 {
		l.plainRecord(fmt.Sprint("n", i))
	}
	l.begin()
	l.txnRecord("t0")
	l.txnRecord("t1")
	l.txnRecord("t2")

	b, err := c.Bounds(ctx, readTopic)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := b[0], (Bounds{Start: 0, End: 8, Stable: 5}); got != want {
		t.Fatalf("partition 0 with an open transaction: %+v, want %+v", got, want)
	}
	if got, want := b[1], (Bounds{}); got != want {
		t.Fatalf("empty partition 1: %+v, want %+v", got, want)
	}
	// A read planned to End waits for the transaction: it stalls.
	var se *StallError
	err = c.ReadRange(ctx, readTopic, 0, 0, 8, ReadOptions{StallTimeout: 500 * time.Millisecond}, func(*kgo.Record) (bool, error) { return true, nil })
	if !errors.As(err, &se) || se.Next != 5 || se.LastStable != 5 || se.HighWatermark != 8 {
		t.Fatalf("read past the last stable offset: %v, want a stall at 5", err)
	}

	l.end(ctx, c, true)
	if b, err = c.Bounds(ctx, readTopic); err != nil {
		t.Fatal(err)
	}
	if got, want := b[0], (Bounds{Start: 0, End: 9, Stable: 9}); got != want {
		t.Fatalf("partition 0 after the commit: %+v, want %+v", got, want)
	}

	// One partition failing does not fail the others.
	h := kc.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.ListOffsets}, Topic: readTopic, Partitions: []int32{1}, Err: kerr.UnknownServerError, Count: -1})
	b, err = c.Bounds(ctx, readTopic)
	if err != nil {
		t.Fatalf("one partition failing: %v", err)
	}
	if b[0].Err != nil || b[0].End != 9 || !errors.Is(b[1].Err, kerr.UnknownServerError) {
		t.Fatalf("one partition failing: %+v", b)
	}
	h.Remove()
	// Every partition failing fails the call.
	h = kc.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.ListOffsets}, Topic: readTopic, Err: kerr.UnknownServerError, Count: -1})
	if _, err := c.Bounds(ctx, readTopic); !errors.Is(err, kerr.UnknownServerError) {
		t.Fatalf("every partition failing: %v", err)
	}
	h.Remove()
	// A topic that does not exist.
	if _, err := c.Bounds(ctx, "absent"); !errors.Is(err, ErrNoTopic) {
		t.Fatalf("absent topic: %v, want ErrNoTopic", err)
	}
}

// TestPartitions checks Partitions of a deleted topic and of an unreachable
// cluster.
func TestPartitions(t *testing.T) {
	kc, brokers := cluster(t, 1, 3)
	c := readClient(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ps, err := c.Partitions(ctx, readTopic)
	if err != nil || !slices.Equal(ps, []int32{0, 1, 2}) {
		t.Fatalf("partitions %v, %v", ps, err)
	}
	if _, err := c.Admin().DeleteTopic(ctx, readTopic); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Partitions(ctx, readTopic); !errors.Is(err, ErrNoTopic) || !strings.Contains(err.Error(), readTopic) {
		t.Fatalf("deleted topic: %v, want ErrNoTopic naming it", err)
	}
	kc.Close()
	short, cancel2 := context.WithTimeout(ctx, 2*time.Second)
	defer cancel2()
	_, err = c.Partitions(short, readTopic)
	if err == nil || errors.Is(err, ErrNoTopic) || !strings.Contains(err.Error(), brokers[0]) {
		t.Fatalf("unreachable cluster: %v, want an error naming %s", err, brokers[0])
	}
}
