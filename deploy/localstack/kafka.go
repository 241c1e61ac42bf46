package localstack

import (
	"errors"
	"fmt"
	"log/slog"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

// startKafka starts a one-broker kfake cluster on host:port (0 picks a free
// port), persisted in dir. Topics may be created by metadata requests, as
// with a broker's auto.create.topics.enable.
//
// kfake writes records and group offset commits to dir as they happen and
// fsyncs on segment roll and shutdown; without kfake.SyncWrites a machine
// crash may lose the newest writes, a process crash does not. That is
// Kafka's own default (log.flush.interval.messages unset) and enough here.
func startKafka(dir string, port int, logger *slog.Logger) (*kfake.Cluster, error) {
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.DataDir(dir),
		kfake.AllowAutoTopicCreation(),
		kfake.WithLogger(kafkaLogger{log: logger, level: componentLevel(logger)}),
	)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, listenError(kafkaComponent, port, err)
	}
	if err != nil {
		return nil, fmt.Errorf("kafka: start in %s: %w", dir, err)
	}
	return c, nil
}
