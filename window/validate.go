package window

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/transform"
)

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	topicRE  = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)
	bucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)
	credRE   = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
)

// sampleWindows is how many consecutive scheduled windows Validate
// expands to check that a truncating writer gives each its own partition.
const sampleWindows = 200

// Validate checks a defaulted Spec (call Default first) and returns a
// *connector.ValidationError (Doc "window job spec") listing every
// violation with field, value and rule, or nil.
func (s *Spec) Validate() error {
	v := &validator{}
	v.name(s.Name)
	v.reader(s)
	v.writer(s)
	v.settings(s)
	for _, tv := range transform.Validate(s.Transforms) {
		v.vs = append(v.vs, connector.Violation(tv))
	}
	v.schedule(s)
	if len(v.vs) > 0 {
		return &connector.ValidationError{Doc: DocName, Violations: v.vs}
	}
	return nil
}

type validator struct {
	vs []connector.Violation
}

func (v *validator) add(field, value, rule string) {
	v.vs = append(v.vs, connector.Violation{Field: field, Value: value, Rule: rule})
}

func (v *validator) name(n string) {
	switch {
	case n == "":
		v.add("name", n, "is required")
	case len(n) > 48:
		v.add("name", n, fmt.Sprintf("must be at most 48 characters (has %d)", len(n)))
	case strings.HasPrefix(n, "-"):
		v.add("name", n, "must not start with '-'")
	case !nameRE.MatchString(n):
		v.add("name", n, "may contain only lowercase letters, digits and '-'")
	}
}

func (v *validator) reader(s *Spec) {
	r := &s.Reader
	if len(r.Brokers) == 0 {
		v.add("reader.brokers", "", "needs at least one host:port")
	}
	for i, b := range r.Brokers {
		f := fmt.Sprintf("reader.brokers[%d]", i)
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			v.add(f, b, "must be host:port")
		} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			v.add(f, b, "port must be 1..65535")
		}
	}
	v.topic("reader.topic", r.Topic)
	if sa := r.SASL; sa != nil {
		switch sa.Mechanism {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			v.add("reader.sasl.mechanism", sa.Mechanism, "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
		}
		v.credentials("reader.sasl.credentials", sa.Credentials)
	}

	loc, err := s.Location()
	if err != nil {
		loc = time.UTC // the zone's own violation is reported with it
	}
	begin, bok := v.position("reader.begin", r.Begin, loc)
	end, eok := v.position("reader.end", r.End, loc)
	if eok && end.Kind == KindSeekToLast {
		v.add("reader.end", r.End.String(), "seekToLast is a begin only (the job's committed position, where the previous run ended); for the end use window, seekToEnd, an offset or a datetime")
		eok = false
	}
	if bok && eok {
		switch {
		case begin.Kind == KindOffset && end.Kind == KindOffset && end.Offset < begin.Offset:
			v.add("reader.end", r.End.String(), fmt.Sprintf("must not be before reader.begin (offset %d): the window is [begin, end)", begin.Offset))
		case begin.Kind == KindTime && end.Kind == KindTime && end.Time.Before(begin.Time):
			v.add("reader.end", r.End.String(), fmt.Sprintf("must not be before reader.begin (%s): the window is [begin, end)", begin.Time.Format(time.RFC3339)))
		}
	}

	seen := map[int32]bool{}
	for i, p := range r.Partitions {
		f := fmt.Sprintf("reader.partitions[%d]", i)
		switch {
		case p < 0:
			v.add(f, strconv.Itoa(int(p)), "must be 0 or more")
		case seen[p]:
			v.add(f, strconv.Itoa(int(p)), "is listed twice")
		}
		seen[p] = true
	}
	for _, t := range []struct{ field, typ string }{{"reader.keyType", r.KeyType}, {"reader.valueType", r.ValueType}} {
		if !validType(t.typ) {
			v.add(t.field, t.typ, "must be BYTEARRAY, DOUBLE, FLOAT, INTEGER, LONG, SHORT or STRING")
		}
	}
	if r.ValueType != TypeByteArray && r.ValueType != TypeString && validType(r.ValueType) {
		if len(s.Transforms) > 0 {
			v.add("reader.valueType", r.ValueType, "must be BYTEARRAY or STRING with transforms: they read the value's bytes as text or JSON")
		} else if m := s.Writer.MaxCompute; m != nil {
			for i, c := range m.Columns {
				if isFieldPath(c.Source) {
					v.add("reader.valueType", r.ValueType, fmt.Sprintf("must be BYTEARRAY or STRING when a column reads a JSON path of the value (writer.maxcompute.columns[%d])", i))
					break
				}
			}
		}
	}
	if r.SkipExceedRecord != nil && !*r.SkipExceedRecord {
		v.add("reader.skipExceedRecord", "false", "must be true (or left out): dumpflow reads exactly [begin, end) and never writes records past the end, which belong to the next window")
	}
	_, kvs := checkKafkaConfig(r.KafkaConfig)
	for _, kv := range kvs {
		v.add(fmt.Sprintf("reader.kafkaConfig[%q]", kv.key), kv.value, kv.rule)
	}
}

