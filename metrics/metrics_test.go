package metrics

import (
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

func gather(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func gauge(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	t.Helper()
next:
	for _, m := range mfs[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if w, ok := labels[l.GetName()]; ok && w != l.GetValue() {
				continue next
			}
		}
		return m.GetGauge().GetValue(), true
	}
	return 0, false
}

// TestExportedNames: Exported lists exactly the series the instruments
// produce once each has a sample.
func TestExportedNames(t *testing.T) {
	m, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := Partition{"c", "t", 0}
	m.Written(p, Batch{Records: 3, Bytes: 30, Objects: 1, Duration: time.Second})
	m.DeadLettered(p, "size", 1)
	m.Routed(p, StageWrite, 2)
	m.Transformed(p, "0", "filter", 3, 2, 1, 0)
	m.Retried(p, "WritePartition")
	m.Observed(p, 0, 5, "")
	var got []string
	for name, mf := range gather(t, m) {
		if !strings.HasPrefix(name, "dumpflow_") {
			continue
		}
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			got = append(got, name+"_bucket", name+"_sum", name+"_count")
			continue
		}
		got = append(got, name)
	}
	want := Exported()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("exported %v, Exported() lists %v", got, want)
	}
}

// TestGauges: lag in records and seconds, the stopped reason, and the TTL.
func TestGauges(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m, err := New(Options{Now: func() time.Time { return now }, GaugeTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	p := Partition{"c", "t", 1}
	l := map[string]string{"partition": "1"}
	m.Observed(p, 10, 50, ReasonPaused)
	m.Oldest(p, 10, now.Add(-90*time.Second))
	now = now.Add(10 * time.Second)
	mfs := gather(t, m)
	if v, _ := gauge(t, mfs, LagRecords, l); v != 40 {
		t.Errorf("lag records %v, want 40", v)
	}
	if v, _ := gauge(t, mfs, LagSeconds, l); v != 100 {
		t.Errorf("lag seconds %v, want 100 (the record at the cursor is 100s old)", v)
	}
	for _, r := range Reasons {
		want := 0.0
		if r == ReasonPaused {
			want = 1
		}
		if v, ok := gauge(t, mfs, Stopped, map[string]string{"partition": "1", "reason": r}); !ok || v != want {
			t.Errorf("stopped{reason=%q} = %v (%v), want %v", r, v, ok, want)
		}
	}
	// A write moves the cursor past the record read: until the next read,
	// the age counts from when this worker saw the lag at the new cursor.
	m.Advanced(p, 30)
	now = now.Add(5 * time.Second)
	mfs = gather(t, m)
	if v, _ := gauge(t, mfs, LagRecords, l); v != 20 {
		t.Errorf("lag records %v, want 20", v)
	}
	if v, _ := gauge(t, mfs, LagSeconds, l); v != 5 {
		t.Errorf("lag seconds %v, want 5", v)
	}
	// Caught up and running.
	m.Observed(p, 50, 50, "")
	mfs = gather(t, m)
	if v, _ := gauge(t, mfs, LagSeconds, l); v != 0 {
		t.Errorf("lag seconds %v, want 0 when caught up", v)
	}
	if v, _ := gauge(t, mfs, Stopped, map[string]string{"reason": ReasonPaused}); v != 0 {
		t.Errorf("stopped{paused} %v after running", v)
	}
	// Not seen for longer than the TTL: gone.
	now = now.Add(2 * time.Minute)
	if _, ok := gauge(t, gather(t, m), LagRecords, l); ok {
		t.Error("a partition not seen for longer than the TTL is still exported")
	}
}

// TestNilMetrics: a nil *Metrics records nothing and does not panic.
func TestNilMetrics(t *testing.T) {
	var m *Metrics
	p := Partition{"c", "t", 0}
	m.Written(p, Batch{})
	m.DeadLettered(p, "size", 1)
	m.Routed(p, StageWrite, 1)
	m.Transformed(p, "0", "filter", 1, 1, 0, 0)
	m.Retried(p, "x")
	m.Observed(p, 0, 1, "")
	m.Advanced(p, 1)
	m.Oldest(p, 0, time.Now())
	if m.TemporalHandler() != nil || m.KafkaHooks() != nil {
		t.Fatal("nil Metrics has handlers")
	}
}
