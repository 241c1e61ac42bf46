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
//     its metadata (user metadata, MD5) under <Dir>/metadata;
//   - the OSS dialect: x-oss-meta-* user metadata, x-oss-forbid-overwrite
//     (409 FileAlreadyExists), x-oss-hash-crc64ecma on PutObject, GetObject,
//     HeadObject, UploadPart and CompleteMultipartUpload, x-oss-request-id,
//     OSS XML errors, ListObjects / ListObjectsV2 / ListBuckets with OSS's
//     paging, defaults and encoding-type=url, and OSS's 100 KiB minimum
//     multipart part size;
//   - overwrite semantics: a PUT replaces the object and its metadata.
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
//   - writes are serialised and not atomic: a reader can see a partly
//     written object;
//   - multipart uploads in progress live in memory, parts included, and are
//     lost on restart; completed objects persist;
//   - CopyObject and UploadPartCopy answer 501; versioning, ACLs, append,
//     tagging, lifecycle and the rest of OSS are not implemented.
package ossfake
