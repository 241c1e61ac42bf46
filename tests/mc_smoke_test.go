package tests

import (
	"testing"
	"time"
)

// TestMaxComputeSmoke dumps a small topic into the emulator with the
// default table and checks the ledger.
func TestMaxComputeSmoke(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, parts, n = "mc-smoke", 3, 2000
	s.createTopic(topic, parts)
	s.produce(topic, parts, n, 64, time.Time{})
	spec := s.mcSpec("mc-smoke", topic, "kafka_smoke")
	s.start(spec, 0)
	s.waitFor(spec.Name, 2*time.Minute, "all records", caughtUp(n))
	s.verifyLedger(spec)
}
