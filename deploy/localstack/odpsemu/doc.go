// Package odpsemu is an EMULATOR of the subset of Alibaba Cloud MaxCompute (ODPS) that
// dumpflow uses: table metadata through the REST API and batch data transfer through the
// Tunnel protocol. It is not MaxCompute. No MaxCompute emulator exists to run locally, so the
// project carries this one for its local stack and tests; it is written against what the
// unmodified github.com/aliyun/aliyun-odps-go-sdk v0.4.24 sends and parses, and every
// protocol detail names the SDK file it mirrors.
//
// # Use
//
//	srv, err := odpsemu.New(odpsemu.Options{Dir: dir, AccessKeyID: ak, AccessKeySecret: sk})
//	http.ListenAndServe(addr, srv) // *Server is an http.Handler
//
//	o := odps.NewOdps(account.NewAliyunAccount(ak, sk), "http://"+addr+"/api") // REST endpoint
//	o.SetDefaultProjectName("dumpflow")
//	tt := tunnel.NewTunnel(o, "http://"+addr) // tunnel endpoint; or tunnel.NewTunnel(o) /
//	                                           // tunnel.NewTunnelFromProject(p) to discover it
//
// One handler serves both: paths under /api are the REST API, all others the tunnel. (Tunnel
// session requests sent below /api are recognized by their parameters and served as tunnel
// requests too.)
//
// The main types are Options and Server, and for attacking clients Fault, Match, Injection and
// QuotaOptions; the files are split by concern: server.go (routing), auth.go (signatures),
// rest.go (REST API), sql.go (the SQL subset), tunnel*.go (sessions), protoc.go (the record
// stream codec and CRCs), compress.go, store.go (state on disk), fault.go (fault injection),
// quota.go (tunnel quotas).
//
// # What it covers
//
//   - Projects: the configured projects exist (Project.Load); the tunnel endpoint is
//     discoverable (GET /projects/<p>/tunnel?service answers with this server's host).
//   - SQL task instances (odps.ExecSQl, Instances.CreateTask, Tables.Create, Tables.Delete,
//     Table.AddPartition(s), Table.DeletePartition(s)): an instance runs synchronously when
//     created, so Instance.WaitForSuccess returns at the first poll; status, task status and
//     task results are served. The SQL subset: CREATE TABLE [IF NOT EXISTS] with column types
//     STRING, BIGINT, DOUBLE, BOOLEAN, DATETIME, BINARY, NOT NULL, COMMENT, PARTITIONED BY
//     (STRING or BIGINT columns) and LIFECYCLE; ALTER TABLE .. ADD [IF NOT EXISTS] PARTITION
//     (..) [PARTITION (..)]..; ALTER TABLE .. DROP [IF EXISTS] PARTITION (..)[, ..]; DROP
//     TABLE [IF EXISTS]; SET (ignored). Anything else fails the instance with an ODPS-style
//     message ("ODPS-0130161:[l,c] Parse exception - ...").
//   - Table metadata: Table.Load/Exists/Schema, Tables.List, partitions listing
//     (Table.GetPartitions, GetPartitionValues, GetPartition), Partition.Load[Extended].
//   - Upload sessions (tunnel.CreateUploadSession with WithPartitionKey, WithCreatePartition,
//     Overwrite and every compressor; AttachToExistedUploadSession; Load): blocks written with
//     OpenRecordWriter are decoded from the protobuf record stream with every record CRC32C,
//     the record count and the stream checksum verified (tunnel/record_protoc_writer.go);
//     a block that fails is rejected and stores nothing; uploading a block id again replaces
//     it; Commit publishes all uploaded blocks to the partition atomically (one state-file
//     rename), appending, or replacing the partition's rows with Overwrite. With
//     WithCreatePartition a missing partition is created when the session is created.
//   - Download sessions (CreateDownloadSession, AttachToExistedDownloadSession, RecordCount,
//     OpenRecordReader with a row range and a column projection), in the protobuf record
//     stream with the CRCs the SDK verifies, compressed as the client's Accept-Encoding asks.
//     A download session reads a snapshot taken at its creation.
//   - Compression in both directions: deflate (zlib framing), x-snappy-framed and zstd —
//     every compressor tunnel/compressor.go offers (the SDK has no LZ4 compressor for the
//     record tunnel).
//   - Signatures: when Options.AccessKeyID is set every request must carry the SDK's
//     "ODPS <ak>:<signature>" (V2, or V4 for accounts with a region); others get 403.
//   - Expiry: upload and download sessions expire Options.SessionTTL after creation.
//   - Persistence: tables, schemas, partitions, committed rows, open sessions and their blocks
//     and instances are kept under Options.Dir and survive Close and New.
//   - Quotas (Options.Quotas, off by default): per table, 500 upload sessions created and 500
//     blocks written per sliding 5 minutes, 75 commits per 15 seconds, 32 commits in progress,
//     200 download sessions created per 5 minutes ("Data Transmission Service overview");
//     past one the tunnel answers 429 FlowExceeded. The windows follow Options.Now, so a test
//     moves a fake clock instead of waiting; QuotaOptions can also lower the limits. Which
//     requests count is not published: the emulator counts those it admits (*).
//
// # Faults
//
// Server.InjectFault arms a Fault and returns an *Injection (Remove, Matched, Fired, and
// Wait(ctx, n) to wait until it fired); Options.Faults arms faults on start; ClearFaults
// disarms all. A Match selects requests by operation (Op: CreateUploadSession,
// GetUploadSession (attach, Load), UploadBlock, CommitUploadSession, CreateDownloadSession,
// GetDownloadSession, DownloadData; REST: GetProject, GetTable, ListPartitions, GetPartition,
// CreateInstance (SQL), ...), method, project, table, path prefix or regexp, query parameters
// present (blockid, partition, overwrite, ...) and an optional predicate. Skip lets the first
// matches through, Times bounds the firings (0: until removed), ConsumeBody reads the body
// first, Delay waits first. Armed faults are tried in arming order, after authentication and
// the concurrent-commit quota; the first that matches acts:
//
//	Respond        an error answer in the surface's body (tunnel JSON, REST XML)
//	Drop           close the connection unanswered; nothing changes
//	ServeThenDrop  serve as usual (commit, store the block), then close unanswered
//	Delay          wait, then serve; a commit holds its concurrency slot meanwhile
//
// Constructors: InternalServerError (500), ServiceUnavailable (503), FlowExceeded (429, the
// tunnel's throttling answer), DropConnection, AnswerLost, CommitAnswerLost ("the commit
// succeeded but the answer is lost"), Slow. For example:
//
//	inj := srv.InjectFault(odpsemu.CommitAnswerLost(odpsemu.Match{Table: "t"}))
//	defer inj.Remove()
//
// What the SDK makes of them: UploadSession.Commit retries a failed commit POST three times
// (sleeping 1s, 2s, 8s), so a transient fault on a commit is ridden out after 1s, and a lost
// answer turns into 409 StatusConflict after ~11s although the rows were committed once. No
// other call the emulator serves retries. Block writers stream through an io.Pipe: use
// ConsumeBody for the answer to reach Close as an HttpError. Go's HTTP client replays a GET
// once on a new connection when a reused one is dropped, so a Drop fault on reads needs
// Times >= 2 (or 0).
//
// # Errors
//
// Tunnel errors are JSON ({"Code","Message","RequestId"}), REST errors XML
// (<Error><Code/><Message/><RequestId/><HostId/></Error>); the SDK parses both into
// restclient.HttpError.ErrorMessage, so ErrorMessage.ErrorCode is the code below. Codes are
// those of MaxCompute's published Tunnel error list and of real REST responses; where the
// service's exact choice for a case is not published, the emulator's choice is marked (*).
//
//	Case                                            HTTP  Code                    Surface
//	project missing (tunnel)                        404   NoSuchProject           tunnel
//	project missing (REST)                          404   NoSuchObject (ODPS-0420111)     REST
//	table missing (tunnel)                          404   NoSuchTable             tunnel
//	table missing (REST Table.Load)                 404   NoSuchObject (ODPS-0130131)     REST
//	partition missing (session without              404   NoSuchPartition         tunnel
//	  create_partition, download, commit)
//	partition missing (REST Partition.Load)         404   NoSuchObject (*)        REST
//	partitioned table, no partition given           400   MissingPartitionSpec    tunnel
//	bad partition spec / spec on flat table         400   InvalidPartitionSpec    tunnel
//	unknown upload / download id                    404   NoSuchUpload / NoSuchDownload
//	block or commit on a committed session          409   StatusConflict          tunnel
//	  ("You cannot complete the specified operation under the current upload or download status.")
//	block, commit or read on an expired session     409   StatusConflict          tunnel
//	  ("The upload session is expired" / "The download session is expired")
//	block does not match the table schema (field    400   MalformedDataStream     tunnel
//	  beyond the column count, wrong wire type for
//	  the column type, truncated stream, no trailer)
//	record CRC, record count or stream checksum     400   CorruptedDataStream (*) tunnel
//	  mismatch; undecodable compressed body
//	block id outside 0..19999                       400   InvalidBlockID          tunnel
//	row range outside the session / count 0         400   InvalidRowRange         tunnel
//	unknown column in a download projection         400   InvalidColumnSpec       tunnel
//	session used with another table/partition       400   InvalidResourceSpec     tunnel
//	Arrow requests, unknown encodings, paths        400   InvalidArgument (*)     tunnel
//	bad or missing signature                        403   SignatureNotMatch       REST
//	bad or missing signature                        403   Unauthorized (*)        tunnel
//	failed SQL (instance task result, not HTTP)     -     ODPS-0130161 parse, ODPS-0130071
//	                                                      semantic, ODPS-0130131 table not found
//	a tunnel quota exceeded (Options.Quotas)        429   FlowExceeded (*)        tunnel
//	injected: InternalServerError                   500   InternalServerError     both
//	injected: ServiceUnavailable                    503   ServiceUnavailable      both
//	injected: FlowExceeded                          429   FlowExceeded            tunnel
//	                                                      (REST: same answer (*))
//
// The tunnel list gives codes and messages but not statuses: 500 and 503 are those of the
// service's common errors, 429 is the tunnel status the Java SDK names "Flow Exceeded (Quota
// Exceeded/Slot Exceeded)" (commons/transport/HttpStatus.java) and retries without limit
// (tunnel/io/TunnelRetryHandler.java). The REST API's throttling answer is not published.
//
// Committing a session twice: the SDK's UploadSession.Commit first reloads the session (the
// emulator answers with status "closed" and the block list, as attaching does), then POSTs the
// commit and gets 409 StatusConflict. The SDK retries a failed commit POST three times with
// sleeps of 1s, 2s and 8s (tunnel/common.go Retry), so that error arrives after about 11s; a
// caller that treats "already committed" as done should match the StatusConflict code (and,
// if it must tell it from expiry, load the session: Status() is UploadStatusClosed).
//
// The block-list check on commit is the SDK's own: Commit compares the caller's block ids with
// the session's UploadedBlockList and fails locally ("blocks server got are ...") before
// sending anything; the commit request carries no block list and the emulator commits every
// block the session holds.
//
// # What it does not cover
//
//   - SQL beyond the subset above: no SELECT, INSERT, CTAS, views, functions, ALTER TABLE
//     other than ADD/DROP PARTITION, data types other than the six listed (DECIMAL, INT,
//     TIMESTAMP, ARRAY, MAP, STRUCT, ...), clustering, TBLPROPERTIES, transactional tables.
//   - Arrow record readers/writers, stream upload sessions (CreateStreamUploadSession),
//     instance result download sessions, Tunnel.Preview, resources, functions, volumes,
//     MaxQA, schemas (a schema path level is accepted and ignored).
//   - ACLs, roles, security policies, billing, project-level and slot quotas, bandwidth
//     limits, the REST API's rate limits (only the tunnel quotas above are emulated),
//     request-date skew checks, STS token validation (STS requests are checked like Aliyun
//     ones), lifecycle-based data expiry, data labels and masking.
//   - Instance logs, logview, summaries, progress details, priorities, async waiting: every
//     instance has finished when CreateTask returns.
//   - Pagination markers (every listing is one page), Tunnel download sharding, async download
//     sessions, the 20000-block and 2-hour upload limits beyond the block id range check, and
//     the date transformation header.
//   - NOT NULL is stored and reported but not enforced on upload.
//   - Exact service messages: codes are matched, message texts are close paraphrases.
package odpsemu
