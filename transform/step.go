package transform

import "context"

// Step types: the values of StepSpec.Type.
const (
	StepFilter         = "filter"
	StepSet            = "set"
	StepKeep           = "keep"
	StepDrop           = "drop"
	StepRename         = "rename"
	StepMask           = "mask"
	StepTime           = "time"
	StepExtract        = "extract"
	StepSplit          = "split"
	StepFlatten        = "flatten"
	StepCast           = "cast"
	StepKey            = "key"
	StepValue          = "value"
	StepInsertMetadata = "insertMetadata"
	StepCopyHeaders    = "copyHeaders"
	StepSetHeaders     = "setHeaders"
	StepDropHeaders    = "dropHeaders"
	StepRoute          = "route"
	StepFunction       = "function"
)

// StepSpec is one step of a transform chain as the connector spec holds it
// (the items of `transforms`, in YAML or JSON). Type selects the step; each
// type reads the fields its comment names below and a field another type
// reads is an error, so a misplaced setting never passes silently.
// docs/transforms.md shows every type with an example.
//
// Field paths ("field", "fields", "to", "from", "metadata.*") name a field
// inside the record value: keys separated by '.', so "a.b" is key "b" of
// the object under "a"; a key that holds a '.' is written "a\.b" (and a
// backslash "\\").
//
// Expressions ("if", "expr") are in the expr language
// (https://expr-lang.org) over the record: key, value, headers, topic,
// partition, offset, timestamp; see the package documentation.
type StepSpec struct {
	// Type is the step: filter, set, keep, drop, rename, mask, time,
	// extract, split, flatten, cast, key, value, insertMetadata,
	// copyHeaders, setHeaders, dropHeaders, route or function. Required.
	Type string `json:"type"`
	// Name identifies the step in counts, status and dead-letter headers:
	// letters, digits, '_', '.' and '-', at most 64 characters, unique in
	// the chain. Optional. Default: "<type>#<index>", e.g. "set#2".
	Name string `json:"name,omitempty"`
	// If is a condition (an expression giving a bool). For filter it is the
	// step itself: records for which it is true are kept, the others
	// dropped. For any other step, the step runs only on records for which
	// it is true; the others pass through it unchanged.
	// Required for filter; optional otherwise. Default: every record.
	If string `json:"if,omitempty"`

	// Field is the path of the field the step works on.
	// set, rename, time, extract, split: Required.
	// key, value: the field to take (one of field and expr). Required unless expr is set.
	// flatten: the object to flatten. Optional. Default: the whole value.
	Field string `json:"field,omitempty"`
	// Fields lists field paths.
	// keep: the fields to keep, in the order the output lists them. Required.
	// drop, mask, cast: the fields to drop, mask or cast. Required.
	// setHeaders: the keys (of the object at from) that become headers.
	// Optional. Default: every key of from.
	Fields []string `json:"fields,omitempty"`
	// To is where the result goes.
	// rename: the new path. Required.
	// time, split (without into): the path to write. Optional. Default: field.
	// extract: the object path that receives the groups. Optional. Default: the value itself.
	// copyHeaders: the object path that receives the headers. Optional. Default: the value itself.
	To string `json:"to,omitempty"`
	// From is, for setHeaders, the object path whose keys become headers.
	// Optional. Default: the value itself (then fields is required).
	From string `json:"from,omitempty"`
	// Expr is an expression.
	// set: the field's new value. Required.
	// key, value: the new key or value (one of field and expr). Required unless field is set.
	// route: the folder, a string (see the route rule in docs/transforms.md). Required.
	Expr string `json:"expr,omitempty"`

	// KeepLast is, for mask, how many trailing characters stay visible.
	// Optional. Default: 0 (all masked).
	KeepLast int `json:"keepLast,omitempty"`
	// Char is, for mask, the character that replaces each masked one.
	// Optional. Default: "*".
	Char string `json:"char,omitempty"`
	// Hash is, for mask, "sha256": replace the value by the lowercase hex
	// SHA-256 of its text instead of masking characters (keepLast and char
	// are then not allowed). Optional. Default: "" (mask characters).
	Hash string `json:"hash,omitempty"`

	// Parse is, for time, how the field holds the time: unix, unixMilli,
	// unixMicro, unixNano (a number or numeric string), rfc3339, a Go layout
	// ("2006-01-02 15:04:05") or a strftime format ("%Y-%m-%d %H:%M:%S").
	// Required.
	Parse string `json:"parse,omitempty"`
	// Format is how a time is written, with the same choices as parse.
	// time: Optional. Default: rfc3339.
	// insertMetadata: the timestamp's format. Optional. Default: unixMilli.
	Format string `json:"format,omitempty"`
	// Zone is the time zone for text without one and for formatting: UTC,
	// GMT+08:00 or an IANA name such as Asia/Shanghai (time,
	// insertMetadata). Optional. Default: UTC.
	Zone string `json:"zone,omitempty"`

	// Regex is, for extract, an RE2 regular expression with at least one
	// named group, (?P<name>...); each named group of the first match
	// becomes a field (null when the group took no part). Required.
	Regex string `json:"regex,omitempty"`
	// Separator is, for split, the text to split at (Required), and for
	// flatten the text between joined keys (Optional. Default: ".").
	Separator string `json:"separator,omitempty"`
	// Into is, for split, the fields that receive the parts, in order: the
	// last one receives the rest of the text unsplit, and fields past the
	// last part are set to null. Optional. Default: the field becomes an
	// array of the parts (at to).
	Into []string `json:"into,omitempty"`
	// As is, for cast, the type to cast to: int, float, string or bool.
	// Required.
	As string `json:"as,omitempty"`

	// Metadata is, for insertMetadata, the field path for each record
	// coordinate to insert. At least one is required.
	Metadata *MetadataSpec `json:"metadata,omitempty"`
	// Headers lists header keys.
	// copyHeaders: the headers to copy. Optional. Default: every header.
	// dropHeaders: the headers to remove. Required.
	Headers []string `json:"headers,omitempty"`

	// Function is, for function, the WebAssembly module to run. Required.
	Function *FunctionSpec `json:"function,omitempty"`
}

