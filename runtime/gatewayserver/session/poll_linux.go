//go:build linux

package session

import (
	"errors"
	"io"
	"log/slog"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// poller waits for parked sessions' sockets to become readable: one epoll
// instance and one goroutine for all of them, beside Go's own netpoller.
// Each registration is one-shot and level-triggered: a socket that becomes
// readable wakes its session once, and the session's reader re-arms it
// when it parks again, so bytes that arrive meanwhile are never missed.
type poller struct {
	fd    int
	mu    sync.Mutex
	conns map[int32]*conn // by token
	next  int32
}

var processPoller = sync.OnceValue(func() *poller {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		slog.Warn("cannot create an epoll instance; idle sessions keep a goroutine each", "err", err)
		return nil
	}
	p := &poller{fd: fd, conns: map[int32]*conn{}}
	go p.loop()
	return p
})

// defaultPoller returns the process's poller, nil if there is none.
func defaultPoller() *poller { return processPoller() }

func (p *poller) loop() {
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(p.fd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			slog.Error("epoll wait failed; parked sessions are no longer read", "err", err)
			return
		}
		p.mu.Lock()
		for _, ev := range events[:n] {
			if c := p.conns[ev.Fd]; c != nil {
				c.wake()
			}
		}
		p.mu.Unlock()
	}
}

// register gives c a token, once, before c is first parked.
func (p *poller) register(c *conn) {
	if p == nil || c.token != 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.next++; p.next == 0 || p.conns[p.next] != nil; p.next++ {
	}
	c.token = p.next
	p.conns[c.token] = c
}

// arm waits, once, for c's socket to become readable, and then wakes c.
// It fails if the connection is closed.
func (p *poller) arm(c *conn) error {
	if p == nil {
		return errNoPoller
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: c.token}
	var err error
	// Control holds the descriptor open: it cannot be closed and its
	// number reused by another connection meanwhile.
	cerr := c.wire.raw.Control(func(fd uintptr) {
		if err = unix.EpollCtl(p.fd, unix.EPOLL_CTL_MOD, int(fd), &ev); errors.Is(err, unix.ENOENT) {
			err = unix.EpollCtl(p.fd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		}
	})
	return errors.Join(cerr, err)
}

// forget drops c, whose connection is closed (which took its socket out
// of the epoll set).
func (p *poller) forget(c *conn) {
	if p == nil || c.token == 0 {
		return
	}
	p.mu.Lock()
	delete(p.conns, c.token)
	p.mu.Unlock()
}

// readNonBlocking reads what has arrived on raw into b without waiting:
// 0 and no error if nothing has.
func readNonBlocking(raw syscall.RawConn, b []byte) (int, error) {
	var n int
	var rerr error
	if err := raw.Read(func(fd uintptr) bool {
		n, rerr = unix.Read(int(fd), b)
		return true // never wait in Go's netpoller
	}); err != nil {
		return 0, err
	}
	switch {
	case errors.Is(rerr, unix.EAGAIN), errors.Is(rerr, unix.EINTR):
		return 0, nil
	case rerr != nil:
		return 0, rerr
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}
