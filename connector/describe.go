package connector

import "fmt"

// Destination names where the connector writes, for people: oss://bucket/path
// or maxcompute://project.table. It holds no credentials.
func (s *Spec) Destination() string {
	switch {
	case s.Sink.OSS != nil:
		return fmt.Sprintf("oss://%s/%s", s.Sink.OSS.Bucket, s.Sink.OSS.Path)
	case s.Sink.MaxCompute != nil:
		return fmt.Sprintf("maxcompute://%s.%s", s.Sink.MaxCompute.Project, s.Sink.MaxCompute.Table)
	}
	return s.Sink.Type
}

// Summary is the one line the Temporal Web UI and CLI show for the
// connector's workflow: its topic and destination.
func (s *Spec) Summary() string {
	return fmt.Sprintf("dumpflow connector %s: Kafka topic %s → %s", s.Name, s.Kafka.Topic, s.Destination())
}

// Details is the connector's static description in Markdown, for the Web
// UI's workflow details.
func (s *Spec) Details() string {
	return fmt.Sprintf("**Connector** `%s`\n\n- Kafka topic: `%s` (brokers %v, initial position %s)\n- Destination: `%s` (%s)\n- Concurrency: %d partition loops\n\n"+
		"Operate it with `starter status|pause|resume|offsets|update|delete %s`, or the `status` query, the `pause`, `resume` and `acknowledge-data-loss` signals and the `set-offsets` and `update-spec` updates.",
		s.Name, s.Kafka.Topic, s.Kafka.Brokers, s.Kafka.InitialPosition, s.Destination(), s.Sink.Type, s.Concurrency, s.Name)
}
