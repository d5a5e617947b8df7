package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	for _, tc := range []struct {
		name string
		bi   debug.BuildInfo
		want string
	}{
		{"devel", debug.BuildInfo{GoVersion: "go1.26.6"}, "(devel) go1.26.6"},
		{"stamped", debug.BuildInfo{GoVersion: "go1.26.6", Main: debug.Module{Version: "v1.2.3"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "false"}}},
			"v1.2.3 commit abc123 go1.26.6"},
		{"dirty", debug.BuildInfo{GoVersion: "go1.26.6", Main: debug.Module{Version: "v0.0.0-20261206061500-abc123+dirty"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"}}},
			"v0.0.0-20261206061500-abc123+dirty commit abc123 (modified) go1.26.6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := FromBuildInfo(&tc.bi).String(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRequested(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"--version"}, true},
		{[]string{"-version"}, true},
		{[]string{"version"}, true},
		{[]string{"run", "--version"}, true},
		{[]string{"--log-level", "debug", "--version"}, true},
		{[]string{"--", "--version"}, false},
		{[]string{"version", "x"}, false},
		{[]string{"--versions"}, false},
	} {
		if got := Requested(tc.args); got != tc.want {
			t.Errorf("Requested(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}

func TestStampedValuesWin(t *testing.T) {
	i := FromBuildInfo(&debug.BuildInfo{GoVersion: "go1.26.6"})
	assert := func(got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	assert(stamp(i, "", "").String(), "(devel) go1.26.6")
	assert(stamp(i, "v1.4.0", "0123abcd").String(), "v1.4.0 commit 0123abcd go1.26.6")
}