// position parses one reader bound; ok is false when it does not parse.
func (v *validator) position(field string, p Position, loc *time.Location) (Bound, bool) {
	b, err := p.Parse(loc)
	if err != nil {
		v.add(field, p.String(), err.Error())
		return Bound{}, false
	}
	return b, true
}

func isFieldPath(src string) bool {
	switch src {
	case connector.SourceKey, connector.SourceValue, connector.SourceTopic, connector.SourcePartition,
		connector.SourceOffset, connector.SourceTimestamp, connector.SourceHeaders:
		return false
	}
	return !strings.HasPrefix(src, "'")
}

func (v *validator) writer(s *Spec) {
	w := &s.Writer
	switch {
	case w.MaxCompute == nil && w.OSS == nil:
		v.add("writer", "", "needs exactly one of maxcompute and oss")
	case w.MaxCompute != nil && w.OSS != nil:
		v.add("writer", "maxcompute and oss", "must set exactly one of maxcompute and oss")
	}
	if m := w.MaxCompute; m != nil {
		v.url("writer.maxcompute.endpoint", m.Endpoint, true)
		v.url("writer.maxcompute.tunnelEndpoint", m.TunnelEndpoint, false)
		if !identRE.MatchString(m.Project) {
			v.add("writer.maxcompute.project", m.Project, "must be a MaxCompute identifier: a letter or '_', then letters, digits or '_'")
		}
		if !identRE.MatchString(m.Table) || len(m.Table) > 128 {
			v.add("writer.maxcompute.table", m.Table, "must be a MaxCompute identifier of at most 128 characters: a letter or '_', then letters, digits or '_'")
		}
		v.credentials("writer.maxcompute.credentials", m.Credentials)
		zoneOK := v.zone("writer.maxcompute.timeZone", m.TimeZone)
		partOK := true
		if spec, err := Expand(m.Partition, sampleBegin, sampleEnd, time.UTC); err != nil {
			v.add("writer.maxcompute.partition", m.Partition, err.Error())
			partOK = false
		} else if strings.ContainsAny(spec, "{}") {
			v.add("writer.maxcompute.partition", m.Partition, "writes variables as ${name} (e.g. ${bizdate}), not {name}")
			partOK = false
		} else if _, err := ParsePartition(spec); err != nil {
			v.add("writer.maxcompute.partition", m.Partition, "must be the last-level partition spec, key=value levels separated by ',': "+err.Error())
			partOK = false
		}
		names := map[string]int{}
		for i, c := range m.Columns {
			f := fmt.Sprintf("writer.maxcompute.columns[%d]", i)
			if !identRE.MatchString(c.Name) {
				v.add(f+".name", c.Name, "must be a table column name: a letter or '_', then letters, digits or '_'")
			} else if j, ok := names[strings.ToLower(c.Name)]; ok {
				v.add(f+".name", c.Name, fmt.Sprintf("fills the column writer.maxcompute.columns[%d] already fills (column names are case-insensitive)", j))
			} else {
				names[strings.ToLower(c.Name)] = i
			}
			if err := connector.CheckColumnSource(c.Source); err != nil {
				v.add(f+".source", c.Source, err.Error())
			}
		}
		if partOK && zoneOK && m.Truncate != nil && *m.Truncate {
			v.distinctWindows(s, "writer.maxcompute.partition", m.Partition, m.TimeZone,
				"the same partition %q: with truncate true each load would replace the rows of the one before; use variables that differ for every window (e.g. ${yyyyMMddHH} for an hourly schedule) or set truncate: false to append")
		}
	}
	if o := w.OSS; o != nil {
		v.url("writer.oss.endpoint", o.Endpoint, true)
		if !bucketRE.MatchString(o.Bucket) {
			v.add("writer.oss.bucket", o.Bucket, "must be 3..63 lowercase letters, digits and '-', not starting or ending with '-'")
		}
		v.credentials("writer.oss.credentials", o.Credentials)
		zoneOK := v.zone("writer.oss.timeZone", o.TimeZone)
		if v.prefix("writer.oss.prefix", o.Prefix) && zoneOK {
			v.distinctWindows(s, "writer.oss.prefix", o.Prefix, o.TimeZone,
				"the same prefix %q: each window needs a prefix of its own, where its meta objects record what it wrote; use variables that differ for every window (e.g. ${yyyyMMddHH} for an hourly schedule, or ${begin})")
		}
		if o.Format != nil {
			for _, fv := range o.Format.Validate("writer.oss.format") {
				v.vs = append(v.vs, connector.Violation(fv))
			}
		}
	}
}

