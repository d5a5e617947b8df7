package procs

import (
	"os/exec"
	"syscall"
)

// sysProcAttr puts the child in its own process group (so Stop reaches its
// children too) and kills it if the test binary dies first, so no emulator
// or gateway outlives a crashed test run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func signalGroup(cmd *exec.Cmd, sig syscall.Signal) error {
	return syscall.Kill(-cmd.Process.Pid, sig)
}
