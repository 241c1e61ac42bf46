package localstack

import (
	"fmt"
	"log/slog"

	"github.com/dumpflow/dumpflow/deploy/localstack/ossfake"
)

// startOSS serves the OSS fake, storing in dir, on host:port (0 picks a free
// port) with bucket created.
func startOSS(dir string, port int, bucket string, logger *slog.Logger) (*ossfake.Server, *httpServer, error) {
	fake, err := ossfake.New(ossfake.Options{Dir: dir, Buckets: []string{bucket}, Logger: logger})
	if err != nil {
		return nil, nil, fmt.Errorf("oss: %w", err)
	}
	srv, err := serveHTTP(ossComponent, port, fake, logger)
	if err != nil {
		return nil, nil, err
	}
	return fake, srv, nil
}
