//go:build !linux

package procs

import (
	"os/exec"
	"syscall"
	"time"
)

func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

func signalGroup(cmd *exec.Cmd, sig syscall.Signal) error {
	return syscall.Kill(-cmd.Process.Pid, sig)
}

// waitStopped cannot look on this system; SIGSTOP is taken as done.
func waitStopped(int, time.Duration) error { return nil }