// prefix checks an OSS prefix and reports whether it is good.
func (v *validator) prefix(field, p string) bool {
	n := len(v.vs)
	switch {
	case p == "":
		v.add(field, p, "is required (it defaults to <reader.topic>/${begin}_${end} when reader.topic is set)")
		return false
	case strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/"):
		v.add(field, p, "must not start or end with '/'")
	case strings.Contains(p, "//") || strings.Contains(p, ".."):
		v.add(field, p, "must not contain '//' or '..'")
	}
	out, err := Expand(p, sampleBegin, sampleEnd, time.UTC)
	if err != nil {
		v.add(field, p, err.Error())
		return false
	}
	if strings.ContainsAny(out, "{}") {
		v.add(field, p, "writes variables as ${name} (e.g. ${yyyy}), not {name}")
	}
	return len(v.vs) == n
}

// distinctWindows checks that the scheduled windows expand template to
// different destinations (a truncating load replaces its partition's rows;
// an OSS window's meta objects describe its prefix); rule formats the
// destination they share.
func (v *validator) distinctWindows(s *Spec, field, template, zone, rule string) {
	sc := s.Schedule
	if sc == nil {
		return
	}
	sched, err := NewSchedule(sc.Cron, sc.TimeZone)
	if err != nil {
		return // reported under schedule
	}
	loc, err := LoadZone(zone)
	if err != nil {
		return
	}
	type win struct{ begin, end time.Time }
	first := map[string]win{}
	// Windows from the start of 2024, and around every daylight-saving
	// change of 2024 in the schedule's and the writer's zones.
	starts := []time.Time{cronRef}
	for _, l := range []*time.Location{sched.Location(), loc} {
		for _, tr := range zoneTransitions(l, 2024, 2025) {
			starts = append(starts, tr.Add(-48*time.Hour), tr.Add(-3*time.Hour))
		}
	}
	for _, start := range starts {
		b := sched.Next(start)
		for i := 0; i < sampleWindows && !b.IsZero(); i++ {
			e := sched.Next(b)
			if e.IsZero() {
				break
			}
			out, err := Expand(template, b, e, loc)
			if err != nil {
				return
			}
			if w, ok := first[out]; ok && !w.begin.Equal(b) {
				const at = "2006-01-02 15:04 MST"
				v.add(field, template, fmt.Sprintf("gives the windows [%s, %s) and [%s, %s) ",
					w.begin.In(loc).Format(at), w.end.In(loc).Format(at), b.In(loc).Format(at), e.In(loc).Format(at))+fmt.Sprintf(rule, out))
				return
			}
			first[out] = win{b, e}
			b = e
		}
	}
}

