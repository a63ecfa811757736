// Package buildinfo says which build of Slipway is running.
package buildinfo

import "runtime/debug"

// version is set at build time:
// -ldflags "-X github.com/slipway/slipway/internal/buildinfo.version=v1.2.3".
var version string

// Version is the -ldflags version, else "dev" with the VCS revision the Go
// toolchain stamped into the binary, when it did.
func Version() string {
	if version != "" {
		return version
	}
	v := "dev"
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = ".dirty"
		}
	}
	if rev == "" {
		return v
	}
	return v + "+" + rev[:min(12, len(rev))] + dirty
}
