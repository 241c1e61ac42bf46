package localstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/dumpflow/dumpflow/deploy/localstack/odpsemu"
)

// maxComputeServer serves the MaxCompute emulator over HTTP: the REST API
// under /api and the tunnel at the root.
type maxComputeServer struct {
	emu  *odpsemu.Server
	http *http.Server
	addr string
	done chan struct{} // closed when Serve returns
}

// startMaxCompute serves the emulator, persisting in dir, on host:port (0
// picks a free port) with project created. Requests must be signed with
// the local credentials (LocalAccessKeyID, LocalAccessKeySecret).
func startMaxCompute(dir string, port int, project string, logger *slog.Logger) (*maxComputeServer, error) {
	emu, err := odpsemu.New(odpsemu.Options{Dir: dir, Projects: []string{project}, AccessKeyID: LocalAccessKeyID, AccessKeySecret: LocalAccessKeySecret, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("maxcompute: %w", err)
	}
	ln, err := net.Listen("tcp", hostPort(port))
	if err != nil {
		_ = emu.Close()
		return nil, listenError(maxComputeComponent, port, err)
	}
	s := &maxComputeServer{
		emu: emu,
		http: &http.Server{
			Handler:           emu,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
		addr: ln.Addr().String(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.http.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			logger.Error("maxcompute: serve", "error", err)
		}
	}()
	return s, nil
}

// stop lets in-flight requests finish until ctx is done, then saves the
// emulator's state.
func (s *maxComputeServer) stop(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("maxcompute: shutdown: %w", err), s.http.Close())
	}
	<-s.done
	return errors.Join(err, s.emu.Close())
}

// The local stack's access key pair. The OSS fake accepts any key; the
// MaxCompute emulator checks request signatures against this pair. They
// guard nothing and are not secrets.
const (
	LocalAccessKeyID     = "dumpflow"
	LocalAccessKeySecret = "dumpflow-local-secret"
)
