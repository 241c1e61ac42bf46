package maxcompute_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/deploy/localstack/odpsemu"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/sink/maxcompute"
)

// TestErrorClassification: answers from the service a retry can fix
// (throttling, 5xx, timeouts) stay retryable; any other 4xx — including one
// with no error code at all — is a PermanentError, so the partition parks
// instead of retrying and routing every range to the error-data topic.
func TestErrorClassification(t *testing.T) {
	emu := startEmulator(t)
	spec := emu.spec(t, "classify", func(mc *connector.MaxComputeSpec) { mc.CreateTable = true })
	s := newSink(t, spec)
	rs := textRecords(0, 1, at(6, 0, 0))
	part, err := s.PartitionOf(rs[0])
	require.NoError(t, err)
	for _, tc := range []struct {
		name      string
		fault     odpsemu.Fault
		permanent string // "" for retryable
		throttled bool   // sink.Throttled: the range waits, it is never routed
	}{
		{"400 without a code", odpsemu.Fault{Status: http.StatusBadRequest}, "HTTP400", false},
		{"400 InvalidArgument", odpsemu.Fault{Status: http.StatusBadRequest, Code: "InvalidArgument", Message: "bad"}, "InvalidArgument", false},
		{"403", odpsemu.Fault{Status: http.StatusForbidden, Code: "NoPermission", Message: "no"}, maxcompute.ErrAccessDenied, false},
		{"429 FlowExceeded", odpsemu.FlowExceeded(odpsemu.Match{}), "", true},
		{"429 SlotExceeded", odpsemu.Fault{Status: http.StatusTooManyRequests, Code: "SlotExceeded", Message: "slots"}, "", true},
		{"408", odpsemu.Fault{Status: http.StatusRequestTimeout, Code: "RequestTimeout", Message: "slow"}, "", false},
		{"500", odpsemu.InternalServerError(odpsemu.Match{}), "", false},
		{"503", odpsemu.ServiceUnavailable(odpsemu.Match{}), "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.fault
			f.Match = odpsemu.Match{Ops: []odpsemu.Op{odpsemu.OpCreateUploadSession}}
			inj := emu.srv.InjectFault(f)
			defer inj.Remove()
			_, err := s.Prepare(context.Background(), batchID(rs), []string{part}, nil)
			require.Error(t, err)
			require.Positive(t, inj.Fired())
			pe, permanent := asPermanent(err)
			var te *sink.ThrottledError
			require.Equal(t, tc.throttled, errors.As(err, &te), "throttled: %v", err)
			if tc.permanent == "" {
				require.False(t, permanent, "retryable, got %v", err)
				return
			}
			require.True(t, permanent, "permanent %s, got %v", tc.permanent, err)
			require.Equal(t, tc.permanent, pe.Type)
		})
	}
}

func asPermanent(err error) (*sink.PermanentError, bool) {
	var pe *sink.PermanentError
	ok := errors.As(err, &pe)
	return pe, ok
}
