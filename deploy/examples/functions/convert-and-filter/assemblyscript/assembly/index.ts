// Seed 002's convertAndFilter as a dumpflow function, in AssemblyScript: the
// same function as ../go/main.go, record for record. It turns a trade log
// record into {"timestamp","returnCode","returnError","returnMessage",
// "requestId"} with the timestamp in the producers' time zone (GMT+08:00),
// drops the records whose returnCode is 0, and fails a record that lacks a
// field or whose returnMessage is not "error[message][seqId:id]".

import { Record, readInput, writeOutput, fail } from "./dumpflow";
import { Member, parseObject, find, jsonError, quote, KIND_NUMBER, KIND_STRING } from "./json";

/** The producers' time zone: GMT+08:00, in seconds east of UTC. */
const PRODUCER_ZONE_SECONDS: i64 = 8 * 60 * 60;

/** The ABI version marker; never called. */
export function dumpflow_abi_version_1(): void {}

/** Transforms one record (see the ABI): 0 on success, 1 after fail(). */
export function dumpflow_on_record(size: i32): i32 {
  const rec = readInput(size);
  if (rec === null) return 1;
  const err = convertAndFilter(rec);
  if (err.length > 0) {
    fail(err);
    return 1;
  }
  return 0;
}

/** convertAndFilter writes rec's output, if any, and returns "" or an error. */
function convertAndFilter(rec: Record): string {
  const value = rec.value;
  if (value === null) return "value is not a trade log record: null";
  const members = parseObject(String.UTF8.decode(value));
  if (members === null) return "value is not a trade log record: " + jsonError;

  const returnCode = find(members, "returnCode");
  const timestamp = find(members, "timestamp");
  const returnMessage = find(members, "returnMessage");
  if (returnCode === null) return "returnCode: missing";
  if (timestamp === null) return "timestamp: missing";
  if (returnMessage === null) return "returnMessage: missing";
  if (!integer(returnCode)) return "returnCode " + returnCode.text + ": want an integer";
  const code = parsed;
  if (!integer(timestamp)) return "timestamp " + timestamp.text + ": want an integer";
  const seconds = parsed;
  if (returnMessage.kind != KIND_STRING) return "returnMessage: want a string";
  if (code == 0) return ""; // drop the successes

  // "return has no deal return error[错误: 缺少 **c 参数][seqId:u3Becr8iz*]", split as the seed's Python does.
  const message = returnMessage.text.split("][");
  if (message.length < 2) return "returnMessage " + short(returnMessage.text) + ": want \"error[message][seqId:id]\" (no \"][\")";
  const errorInfo = message[0].split("[");
  if (errorInfo.length < 2) return "returnMessage " + short(returnMessage.text) + ": want \"error[message][seqId:id]\" (no \"[\" before \"][\")";
  const requestId = message[1].replaceAll("]", "").replaceAll("seqId:", "");
  const when = localTime(seconds);
  if (when.length == 0) return "timestamp " + seconds.toString() + ": out of range";

  const out =
    "{\"timestamp\":" + quote(when) +
    ",\"returnCode\":" + code.toString() +
    ",\"returnError\":" + quote(errorInfo[0]) +
    ",\"returnMessage\":" + quote(errorInfo[1]) +
    ",\"requestId\":" + quote(requestId) + "}";
  rec.value = String.UTF8.encode(out);
  if (!writeOutput(rec)) return "write_output refused the record";
  return "";
}

/** The value integer parsed last. */
let parsed: i64 = 0;

/** integer parses m as a JSON integer that fits in 64 bits, into parsed. */
function integer(m: Member): bool {
  if (m.kind != KIND_NUMBER) return false;
  const s = m.text;
  const neg = s.charCodeAt(0) == 0x2d;
  let v: u64 = 0;
  for (let i = neg ? 1 : 0; i < s.length; i++) {
    const d = s.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return false; // a fraction or an exponent
    if (v > (u64.MAX_VALUE - <u64>d) / 10) return false;
    v = v * 10 + <u64>d;
  }
  if (v > (neg ? <u64>i64.MAX_VALUE + 1 : <u64>i64.MAX_VALUE)) return false;
  parsed = neg ? -(<i64>v) : <i64>v;
  return true;
}

/** localTime formats Unix seconds as "2006-01-02 15:04:05" in the producers' zone; "" when out of range. */
function localTime(seconds: i64): string {
  const limit: i64 = 8_640_000_000_000; // seconds either side of the epoch that Date takes
  if (seconds > limit - PRODUCER_ZONE_SECONDS || seconds < -limit) return "";
  const d = new Date((seconds + PRODUCER_ZONE_SECONDS) * 1000);
  return pad(d.getUTCFullYear(), 4) + "-" + pad(d.getUTCMonth() + 1, 2) + "-" + pad(d.getUTCDate(), 2) +
    " " + pad(d.getUTCHours(), 2) + ":" + pad(d.getUTCMinutes(), 2) + ":" + pad(d.getUTCSeconds(), 2);
}

function pad(n: i32, width: i32): string {
  return n < 0 ? n.toString() : n.toString().padStart(width, "0");
}

/** short quotes the start of s for an error message. */
function short(s: string): string {
  return s.length <= 40 ? quote(s) : quote(s.substring(0, 40)) + "…";
}
