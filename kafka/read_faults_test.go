package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

func plainAuth(user, pass string) sasl.Mechanism {
	return plain.Auth{User: user, Pass: pass}.AsMechanism()
}

// cluster starts kfake with readTopic of partitions partitions on brokers
// brokers, and returns it for fault injection.
func cluster(t *testing.T, brokers int, partitions int32, extra ...kfake.Opt) (*kfake.Cluster, []string) {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(brokers), kfake.SeedTopics(partitions, readTopic)}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()
}

// readExact reads [from, to) of partition p with opt, checking that it gets
// every offset exactly once, in order, each with the value produced for it;
// each is also passed to each, if not nil.
func readExact(ctx context.Context, c *Client, p int32, from, to int64, size int, opt ReadOptions, each func(int64)) error {
	next := from
	err := c.ReadRange(ctx, readTopic, p, from, to, opt, func(r *kgo.Record) (bool, error) {
		if r.Partition != p || r.Offset != next {
			return false, fmt.Errorf("got %s[%d]@%d, want [%d]@%d", r.Topic, r.Partition, r.Offset, p, next)
		}
		if want := value(p, int(r.Offset), size); string(r.Value) != string(want) {
			return false, fmt.Errorf("offset %d: value %.12q, want %.12q", r.Offset, r.Value, want)
		}
		if each != nil {
			each(r.Offset)
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

// TestReadRangeFetchErrorsMidRange fails every fetch of the partition for a
// few seconds in the middle of a read (longer than it took the old reader to
// give up on a retried error and call the rest of the range a gap): the read
// waits them out and still returns every offset exactly once, in order.
func TestReadRangeFetchErrorsMidRange(t *testing.T) {
	for _, tc := range []struct {
		err *kerr.Error
		dur time.Duration
	}{
		{kerr.NotLeaderForPartition, 5 * time.Second}, // retryable: franz-go retries it
		{kerr.UnknownServerError, 2 * time.Second},    // not retryable, yet transient
	} {
		t.Run(tc.err.Message, func(t *testing.T) {
			kc, brokers := cluster(t, 1, 1)
			const n, size = 10000, 100
			produce(t, brokers, 0, 0, n, size)
			c := readClient(t, brokers)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			var h *kfake.FaultHandle
			var removed atomic.Bool
			err := readExact(ctx, c, 0, 0, n, size, ReadOptions{FetchMaxPartitionBytes: 16 << 10}, func(o int64) {
				if o != 2000 {
					return
				}
				// Fetches have been answered; fail the next
				// ones for a while.
				h = kc.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: readTopic, Partitions: []int32{0}, Err: tc.err, Count: -1})
				time.AfterFunc(tc.dur, func() { h.Remove(); removed.Store(true) })
			})
			if err != nil {
				t.Fatal(err)
			}
			if h == nil || h.Hits() == 0 || !removed.Load() {
				t.Fatalf("the read ended before the fault was exercised and removed (hits %v)", h)
			}
			t.Logf("%d fetches failed with %s", h.Hits(), tc.err.Message)
		})
	}
}

// TestReadRangeLeaderMove moves the partition's leader between brokers
// several times during a read, the first time with an election window of
// 2.5s in which every broker answers fetches NOT_LEADER_FOR_PARTITION: the
// read follows the leader, complete and exact.
func TestReadRangeLeaderMove(t *testing.T) {
	kc, brokers := cluster(t, 3, 1)
	const n, size = 10000, 100
	produce(t, brokers, 0, 0, n, size)
	c := readClient(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	moves := 0
	var election *kfake.FaultHandle
	var elected atomic.Bool
	err := readExact(ctx, c, 0, 0, n, size, ReadOptions{FetchMaxPartitionBytes: 16 << 10}, func(o int64) {
		if o%2500 != 1000 {
			return
		}
		if moves == 0 {
			election = kc.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: readTopic, Err: kerr.NotLeaderForPartition, Count: -1})
			time.AfterFunc(2500*time.Millisecond, func() { election.Remove(); elected.Store(true) })
		}
		leader := kc.LeaderFor(readTopic, 0)
		if err := kc.MoveTopicPartition(readTopic, 0, (leader+1)%3); err != nil {
			t.Error(err)
		}
		moves++
	})
	if err != nil {
		t.Fatal(err)
	}
	if moves != 4 || election.Hits() == 0 || !elected.Load() {
		t.Fatalf("moved the leader %d times (want 4), election window answered %d fetches, over: %v", moves, election.Hits(), elected.Load())
	}
}

// TestReadRangeStall checks that a read that cannot complete fails with a
// *StallError after StallTimeout instead of succeeding short or hanging.
func TestReadRangeStall(t *testing.T) {
	opt := ReadOptions{StallTimeout: time.Second}
	stall := func(t *testing.T, c *Client, from, to int64) (*StallError, []int64) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		var got []int64
		start := time.Now()
		err := c.ReadRange(ctx, readTopic, 0, from, to, opt, func(r *kgo.Record) (bool, error) {
			got = append(got, r.Offset)
			return true, nil
		})
		elapsed := time.Since(start)
		var se *StallError
		if !errors.As(err, &se) {
			t.Fatalf("err %v after %v, want a *StallError", err, elapsed)
		}
		if elapsed < opt.StallTimeout || elapsed > 4*opt.StallTimeout+time.Second {
			t.Errorf("stalled after %v, want about %v", elapsed, opt.StallTimeout)
		}
		if _, lost := IsDataLost(err); lost {
			t.Errorf("a stall is data loss: %v", err)
		}
		if n := c.reads.idleReaders(); n != 0 {
			t.Errorf("%d idle readers after a stalled read", n)
		}
		t.Log(err)
		return se, got
	}

	t.Run("past the end", func(t *testing.T) {
		_, brokers := cluster(t, 1, 1)
		produce(t, brokers, 0, 0, 100, 10)
		c := readClient(t, brokers)
		se, got := stall(t, c, 50, 200)
		if len(got) != 50 || got[0] != 50 || got[49] != 99 {
			t.Errorf("read %v, want 50..99", got)
		}
		if se.Next != 100 || se.HighWatermark != 100 || se.LastStable != 100 || se.From != 50 || se.To != 200 {
			t.Errorf("stall %+v, want next 100, watermarks 100, range [50,200)", se)
		}
		for _, want := range []string{"reads[0]", "[50,200)", "next offset expected 100", "high watermark 100", "last stable offset 100"} {
			if !strings.Contains(se.Error(), want) {
				t.Errorf("%q does not say %q", se.Error(), want)
			}
		}
	})

	t.Run("fetches refused", func(t *testing.T) {
		kc, brokers := cluster(t, 1, 1)
		produce(t, brokers, 0, 0, 100, 10)
		kc.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: readTopic, Err: kerr.UnknownServerError, Count: -1})
		c := readClient(t, brokers)
		se, got := stall(t, c, 0, 100)
		if len(got) != 0 || se.Next != 0 {
			t.Errorf("read %v, next %d; want nothing", got, se.Next)
		}
		if !errors.Is(se.LastErr, kerr.UnknownServerError) || !strings.Contains(se.Error(), "UNKNOWN_SERVER_ERROR") {
			t.Errorf("stall %q does not name the fetch error", se.Error())
		}
	})

	t.Run("topic gone", func(t *testing.T) {
		_, brokers := cluster(t, 1, 1)
		produce(t, brokers, 0, 0, 10, 10)
		c := readClient(t, brokers)
		if _, err := c.Admin().DeleteTopic(context.Background(), readTopic); err != nil {
			t.Fatal(err)
		}
		se, _ := stall(t, c, 0, 10)
		if !strings.Contains(se.Error(), "UNKNOWN_TOPIC") {
			t.Errorf("stall %q does not say the topic is unknown", se.Error())
		}
	})
}

