package connector

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/dumpflow/dumpflow/transform"
)

// Violation is one broken rule: which field (a dotted path such as
// "sink.oss.bucket" or "kafka.brokers[0]"), what value it had, and the rule.
// Violations of CheckFields (unknown or duplicated keys) have an empty Value.
type Violation struct {
	Field string `json:"field"`
	Value string `json:"value"`
	Rule  string `json:"rule"`
}

func (v Violation) String() string {
	return fmt.Sprintf("%s: %q %s", v.Field, v.Value, v.Rule)
}

// ValidationError lists every violation in a document: for a Spec, those of
// CheckFields (unknown fields) first, then those of Validate.
type ValidationError struct {
	// Doc names the kind of document in the message. Optional. Default:
	// "connector spec".
	Doc        string
	Violations []Violation
}

func (e *ValidationError) Error() string {
	doc := e.Doc
	if doc == "" {
		doc = "connector spec"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid %s (%d problem", doc, len(e.Violations))
	if len(e.Violations) != 1 {
		b.WriteString("s")
	}
	b.WriteString("):")
	for _, v := range e.Violations {
		b.WriteString("\n  - ")
		b.WriteString(v.String())
	}
	return b.String()
}

var (
	nameRE      = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	topicRE     = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)
	identRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	bucketRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)
	credRE      = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
	pathVarRE   = regexp.MustCompile(`\{[^{}]*\}`)
	concurrency = []int{1, 2, 3, 6, 12}
	pathVars    = map[string]bool{"{topic}": true, "{partition}": true, "{yyyy}": true, "{MM}": true, "{dd}": true, "{HH}": true, "{mm}": true, "{key}": true, "{route}": true}
)

