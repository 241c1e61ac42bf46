package localstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Defaults for the fields of Options; DefaultOptions returns them.
const (
	DefaultDataDir           = ".dumpflow-local"
	DefaultTemporalPort      = 7233
	DefaultUIPort            = 8233
	DefaultKafkaPort         = 9092
	DefaultOSSPort           = 9300
	DefaultMaxComputePort    = 9400
	DefaultMaxComputeProject = "dumpflow"
	DefaultOSSBucket         = "dumpflow"
)

// closeTimeout bounds how long Close waits for in-flight OSS requests.
const closeTimeout = 5 * time.Second

// Options configures Start. Ports are on 127.0.0.1; a port of 0 picks a
// free one. The zero Options is valid and picks free ports everywhere;
// DefaultOptions gives the well-known ports a developer types.
type Options struct {
	// DataDir holds temporal.db (SQLite), kafka/ and oss/. Default
	// DefaultDataDir in the working directory; created if missing.
	DataDir string

	// TemporalAddress, if set, is an external Temporal frontend (host:port):
	// no Temporal server and no UI are started.
	TemporalAddress string
	// TemporalPort is the embedded Temporal frontend's gRPC port.
	TemporalPort int
	// UIPort is the Temporal Web UI's port; -1 runs no UI.
	UIPort int

	// KafkaBrokers, if set, is an external Kafka: no kfake is started.
	KafkaBrokers []string
	// KafkaPort is the kfake broker's port.
	KafkaPort int

	// OSSEndpoint, if set, is an external OSS endpoint: no fake is started.
	OSSEndpoint string
	// OSSPort is the OSS fake's port.
	OSSPort int
	// OSSBucket is the bucket dumpflow writes to; created in the fake if
	// missing. Default DefaultOSSBucket.
	OSSBucket string

	// MaxComputeEndpoint, if set, is an external MaxCompute REST endpoint
	// (…/api): no emulator is started. MaxComputeTunnelEndpoint goes with it
	// (empty: ask the service).
	MaxComputeEndpoint       string
	MaxComputeTunnelEndpoint string
	// MaxComputePort is the MaxCompute emulator's port.
	MaxComputePort int
	// MaxComputeProject is created in the emulator if missing. Default
	// DefaultMaxComputeProject.
	MaxComputeProject string

	// Logger receives the stack's logs. The components' own logs are
	// passed on at warn and above, or at every level if Logger is enabled
	// for debug. Default slog.Default().
	Logger *slog.Logger
}

// DefaultOptions returns Options with the well-known ports: Temporal on
// 7233, its UI on 8233, Kafka on 9092 and OSS on 9300.
func DefaultOptions() Options {
	return Options{
		DataDir:           DefaultDataDir,
		TemporalPort:      DefaultTemporalPort,
		UIPort:            DefaultUIPort,
		KafkaPort:         DefaultKafkaPort,
		OSSPort:           DefaultOSSPort,
		OSSBucket:         DefaultOSSBucket,
		MaxComputePort:    DefaultMaxComputePort,
		MaxComputeProject: DefaultMaxComputeProject,
	}
}

// Stack is a running local stack: where to reach each component.
type Stack struct {
	// TemporalAddress is the Temporal frontend's host:port.
	TemporalAddress string
	// Namespace is the Temporal namespace to use.
	Namespace string
	// UIURL is the Temporal Web UI, or "" if none was started.
	UIURL string
	// KafkaBrokers are the Kafka seed brokers.
	KafkaBrokers []string
	// OSSEndpoint is the OSS endpoint URL; use path-style addressing with
	// the fake (oss.ForcePathStyle(true)).
	OSSEndpoint string
	// OSSBucket is the bucket to write to.
	OSSBucket string
	// OSSBucketDir is where the fake keeps the bucket's objects as plain
	// files, or "" with an external OSS.
	OSSBucketDir string
	// MaxComputeEndpoint is the MaxCompute REST endpoint (…/api) and
	// MaxComputeTunnelEndpoint its tunnel; with the emulator both are on
	// the same port.
	MaxComputeEndpoint       string
	MaxComputeTunnelEndpoint string
	// MaxComputeProject is the project to use.
	MaxComputeProject string
	// MaxComputeDir is where the emulator persists, or "" when external.
	MaxComputeDir string

	log      *slog.Logger
	stops    []func() error // in start order
	stopOnce sync.Once
	stopErr  error
}