func (v *validator) settings(s *Spec) {
	st := &s.Settings
	if st.ErrorLimit.Record < 0 {
		v.add("settings.errorLimit.record", strconv.Itoa(st.ErrorLimit.Record), "must be 0 or more")
	}
	if b := st.Speed.Bytes; b < 0 || (b > 0 && b < 1<<10) {
		v.add("settings.speed.bytes", b.String(), "must be 0 (no cap) or at least 1KiB per second")
	}
	if c := st.Speed.Concurrent; c < 1 || c > 64 {
		v.add("settings.speed.concurrent", strconv.Itoa(c), "must be 1..64")
	}
	v.topic("settings.deadLetterTopic", st.DeadLetterTopic)
	if st.DeadLetterTopic != "" && st.DeadLetterTopic == s.Reader.Topic {
		v.add("settings.deadLetterTopic", st.DeadLetterTopic, "must differ from reader.topic")
	}
}

func (v *validator) schedule(s *Spec) {
	sc := s.Schedule
	if sc == nil {
		return
	}
	cronOK := true
	if err := CheckCron(sc.Cron); err != nil {
		v.add("schedule.cron", sc.Cron, err.Error())
		cronOK = false
	}
	if v.zone("schedule.timeZone", sc.TimeZone) && cronOK {
		if err := CheckSchedule(sc.Cron, sc.TimeZone); err != nil {
			_, rule, _ := strings.Cut(err.Error(), ": ")
			v.add("schedule.cron", sc.Cron, rule)
		}
	}
	if _, err := OverlapPolicy(sc.Overlap); err != nil {
		v.add("schedule.overlap", sc.Overlap, "must be one of "+strings.Join(overlapNames, ", "))
	}
	cw := sc.CatchupWindow.D()
	if cw < MinCatchupWindow {
		v.add("schedule.catchupWindow", cw.String(), "must be at least 10s (Temporal's minimum)")
	} else if cronOK {
		if max, err := MaxCatchupWindow(sc.Cron); err == nil && cw > max {
			v.add("schedule.catchupWindow", cw.String(), fmt.Sprintf("must be at most %s for this cron expression: a catch-up over a longer span could give more windows than the %d a Temporal schedule buffers, and it drops the rest", max, TemporalBufferSize))
		}
	}
	if j := sc.Jitter.D(); j < 0 || j > 24*time.Hour {
		v.add("schedule.jitter", j.String(), "must be 0..24h")
	}
	if d := sc.Delay.D(); d < 0 || d > 24*time.Hour {
		v.add("schedule.delay", d.String(), "must be 0..24h")
	}
}

// zone checks a time zone and reports whether it is good.
func (v *validator) zone(field, z string) bool {
	if _, rule := ianaZone(z); rule != "" {
		v.add(field, z, rule)
		return false
	}
	return true
}

func (v *validator) topic(field, topic string) {
	switch {
	case topic == "":
		v.add(field, topic, "is required")
	case len(topic) > 249:
		v.add(field, topic, "must be at most 249 characters")
	case topic == "." || topic == "..":
		v.add(field, topic, "must not be '.' or '..'")
	case !topicRE.MatchString(topic):
		v.add(field, topic, "may contain only letters, digits, '.', '_' and '-'")
	}
}

func (v *validator) credentials(field, name string) {
	switch {
	case name == "":
		v.add(field, name, "is required: name the credentials the worker resolves (see README, Credentials)")
	case !credRE.MatchString(name):
		v.add(field, name, "must be a credentials name (letters, digits, '_', '.', '-'), never the secret itself")
	}
}

func (v *validator) url(field, raw string, required bool) {
	if raw == "" {
		if required {
			v.add(field, raw, "is required")
		}
		return
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.add(field, raw, "must be an http:// or https:// URL with a host")
	}
}