// TestReadRangeErrorStall checks ErrorStallTimeout: a read whose fetches
// fail gives up after it, while a read that only waits for records (no
// error) still waits for StallTimeout, and a fault that clears within it
// costs nothing.
func TestReadRangeErrorStall(t *testing.T) {
	opt := ReadOptions{StallTimeout: 20 * time.Second, ErrorStallTimeout: time.Second}
	read := func(c *Client, from, to int64) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		start := time.Now()
		err := c.ReadRange(ctx, readTopic, 0, from, to, opt, func(*kgo.Record) (bool, error) { return true, nil })
		return time.Since(start), err
	}

	t.Run("fetches refused", func(t *testing.T) {
		kc, brokers := cluster(t, 1, 1)
		produce(t, brokers, 0, 0, 100, 10)
		kc.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: readTopic, Err: kerr.UnknownServerError, Count: -1})
		c := readClient(t, brokers)
		elapsed, err := read(c, 0, 100)
		var se *StallError
		if !errors.As(err, &se) || !errors.Is(se.LastErr, kerr.UnknownServerError) {
			t.Fatalf("err %v, want a *StallError carrying UNKNOWN_SERVER_ERROR", err)
		}
		if elapsed < opt.ErrorStallTimeout || elapsed > opt.StallTimeout/2 {
			t.Errorf("gave up after %v, want about %v (ErrorStallTimeout), well before %v", elapsed, opt.ErrorStallTimeout, opt.StallTimeout)
		}
	})

	t.Run("quiet wait", func(t *testing.T) {
		_, brokers := cluster(t, 1, 1)
		produce(t, brokers, 0, 0, 10, 10)
		c := readClient(t, brokers)
		go func() {
			time.Sleep(3 * opt.ErrorStallTimeout)
			produce(t, brokers, 0, 10, 10, 10)
		}()
		// No fetch fails: the read waits past ErrorStallTimeout for the
		// records still to come.
		if elapsed, err := read(c, 0, 20); err != nil {
			t.Fatalf("read of records produced after %v failed after %v: %v", 3*opt.ErrorStallTimeout, elapsed, err)
		}
	})

	t.Run("short fault", func(t *testing.T) {
		kc, brokers := cluster(t, 1, 1)
		produce(t, brokers, 0, 0, 100, 10)
		f := kc.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: readTopic, Err: kerr.UnknownServerError, Count: 2})
		c := readClient(t, brokers)
		if elapsed, err := read(c, 0, 100); err != nil {
			t.Fatalf("read through %d refused fetches failed after %v: %v", f.Hits(), elapsed, err)
		}
		if f.Hits() != 2 {
			t.Errorf("%d fetches refused, want 2", f.Hits())
		}
	})
}

