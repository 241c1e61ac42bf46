// Package ossfake is a local, file-backed fake of the parts of Alibaba Cloud
// OSS that dumpflow uses. It is NOT OSS: it is an S3 server
// (github.com/johannesboyne/gofakes3 with its s3afero file backend) behind a
// middleware that speaks the OSS dialect the unmodified
// github.com/aliyun/aliyun-oss-go-sdk expects. Use it for local runs and
// tests, never as storage.
//
// The package owns:
//   - the on-disk layout: each object is a plain file,
//     <Dir>/buckets/<bucket>/<key> (see [Server.BucketDir]); gofakes3 keeps
//     its metadata (user metadata, MD5) under <Dir>/metadata; request
//     bodies and multipart parts are spooled under <Dir>/tmp, which must be
//     on the same file system, and renamed into place;
//   - the OSS dialect: x-oss-meta-* user metadata, x-oss-forbid-overwrite
//     (409 FileAlreadyExists), x-oss-hash-crc64ecma on PutObject, GetObject,
//     HeadObject, UploadPart and CompleteMultipartUpload, x-oss-request-id,
//     OSS XML errors, ListObjects / ListObjectsV2 / ListBuckets with OSS's
//     paging, defaults and encoding-type=url, and OSS's 100 KiB minimum
//     multipart part size;
//   - overwrite semantics: a PUT replaces the object and its metadata,
//     atomically: readers see the old object or the new one, never part of
//     one, and x-oss-forbid-overwrite lets exactly one of racing writers
//     win, multipart completions included;
//   - fault injection (see Faults): OSS error answers, throttling, dropped
//     connections, lost answers, delays and a listing anomaly.
//
// Writes are concurrent: PutObject, UploadPart and CompleteMultipartUpload
// are served by the package, not gofakes3. A body is streamed to a spool
// file with no lock held, hashed once (MD5 for the ETag and CRC-64 in the
// same pass); only the rename into place and the metadata write are under
// a short lock. Completion appends the parts' files (copy_file_range) and
// combines their CRC-64s without reading the data again.
//
// Point the SDK at it with path-style addressing; V1 and V4 signatures are
// accepted and not verified:
//
//	client, err := oss.New("http://127.0.0.1:9300", "any", "any", oss.ForcePathStyle(true))
//
// Limits, all of them different from OSS:
//   - keys map to file paths, so "a" and "a/b" cannot both exist, keys
//     ending in "/" are not supported, and files dropped into a bucket
//     directory by hand are not objects (gofakes3 has no metadata for them):
//     listings skip them;
//   - multipart uploads in progress are lost on restart (their parts are
//     spool files, removed by a later server once an hour old); completed
//     objects persist;
//   - a multipart object's ETag is S3's, "<MD5 of the parts' MD5s>-<parts>",
//     on completion, and the same MD5 without "-<parts>" on HEAD, GET and
//     listings;
//   - CopyObject and UploadPartCopy answer 501; versioning, ACLs, append,
//     tagging, lifecycle and the rest of OSS are not implemented;
//   - no throttling of its own: OSS's QPS and bandwidth limits exist only as
//     injected faults; HEAD errors carry no x-oss-err header.
//
// # Faults
//
// Tests attack their clients with injected faults (fault.go). Server.InjectFault
// arms a Fault and returns an *Injection (Remove, Matched, Fired, and Wait(ctx,
// n) to wait until it fired); Options.Faults arms faults on start;
// ClearFaults disarms all. A Match selects requests by operation (Op:
// PutObject, UploadPart, CompleteMultipartUpload, GetObject, HeadObject,
// GetObjectMeta, ListObjectsV2, ...), method, bucket, key prefix, path
// regexp, query parameters present (uploadId, partNumber, x-oss-process,
// ...) and an optional predicate. Skip lets the first matches through, Times
// bounds the firings (0: until removed), ConsumeBody reads the body first,
// Delay waits first. Armed faults are tried in arming order; the first that
// matches acts:
//
//	Respond          an OSS XML error (+ x-oss-request-id, EC/x-oss-ec if set)
//	Drop             close the connection unanswered; nothing stored
//	ServeThenDrop    store as usual, then close unanswered (answer lost)
//	Delay            wait, then serve
//	TruncateListing  the listing page with IsTruncated=true and no
//	                 NextContinuationToken/NextMarker
//
// Constructors, with OSS's documented codes (OSS error pages "HTTP status
// code 500/503/429"):
//
//	InternalError          500 InternalError
//	ServiceUnavailable     503 ServiceUnavailable ("Thread pool is almost full")
//	Throttled              429 QpsLimitExceeded ("Please reduce your request rate.")
//	TotalQPSLimitExceeded  503 TotalQpsLimitExceeded
//	DropConnection, AnswerLost, Slow, TruncatedWithoutToken
//
// For example, to fail the second UploadPart once its body has been sent:
//
//	f := ossfake.ServiceUnavailable(ossfake.Match{Ops: []ossfake.Op{ossfake.OpUploadPart}})
//	f.Skip, f.Times, f.ConsumeBody = 1, 1, true
//	inj := srv.InjectFault(f)
//	defer inj.Remove()
//
// The SDK does not retry (oss/conn.go): an answer is an oss.ServiceError
// with StatusCode, Code, Message, RequestID and Ec; a dropped connection is
// a transport error. Go's HTTP client itself replays a GET or HEAD once on
// a new connection when a reused one is dropped, so a Drop fault on reads
// needs Times >= 2 (or 0) to reach the caller. The server notices a client
// that went away during a Delay only once the request body was read.
package ossfake
