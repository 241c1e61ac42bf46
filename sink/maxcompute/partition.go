package maxcompute

import (
	"fmt"
	"strings"
	"sync/atomic"
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
	// unit is the granularity in seconds (60, 3600, 86400): the layout's
	// value depends only on the wall clock in loc truncated to it.
	unit  int64
	cache *specCache
}

// specCache remembers recent partition specs by wall-clock unit (see
// partitioner.spec), so that records of the same hour are formatted once,
// not once each. It is direct-mapped and lock-free: concurrent writers of
// one slot may replace each other's entry, which only costs a format.
type specCache struct {
	slots [64]atomic.Pointer[specEntry]
}

type specEntry struct {
	unit int64 // wall-clock seconds in loc / partitioner.unit, floored
	spec string
}

func newPartitioner(mc *connector.MaxComputeSpec) (partitioner, error) {
	var layout string
	var unit int64
	switch strings.ToUpper(mc.Partition) {
	case connector.GranularityDay:
		layout, unit = LayoutDay, 86400
	case connector.GranularityHour, "":
		layout, unit = LayoutHour, 3600
	case connector.GranularityMinute:
		layout, unit = LayoutMinute, 60
	case AnyPartition:
		layout, unit = LayoutHour, 3600 // unused: window loads name their partition
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
	return partitioner{layout: layout, loc: loc, unit: unit, cache: new(specCache)}, nil
}

// value is the partition value of t, e.g. "11-17-2020 14".
func (p partitioner) value(t time.Time) string { return t.In(p.loc).Format(p.layout) }

// spec is the partition spec of t, e.g. "pt=11-17-2020 14". The value is a
// function of the wall clock in p.loc truncated to the granularity (a day,
// hour or minute always starts on a wall-clock multiple of its length,
// whatever the zone's offset), so specs are cached by that truncation: the
// zone offset in effect at t is looked up (cheap, the Location caches its
// current zone), the format runs once per hour of records, not per record.
func (p partitioner) spec(t time.Time) string {
	lt := t.In(p.loc)
	_, off := lt.Zone()
	wall := lt.Unix() + int64(off)
	unit := wall / p.unit
	if wall%p.unit < 0 {
		unit-- // floor for times before 1970
	}
	slot := &p.cache.slots[uint64(unit)%uint64(len(p.cache.slots))]
	if e := slot.Load(); e != nil && e.unit == unit {
		return e.spec
	}
	spec := PartitionSpec(lt.Format(p.layout))
	slot.Store(&specEntry{unit: unit, spec: spec})
	return spec
}

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
