// Package buildinfo says what a binary was built from: its module version,
// source revision and Go version, read from the build information the Go
// toolchain embeds (runtime/debug), so no -ldflags are needed and a plain
// `go build` in a git checkout reports the truth. Every command prints it
// for --version; the agent also reports it in its heartbeats.
//
// The version is the main module's version as the toolchain stamps it
// (Go 1.24+: the tag of the commit, or a pseudo-version such as
// v0.0.0-20261206061500-abcdef012345, with "+dirty" for uncommitted
// changes), "(devel)" when it was built without version control
// information.
//
// Release and image builds also stamp the version and commit explicitly
// (-ldflags -X, see components/images): the toolchain does not stamp VCS
// information in every checkout (git worktrees, -buildvcs=false, source
// archives), and a stamped value wins over the build information.
package buildinfo

import (
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
)

// Info is what a binary was built from.
type Info struct {
	// Version of the main module ("(devel)" when unknown).
	Version string `json:"version"`
	// Commit is the VCS revision, "" when not stamped.
	Commit string `json:"commit,omitempty"`
	// Modified reports uncommitted changes in the built tree.
	Modified bool `json:"modified,omitempty"`
	// GoVersion is the toolchain that built it.
	GoVersion string `json:"goVersion"`
}

// Stamped by release and image builds with -ldflags "-X
// github.com/botehq/platform/runtime/buildinfo.version=... -X
// ...buildinfo.commit=...".
var version, commit string

// Read returns the running binary's build information.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = &debug.BuildInfo{}
	}
	return stamp(FromBuildInfo(bi), version, commit)
}

// stamp overrides i with explicitly stamped values.
func stamp(i Info, version, commit string) Info {
	if version != "" {
		i.Version = version
	}
	if commit != "" {
		i.Commit, i.Modified = commit, false
	}
	return i
}

// FromBuildInfo extracts Info from build information, e.g. read from
// another binary with debug/buildinfo.
func FromBuildInfo(bi *debug.BuildInfo) Info {
	i := Info{Version: bi.Main.Version, GoVersion: bi.GoVersion}
	if i.Version == "" {
		i.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Commit = s.Value
		case "vcs.modified":
			i.Modified = s.Value == "true"
		}
	}
	return i
}

// String is the one line --version prints after the command name:
// "v0.0.0-20261206061500-abcdef012345 commit abcdef012345 go1.26.6".
func (i Info) String() string {
	var b strings.Builder
	b.WriteString(i.Version)
	if i.Commit != "" {
		fmt.Fprintf(&b, " commit %s", i.Commit)
		if i.Modified {
			b.WriteString(" (modified)")
		}
	}
	if i.GoVersion != "" {
		fmt.Fprintf(&b, " %s", i.GoVersion)
	}
	return b.String()
}

// Requested reports whether a command line asks for the version: -version
// or --version anywhere before a "--" terminator, or "version" as the only
// argument. Commands check it before parsing flags, so --version works
// without any required flag.
func Requested(args []string) bool {
	if len(args) == 1 && args[0] == "version" {
		return true
	}
	end := slices.Index(args, "--")
	if end < 0 {
		end = len(args)
	}
	return slices.ContainsFunc(args[:end], func(a string) bool { return a == "-version" || a == "--version" })
}
