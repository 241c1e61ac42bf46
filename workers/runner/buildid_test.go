package runner

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBuildID(t *testing.T) {
	vcs := func(rev, modified string) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}}
	}
	require.Equal(t, "dumpflow@30558d8a1b2c", buildID(vcs("30558d8a1b2c3d4e5f", "false"), true))
	require.Equal(t, "dumpflow@30558d8a1b2c-dirty", buildID(vcs("30558d8a1b2c3d4e5f", "true"), true))
	require.Equal(t, "dumpflow@v1.2.3", buildID(&debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, true))
	// No version, no commit: the executable's size and time.
	require.Regexp(t, `^dumpflow@devel-[0-9]+-[0-9]{8}T[0-9]{6}Z$`, buildID(&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true))
	require.Regexp(t, `^dumpflow@devel-`, buildID(nil, false))
}
