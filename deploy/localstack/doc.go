// Package localstack runs, in one process, everything dumpflow needs so that
// it can run and be tested without a cloud account:
//
//   - Temporal: the real server (go.temporal.io/server) persisted in the
//     SQLite file <DataDir>/temporal.db, with the namespace "default"
//     registered, plus the Temporal Web UI (github.com/temporalio/ui-server,
//     whose assets are embedded in that module);
//   - Kafka: a one-broker github.com/twmb/franz-go/pkg/kfake cluster speaking
//     the real Kafka protocol, persisted in <DataDir>/kafka;
//   - OSS: the local fake of package ossfake, an S3 server that speaks enough
//     OSS for the unmodified OSS SDK, persisted in <DataDir>/oss. It is a
//     fake, not OSS.
//
// The package owns starting and stopping these components, their ports and
// their on-disk layout under DataDir. Each component can be replaced by an
// external one (Options.TemporalAddress, KafkaBrokers, OSSEndpoint); the
// stack then starts none of its own. A stack restarted on the same DataDir
// keeps its workflows, topics, records, committed offsets and objects.
//
// MaxCompute is not part of this package.
package localstack
