package metrics

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// BuildInfo describes the running binary, as hires_build_info's labels.
type BuildInfo struct {
	Version   string // the main module's version; "devel" when not stamped
	Revision  string // the VCS revision, "-dirty" appended if modified; "unknown" when not stamped
	GoVersion string // the Go toolchain that built it
}

// ReadBuildInfo reads the binary's build information
// (runtime/debug.ReadBuildInfo).
func ReadBuildInfo() BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return buildInfoFrom(bi)
}

func buildInfoFrom(bi *debug.BuildInfo) BuildInfo {
	info := BuildInfo{Version: "devel", Revision: "unknown", GoVersion: runtime.Version()}
	if bi == nil {
		return info
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		info.Version = v
	}
	if bi.GoVersion != "" {
		info.GoVersion = bi.GoVersion
	}
	var revision string
	var modified bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if revision != "" {
		info.Revision = revision
		if modified {
			info.Revision += "-dirty"
		}
	}
	return info
}

// newBuildInfo is the constant hires_build_info gauge (value 1) with info's labels.
func newBuildInfo(info BuildInfo) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "build_info",
		Help: "Always 1; its labels say which build is running: module version, VCS revision (-dirty if modified) and Go version.",
		ConstLabels: prometheus.Labels{
			"version": info.Version, "revision": info.Revision, "go_version": info.GoVersion,
		},
	})
	g.Set(1)
	return g
}
