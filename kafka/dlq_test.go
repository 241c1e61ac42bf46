package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/dumpflow/dumpflow/transform"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestDeadLetters produces 2MiB dead letters (errors.maxRecordBytes 8MiB) to
// dead-letter topics made by EnsureDeadLetterTopic, new or existing with a
// small max.message.bytes, and checks what a consumer reads back.
func TestDeadLetters(t *testing.T) {
	_, brokers := cluster(t, 1, 1)
	c := readClient(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	const maxRecord = 8 << 20
	want := DeadLetterMaxMessageBytes(maxRecord)

	mmb := func(topic string) int64 {
		t.Helper()
		n, err := c.topicMaxMessageBytes(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// A new topic, and one that existed with a small max.message.bytes.
	if err := c.EnsureDeadLetterTopic(ctx, "dlq", maxRecord); err != nil {
		t.Fatal(err)
	}
	small := "100000"
	if _, err := c.Admin().CreateTopic(ctx, 1, -1, map[string]*string{"max.message.bytes": &small}, "dlq-small"); err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureDeadLetterTopic(ctx, "dlq-small", maxRecord); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"dlq", "dlq-small"} {
		if got := mmb(topic); got != want {
			t.Fatalf("max.message.bytes of %s: %d, want %d", topic, got, want)
		}
		// Again: nothing to do.
		if err := c.EnsureDeadLetterTopic(ctx, topic, maxRecord); err != nil {
			t.Fatal(err)
		}
	}
	// A larger max.message.bytes is left alone.
	if err := c.EnsureDeadLetterTopic(ctx, "dlq", 1<<20); err != nil || mmb("dlq") != want {
		t.Fatalf("a smaller limit lowered max.message.bytes: %v, %d", err, mmb("dlq"))
	}

	// 2MiB that do not compress.
	big := func(i int) []byte {
		b := make([]byte, 2<<20)
		_, _ = rand.NewChaCha8([32]byte{byte(i)}).Read(b)
		return b
	}
	longErr := errors.New(strings.Repeat("é", 400)) // 800 bytes
	dl := func(i int) DeadLetter {
		return DeadLetter{
			Record: &kgo.Record{
				Topic: "src", Partition: 3, Offset: int64(100 + i), Key: []byte(fmt.Sprint("k", i)), Value: big(i),
				Headers: []kgo.RecordHeader{
					{Key: "trace", Value: []byte("t1")},
					{Key: HeaderTopic, Value: []byte("older")},
					{Key: HeaderError, Value: []byte("older error")},
					{Key: HeaderPrefix + "other", Value: []byte("x")},
				},
			},
			Connector: "c1", Stage: "write", Err: longErr,
		}
	}
	check := func(topic string, n int) {
		t.Helper()
		b, err := c.Bounds(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		i := 0
		err = c.ReadRange(ctx, topic, 0, b[0].Start, b[0].Stable, ReadOptions{}, func(r *kgo.Record) (bool, error) {
			if !bytes.Equal(r.Value, big(i)) || string(r.Key) != fmt.Sprint("k", i) {
				return false, fmt.Errorf("dead letter %d: key %q, value %s", i, r.Key, transform.ShortPrefix(r.Value, 16))
			}
			count := map[string]int{}
			h := map[string]string{}
			for _, kv := range r.Headers {
				count[kv.Key]++
				h[kv.Key] = string(kv.Value)
			}
			for k, n := range count {
				if n != 1 {
					return false, fmt.Errorf("dead letter %d: header %s %d times", i, k, n)
				}
			}
			if h["trace"] != "t1" || h[HeaderPrefix+"other"] != "" || h[HeaderTopic] != "src" || h[HeaderPartition] != "3" ||
				h[HeaderOffset] != strconv.Itoa(100+i) || h[HeaderConnector] != "c1" || h[HeaderStage] != "write" {
				return false, fmt.Errorf("dead letter %d: headers %v", i, h)
			}
			e := h[HeaderError]
			if e != strings.Repeat("é", 256)+"…" || !utf8.ValidString(e) {
				return false, fmt.Errorf("dead letter %d: error header of %d bytes: %.40q", i, len(e), e)
			}
			i++
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if i != n {
			t.Fatalf("%s holds %d dead letters, want %d", topic, i, n)
		}
	}

	if err := c.ProduceDeadLetters(ctx, "dlq", []DeadLetter{dl(0)}, maxRecord); err != nil {
		t.Fatal(err)
	}
	check("dlq", 1)
	// 10MiB of dead letters at once go in requests within the topic's
	// max.message.bytes.
	dls := []DeadLetter{dl(0), dl(1), dl(2), dl(3), dl(4)}
	if err := c.ProduceDeadLetters(ctx, "dlq-small", dls, maxRecord); err != nil {
		t.Fatal(err)
	}
	check("dlq-small", 5)

	// A topic left at Kafka's default refuses them, and the error says
	// what to do.
	if err := c.EnsureTopic(ctx, "dlq-default", 1); err != nil {
		t.Fatal(err)
	}
	err := c.ProduceDeadLetters(ctx, "dlq-default", []DeadLetter{dl(0)}, maxRecord)
	if err == nil || !strings.Contains(err.Error(), "EnsureDeadLetterTopic") {
		t.Fatalf("dead letter over max.message.bytes: %v", err)
	}
	t.Log(err)
	if len(err.Error()) > 2000 {
		t.Fatalf("error quotes the record: %.200s", err)
	}
}
