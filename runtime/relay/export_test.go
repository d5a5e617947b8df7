package relay

import "time"

// SetStreamKeepAlive changes the ping interval of relayed streams made from
// now on and returns a function restoring it.
func SetStreamKeepAlive(d time.Duration) (restore func()) {
	old := streamKeepAlive
	streamKeepAlive = d
	return func() { streamKeepAlive = old }
}
