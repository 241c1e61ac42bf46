package activities

import (
	"context"
	"errors"

	"github.com/dumpflow/dumpflow/kafka"
)

// RouteRange copies every record of [First, End) to the error-data topic
// with context headers (stage "write", the reason as the error). The
// workflow calls it under tolerance continue when a range still fails after
// its retries, so the partition moves on and nothing is silently dropped.
func (a *Activities) RouteRange(ctx context.Context, in RouteRangeInput) (RouteRangeResult, error) {
	spec := &in.Spec
	if err := checkSpec(spec); err != nil {
		return RouteRangeResult{}, err
	}
	kc, err := a.kafka.For(spec)
	if err != nil {
		return RouteRangeResult{}, classify(err)
	}
	defer keepAlive(ctx)()
	recs, _, err := a.readCut(ctx, kc, spec, in.Partition, in.First, in.End, false)
	if err != nil {
		return RouteRangeResult{}, err
	}
	reason := errors.New(in.Reason)
	dls := make([]kafka.DeadLetter, len(recs))
	for i, r := range recs {
		dls[i] = kafka.DeadLetter{Record: r, Connector: spec.Name, Stage: "write", Err: reason}
	}
	if err := kc.ProduceDeadLetters(ctx, spec.Errors.ErrorDataTopic, dls); err != nil {
		return RouteRangeResult{}, err
	}
	return RouteRangeResult{Records: int64(len(recs))}, nil
}
