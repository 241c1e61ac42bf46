// Package oss is the OSS sink: it writes each batch of one Kafka partition
// as one object through github.com/aliyun/aliyun-oss-go-sdk.
//
// Layout (seed 000). Under the folder given by the spec's path template:
//
//	partition_<p>_offset_<firstOffset>_<8 chars>   one object per batch; record
//	                                               values separated by '\n'
//	.oss_meta_file_partition_<p>                   one meta object per partition
//	                                               (under the template's static
//	                                               prefix), recording the last
//	                                               committed range
//
// The 8 characters are the first 8 hex digits of a SHA-256 over (connector,
// topic, partition, first, end), so a retried batch writes the same key; the
// write uses x-oss-forbid-overwrite and counts an existing object with the
// same range as done. Each data object carries its range in user metadata
// (x-oss-meta-dumpflow-first, -end, -records, -start, -connector), which is
// what Ledger reads for verify. A batch larger than one part is written with
// multipart upload, parts in parallel.
//
// Record values are written as they are: a value that itself contains '\n'
// reads back as several lines. Batches whose records all went to the
// dead-letter topic still write an (empty) object, so the objects always
// tile the committed offsets.
//
// The main type is Sink; var _ sink.Sink = (*Sink)(nil).
package oss
