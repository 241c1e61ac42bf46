package connector

import "github.com/dumpflow/dumpflow/transform"

// Duration is a time.Duration that reads and writes as a Go duration string
// ("10s", "1m30s") in YAML and JSON; a bare JSON number is nanoseconds. It
// is transform.Duration: specs and transform steps read units alike.
type Duration = transform.Duration

// ByteSize is a number of bytes that reads as a plain number or with a unit
// ("512KiB", "16MiB", "64MB"; KB/MB/GB are decimal, KiB/MiB/GiB binary). It
// is transform.ByteSize, a flag.Value too.
type ByteSize = transform.ByteSize

// ParseByteSize parses "16MiB", "64MB", "1024" and the like.
func ParseByteSize(s string) (ByteSize, error) { return transform.ParseByteSize(s) }
