// Package maxcompute is the MaxCompute (ODPS) sink: it writes Kafka records
// into one partitioned table through tunnel upload sessions, exactly once,
// and reads tables back for the starter CLI and verify. It talks to the
// service only through the unmodified aliyun-odps-go-sdk, so the same code
// runs against MaxCompute and the local emulator (deploy/localstack/odpsemu).
//
// # Types
//
//   - Sink implements sink.Sink and sink.Preparer. New builds one per
//     connector spec (one odps.Odps and one tunnel.Tunnel, reused); its
//     methods are safe for concurrent use.
//   - EnsureTable loads the table once, creating it with DefaultDDL when it
//     is missing and the spec sets createTable, and checks its columns
//     against mode and format.
//   - ShowTable, ListPartitions, ReadRows and ReadLedger inspect a table
//     (starter table show|partitions|rows, starter verify).
//
// # Table layout (seed 004)
//
// Formats TEXT and BINARY write the default table
//
//	CREATE TABLE t(topic STRING, partition BIGINT, offset BIGINT, key STRING, value STRING) PARTITIONED BY (pt STRING)
//
// (key and value may also be BINARY columns). Mode KEY fills key and leaves
// value NULL, VALUE the reverse, DEFAULT both; a Kafka null key or value is
// NULL. TEXT rejects a key or value that is not valid UTF-8; BINARY writes
// the raw bytes (a MaxCompute STRING holds any bytes). CSV (mode KEY or
// VALUE) splits the key or value on ',' and fills the table's columns by
// index, converting each field to the column's type (STRING, VARCHAR, CHAR,
// BINARY, BIGINT, INT, SMALLINT, TINYINT, DOUBLE, FLOAT, DECIMAL, BOOLEAN,
// DATETIME and TIMESTAMP as "2006-01-02 15:04:05[.fff]" in the spec's time
// zone or RFC 3339, DATE as "2006-01-02"); an empty field is NULL except for
// string types. A wrong field count or a field that does not parse rejects
// the record (sink.RejectError, stage "convert") so it goes to the
// dead-letter topic.
//
// # Partitions
//
// The partition is chosen from the record's Kafka timestamp in the spec's
// time zone (default GMT+08:00; "GMT+hh:mm" or an IANA name). Values:
//
//	DAY     MM-dd-yyyy        11-17-2020
//	HOUR    MM-dd-yyyy HH     11-17-2020 14
//	MINUTE  MM-dd-yyyy HH:mm  11-17-2020 14:05
//
// Everywhere (PartitionOf, sink.Session.Partition, ListPartitions, ReadRows)
// a partition is written unquoted as `show partitions` prints it:
// "pt=11-17-2020 14". That is also the form the tunnel takes (the SDK strips
// quotes from WithPartitionKey); ReadRows accepts the quoted forms too.
//
// # Exactly once
//
// Prepare (its own workflow step) creates one upload session per
// destination partition, with create-partition, and returns the session ids
// for workflow history. Begin re-attaches to them; Add streams rows into
// blocks numbered 0, 1, 2… per session, opening a new block every block
// size (WithBlockSize, default 16MiB) so a batch is never held in memory;
// Commit closes the blocks and commits. Because blocks are a pure function
// of the batch, a retry with the same Prepared re-uploads the same block ids
// (replacing them) and commits once; blocks an earlier attempt left beyond
// this attempt's are emptied first. A session already committed counts as
// done; so does one whose block upload or commit fails because another
// attempt of the same batch (a timed-out activity still running) committed
// it first: after any failed upload or commit the session status is read
// again, and CLOSED means done.
//
// Commit records the range in the ledger table (DefaultLedgerTable) before
// it commits a session: an intent row naming the sessions. Resume, verify
// and the one-writer checks read the ledger; a range is complete once its
// row's sessions are committed.
//
// # Group batches
//
// The Sink is a sink.GroupWriter: a group batch (sink.BatchID.Group) holds
// the ranges of several Kafka partitions of the topic (a workflow loop's,
// up to about 32). Prepare creates one session per destination partition
// for all of them; Begin takes every member's records in Group's order
// (a record of a partition that is not a member fails the batch; a group
// cannot be a re-drive); blocks stay a pure function of the records added,
// so a retry with the same Prepared rewrites the same block ids. Commit
// records one ledger row for the whole group and commits the shared
// sessions; Written.Members counts each member's rows and bytes, in
// Group's order.
//
// Ledger layout. Rows of group batches, and every mark (gap, routed,
// skipped, rewind) since group batches, go to one ledger partition per
// connector and topic:
//
//	connector=<c>/topic=<t>/kafka_partition=group
//
// One row per group batch or mark: kind (data, or the mark's kind),
// start_offset, first_offset and end_offset 0, records the total, target,
// sessions (shared by all members), writer, written_ms, and note a JSON
// object
//
//	{"members":[{"partition":3,"start":0,"first":100,"end":200,"records":97,"epoch":1}, ...],
//	 "transform":"<hash or empty>","reason":"<a mark's reason>"}
//
// (epoch and reason are omitted when empty). Readers expand a row into one
// LedgerEntry per member (its range and records, the row's sessions, Note
// "transform <hash>" for data as single-partition rows have it or the
// mark's reason, Group holding every member). Single-partition batches
// (planned by workflow runs from before group batches) still write their
// own partition, kafka_partition=<p>, as before; re-drive rows keep their
// redrive-<n> partitions. Builds before group batches skip ledger
// partitions whose kafka_partition is not an integer, so they never read
// the group partition.
//
// A partition's ledger is the merge, by time written, of its own ledger
// partition and its entries of the group partition: the writer checks,
// Mark, Resume, ResumeMany and ReadLedgerEntries (verify) all read it so.
// To keep reads few, a group batch reads the last 512 rows of the group
// partition once before its intent and once after it; a member the tail
// holds nothing of has its own ledger partition read (once, before the
// intent) only when the partition exists, which a listing of the ledger
// table's partitions, cached for up to three minutes, tells without a
// download. Once a partition is written in groups its own ledger partition
// only holds older rows, so it is not read while the group rows hold the
// partition. The checks are per member, as for a single batch: another
// writer's range refuses the group (sink.ErrConcurrentWriter naming the
// partition), and a row with exactly these members' ranges and sessions
// is a retry, or a resumed chain finishing an earlier one's group with its
// sessions (not appended again).
//
// Resume reads the group partition's tail (all of it when the tail holds
// nothing of the partition) and the partition's own ledger partition when
// it exists. ResumeMany (sink.BulkResumer) reads the group partition once
// for all partitions, an own ledger partition only when it exists and the
// group rows hold nothing of its partition, and each distinct session's
// state once. When a partition's latest range is a group member whose
// sessions are not all committed, its Pending carries the shared sessions
// (committed ones marked) and Group: the members of that row still pending
// at it (a member a later mark superseded is left out), to be written
// again together, with those sessions, as one group batch.
//
// For the workflow author: an upload session lives 24 hours. When it has
// expired or vanished, Begin and Commit return a sink.PermanentError of type
// SessionExpired (ErrSessionExpired): retrying can never succeed, so the
// workflow must run Prepare again for the same batch and write with the new
// sessions. Nothing of the expired sessions was committed, so this is safe.
//
// # Errors
//
// Bad credentials (AccessDenied), a missing project (NoSuchProject) or table
// (NoSuchTable), a table that does not fit the mode and format
// (SchemaMismatch), an expired session (SessionExpired) and a batch needing
// more than MaxBlocks blocks (TooManyBlocks) are sink.PermanentError.
// Network errors, HTTP 5xx and throttling (FlowExceeded) are returned
// wrapped, for the activity's retry policy. The SDK takes no context:
// cancellation is checked between requests and blocks, and every request is
// bounded by WithHTTPTimeout / WithTunnelTimeout.
//
// # Service limits
//
// From the MaxCompute data transmission service limits (batch tunnel):
//
//	upload session lifetime             24 hours
//	blocks per upload session           20000 (ids 0..19999; MaxBlocks)
//	data per block                      100 GB (MaxBlockSize); 64 MB+ recommended
//	write speed per block               10 MB/s
//	idle HTTP connection                closed after 120 s without data
//	upload sessions created per table   500 per 5 minutes
//	blocks written per table            500 per 5 minutes
//	concurrent session commits / table  32
//	commits per table                   75 per 15 seconds
//	download sessions created per table 200 per 5 minutes
//
// Each batch creates one session per destination partition it touches
// (usually one, two across a time boundary) and one commit each, and writes
// ceil(batch bytes / block size) blocks per session: with the defaults
// (64MiB batches, 16MiB blocks) at most 4. Keep partitions × batches per 5
// minutes × blocks per batch under 500, e.g. by raising batch.maxBytes and
// the block size or the flush interval for busy topics.
//
// A group batch costs the same per destination partition however many
// Kafka partitions it holds. Per flush of one group it costs, on the data
// table, one session, ceil(group bytes / block size) blocks and one commit
// per destination partition; on the ledger table one upload session, one
// block and one commit (its row) and two download sessions (the group
// partition's tail before and after the intent), plus one per member
// without rows in that tail that has an own ledger partition (only on a
// connector's first group batches after single-partition ones). 256 Kafka
// partitions in groups of 32 flushed every 60 s into one destination
// partition are 8 groups: per 5 minutes 40 sessions, 40+ blocks and 40
// commits on the data table, and 40 upload sessions, 40 commits and 80
// download sessions on the ledger table. A single-partition batch reads both
// its own ledger partition and the group partition's tail, before and
// after its intent: up to four download sessions; a mark up to two.
//
// An open block is an HTTP upload that stays open while its rows are
// added, so a batch whose records arrive more than 120 s apart fails and
// is retried.
package maxcompute
