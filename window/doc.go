// Package window owns the window job spec: the typed document (YAML or JSON)
// that describes a batch load of one time window of a Kafka topic into one
// MaxCompute partition or one OSS prefix (seed 003's DataWorks Kafka Reader
// → MaxCompute Writer, scheduled by cron), its defaults, and Validate, which
// reports every violation at once with field, value and rule.
//
// It also owns the pure rules a window load and its schedule run on, so
// that the starter, the worker and workflow code agree:
//
//   - Position: a reader bound (begin, end) as written — an offset, a
//     datetime, seekToBeginning, seekToLast, seekToEnd or the run's window —
//     and Position.Parse, which reads it in a time zone.
//   - Expand: the window variables (${bizdate}, ${yyyyMMddHH}, ${begin}, …)
//     of a MaxCompute partition spec or an OSS prefix.
//   - KafkaConfigKeys: the kafkaConfig keys dumpflow maps to franz-go options
//     (ReaderSpec.KafkaOptions); any other key is a violation.
//   - Decode: how keyType and valueType read a key's or value's bytes.
//   - Schedules: CheckCron (the cron subset that robfig/cron/v3 and the
//     Temporal server read the same way), CheckSchedule (which also refuses
//     what the server fires irregularly around a daylight-saving change),
//     Schedule with Next, Previous and Window (fire times computed with the
//     server's own arithmetic, see calendar.go), NextFireTimes,
//     PreviousFireTime, IANAZone, OverlapPolicy and MaxCatchupWindow.
//
// # The window of a run
//
// A scheduled run's window is [previous fire time, nominal time): the
// nominal time is the run's TemporalScheduledStartTime (the fire time
// before jitter) and the previous fire time is computed from the cron
// expression (PreviousFireTime), not remembered. A run that starts late,
// is retried or is re-run therefore loads the same window, and consecutive
// fire times give windows that tile time with no gap and no overlap.
// A run started by hand takes its window from --from and --to.
//
// # Reading a spec
//
// Parse and Load read YAML or JSON; ParseJSON reads the JSON a workflow
// receives. All three decode strictly (connector.CheckFields: unknown keys,
// keys in the wrong letter case and keys given twice are violations), fill
// in defaults and validate, and return every problem in one
// *connector.ValidationError whose Doc is "window job spec".
//
// Apart from Load, which reads a file, nothing in this package does I/O
// other than reading time zone data (once per zone and process, see
// LoadZone), reads the clock or keeps other state, so workflow code may
// call ParseJSON, Default, Validate, Expand, PreviousFireTime and
// Schedule.Window.
package window
