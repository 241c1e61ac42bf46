package localstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uioptions "github.com/temporalio/ui-server/v2/server/server_options"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
	"google.golang.org/protobuf/types/known/durationpb"
)

const (
	// Namespace is the Temporal namespace the stack registers.
	Namespace = "default"
	// namespaceRetention keeps closed workflows for a week, so a local run
	// can still be inspected after a weekend.
	namespaceRetention = 7 * 24 * time.Hour
	clusterName        = "active"
)

// temporalServer is the embedded Temporal server, its frontend on a fixed
// or chosen port and every other service on a free port.
type temporalServer struct {
	server   temporal.Server
	logLevel *slog.LevelVar
}

// startTemporal starts Temporal persisted in the SQLite file dbFile, with
// Namespace registered. Its frontend listens on host:port.
func startTemporal(dbFile string, port int, logger *slog.Logger) (*temporalServer, error) {
	sqlConf := &config.SQL{
		PluginName:        sqliteplugin.PluginName,
		DatabaseName:      dbFile,
		ConnectAttributes: map[string]string{"mode": "rwc"},
	}
	if err := ensureSchema(sqlConf); err != nil {
		return nil, err
	}
	ns, err := sqliteschema.NewNamespaceConfig(clusterName, Namespace, false, nil)
	if err != nil {
		return nil, fmt.Errorf("temporal: namespace %s: %w", Namespace, err)
	}
	ns.Detail.Config.Retention = durationpb.New(namespaceRetention)
	// Does nothing if the namespace exists.
	if err := sqliteschema.CreateNamespaces(sqlConf, ns); err != nil {
		return nil, fmt.Errorf("temporal: register namespace %s in %s: %w", Namespace, dbFile, err)
	}

	conf, err := temporalConfig(sqlConf, port)
	if err != nil {
		return nil, err
	}
	hosts := make(map[primitives.ServiceName]static.Hosts)
	for name, svc := range conf.Services {
		hosts[primitives.ServiceName(name)] = static.SingleLocalHost(hostPort(svc.RPC.GRPCPort))
	}
	dynConf := dynamicconfig.StaticClient{
		// As the Temporal CLI's dev server: new search attributes are
		// visible at once, with persistence QPS raised to match.
		dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key():      true,
		dynamicconfig.FrontendPersistenceMaxQPS.Key():                    10000,
		dynamicconfig.HistoryPersistenceMaxQPS.Key():                     45000,
		dynamicconfig.HistoryCacheHostLevelMaxSize.Key():                 8096,
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
		// The scanners clean up after deleted task queues and orphaned
		// history, which a local database can do without. Server.Stop does
		// not stop their SDK workers, which would keep polling after Close.
		dynamicconfig.TaskQueueScannerEnabled.Key(): false,
		dynamicconfig.HistoryScannerEnabled.Key():   false,
	}

	logLevel := new(slog.LevelVar)
	logLevel.Set(componentLevel(logger))
	var srv temporal.Server
	err = recoverFatal(func() error {
		var err error
		srv, err = temporal.NewServer(
			temporal.WithConfig(conf),
			temporal.ForServices(temporal.DefaultServices),
			temporal.WithStaticHosts(hosts),
			temporal.WithLogger(temporalLogger{log: logger, level: logLevel}),
			temporal.WithDynamicConfigClient(dynConf),
		)
		if err != nil {
			return err
		}
		return srv.Start()
	})
	if err != nil {
		if srv != nil {
			_ = srv.Stop()
		}
		return nil, fmt.Errorf("temporal: start server on %s: %w", hostPort(port), err)
	}
	return &temporalServer{server: srv, logLevel: logLevel}, nil
}

// ensureSchema creates the SQLite database with Temporal's schema if it does
// not exist. It is built beside the target and renamed into place, so an
// interrupted first start leaves no half-initialised database behind.
func ensureSchema(sqlConf *config.SQL) error {
	dbFile := sqlConf.DatabaseName
	if _, err := os.Stat(dbFile); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("temporal: stat database: %w", err)
	}

	tmp := *sqlConf
	tmp.DatabaseName = dbFile + ".init"
	if err := os.Remove(tmp.DatabaseName); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("temporal: remove stale %s: %w", tmp.DatabaseName, err)
	}
	if err := sqliteschema.SetupSchema(&tmp); err != nil {
		return fmt.Errorf("temporal: create schema in %s: %w", tmp.DatabaseName, err)
	}
	if err := os.Rename(tmp.DatabaseName, dbFile); err != nil {
		return fmt.Errorf("temporal: create database: %w", err)
	}
	return nil
}

