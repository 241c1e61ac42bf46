package maxcompute

import (
	"fmt"
	"strings"
	"time"

	"github.com/dumpflow/dumpflow/connector"
)

// PartitionColumn is the partition column of the tables this sink writes.
const PartitionColumn = "pt"

// Partition value layouts (Go time layouts) per granularity, in the form the
// seed shows: HOUR "11-17-2020 14", DAY "11-17-2020", MINUTE "11-17-2020 14:05".
const (
	LayoutDay    = "01-02-2006"
	LayoutHour   = "01-02-2006 15"
	LayoutMinute = "01-02-2006 15:04"
)

// partitioner turns a record timestamp into a partition spec.
type partitioner struct {
	layout string
	loc    *time.Location
}

func newPartitioner(mc *connector.MaxComputeSpec) (partitioner, error) {
	var layout string
	switch strings.ToUpper(mc.Partition) {
	case connector.GranularityDay:
		layout = LayoutDay
	case connector.GranularityHour, "":
		layout = LayoutHour
	case connector.GranularityMinute:
		layout = LayoutMinute
	case AnyPartition:
		layout = LayoutHour // unused: window loads name their partition
	default:
		return partitioner{}, fmt.Errorf("sink.maxcompute.partition %q: must be DAY, HOUR or MINUTE", mc.Partition)
	}
	tz := mc.TimeZone
	if tz == "" {
		tz = "GMT+08:00"
	}
	loc, err := connector.ParseTimeZone(tz)
	if err != nil {
		return partitioner{}, fmt.Errorf("sink.maxcompute.timeZone: %w", err)
	}
	return partitioner{layout: layout, loc: loc}, nil
}

// value is the partition value of t, e.g. "11-17-2020 14".
func (p partitioner) value(t time.Time) string { return t.In(p.loc).Format(p.layout) }

// spec is the partition spec of t, e.g. "pt=11-17-2020 14".
func (p partitioner) spec(t time.Time) string { return PartitionSpec(p.value(t)) }

// PartitionSpec returns the partition spec for value in the unquoted form
// the tunnel and `show partitions` use: "pt=11-17-2020 14".
func PartitionSpec(value string) string { return PartitionColumn + "=" + value }

// normalizeSpec accepts "pt=v", "pt='v'" or `pt="v"` and returns the
// unquoted form, checking it names one partition column with a value.
func normalizeSpec(spec string) (string, error) {
	s := strings.NewReplacer("'", "", `"`, "").Replace(strings.TrimSpace(spec))
	for _, part := range strings.Split(s, "/") {
		k, v, ok := strings.Cut(part, "=")
		if !ok || strings.TrimSpace(k) == "" || v == "" {
			return "", fmt.Errorf("partition %q: want column=value, e.g. %s", spec, PartitionSpec("11-17-2020 14"))
		}
	}
	return s, nil
}
