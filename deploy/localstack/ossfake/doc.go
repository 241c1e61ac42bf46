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
//     win, multipart completions included.
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
//     tagging, lifecycle and the rest of OSS are not implemented.
package ossfake
