package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The lag and stopped gauges are a partition's state as this worker last
// saw it in one of the partition's activities: FetchRanges (running
// partitions, every plan and every poll), WritePartition (the cursor after
// a write) and RefreshBounds (paused, stopped and data-lost partitions,
// every 30 s). Activities of one connector spread over workers, so a
// partition's gauges may come from several; each worker drops a
// partition's gauges GaugeTTL after it last saw it. Aggregate them with
// max by (connector, topic, partition).

type partKey struct {
	connector, topic string
	partition        int32
}

type partState struct {
	next, hw int64
	// oldestAt is the offset whose timestamp oldestTS is (the record at
	// the cursor, when a worker read it).
	oldestAt int64
	oldestTS time.Time
	// lagSince is when this worker first saw records past the cursor,
	// used while the record at the cursor has not been read.
	lagSince time.Time
	reason   string
	seen     time.Time
}

type gaugeCollector struct {
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	parts map[partKey]*partState

	lagRecords, lagSeconds, stopped *prometheus.Desc
}

func (g *gaugeCollector) state(p Partition) *partState {
	k := partKey{p.Connector, p.Topic, p.Partition}
	s, ok := g.parts[k]
	if !ok {
		s = &partState{next: -1, oldestAt: -1}
		g.parts[k] = s
	}
	s.seen = g.now()
	return s
}

func (s *partState) setCursor(next, hw int64, now time.Time) {
	if next != s.next {
		s.next = next
		s.lagSince = time.Time{}
	}
	if hw >= 0 {
		s.hw = hw
	}
	switch {
	case s.next >= s.hw:
		s.lagSince = time.Time{}
	case s.lagSince.IsZero():
		s.lagSince = now
	}
}

// Observed records a partition's cursor and high watermark (hw < 0: keep
// the last one) and the reason it is parked ("" while it runs).
func (m *Metrics) Observed(p Partition, next, hw int64, reason string) {
	if m == nil {
		return
	}
	g := m.gauges
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.state(p)
	s.setCursor(next, hw, g.now())
	s.reason = reason
}

// Advanced records a partition's cursor after a write.
func (m *Metrics) Advanced(p Partition, next int64) {
	if m == nil {
		return
	}
	g := m.gauges
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.state(p)
	s.setCursor(next, -1, g.now())
}

// Oldest records the timestamp of the record at offset, read at the
// partition's cursor: while the cursor stays there, lag seconds is its age.
func (m *Metrics) Oldest(p Partition, offset int64, ts time.Time) {
	if m == nil || ts.IsZero() {
		return
	}
	g := m.gauges
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.state(p)
	s.oldestAt, s.oldestTS = offset, ts
}

func (g *gaugeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.lagRecords
	ch <- g.lagSeconds
	ch <- g.stopped
}

func (g *gaugeCollector) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	for k, s := range g.parts {
		if now.Sub(s.seen) > g.ttl {
			delete(g.parts, k)
			continue
		}
		if s.next < 0 {
			continue
		}
		p := Partition{k.connector, k.topic, k.partition}
		l := p.labels()
		lag, age := max(0, s.hw-s.next), 0.0
		if lag > 0 {
			switch {
			case s.oldestAt == s.next:
				age = max(0, now.Sub(s.oldestTS).Seconds())
			case !s.lagSince.IsZero():
				age = now.Sub(s.lagSince).Seconds()
			}
		}
		ch <- prometheus.MustNewConstMetric(g.lagRecords, prometheus.GaugeValue, float64(lag), l...)
		ch <- prometheus.MustNewConstMetric(g.lagSeconds, prometheus.GaugeValue, age, l...)
		for _, r := range Reasons {
			v := 0.0
			if s.reason == r {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(g.stopped, prometheus.GaugeValue, v, p.labels(r)...)
		}
	}
}
