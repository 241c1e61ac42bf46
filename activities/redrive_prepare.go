package activities

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/transform"
)

// PrepareRedriveInput asks for the durable write state of one re-drive
// batch.
type PrepareRedriveInput struct {
	Spec      *connector.Spec  `json:"spec"`
	Overrides RedriveOverrides `json:"overrides,omitempty"`
	Batch     RedrivePlan      `json:"batch"`
	// Keep are the sessions of an earlier Prepare of the same batch whose
	// write found some expired: committed and open ones are kept.
	Keep []sink.Session `json:"keep,omitempty"`
}

// PrepareRedriveResult is the batch's upload sessions (nil for sinks that
// prepare nothing).
type PrepareRedriveResult struct {
	Prepared *sink.Prepared `json:"prepared,omitempty"`
}

// PrepareRedrive creates the upload sessions (MaxCompute) a re-drive batch
// writes into, in a step of its own, so their ids are in the Redrive
// workflow's history and a retried RedriveBatch re-attaches to them: rows
// committed by an attempt whose answer was lost are counted, never written
// again. It reads the batch's dead letters and takes each through the size
// limit, the transform chain (with the re-drive's overrides) and the
// sink's partitioning, as RedriveBatch will, to find the destination
// partitions; letters that will fail again need none.
func (a *Activities) PrepareRedrive(ctx context.Context, in PrepareRedriveInput) (PrepareRedriveResult, error) {
	spec := in.Spec
	if spec == nil {
		return PrepareRedriveResult{}, nonRetryable("InvalidSpec", errors.New("prepare a re-drive: no spec"))
	}
	if err := checkSpec(spec); err != nil {
		return PrepareRedriveResult{}, err
	}
	if err := a.checkCredentials(spec); err != nil {
		return PrepareRedriveResult{}, err
	}
	rspec, err := in.Overrides.Apply(spec)
	if err != nil {
		return PrepareRedriveResult{}, nonRetryable("InvalidSpec", err)
	}
	s, err := a.sink(ctx, spec)
	if err != nil {
		return PrepareRedriveResult{}, classify(err)
	}
	prep, ok := s.(sink.Preparer)
	if !ok {
		return PrepareRedriveResult{}, nil
	}
	defer keepAlive(ctx)()
	if c, ok := s.(sink.Checker); ok {
		if err := c.Check(ctx); err != nil {
			return PrepareRedriveResult{}, classify(err)
		}
	}
	kc, err := a.kafka.For(spec)
	if err != nil {
		return PrepareRedriveResult{}, classify(err)
	}
	chain, err := a.chain(rspec)
	if err != nil {
		return PrepareRedriveResult{}, err
	}
	var run *transform.Run
	if !chain.Empty() {
		if run, err = chain.Begin(ctx); err != nil {
			return PrepareRedriveResult{}, fmt.Errorf("begin the transform chain: %w", err)
		}
		defer func() { _ = run.Close(ctx) }()
	}
	seen := map[string]bool{}
	var parts []string
	err = kc.ReadRange(ctx, spec.Errors.DeadLetterTopic, in.Batch.DeadLetterPartition, in.Batch.First, in.Batch.End, kafka.ReadOptions{}, func(r *kgo.Record) (bool, error) {
		l, ok := kafka.ParseLetter(r)
		if !ok || l.Connector != spec.Name || l.Topic != spec.Kafka.Topic || l.OriginPartition != in.Batch.OriginPartition {
			return true, nil // RedriveBatch passes over or refuses these
		}
		orig := kafka.OriginalRecord(r, l)
		if sizeReject(orig, int64(len(orig.Key)+len(orig.Value)), rspec) != nil {
			return true, nil
		}
		tr := toRecord(orig)
		outs := []*transform.Record{&tr}
		if run != nil {
			var err error
			if outs, err = run.Apply(ctx, &tr); err != nil {
				var se *transform.StepError
				if errors.As(err, &se) {
					return true, nil
				}
				return false, fmt.Errorf("transform: %w", err)
			}
		}
		// As ApplyRecord: the outputs before a refused one are written.
		for _, out := range outs {
			pt, err := prep.PartitionOf(out)
			if err != nil {
				if _, ok := sink.IsReject(err); ok {
					break
				}
				return false, err
			}
			if !seen[pt] {
				seen[pt] = true
				parts = append(parts, pt)
			}
		}
		return true, nil
	})
	if err != nil {
		return PrepareRedriveResult{}, classify(err)
	}
	sort.Strings(parts)
	id := RedriveBatchID(spec, in.Batch, chain.Hash(), in.Overrides.Hash())
	p, err := prep.Prepare(ctx, id, parts, in.Keep)
	if err != nil {
		return PrepareRedriveResult{}, classify(fmt.Errorf("prepare re-drive %s: %w", id, err))
	}
	return PrepareRedriveResult{Prepared: p}, nil
}
