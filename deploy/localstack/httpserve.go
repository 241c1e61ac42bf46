package localstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// httpServer serves one component's http.Handler on a local port.
type httpServer struct {
	name string
	http *http.Server
	addr string
	done chan struct{} // closed when Serve returns
}

// serveHTTP listens on host:port (0 picks a free port) and serves h.
func serveHTTP(c component, port int, h http.Handler, logger *slog.Logger) (*httpServer, error) {
	ln, err := net.Listen("tcp", hostPort(port))
	if err != nil {
		return nil, listenError(c, port, err)
	}
	s := &httpServer{
		name: c.name,
		http: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
		addr: ln.Addr().String(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.http.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			logger.Error(c.name+": serve", "error", err)
		}
	}()
	return s, nil
}

// stop lets in-flight requests finish until ctx is done, then closes the
// remaining connections.
func (s *httpServer) stop(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("%s: shutdown: %w", s.name, err), s.http.Close())
	}
	<-s.done
	return err
}