// temporalConfig is the server configuration, as the Temporal CLI's dev
// server builds it: SQLite for persistence and visibility, one history
// shard, archival off, and static hosts instead of ringpop membership.
func temporalConfig(sqlConf *config.SQL, port int) (*config.Config, error) {
	services := make(map[string]config.Service)
	for _, name := range temporal.DefaultServices {
		var rpc config.RPC
		rpc.BindOnIP = host
		if name == string(primitives.FrontendService) {
			httpPort, err := freePort()
			if err != nil {
				return nil, fmt.Errorf("temporal: %w", err)
			}
			rpc.GRPCPort, rpc.HTTPPort = port, httpPort
		} else {
			p, err := freePort()
			if err != nil {
				return nil, fmt.Errorf("temporal: %w", err)
			}
			rpc.GRPCPort = p
		}
		services[name] = config.Service{RPC: rpc}
	}
	frontend := services[string(primitives.FrontendService)].RPC

	conf := &config.Config{
		Global: config.Global{
			Membership: config.Membership{MaxJoinDuration: 30 * time.Second, BroadcastAddress: host},
		},
		Persistence: config.Persistence{
			DefaultStore:     sqliteplugin.PluginName,
			VisibilityStore:  sqliteplugin.PluginName,
			NumHistoryShards: 1,
			DataStores:       map[string]config.DataStore{sqliteplugin.PluginName: {SQL: sqlConf}},
		},
		ClusterMetadata: &cluster.Config{
			FailoverVersionIncrement: 10,
			MasterClusterName:        clusterName,
			CurrentClusterName:       clusterName,
			ClusterInformation: map[string]cluster.ClusterInformation{
				clusterName: {
					Enabled:                true,
					InitialFailoverVersion: 1,
					RPCAddress:             hostPort(frontend.GRPCPort),
					HTTPAddress:            hostPort(frontend.HTTPPort),
				},
			},
		},
		DCRedirectionPolicy: config.DCRedirectionPolicy{Policy: "noop"},
		Services:            services,
		PublicClient:        config.PublicClient{HostPort: hostPort(frontend.GRPCPort)},
	}
	conf.Archival.History.State = "disabled"
	conf.Archival.Visibility.State = "disabled"
	conf.NamespaceDefaults.Archival.History.State = "disabled"
	conf.NamespaceDefaults.Archival.Visibility.State = "disabled"
	return conf, nil
}

// stop stops the server. Its logs are silenced first: shutting down makes
// its internal clients log connection errors, and a few of its background
// workers are never stopped by Server.Stop and go on logging afterwards.
func (t *temporalServer) stop() error {
	t.logLevel.Set(levelOff)
	if err := t.server.Stop(); err != nil {
		return fmt.Errorf("temporal: stop: %w", err)
	}
	return nil
}

// recoverFatal runs fn and returns a fatal log of the Temporal server (see
// temporalLogger.Fatal) as an error instead of crashing.
func recoverFatal(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			fe, ok := r.(fatalError)
			if !ok {
				panic(r)
			}
			err = fe
		}
	}()
	return fn()
}

// uiServer is the Temporal Web UI, assets embedded in ui-server.
type uiServer struct {
	server *uiserver.Server
	done   chan struct{} // closed when Start returns
}

// startUI serves the Web UI on host:port for the frontend at temporalAddr.
// The caller checks the port is free first: ui-server binds it itself and
// exits the process if it cannot.
func startUI(temporalAddr string, port int, logger *slog.Logger) *uiServer {
	u := &uiServer{
		server: uiserver.NewServer(uioptions.WithConfigProvider(&uiconfig.Config{
			Host:                host,
			Port:                port,
			TemporalGRPCAddress: temporalAddr,
			EnableUI:            true,
			DefaultNamespace:    Namespace,
			CORS:                uiconfig.CORS{CookieInsecure: true},
			HideLogs:            true,
		})),
		done: make(chan struct{}),
	}
	go func() {
		defer close(u.done)
		if err := u.server.Start(); err != nil {
			logger.Error("temporal ui: serve", "error", err)
		}
	}()
	return u
}

// uiStartTimeout bounds how long Start waits for the UI to listen.
const uiStartTimeout = 30 * time.Second

// waitReady waits until the UI accepts connections on addr.
func (u *uiServer) waitReady(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, uiStartTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return c.Close()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("temporal ui: wait for %s: %w", addr, context.Cause(ctx))
		case <-u.done:
			return fmt.Errorf("temporal ui: server on %s exited", addr)
		case <-tick.C:
		}
	}
}

func (u *uiServer) stop() {
	u.server.Stop()
	<-u.done
}
