package metrics

import (
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBuildInfoFrom(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		want BuildInfo
	}{
		{"no build information", nil, BuildInfo{"devel", "unknown", runtime.Version()}},
		{"go run or a build without VCS stamping",
			&debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "hires", Version: "(devel)"}},
			BuildInfo{"devel", "unknown", "go1.26.0"}},
		{"stamped from a clean checkout",
			&debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Path: "hires", Version: "v1.4.0"},
				Settings: vcs("vcs", "git", "vcs.revision", "0123abcd", "vcs.modified", "false")},
			BuildInfo{"v1.4.0", "0123abcd", "go1.26.1"}},
		{"stamped from a modified checkout",
			&debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Path: "hires", Version: "v0.0.0-20260101000000-0123abcd+dirty"},
				Settings: vcs("vcs.modified", "true", "vcs.revision", "0123abcd")},
			BuildInfo{"v0.0.0-20260101000000-0123abcd+dirty", "0123abcd-dirty", "go1.26.1"}},
		{"modified without a revision",
			&debug.BuildInfo{Main: debug.Module{Path: "hires"}, Settings: vcs("vcs.modified", "true")},
			BuildInfo{"devel", "unknown", runtime.Version()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, buildInfoFrom(tc.bi))
		})
	}
}
