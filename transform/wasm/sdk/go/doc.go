// Package dumpflow writes dumpflow transform functions in Go: a function
// takes one Kafka record and returns zero or more records, or an error, and
// runs as a WebAssembly module in the `function` step of a connector's
// transform chain (the ABI is documented in package
// github.com/dumpflow/dumpflow/transform/wasm).
//
// A function registers its handler from an init function and has an empty
// main:
//
//	package main
//
//	import dumpflow "github.com/dumpflow/dumpflow/transform/wasm/sdk/go"
//
//	func init() { dumpflow.Handle(upper) }
//
//	func main() {}
//
//	func upper(r dumpflow.Record) ([]dumpflow.Record, error) {
//		r.Value = bytes.ToUpper(r.Value)
//		return []dumpflow.Record{r}, nil // keeps the key, headers and timestamp
//	}
//
// and is built as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o upper.wasm .
//
// -buildmode=c-shared (Go 1.24 and later) makes a reactor: the host runs
// the package inits through the module's _initialize export and then calls
// it once per record; main never runs. A module built without it is a WASI
// command, which exits when main returns, and the host refuses it.
//
// Inside the sandbox there is no network, no filesystem unless the step
// lists read-only directories, time.Now reads the current record's
// timestamp, and math/rand and crypto/rand are seeded with fixed values:
// a function's output depends on its input alone. Globals live for one
// batch: each batch gets a fresh instance.
package dumpflow
