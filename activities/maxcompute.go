package activities

import (
	"context"
	"errors"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/sink"
)

func openMaxCompute(_ context.Context, _ *connector.Spec) (sink.Sink, error) {
	return nil, sink.Permanent("Unsupported", errors.New("the MaxCompute sink is not built into this worker yet"))
}