// Validate checks a defaulted Spec (call Default first) and returns a
// *ValidationError listing every violation, or nil.
func (s *Spec) Validate() error {
	var vs []Violation
	add := func(field, value, rule string) { vs = append(vs, Violation{field, value, rule}) }

	switch {
	case s.Name == "":
		add("name", s.Name, "is required")
	case len(s.Name) > 48:
		add("name", s.Name, fmt.Sprintf("must be at most 48 characters (has %d)", len(s.Name)))
	case strings.HasPrefix(s.Name, "-"):
		add("name", s.Name, "must not start with '-'")
	case !nameRE.MatchString(s.Name):
		add("name", s.Name, "may contain only lowercase letters, digits and '-'")
	}

	if len(s.Kafka.Brokers) == 0 {
		add("kafka.brokers", "", "needs at least one host:port")
	}
	for i, b := range s.Kafka.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			add(fmt.Sprintf("kafka.brokers[%d]", i), b, "must be host:port")
		} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			add(fmt.Sprintf("kafka.brokers[%d]", i), b, "port must be 1..65535")
		}
	}
	checkTopic(add, "kafka.topic", s.Kafka.Topic, true)
	switch s.Kafka.InitialPosition {
	case "earliest", "latest":
	default:
		add("kafka.initialPosition", s.Kafka.InitialPosition, "must be earliest or latest")
	}
	if s.Name != "" && s.Kafka.Group != s.Group() {
		add("kafka.group", s.Kafka.Group, fmt.Sprintf("must be %s (the group is always connect-<name>)", s.Group()))
	}
	if sa := s.Kafka.SASL; sa != nil {
		switch sa.Mechanism {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			add("kafka.sasl.mechanism", sa.Mechanism, "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
		}
		checkCredentials(add, "kafka.sasl.credentials", sa.Credentials)
	}

	if !contains(concurrency, s.Concurrency) {
		add("concurrency", strconv.Itoa(s.Concurrency), "must be one of 1, 2, 3, 6, 12")
	}
	if s.PartitionsPerWorkflow < 0 || s.PartitionsPerWorkflow > 4096 {
		add("partitionsPerWorkflow", strconv.Itoa(s.PartitionsPerWorkflow), "must be 1..4096 (or left out: 32)")
	}

	if s.Batch.MaxRecords < 1 || s.Batch.MaxRecords > 1_000_000 {
		add("batch.maxRecords", strconv.Itoa(s.Batch.MaxRecords), "must be 1..1000000")
	}
	if s.Batch.MaxBytes < 1<<10 || s.Batch.MaxBytes > 1<<30 {
		add("batch.maxBytes", s.Batch.MaxBytes.String(), "must be 1KiB..1GiB")
	}
	if d := s.Batch.FlushInterval.D(); d < 100*time.Millisecond || d > 24*time.Hour {
		add("batch.flushInterval", d.String(), "must be 100ms..24h")
	}

	switch s.Errors.Tolerance {
	case ToleranceContinue, ToleranceStop:
	default:
		add("errors.tolerance", s.Errors.Tolerance, "must be continue or stop")
	}
	checkTopic(add, "errors.deadLetterTopic", s.Errors.DeadLetterTopic, true)
	checkTopic(add, "errors.errorDataTopic", s.Errors.ErrorDataTopic, true)
	if s.Errors.DeadLetterTopic != "" && s.Errors.DeadLetterTopic == s.Kafka.Topic {
		add("errors.deadLetterTopic", s.Errors.DeadLetterTopic, "must differ from kafka.topic")
	}
	if s.Errors.ErrorDataTopic != "" && s.Errors.ErrorDataTopic == s.Kafka.Topic {
		add("errors.errorDataTopic", s.Errors.ErrorDataTopic, "must differ from kafka.topic")
	}
	if s.Errors.MaxRecordBytes < 1 || s.Errors.MaxRecordBytes > 1<<30 {
		add("errors.maxRecordBytes", s.Errors.MaxRecordBytes.String(), "must be 1..1GiB")
	}

	switch s.Sink.Type {
	case SinkOSS:
		if s.Sink.OSS == nil {
			add("sink.oss", "", "is required when sink.type is oss")
		}
		if s.Sink.MaxCompute != nil {
			add("sink.maxcompute", "set", "must be empty when sink.type is oss")
		}
	case SinkMaxCompute:
		if s.Sink.MaxCompute == nil {
			add("sink.maxcompute", "", "is required when sink.type is maxcompute")
		}
		if s.Sink.OSS != nil {
			add("sink.oss", "set", "must be empty when sink.type is maxcompute")
		}
	default:
		add("sink.type", s.Sink.Type, "must be oss or maxcompute")
	}
	if o := s.Sink.OSS; o != nil {
		checkURL(add, "sink.oss.endpoint", o.Endpoint)
		if !bucketRE.MatchString(o.Bucket) {
			add("sink.oss.bucket", o.Bucket, "must be 3..63 lowercase letters, digits and '-', not starting or ending with '-'")
		}
		checkPath(add, "sink.oss.path", o.Path)
		if _, err := ParseTimeZone(o.TimeZone); err != nil {
			add("sink.oss.timeZone", o.TimeZone, "must be UTC, GMT+hh:mm or an IANA name like Asia/Shanghai")
		}
		checkCredentials(add, "sink.oss.credentials", o.Credentials)
		if o.PartSize < 100<<10 || o.PartSize > 5<<30 {
			add("sink.oss.partSize", o.PartSize.String(), "must be 100KiB..5GiB (OSS multipart limits)")
		}
	}
	if m := s.Sink.MaxCompute; m != nil {
		checkURL(add, "sink.maxcompute.endpoint", m.Endpoint)
		if m.TunnelEndpoint != "" {
			checkURL(add, "sink.maxcompute.tunnelEndpoint", m.TunnelEndpoint)
		}
		if !identRE.MatchString(m.Project) {
			add("sink.maxcompute.project", m.Project, "must be a MaxCompute identifier: a letter or '_', then letters, digits or '_'")
		}
		if !identRE.MatchString(m.Table) || len(m.Table) > 128 {
			add("sink.maxcompute.table", m.Table, "must be a MaxCompute identifier of at most 128 characters: a letter or '_', then letters, digits or '_'")
		}
		checkCredentials(add, "sink.maxcompute.credentials", m.Credentials)
		switch m.Mode {
		case ModeDefault, ModeKey, ModeValue:
		default:
			add("sink.maxcompute.mode", m.Mode, "must be KEY, VALUE or DEFAULT")
		}
		switch m.Format {
		case FormatText, FormatBinary, FormatFields:
		case FormatCSV:
			if m.Mode == ModeDefault {
				add("sink.maxcompute.format", m.Format, "CSV works only with mode KEY or VALUE, not DEFAULT")
			}
		default:
			add("sink.maxcompute.format", m.Format, "must be TEXT, BINARY, CSV or FIELDS")
		}
		switch m.Partition {
		case GranularityDay, GranularityHour, GranularityMinute:
		default:
			add("sink.maxcompute.partition", m.Partition, "must be DAY, HOUR or MINUTE")
		}
		if _, err := ParseTimeZone(m.TimeZone); err != nil {
			add("sink.maxcompute.timeZone", m.TimeZone, "must be GMT+hh:mm (e.g. GMT+08:00) or an IANA name like Asia/Shanghai")
		}
	}

	for _, v := range transform.Validate(s.Transforms) {
		vs = append(vs, Violation(v))
	}
	if o := s.Sink.OSS; o != nil && o.Format != nil {
		for _, v := range o.Format.Validate("sink.oss.format") {
			vs = append(vs, Violation(v))
		}
	}
	if m := s.Sink.MaxCompute; m != nil {
		for i, c := range m.Columns {
			f := fmt.Sprintf("sink.maxcompute.columns[%d]", i)
			if !identRE.MatchString(c.Name) {
				add(f+".name", c.Name, "must be a table column name: a letter or '_', then letters, digits or '_'")
			}
			if err := CheckColumnSource(c.Source); err != nil {
				add(f+".source", c.Source, err.Error())
			}
		}
		if len(m.Columns) > 0 && m.Format != FormatFields {
			add("sink.maxcompute.columns", fmt.Sprint(len(m.Columns)), "is used only with format FIELDS")
		}
	}

	if len(vs) > 0 {
		return &ValidationError{Violations: vs}
	}
	return nil
}

