// Package profiling serves Go's pprof endpoints (/debug/pprof/...) on a
// separate, loopback-only listener, for the long-running servers (gateway,
// ops server) that opt in with a flag. It is off unless an address is
// given, and it refuses any address that is not a loopback one: profiles
// reveal memory contents and cost CPU, so they are reached only from the
// host or through an authenticated tunnel (`kubectl port-forward`, `az
// containerapp exec`), never through the public ingress.
package profiling

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// CheckAddr reports whether addr may serve profiles: "" (off) or a loopback
// host with a port ("127.0.0.1:6060", "[::1]:6060", "localhost:6060").
func CheckAddr(addr string) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("pprof address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("pprof address %q must be a loopback address such as 127.0.0.1:6060 (profiles are never served on other interfaces)", addr)
	}
	return nil
}

// Handler returns the pprof handlers under /debug/pprof/.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// Serve listens on addr (checked with CheckAddr) and serves Handler until
// ctx ends. With addr "" it returns nil at once. onListen, if set, gets the
// bound address.
func Serve(ctx context.Context, addr string, log *slog.Logger, onListen func(net.Addr)) error {
	if addr == "" {
		return nil
	}
	if err := CheckAddr(addr); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot listen for pprof on %s: %w", addr, err)
	}
	// Write timeouts would cut CPU profiles and traces (?seconds=N) short.
	hs := &http.Server{Handler: Handler(), ReadHeaderTimeout: 10 * time.Second}
	log.Info("pprof listening", "addr", ln.Addr().String())
	if onListen != nil {
		onListen(ln.Addr())
	}
	stop := context.AfterFunc(ctx, func() { _ = hs.Close() })
	defer stop()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("cannot serve pprof: %w", err)
	}
	return nil
}
