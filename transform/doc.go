// Package transform owns the record model that flows from Kafka to a sink
// and the transform chain that cleans, filters, reshapes and routes records
// on the way. A Record is one Kafka record with its coordinates; it never
// enters workflow history.
//
// # The chain
//
// A connector spec lists transform steps (StepSpec, documented with an
// example each in docs/transforms.md). Compile checks them (Validate gives
// every violation with its field, value and rule, an expression's with the
// compiler's message), compiles each expression, regex and time layout
// once, and loads function modules through Options.Functions. The Chain it
// returns is immutable and shared; each batch runs it through its own Run:
//
//	run, err := chain.Begin(ctx) // fresh function instances for the batch
//	defer run.Close(ctx)
//	for _, rec := range batch {
//		out, err := run.Apply(ctx, rec) // 0..n records, or a *StepError
//		...
//	}
//	counts := run.Counts() // per step: in, out, dropped, failed
//
// A record that fails a step gives a *StepError naming the step; the caller
// sends the original record to the dead-letter topic. Apply never modifies
// its input: a record no step changed comes out as the same *Record with
// the same Value bytes, and an empty chain costs nothing. A changed value is
// re-encoded from its fields (Record.Fields): keys in their original order,
// new keys appended, numbers keeping their original text unless a step
// changed them, no HTML escaping.
//
// # Determinism
//
// The same records and spec give byte-identical output on every run and
// every machine, so a retried batch rewrites the same objects and rows:
// expressions have no clock (expr's now, date and timezone built-ins are
// disabled, the record timestamp is a number), no randomness, no machine
// time zone (zones are named in the spec; "Local" is refused), and no map
// iteration order (keys, values and toPairs are replaced by sorted
// versions; maps an expression builds are encoded in sorted key order).
// Function steps get a fresh sandbox per Run. Chain.Hash identifies the
// spec and modules, for the objects' and sessions' metadata.
//
// # Expressions
//
// Expressions use github.com/expr-lang/expr (v1.17): it is pure Go (no
// cgo, nothing to install on workers), compiles an expression once to a
// program that a reusable VM runs without re-parsing, type-checks against a
// typed environment at compile time (so "valeu.x" or "topic + 1" fail
// validation, not records), has no loops or side effects (every expression
// terminates, and a memory budget bounds it), and lets individual built-ins
// be disabled and replaced. cel-go was the alternative: comparable
// guarantees, but a heavier protobuf-based runtime and a syntax less
// familiar to the data engineers who write these specs.
//
// The environment is one record:
//
//	key        string             the key ("" for a null key)
//	value      any                the value parsed as JSON when it is JSON
//	                              (objects are maps; numbers int when whole
//	                              and within int64, else float64), else the
//	                              value as a string; nil for a null value
//	headers    map[string]string  header values by key (the last of a
//	                              repeated key)
//	topic      string
//	partition  int
//	offset     int
//	timestamp  int                the record timestamp, unix milliseconds
//
// Besides expr's built-ins (string, math, array and predicate functions),
// expressions can call the deterministic helpers parseTime, formatTime,
// regexFind, regexFindAll, regexReplace, regexSubmatch, sha256, and the
// sorted keys, values and toPairs (docs/transforms.md lists them).
//
// # Main types
//
//   - StepSpec, FunctionSpec: the spec of one step.
//   - Chain, Run, StepCounts, StepError: compiled chain, a batch's run.
//   - Function, FunctionInstance, FunctionLoader: the function step's
//     contract with package transform/wasm.
//   - Object: an ordered JSON object (ParseJSON, AppendJSON encode and
//     decode the JSON model it belongs to).
//   - CheckRoute: the rule a route step's folder must pass.
package transform