// MetadataSpec says where insertMetadata writes each record coordinate.
// Each field is a field path. Optional each; at least one is required.
type MetadataSpec struct {
	// Topic receives the topic name (a string). Optional.
	Topic string `json:"topic,omitempty"`
	// Partition receives the partition (a number). Optional.
	Partition string `json:"partition,omitempty"`
	// Offset receives the offset (a number). Optional.
	Offset string `json:"offset,omitempty"`
	// Timestamp receives the record timestamp, written per the step's
	// format and zone (default: unix milliseconds, a number). Optional.
	Timestamp string `json:"timestamp,omitempty"`
}

// FunctionSpec configures a function step: a WebAssembly module run in a
// sandbox (package transform/wasm documents the ABI).
type FunctionSpec struct {
	// Module is the path of the .wasm module on the worker. Required.
	Module string `json:"module"`
	// MemoryLimit caps the module instance's linear memory, in bytes or
	// with a unit ("64MiB"). Optional. Default: DefaultFunctionMemoryLimit.
	MemoryLimit ByteSize `json:"memoryLimit,omitempty"`
	// Timeout bounds one call (one record). A call that runs out of time
	// fails the record. Optional. Default: DefaultFunctionTimeout.
	Timeout Duration `json:"timeout,omitempty"`
	// AllowFS lists host directories the module may read (mounted read-only
	// at the same path). Optional. Default: none (no filesystem).
	AllowFS []string `json:"allowFS,omitempty"`
	// Env sets environment variables for the module. Optional. Default:
	// none.
	Env map[string]string `json:"env,omitempty"`
}

// Function defaults, applied by the loader when the spec leaves them zero.
const (
	DefaultFunctionMemoryLimit ByteSize = 64 << 20
	DefaultFunctionTimeout              = Duration(1e9) // 1s
)

// Function is a compiled function module. A chain compiles it once and asks
// it for a fresh instance per Run (per batch), so no state carries from one
// batch to the next and a retried batch computes the same output. Its
// methods are safe for concurrent use.
type Function interface {
	// NewInstance starts a fresh sandbox.
	NewInstance(ctx context.Context) (FunctionInstance, error)
	// Hash is a content hash of the module, part of the chain's Hash.
	Hash() string
}

// FunctionInstance is one sandbox of a Function, used by one goroutine.
type FunctionInstance interface {
	// Call runs the function on one record: zero or more records out, or
	// an error (the record fails the step). The input must not be
	// modified; the records returned belong to the caller.
	Call(ctx context.Context, in *Record) ([]*Record, error)
	// Close releases the sandbox.
	Close(ctx context.Context) error
}

// FunctionLoader compiles the module of a function step. Package
// transform/wasm provides one.
type FunctionLoader func(spec FunctionSpec) (Function, error)
