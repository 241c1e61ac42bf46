package localstack

import (
	"log/slog"
	"net"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// The server treats a failed listen as fatal. Start checks ports first, but
// another process can take one in between; that must be an error, not a
// crash.
func TestStartTemporalReportsFatalAsError(t *testing.T) {
	taken, err := net.Listen("tcp", hostPort(0))
	require.NoError(t, err)
	defer taken.Close()

	_, err = startTemporal(filepath.Join(t.TempDir(), "temporal.db"), taken.Addr().(*net.TCPAddr).Port, slog.New(slog.DiscardHandler))
	require.ErrorIs(t, err, syscall.EADDRINUSE)
	require.ErrorContains(t, err, "temporal: start server on "+taken.Addr().String())
}
