package procs

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStartWaitStop(t *testing.T) {
	p := Start(t, Spec{Name: "sh", Path: "/bin/sh", Args: []string{"-c", `trap 'echo got term; exit 0' TERM; echo "listening on http://127.0.0.1:1234"; while :; do sleep 0.05; done`}})
	addr, err := p.ListenAddr(10 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:1234", addr)

	require.NoError(t, p.Stop(), "clean exit on SIGTERM")
	_, err = p.WaitOutput("got term", time.Second)
	assert.NoError(t, err)
}

func TestWaitOutputFailsWhenProcessExits(t *testing.T) {
	p := Start(t, Spec{Path: "/bin/sh", Args: []string{"-c", "echo bye; exit 3"}})
	_, err := p.WaitOutput("never printed", 10*time.Second)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "exited")
	assert.Contains(t, err.Error(), "exit status 3")
}

func TestKillEndsStubbornProcess(t *testing.T) {
	p := Start(t, Spec{Path: "/bin/sh", Args: []string{"-c", `trap '' TERM; echo ready; while :; do sleep 0.05; done`}, StopGrace: 200 * time.Millisecond})
	_, err := p.WaitOutput("ready", 10*time.Second)
	require.NoError(t, err)
	start := time.Now()
	err = p.Stop()
	require.Error(t, err, "SIGTERM ignored, so it was killed")
	assert.Less(t, time.Since(start), 5*time.Second)
}

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	require.NoError(t, err)
	assert.False(t, strings.HasSuffix(root, "procs"))
}

// TestPauseReturnsOnceStopped: a busy process is stopped (every thread in
// state T) by the time Pause returns, and runs again after Resume.
func TestPauseReturnsOnceStopped(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	p := Start(t, Spec{Path: "/bin/sh", Args: []string{"-c", `echo ready; while :; do :; done`}})
	_, err := p.WaitOutput("ready", 10*time.Second)
	require.NoError(t, err)
	state := func() byte {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid()))
		require.NoError(t, err)
		return b[bytes.LastIndexByte(b, ')')+2]
	}
	for range 20 {
		require.NoError(t, p.Pause())
		require.Equal(t, byte('T'), state(), "stopped when Pause returned")
		require.NoError(t, p.Resume())
		require.Eventually(t, func() bool { return state() != 'T' }, 10*time.Second, time.Millisecond)
	}
}

// TestParallel: Parallel raises -test.parallel to n unless it was given,
// and never lowers it.
func TestParallel(t *testing.T) {
	p := flag.Lookup("test.parallel")
	require.NotNil(t, p)
	before := p.Value.String()
	t.Cleanup(func() { _ = p.Value.Set(before) })
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })

	n := runtime.GOMAXPROCS(0) + 3
	Parallel(n)
	want := strconv.Itoa(n)
	if given {
		want = before
	}
	assert.Equal(t, want, p.Value.String())
	Parallel(1)
	assert.Equal(t, want, p.Value.String(), "never lowered")
}
