package relay

import "time"

// SetStreamKeepAlive changes the ping interval of relayed streams made from
// now on and returns a function restoring it.
func SetStreamKeepAlive(d time.Duration) (restore func()) {
	old := streamKeepAlive
	streamKeepAlive = d
	return func() { streamKeepAlive = old }
}

// SetRequestDeadline changes the listener's HTTP-mode head deadline and
// returns a function restoring it.
func SetRequestDeadline(d time.Duration) (restore func()) {
	old := requestDeadline
	requestDeadline = d
	return func() { requestDeadline = old }
}
