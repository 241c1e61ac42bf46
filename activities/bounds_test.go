package activities

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dumpflow/dumpflow/kafka"
)

// A cursor past the worker's shared answer (it came from a newer look-up)
// gets fresh offsets, not a plan error saying the log was truncated.
func TestPollBoundsCursorPastSharedAnswer(t *testing.T) {
	const topic = "polled"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	kc, err := kafka.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	ctx := context.Background()

	if b, err := kc.SharedBounds(ctx, topic); err != nil || b[1].End != 0 {
		t.Fatalf("shared: %v, %v", b, err)
	}
	recs := []*kgo.Record{{Topic: topic, Partition: 1}, {Topic: topic, Partition: 1}, {Topic: topic, Partition: 1}}
	if err := kc.Kgo().ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// Written up to 2 from a look-up newer than the shared answer.
	cursors := []Cursor{{Partition: 0, Next: 0}, {Partition: 1, Next: 2}}
	b, err := pollBounds(ctx, kc, topic, cursors)
	if err != nil || b[1].End != 3 {
		t.Fatalf("poll: %v, %v; want partition 1 to end at 3", b, err)
	}
	for _, c := range cursors {
		if p, _ := plan(c, b[c.Partition], 100, 100, V2); p.Error != "" {
			t.Fatalf("plan of partition %d: %s", c.Partition, p.Error)
		}
	}
}