// Start starts, in this process, every component opts does not point
// elsewhere: the OSS fake, a kfake Kafka broker, the Temporal server on
// SQLite and its Web UI. It returns once all accept connections. ctx bounds
// that wait; Temporal's own start is not interruptible.
//
// If a component fails to start, those already started are stopped and the
// error names the component and its port.
func Start(ctx context.Context, opts Options) (*Stack, error) {
	opts, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	if err := opts.checkPorts(); err != nil {
		return nil, err
	}

	s := &Stack{
		TemporalAddress:          opts.TemporalAddress,
		Namespace:                Namespace,
		KafkaBrokers:             slices.Clone(opts.KafkaBrokers),
		OSSEndpoint:              opts.OSSEndpoint,
		OSSBucket:                opts.OSSBucket,
		MaxComputeEndpoint:       opts.MaxComputeEndpoint,
		MaxComputeTunnelEndpoint: opts.MaxComputeTunnelEndpoint,
		MaxComputeProject:        opts.MaxComputeProject,
		log:                      opts.Logger,
	}
	if err := s.start(ctx, opts); err != nil {
		if cerr := s.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	s.log.Info("local stack started",
		"temporal", s.TemporalAddress, "ui", s.UIURL, "kafka", s.KafkaBrokers,
		"oss", s.OSSEndpoint, "bucket", s.OSSBucket, "maxcompute", s.MaxComputeEndpoint, "data", opts.DataDir)
	return s, nil
}

func (s *Stack) start(ctx context.Context, opts Options) error {
	if s.OSSEndpoint == "" {
		fake, srv, err := startOSS(filepath.Join(opts.DataDir, "oss"), opts.OSSPort, s.OSSBucket, s.log)
		if err != nil {
			return err
		}
		s.onClose(func() error { return stopWithin(srv, closeTimeout) })
		s.OSSEndpoint = "http://" + srv.addr
		s.OSSBucketDir = fake.BucketDir(s.OSSBucket)
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	if s.MaxComputeEndpoint == "" {
		dir := filepath.Join(opts.DataDir, "maxcompute")
		srv, save, err := startMaxCompute(dir, opts.MaxComputePort, s.MaxComputeProject, s.log)
		if err != nil {
			return err
		}
		s.onClose(func() error { return errors.Join(stopWithin(srv, closeTimeout), save()) })
		s.MaxComputeEndpoint = "http://" + srv.addr + "/api"
		s.MaxComputeTunnelEndpoint = "http://" + srv.addr
		s.MaxComputeDir = dir
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	if len(s.KafkaBrokers) == 0 {
		kafka, err := startKafka(filepath.Join(opts.DataDir, "kafka"), opts.KafkaPort, s.log)
		if err != nil {
			return err
		}
		s.onClose(func() error { kafka.Close(); return nil })
		s.KafkaBrokers = kafka.ListenAddrs()
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	if s.TemporalAddress != "" {
		return nil
	}
	temporal, err := startTemporal(filepath.Join(opts.DataDir, "temporal.db"), opts.TemporalPort, s.log)
	if err != nil {
		return err
	}
	s.onClose(temporal.stop)
	s.TemporalAddress = hostPort(opts.TemporalPort)

	if opts.UIPort < 0 {
		return nil
	}
	ui := startUI(s.TemporalAddress, opts.UIPort, s.log)
	s.onClose(func() error { ui.stop(); return nil })
	s.UIURL = "http://" + hostPort(opts.UIPort)
	return ui.waitReady(ctx, hostPort(opts.UIPort))
}

// onClose registers stop to run when the stack closes.
func (s *Stack) onClose(stop func() error) { s.stops = append(s.stops, stop) }

// Close stops the components in reverse order of start. It is safe to call
// more than once; later calls return the first call's result.
func (s *Stack) Close() error {
	s.stopOnce.Do(func() {
		var errs []error
		for _, stop := range slices.Backward(s.stops) {
			errs = append(errs, stop())
		}
		s.stopErr = errors.Join(errs...)
		s.log.Info("local stack stopped")
	})
	return s.stopErr
}

// resolve applies defaults and picks free ports for the components that
// bind their own ports.
func (o Options) resolve() (Options, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.OSSBucket == "" {
		o.OSSBucket = DefaultOSSBucket
	}
	if o.MaxComputeProject == "" {
		o.MaxComputeProject = DefaultMaxComputeProject
	}
	if o.DataDir == "" {
		o.DataDir = DefaultDataDir
	}
	dir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return o, fmt.Errorf("localstack: data dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return o, fmt.Errorf("localstack: data dir: %w", err)
	}
	o.DataDir = dir

	if o.TemporalAddress != "" {
		return o, nil
	}
	// Temporal and ui-server take a port number, not a listener.
	for _, p := range []*int{&o.TemporalPort, &o.UIPort} {
		if *p == 0 {
			if *p, err = freePort(); err != nil {
				return o, fmt.Errorf("localstack: %w", err)
			}
		}
	}
	return o, nil
}

// checkPorts fails early, naming the component, if a chosen port is taken.
func (o Options) checkPorts() error {
	type use struct {
		c    component
		port int
	}
	var uses []use
	if o.TemporalAddress == "" {
		uses = append(uses, use{temporalComponent, o.TemporalPort})
		if o.UIPort >= 0 {
			uses = append(uses, use{uiComponent, o.UIPort})
		}
	}
	if len(o.KafkaBrokers) == 0 && o.KafkaPort != 0 {
		uses = append(uses, use{kafkaComponent, o.KafkaPort})
	}
	if o.OSSEndpoint == "" && o.OSSPort != 0 {
		uses = append(uses, use{ossComponent, o.OSSPort})
	}
	if o.MaxComputeEndpoint == "" && o.MaxComputePort != 0 {
		uses = append(uses, use{maxComputeComponent, o.MaxComputePort})
	}
	seen := make(map[int]string)
	for _, u := range uses {
		if other, dup := seen[u.port]; dup {
			return fmt.Errorf("%s: port %d is also set for %s", u.c.name, u.port, other)
		}
		seen[u.port] = u.c.name
		if err := checkFree(u.c, u.port); err != nil {
			return err
		}
	}
	return nil
}

// stopWithin stops srv, giving in-flight requests up to d.
func stopWithin(srv *httpServer, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return srv.stop(ctx)
}
