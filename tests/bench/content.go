package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
)

var objectName = regexp.MustCompile(`^partition_(\d+)_offset_(\d+)_[0-9a-f]{8}$`)

// checkContent reads every data object the connector wrote, straight from
// the OSS fake's directory, and checks that object partition_<p>_offset_<f>
// holds exactly the values of offsets f, f+1, ... of partition p, one per
// line. It returns the records and bytes (values only) found.
func checkContent(dir string, size int) (records, valueBytes int64, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, err
	}
	want := make([]byte, size)
	for _, e := range entries {
		m := objectName.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			continue
		}
		p, _ := strconv.Atoi(m[1])
		first, _ := strconv.ParseInt(m[2], 10, 64)
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return records, valueBytes, err
		}
		for i := int64(0); len(data) > 0; i++ {
			line, rest, ok := bytes.Cut(data, []byte{'\n'})
			if !ok {
				return records, valueBytes, fmt.Errorf("%s: last line has no newline", e.Name())
			}
			fillValue(want, int32(p), int(first+i))
			if !bytes.Equal(line, want) {
				return records, valueBytes, fmt.Errorf("%s: line %d is %.40q..., want %.40q...", e.Name(), i, line, want)
			}
			records++
			valueBytes += int64(len(line))
			data = rest
		}
	}
	return records, valueBytes, nil
}
