// Package tests holds dumpflow's end-to-end tests. They run the real parts
// in-process: a Temporal server (temporaltest, SQLite in memory), a Kafka
// broker speaking the real protocol (franz-go's kfake), the local OSS fake
// that the unmodified OSS SDK talks to, the MaxCompute tunnel emulator, and
// dumpflow workers — in-process, or as a separate process that a test kills
// with SIGKILL. Every test ends by asserting the offset-coverage ledger.
package tests
