// Package format encodes the records of one batch as the body of one OSS
// object: raw values (seed 000, the default), JSON lines, CSV or Parquet,
// optionally compressed with gzip or zstd.
//
// A Spec says which (it sits under "format" in a connector spec); New
// returns an Encoder that takes the batch's records in offset order and
// writes the body to an io.Writer; Spec.Extension is the suffix of the
// object's name and Encoder.ContentType its Content-Type:
//
//	format:
//	  type: parquet          # raw | jsonl | csv | parquet
//	  compression: zstd      # none | gzip | zstd
//	  columns:
//	    - {name: id, type: int64, required: true}
//	    - {name: user, source: user.name}
//	    - {name: at, source: __timestamp__}
//
// # Records the format cannot hold
//
// Write returns a *RejectError (Stage "format") for a record the format
// cannot write faithfully; nothing of that record is written, and the sink
// sends it to the dead-letter topic as it does any other rejection. The
// error names the record's topic, partition and offset, what of it is at
// fault (the value, a header, a column) and the rule, with at most a short
// prefix of the record's bytes. Nothing is ever written so that it reads
// back as something else: no line is split, no cell is altered. Check
// finds the same rejection without writing (what an object holding no
// record yet would say), so that a plan can stop before such a record.
//
// # Fields
//
// Once a transform step parsed a record's value, the record carries it as
// fields (transform.Record.Fields, an ordered JSON object). A record with
// fields is written from them: its value, in every format, is the fields'
// compact JSON (transform.AppendJSON). CSV and Parquet read columns from
// the fields — or, for columns the spec names (Spec.Columns), from the
// value itself when it is a JSON object no step changed (a connector
// without transforms, or one that only filters) — by path: keys joined by '.', a '.' inside a key written "\.", a
// backslash "\\" (the transform steps' path syntax); "user.name" is key
// "name" of the object under key "user".
//
// # raw
//
// Each value, then "\n": byte for byte what the OSS sink wrote before
// formats existed. A null value is an empty line. A value containing "\n"
// or "\r" would read back as several lines; Spec.Newlines says what
// happens: reject (the default) rejects the record; escape writes `\\` for
// a backslash, `\n` for "\n" and `\r` for "\r", which a reader undoes in one
// pass from the left (strings.NewReplacer(`\\`, `\`, `\n`, "\n", `\r`, "\r")).
//
// # jsonl
//
// One JSON object a line, its members always in this order, no spaces:
//
//	{"topic":"orders","partition":3,"offset":7,"timestamp":"2020-07-28T13:51:35.123Z",
//	 "key":"user-1","value":{"id":1},"headers":[{"key":"trace","value":"abc"}]}
//
// The timestamp is RFC 3339 in UTC, to the millisecond. The key and the value
// are held as Spec.Key and Spec.Value say (auto, json, string or base64; see
// Spec.Value). Under auto, a reader gets the record's bytes back so: base64
// when "valueEncoding":"base64" follows; a JSON string's text; null for a
// null value; otherwise the embedded JSON itself, which is the value with
// its insignificant white space removed. The value of a record with fields
// is the fields' JSON, embedded (auto, json) or as text (string, base64).
// Headers are an array, in record order, so repeated keys keep their order;
// a header's value is a JSON string, null for a null value, or base64 with
// "valueEncoding":"base64" in the header's object when it is not valid
// UTF-8. A header key that is not valid UTF-8 rejects the record.
//
// # csv
//
// A header row, then one row a record, written by encoding/csv (RFC 4180
// quoting, "\n" line ends). The columns are Spec.Columns; without them they
// are derived from the first record the object holds: one column per key of
// its fields, in order, or, when it has no fields, the envelope columns
// topic, partition, offset, timestamp, key, value. Under columns derived
// from fields, a later record with a key that is not a column, or without
// fields, is rejected (given columns select what they name and ignore the
// rest). A cell is a string field's text, a number's JSON text, true or
// false, an object's or array's compact JSON, the key's or value's bytes,
// the partition or offset in decimal, or the timestamp as in jsonl; a
// missing or null value is an empty cell (or a rejection, for a required
// column). A cell that is not valid UTF-8, or that holds "\r\n" (which CSV
// readers turn into "\n"), rejects the record. A row of one empty cell is
// written `""`, as an empty line would be skipped. An object without
// records is the header alone, or empty when the columns are derived.
//
// # parquet
//
// One Parquet file written by github.com/parquet-go/parquet-go: a flat
// schema, one column per Column in order, optional unless required. Types
// map to Parquet as string: BYTE_ARRAY (STRING); int64: INT64; double:
// DOUBLE; boolean: BOOLEAN; timestamp: INT64 (TIMESTAMP, MICROS, UTC);
// bytes: BYTE_ARRAY. Without Spec.Columns the schema is derived from the
// first record as for CSV, each column typed by the first value: a string,
// object, array or null makes a string column, a number written as an
// integer (digits only) an int64 one, another number a double one, true or
// false a boolean one; the envelope
// columns are topic (string), partition and offset (int64), timestamp
// (timestamp), all required, and key and value (bytes). A value that does
// not fit its column rejects the record:
//
//   - string takes strings (valid UTF-8), numbers, booleans and objects or
//     arrays (as JSON text), and UTF-8 keys and values;
//   - bytes takes all of those, and any key or value bytes;
//   - int64 takes integers in int64 range (and 1e3 or 5.0, integers that
//     float64 holds exactly, up to 2^53), and
//     __timestamp__ as epoch milliseconds;
//   - double takes numbers within float64 range;
//   - boolean takes true and false;
//   - timestamp takes RFC 3339 strings to the microsecond, integers as
//     epoch milliseconds, and __timestamp__.
//
// A row group holds Spec.RowGroupRows rows, or all of them. Compression
// gzip or zstd is the pages' codec (GZIP, ZSTD); the file itself is not
// wrapped. An object without records is a file without rows when the
// columns are given, and empty when they would be derived.
//
// # Determinism
//
// The same records under the same Spec give the same bytes, on any worker:
// a retried batch rewrites its object identically (the OSS sink compares
// an existing object's CRC-64 to decide it is this batch's). JSON is
// written by hand in a fixed member order; gzip headers carry no name and
// MTIME 0; zstd runs one encoder goroutine at a fixed level; Parquet files
// name "dumpflow" as created_by (parquet-go's default names its version,
// read from the build) and carry no key-value metadata, bloom filters or
// encryption (whose nonces would be random); the column statistics and
// page indexes parquet-go writes depend on the data alone.
package format
