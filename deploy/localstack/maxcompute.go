package localstack

import (
	"fmt"
	"log/slog"

	"github.com/dumpflow/dumpflow/deploy/localstack/odpsemu"
)

// startMaxCompute serves the emulator, persisting in dir, on host:port (0
// picks a free port) with project created. Requests must be signed with
// the local credentials (LocalAccessKeyID, LocalAccessKeySecret). The
// returned stop saves the emulator's state after the server stops.
func startMaxCompute(dir string, port int, project string, logger *slog.Logger) (*httpServer, func() error, error) {
	emu, err := odpsemu.New(odpsemu.Options{Dir: dir, Projects: []string{project}, AccessKeyID: LocalAccessKeyID, AccessKeySecret: LocalAccessKeySecret, Logger: logger})
	if err != nil {
		return nil, nil, fmt.Errorf("maxcompute: %w", err)
	}
	srv, err := serveHTTP(maxComputeComponent, port, emu, logger)
	if err != nil {
		_ = emu.Close()
		return nil, nil, err
	}
	return srv, emu.Close, nil
}

// The local stack's access key pair. The OSS fake accepts any key; the
// MaxCompute emulator checks request signatures against this pair. They
// guard nothing and are not secrets.
const (
	LocalAccessKeyID     = "dumpflow"
	LocalAccessKeySecret = "dumpflow-local-secret"
)
