// The dumpflow function ABI, version 1, for AssemblyScript: the imports the
// host provides, and the record layout (see package transform/wasm's doc
// in the dumpflow repository for the contract this file implements).

@external("dumpflow", "read_input")
declare function read_input(ptr: usize, len: i32): i32;

@external("dumpflow", "write_output")
declare function write_output(ptr: usize, len: i32): i32;

@external("dumpflow", "set_error")
declare function set_error(ptr: usize, len: i32): i32;

/** One Kafka record header; a null value is a null header value. */
export class Header {
  constructor(public key: string, public value: ArrayBuffer | null) {}
}

/** One Kafka record, as the host gives it and takes it back. */
export class Record {
  topic: string = "";
  partition: i32 = 0;
  offset: i64 = 0;
  /** Milliseconds since the Unix epoch; -1 when the record has none. */
  timestamp: i64 = -1;
  /** null: a null key. */
  key: ArrayBuffer | null = null;
  /** null: a null value (a tombstone). */
  value: ArrayBuffer | null = null;
  headers: Array<Header> = [];
}

/** The reason decode failed, when it returns null. */
export let decodeError: string = "";

class Reader {
  off: usize = 0;
  ok: bool = true;
  constructor(public ptr: usize, public len: usize) {}

  take(n: usize): usize {
    if (!this.ok || n > this.len - this.off) {
      this.ok = false;
      return 0;
    }
    const at = this.ptr + this.off;
    this.off += n;
    return at;
  }
  u32(): u32 {
    const at = this.take(4);
    return this.ok ? load<u32>(at) : 0;
  }
  i64(): i64 {
    const at = this.take(8);
    return this.ok ? load<i64>(at) : 0;
  }
  bytes(n: usize): ArrayBuffer {
    const at = this.take(n);
    const b = new ArrayBuffer(<i32>n);
    if (this.ok) memory.copy(changetype<usize>(b), at, n);
    return b;
  }
  nullable(): ArrayBuffer | null {
    const n = <i32>this.u32();
    if (!this.ok || n < 0) return null;
    return this.bytes(<usize>n);
  }
}

/** Decodes a record in the ABI's layout from [ptr, ptr+len), or returns null. */
export function decode(ptr: usize, len: usize): Record | null {
  const r = new Reader(ptr, len);
  const rec = new Record();
  rec.topic = String.UTF8.decode(r.bytes(r.u32()));
  rec.partition = <i32>r.u32();
  rec.offset = r.i64();
  rec.timestamp = r.i64();
  rec.key = r.nullable();
  rec.value = r.nullable();
  const n = r.u32();
  if (r.ok && <u64>n * 8 > <u64>(len - r.off)) r.ok = false;
  for (let i: u32 = 0; r.ok && i < n; i++) {
    const key = String.UTF8.decode(r.bytes(r.u32()));
    rec.headers.push(new Header(key, r.nullable()));
  }
  if (!r.ok || r.off != len) {
    decodeError = "input record is malformed at byte " + r.off.toString();
    return null;
  }
  return rec;
}

function nullableSize(b: ArrayBuffer | null): i32 {
  return b === null ? 4 : 4 + b.byteLength;
}

function putNullable(at: usize, b: ArrayBuffer | null): usize {
  if (b === null) {
    store<i32>(at, -1);
    return at + 4;
  }
  store<i32>(at, b.byteLength);
  memory.copy(at + 4, changetype<usize>(b), b.byteLength);
  return at + 4 + b.byteLength;
}

/** Encodes rec in the ABI's layout. */
export function encode(rec: Record): ArrayBuffer {
  const topic = String.UTF8.encode(rec.topic);
  const keys = new Array<ArrayBuffer>(rec.headers.length);
  let size = 4 + topic.byteLength + 4 + 8 + 8 + nullableSize(rec.key) + nullableSize(rec.value) + 4;
  for (let i = 0; i < rec.headers.length; i++) {
    keys[i] = String.UTF8.encode(rec.headers[i].key);
    size += 4 + keys[i].byteLength + nullableSize(rec.headers[i].value);
  }
  const out = new ArrayBuffer(size);
  let at = changetype<usize>(out);
  store<u32>(at, topic.byteLength);
  memory.copy(at + 4, changetype<usize>(topic), topic.byteLength);
  at += 4 + topic.byteLength;
  store<i32>(at, rec.partition);
  store<i64>(at + 4, rec.offset);
  store<i64>(at + 12, rec.timestamp);
  at = putNullable(at + 20, rec.key);
  at = putNullable(at, rec.value);
  store<u32>(at, rec.headers.length);
  at += 4;
  for (let i = 0; i < rec.headers.length; i++) {
    store<u32>(at, keys[i].byteLength);
    memory.copy(at + 4, changetype<usize>(keys[i]), keys[i].byteLength);
    at = putNullable(at + 4 + keys[i].byteLength, rec.headers[i].value);
  }
  return out;
}

/** Reads the current input record; null (and fail called) if it cannot. */
export function readInput(size: i32): Record | null {
  const buf = new ArrayBuffer(size);
  const p = changetype<usize>(buf);
  if (read_input(p, size) != size) {
    fail("read_input failed");
    return null;
  }
  const rec = decode(p, <usize>size);
  if (rec === null) fail(decodeError);
  return rec;
}

/** Writes one output record; false if the host refused it (the call then fails). */
export function writeOutput(rec: Record): bool {
  const b = encode(rec);
  return write_output(changetype<usize>(b), b.byteLength) == 0;
}

/** Fails the current call with message. */
export function fail(message: string): void {
  const b = String.UTF8.encode(message);
  set_error(changetype<usize>(b), b.byteLength);
}

/**
 * abortHandler replaces AssemblyScript's abort (asc --use abort=...), so that
 * the module imports nothing outside the ABI: a failed assertion, a throw or
 * an out-of-memory fails the call with its message and traps.
 */
export function abortHandler(message: string | null, fileName: string | null, line: u32, column: u32): void {
  let text = message === null ? "abort" : message;
  if (fileName !== null) text += " at " + fileName + ":" + line.toString() + ":" + column.toString();
  fail(text);
  unreachable();
}
