package activities

import (
	"context"

	"github.com/dumpflow/dumpflow/kafka"
)

// CommitOffsets commits each cursor's next offset for the connect-<name>
// group, with the partition's start offset in the commit metadata. The
// workflow's cursor is the source of truth; this mirrors it so ordinary
// Kafka lag tools show progress.
func (a *Activities) CommitOffsets(ctx context.Context, in CommitOffsetsInput) error {
	spec := &in.Spec
	if err := checkSpec(spec); err != nil {
		return err
	}
	kc, err := a.kafka.For(spec)
	if err != nil {
		return classify(err)
	}
	m := make(map[int32]kafka.Committed, len(in.Offsets))
	for _, c := range in.Offsets {
		m[c.Partition] = kafka.Committed{Offset: c.Next, Start: c.Start}
	}
	return kc.Commit(ctx, spec.Group(), spec.Kafka.Topic, m)
}
