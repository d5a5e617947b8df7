//go:build !linux

package session

import "syscall"

// poller is Linux only: elsewhere each session keeps a goroutine blocked in
// its read, as before.
type poller struct{}

func defaultPoller() *poller { return nil }

func (*poller) register(*conn) {}

func (*poller) arm(*conn) error { return errNoPoller }

func (*poller) forget(*conn) {}

func readNonBlocking(syscall.RawConn, []byte) (int, error) { return 0, errNoPoller }