// Column sources of ColumnSpec (seed 003's names, and the topic).
const (
	SourceKey       = "__key__"
	SourceValue     = "__value__"
	SourceTopic     = "__topic__"
	SourcePartition = "__partition__"
	SourceOffset    = "__offset__"
	SourceTimestamp = "__timestamp__"
	SourceHeaders   = "__headers__"
)

// CheckColumnSource checks a ColumnSpec source: a metadata name, a
// constant in single quotes, or a field path.
func CheckColumnSource(src string) error {
	switch src {
	case "", SourceKey, SourceValue, SourceTopic, SourcePartition, SourceOffset, SourceTimestamp, SourceHeaders:
		return nil
	}
	if strings.HasPrefix(src, "'") {
		if len(src) < 2 || !strings.HasSuffix(src, "'") {
			return fmt.Errorf("a constant must be in single quotes, like 'web'")
		}
		return nil
	}
	if strings.HasPrefix(src, "__") && strings.HasSuffix(src, "__") {
		return fmt.Errorf("must be one of __key__, __value__, __topic__, __partition__, __offset__, __timestamp__, __headers__, a 'constant' or a field path")
	}
	if _, err := transform.ParseFieldPath(src); err != nil {
		return fmt.Errorf("the field path %s", err)
	}
	return nil
}

func checkTopic(add func(f, v, r string), field, topic string, required bool) {
	switch {
	case topic == "" && required:
		add(field, topic, "is required")
	case topic == "":
	case len(topic) > 249:
		add(field, topic, "must be at most 249 characters")
	case topic == "." || topic == "..":
		add(field, topic, "must not be '.' or '..'")
	case !topicRE.MatchString(topic):
		add(field, topic, "may contain only letters, digits, '.', '_' and '-'")
	}
}

func checkCredentials(add func(f, v, r string), field, name string) {
	switch {
	case name == "":
		add(field, name, "is required: name the credentials the worker resolves (see README, Credentials)")
	case !credRE.MatchString(name):
		add(field, name, "must be a credentials name (letters, digits, '_', '.', '-'), never the secret itself")
	}
}

func checkURL(add func(f, v, r string), field, raw string) {
	u, err := url.Parse(raw)
	if raw == "" {
		add(field, raw, "is required")
	} else if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add(field, raw, "must be an http:// or https:// URL with a host")
	}
}

func checkPath(add func(f, v, r string), field, p string) {
	if strings.HasPrefix(p, "/") {
		add(field, p, "must not start with '/'")
	}
	for _, v := range pathVarRE.FindAllString(p, -1) {
		inner := v[1 : len(v)-1]
		switch {
		case pathVars[v]:
		case strings.HasPrefix(inner, "value."):
			if _, err := transform.ParseFieldPath(strings.TrimPrefix(inner, "value.")); err != nil {
				add(field, p, fmt.Sprintf("variable %s: the field path %s", v, err))
			}
		case strings.HasPrefix(inner, "header.") && len(inner) > len("header."):
		default:
			add(field, p, fmt.Sprintf("unknown variable %s; use {topic}, {partition}, {yyyy}, {MM}, {dd}, {HH}, {mm}, {key}, {route}, {value.<field path>} or {header.<name>}", v))
		}
	}
	if strings.Contains(p, "//") || strings.Contains(p, "..") {
		add(field, p, "must not contain '//' or '..'")
	}
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// ParseTimeZone reads "UTC", "GMT+08:00", "GMT 08:00" (the seed's spelling,
// where the '+' was lost), "UTC-05:30" or an IANA name like "Asia/Shanghai";
// "Local" and "" are refused. It is transform.ParseTimeZone: specs and
// transform steps read zones alike.
func ParseTimeZone(s string) (*time.Location, error) { return transform.ParseTimeZone(s) }