// deleteRecords moves the log start of readTopic[p] to offset.
func deleteRecords(t *testing.T, c *Client, p int32, offset int64) {
	t.Helper()
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: readTopic, Partition: p, At: offset})
	resp, err := c.Admin().DeleteRecords(context.Background(), os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestReadRangeDataLost deletes records before they are read: the read
// declares the loss with a *DataLostError instead of restarting at the log
// start.
func TestReadRangeDataLost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("before the read", func(t *testing.T) {
		_, brokers := cluster(t, 1, 1)
		produce(t, brokers, 0, 0, 100, 100)
		c := readClient(t, brokers)
		deleteRecords(t, c, 0, 40)
		var got []int64
		err := c.ReadRange(ctx, readTopic, 0, 10, 100, ReadOptions{}, func(r *kgo.Record) (bool, error) {
			got = append(got, r.Offset)
			return true, nil
		})
		dl, ok := IsDataLost(fmt.Errorf("wrapped: %w", err))
		if !ok {
			t.Fatalf("err %v after reading %d records, want a *DataLostError", err, len(got))
		}
		if dl.Topic != readTopic || dl.Partition != 0 || dl.From != 10 || dl.LogStart != 40 || len(got) != 0 {
			t.Fatalf("%+v after reading %v, want [10,40) lost and nothing read", dl, got)
		}
		t.Log(err)
		// What is left reads from the log start.
		if err := readExact(ctx, c, 0, 40, 100, 100, ReadOptions{}, nil); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("between pooled reads", func(t *testing.T) {
		_, brokers := cluster(t, 1, 1)
		const size = 1024
		produce(t, brokers, 0, 0, 1000, size)
		c := readClient(t, brokers)
		opt := ReadOptions{FetchMaxPartitionBytes: 16 << 10}
		if err := readExact(ctx, c, 0, 0, 10, size, opt, nil); err != nil {
			t.Fatal(err)
		}
		deleteRecords(t, c, 0, 500)
		next := int64(10)
		err := readExact(ctx, c, 0, 10, 1000, size, opt, func(o int64) { next = o + 1 })
		dl, ok := IsDataLost(err)
		if !ok {
			t.Fatalf("err %v, want a *DataLostError", err)
		}
		// The records the reader had fetched before the deletion are
		// read; the loss starts right after them.
		if dl.From != next || dl.LogStart != 500 || next >= 500 {
			t.Fatalf("%+v after reading [10,%d), want [%d,500) lost", dl, next, next)
		}
		if o, r, idle := c.reads.opened.Load(), c.reads.reused.Load(), c.reads.idleReaders(); o != 1 || r != 1 || idle != 0 {
			t.Fatalf("opened %d readers, reused %d, %d idle; want 1, 1, 0", o, r, idle)
		}
		t.Log(err)
		if err := readExact(ctx, c, 0, 500, 1000, size, opt, nil); err != nil {
			t.Fatal(err)
		}
	})

	var se error = &StallError{}
	if _, ok := IsDataLost(se); ok {
		t.Fatal("a *StallError is data loss")
	}
	if _, ok := IsDataLost(kerr.OffsetOutOfRange); ok {
		t.Fatal("OFFSET_OUT_OF_RANGE alone is data loss")
	}
}

// TestReadRangeAuthFails reads from a cluster that refuses the client's SASL
// authentication (answering SASL_AUTHENTICATION_FAILED, as Kafka does): the
// read fails promptly with the authentication error, not after StallTimeout.
func TestReadRangeAuthFails(t *testing.T) {
	const mech = "PLAIN"
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser(mech, "admin", "s3cret"), kfake.SeedTopics(1, readTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	// kfake drops the connection on a wrong password; Kafka answers
	// with an error code first, which the fault reproduces.
	kc.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.SASLAuthenticate}, Err: kerr.SaslAuthenticationFailed, Count: -1})
	c, err := NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.SASL(plainAuth("admin", "s3cret")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err = c.ReadRange(ctx, readTopic, 0, 0, 10, ReadOptions{StallTimeout: 20 * time.Second}, func(*kgo.Record) (bool, error) { return true, nil })
	elapsed := time.Since(start)
	var se *StallError
	if err == nil || errors.As(err, &se) || !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("err %v, want the authentication error", err)
	}
	if elapsed > 10*time.Second {
		t.Fatalf("authentication failure reported after %v", elapsed)
	}
	t.Logf("after %v: %v", elapsed, err)
}
