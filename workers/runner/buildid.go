package runner

import (
	"fmt"
	"os"
	"runtime/debug"
	"strings"
)

// buildID names this build for Temporal (worker.SetBinaryChecksum: the
// build id of each workflow task in history, BuildIds in the Web UI):
// "dumpflow@<module version>" for a released module, or
// "dumpflow@<commit>[-dirty]" for a build from a git checkout. Set, it
// also spares the SDK from hashing the worker's own executable when a
// worker starts (its default id is an MD5 of the binary: 0.13 CPU-s for
// the 66 MB worker). A build that carries neither (go run, -buildvcs=false,
// tests) is named by its executable's size and modification time,
// "dumpflow@devel-<size>-<mtime>", which os.Stat gives without reading it;
// only when that fails is it empty and the SDK hashes the binary.
func buildID(info *debug.BuildInfo, ok bool) string {
	if id := releaseID(info, ok); id != "" {
		return id
	}
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	fi, err := os.Stat(exe)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("dumpflow@devel-%d-%s", fi.Size(), fi.ModTime().UTC().Format("20060102T150405Z"))
}

// releaseID is buildID from the build's module version or git commit.
func releaseID(info *debug.BuildInfo, ok bool) string {
	if !ok || info == nil {
		return ""
	}
	if v := info.Main.Version; v != "" && v != "(devel)" && !strings.Contains(v, "+dirty") {
		return "dumpflow@" + v
	}
	var rev string
	dirty := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return ""
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "dumpflow@" + rev
}
