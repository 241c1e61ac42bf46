/*
Package wasm runs the transform chain's `function` step: a WebAssembly module,
written in any language, that takes one record and returns zero or more
records, or an error. It owns the host side of the dumpflow function ABI
(version 1), documented below so that a function can be written in any
language that compiles to WebAssembly, and the runtime that enforces the
step's sandbox: limits on memory and time, no filesystem unless the spec
lists read-only directories, no network, and a deterministic clock and
random source.

Types to know: [Host] compiles modules (once per content hash) and is the
[transform.FunctionLoader] through [Host.Load] or the package's [Load];
[Function] is a compiled module; [Instance] is the fresh sandbox the chain
takes for each batch. Guest helpers: the Go package
github.com/dumpflow/dumpflow/transform/wasm/sdk/go, and the examples in
deploy/examples/functions/ (Go and AssemblyScript).

# What we took from Redpanda Data Transforms

Redpanda's transforms (ABI "redpanda_transform", check_abi_version_3) run a
WASI command module whose main loop blocks in host calls: read_batch_header
and read_next_record copy a batch and then each record (Kafka's wire layout:
varint lengths for key, value and headers) into a buffer the guest owns,
write_record copies an output record out of guest memory, and an import
named after the ABI version (check_abi_version_N) fails the link of a module
built for another version. Their WASI is deliberately inert: no filesystem,
no sockets, stdout and stderr go to the broker's log, environment variables
come from the transform's config, clock_time_get returns the current
record's timestamp, and random_get fills buffers with a constant.

We kept: the host copies bytes in and out so the host never holds a pointer
into guest memory past one host call and the guest owns all of its memory
(no allocator export, no shared buffers); an ABI version in a symbol name so
a mismatch fails at load time with a clear message; environment variables
from the spec; the clock frozen at the current record's timestamp; a
deterministic random source; no filesystem and no network.

We changed: the guest is a WASI reactor called once per record (an export)
instead of a command whose main loop blocks in the host, because dumpflow
pulls records as a stream in Go and wazero cannot suspend a guest inside a
host call without a goroutine per instance; one call gives one record,
which makes "zero or more records out, or an error" a return value instead
of a panic that kills the transform. The layout uses fixed-width
little-endian integers instead of Kafka's zig-zag varints, so that a
function in a language without a Kafka library reads it with plain loads;
and a record carries its topic, partition, offset and timestamp, since
dumpflow functions see one record at a time with no batch header.

# The ABI, version 1

A function is a WebAssembly module (core spec 2.0) that may import WASI
snapshot preview 1 ("wasi_snapshot_preview1") and the host module
"dumpflow", and nothing else.

Exports the module must provide:

	memory                    the module's linear memory (index 0)
	dumpflow_abi_version_1    () -> ()          marker: the module speaks version 1; never called
	dumpflow_on_record        (size i32) -> i32 transforms one record; see "A call"

Optional export:

	_initialize               () -> ()          WASI reactor initialiser; called once, right
	                                            after instantiation, before any record

A module that exports _start and no _initialize (a WASI command, such as a
Go program built without -buildmode=c-shared) is refused: a command exits
when its main returns, after which no record can be given to it.

Imports the host provides, module "dumpflow" (all integers are i32):

	read_input(ptr, len) -> n
	    Copies the current input record, encoded as below, to guest memory
	    [ptr, ptr+len). len must be at least the size given to
	    dumpflow_on_record. Returns the number of bytes copied (that size),
	    or a negative error code, copying nothing. May be called more than
	    once per call.
	write_output(ptr, len) -> code
	    Appends one output record, encoded as below, read from guest memory
	    [ptr, ptr+len). The host copies the bytes before it returns; the
	    guest may reuse the buffer at once. Returns 0, or a negative error
	    code. A malformed record, or more than MaxOutputs records, fails
	    the call whatever dumpflow_on_record returns.
	set_error(ptr, len) -> code
	    Fails the current call with the UTF-8 message at [ptr, ptr+len)
	    (the last message set wins). Returns 0, or a negative error code
	    (the call fails either way).

Error codes returned by the imports:

	-1  buffer too small (read_input: len is less than the record's size)
	-2  [ptr, ptr+len) is not inside the guest's memory
	-3  no call in progress (the import was called during _initialize)
	-4  malformed record (write_output)
	-5  too many output records (write_output: more than MaxOutputs)

# A call

For each record the host calls dumpflow_on_record(size), size being the
length in bytes of the encoded input record. The guest allocates size
bytes in its own memory, calls read_input to fill them, decodes the record,
and calls write_output once per output record, in order. It returns 0 for
success. The call fails, and the record fails the step (the chain sends it
to the dead-letter topic with the message), when the guest returns any
other value, called set_error, wrote a malformed or a 1025th output, trapped
(unreachable, an out-of-bounds access, a Go panic that reached the runtime),
exited (proc_exit), hit the memory limit or ran past the time limit. The
outputs written by a failed call are discarded. The failure's message is
the set_error text (at most MaxErrorMessage bytes are kept), or else a
description of the trap, with the start of what the guest wrote to stderr
during the call.

After a trap, an exit, a memory-limit or a time-limit failure, the instance
is discarded and the next record of the batch gets a new one, initialised
again; a guest-reported error (non-zero return or set_error) keeps the
instance.

# The record layout

Input and output records share one layout. Integers are little-endian
two's complement; lengths count bytes; there is no padding and no alignment.

	u32  topic length T
	T    topic, UTF-8
	i32  partition
	i64  offset
	i64  timestamp, milliseconds since the Unix epoch (UTC); -1 = none
	i32  key length K; -1 = null key (then no key bytes follow)
	K    key
	i32  value length V; -1 = null value (a tombstone)
	V    value
	u32  header count H, then H headers, each:
	       u32  key length, then the key, UTF-8
	       i32  value length (-1 = null), then the value

The record ends exactly after its last header: trailing bytes make an
output malformed. Lengths must fit in the bytes that remain, and an
output's timestamp must be -1 or at least 0.

In an output record the topic, partition and offset are ignored (write an
empty topic and zeros, or echo the input's): every output keeps its input's
topic, partition and offset, which the ledger and the object names depend
on, and its route if a route step ran before. The key, value, headers and
timestamp are the output's own: a guest that wants to keep the input's key
writes it (an output timestamp equal to the input's, to the millisecond,
keeps the input's exact time). So the identity function is write_output of
the input's bytes.

# Memory ownership

The guest owns all of its linear memory. The host writes only into the range
the guest passes to read_input, and reads only the ranges passed to
write_output and set_error, each within that host call. The host keeps no
pointer into guest memory between host calls and exports no allocator.

# The sandbox

  - Memory: each instance may grow its linear memory up to the step's
    memoryLimit (Default: transform.DefaultFunctionMemoryLimit, 64 MiB). A
    module whose initial memory is larger fails to load; a grow past the
    limit fails (memory.grow returns -1), and a guest that then traps or
    exits fails the call with an [ErrMemoryLimit] error.
  - Time: each call, and _initialize, has the step's timeout (Default:
    transform.DefaultFunctionTimeout, 1s). A call still running then is
    stopped (wazero's WithCloseOnContextDone: compiled loops check whether
    the module was closed) and fails with an [ErrTimeLimit] error. That
    check costs: wazero v1.12 leaves compiled code for Go at every loop
    back-edge (wazero issue 2466), which makes loop-heavy guests, Go's
    especially, several times slower (see the package benchmarks).
  - Filesystem: none, unless the spec's allowFS lists host directories;
    each is visible to the guest at the same absolute path, read-only, and
    paths cannot leave it ("..", symbolic links: the mount is an os.Root).
  - Network: none. WASI preview 1 cannot open sockets and the host grants
    no pre-opened ones.
  - Clock: the wall clock reads the current record's timestamp (the Unix
    epoch during _initialize or when the record has none) and does not
    advance within a call; the monotonic clock starts at zero in each
    instance and advances 1ms per reading; sleeping returns at once.
  - Random: random_get returns a fixed pseudo-random stream (ChaCha8 with a
    fixed seed), the same in every instance.
  - Environment: the step's env, in key order; no arguments; stdin is
    empty, stdout is discarded, and the first 4 KiB a call writes to stderr
    are kept for its error message.

So a function's output is a function of the record, the module and the spec:
a retried batch gives byte-identical records. The only exception is the time
limit, which depends on the machine's speed: a function near its limit may
pass on one run and fail on another; give it room.

A fresh instance per batch means that nothing a function keeps in memory
(globals, caches) survives from one batch to the next; within a batch the
instance is reused record after record (unless a call trapped).
*/
package wasm
