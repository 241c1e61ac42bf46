package activities

import (
	"context"
	"fmt"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/sink/maxcompute"
)

func openMaxCompute(_ context.Context, spec *connector.Spec) (sink.Sink, error) {
	creds, err := connector.ResolveCredentials(spec.Sink.MaxCompute.Credentials)
	if err != nil {
		return nil, sink.Permanent("MissingCredentials", fmt.Errorf("sink.maxcompute.credentials: %w", err))
	}
	return maxcompute.New(spec, creds)
}
