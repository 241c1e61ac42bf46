package activities

import (
	"context"

	"github.com/dumpflow/dumpflow/kafka"
)

// CommitOffsets commits each cursor's next offset for the connect-<name>
// group, with the partition's start offset (and, V2, the writer) in the
// commit metadata. The sink is the source of truth for where a connector
// resumes (OSS meta and data objects, the MaxCompute ledger table); the
// group mirrors the cursors so ordinary Kafka lag tools show progress.
func (a *Activities) CommitOffsets(ctx context.Context, in CommitOffsetsInput) error {
	spec, err := a.spec(ctx, in.SpecInput)
	if err != nil {
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
