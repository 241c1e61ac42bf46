package localstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/dumpflow/dumpflow/deploy/localstack/ossfake"
)

// ossServer serves an ossfake.Server over HTTP.
type ossServer struct {
	fake *ossfake.Server
	http *http.Server
	addr string
	done chan struct{} // closed when Serve returns
}

// startOSS serves the OSS fake, storing in dir, on host:port (0 picks a free
// port) with bucket created.
func startOSS(dir string, port int, bucket string, logger *slog.Logger) (*ossServer, error) {
	fake, err := ossfake.New(ossfake.Options{Dir: dir, Buckets: []string{bucket}, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("oss: %w", err)
	}
	ln, err := net.Listen("tcp", hostPort(port))
	if err != nil {
		return nil, listenError(ossComponent, port, err)
	}
	s := &ossServer{
		fake: fake,
		http: &http.Server{
			Handler:           fake,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
		addr: ln.Addr().String(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.http.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			logger.Error("oss: serve", "error", err)
		}
	}()
	return s, nil
}

// stop lets in-flight requests finish until ctx is done, then closes the
// remaining connections.
func (s *ossServer) stop(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("oss: shutdown: %w", err), s.http.Close())
	}
	<-s.done
	return err
}
