package maxcompute

import (
	"context"

	"github.com/dumpflow/dumpflow/sink"
)

var _ sink.Checker = (*Sink)(nil)

// Check implements sink.Checker: the table exists (or is created) and fits
// the spec's mode and format.
func (s *Sink) Check(ctx context.Context) error { return s.EnsureTable(ctx) }
