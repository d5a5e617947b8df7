package main

import (
	"context"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRunRefusesBrokenConfig(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no storage", []string{"--issuer", "http://idp"}, nil, "StorageConnectionString"},
		{"no issuer", []string{"--storage-connection-string", "x"}, nil, "Issuer"},
		{"bad bus", []string{"--storage-connection-string", "x", "--issuer", "http://idp", "--bus", "carrier-pigeon"}, nil, "Bus"},
		{"bad replica", []string{"--storage-connection-string", "x", "--issuer", "http://idp", "--replica", "Not_Valid"}, nil, "Replica"},
		{"servicebus without connection", []string{"--storage-connection-string", "x", "--issuer", "http://idp", "--bus", "servicebus"}, nil, "ServiceBusConnectionString"},
		{"bad log level", []string{"--log-level", "loud"}, nil, "log-level"},
		{"environment is read", nil, map[string]string{"BOTE_WORKER_STORAGE_CONNECTION_STRING": "garbage", "BOTE_WORKER_ISSUER": "http://idp"}, "connection string"},
		{"environment is read under the new prefix", nil, map[string]string{"BOTE_GATEWAY_STORAGE_CONNECTION_STRING": "garbage", "BOTE_GATEWAY_ISSUER": "http://idp"}, "connection string"},
		{"bad duration under the new prefix", nil, map[string]string{"BOTE_GATEWAY_PING_INTERVAL": "often"}, "BOTE_GATEWAY_PING_INTERVAL"},
		{"both prefixes: the new one is read", nil, map[string]string{"BOTE_GATEWAY_PING_INTERVAL": "often", "BOTE_WORKER_PING_INTERVAL": "5s"}, "BOTE_GATEWAY_PING_INTERVAL"},
		{"both prefixes: the old one is not read", nil, map[string]string{"BOTE_GATEWAY_PING_INTERVAL": "5s", "BOTE_WORKER_PING_INTERVAL": "often"}, "StorageConnectionString"},
		{"negative session cap", []string{"--storage-connection-string", "x", "--issuer", "http://idp", "--max-sessions-per-connector", "-1"}, nil, "MaxSessionsPerConnector"},
		{"route lock too short", []string{"--storage-connection-string", "x", "--issuer", "http://idp", "--route-lock", "1s"}, nil, "RouteLock"},
		{"fan-out too large", []string{"--storage-connection-string", "x", "--issuer", "http://idp", "--route-fan-out", "100000"}, nil, "FanOut"},
		{"GC percent out of range", []string{"--gc-percent", "5"}, nil, "--gc-percent 5 must be between 10 and 1000"},
		{"pprof on a public address", []string{"--storage-connection-string", "x", "--issuer", "http://idp", "--pprof-listen", ":6060"}, nil, "PprofListen"},
		{"bad duration in environment", nil, map[string]string{"BOTE_WORKER_PING_INTERVAL": "often"}, "BOTE_WORKER_PING_INTERVAL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), tt.args, nil, io.Discard, io.Discard, func(k string) string { return tt.env[k] })
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

// TestRunWarnsAboutOldNames: BOTE_WORKER_* (the gateway's name before the
// rename) still works, and each old name used is logged once as
// deprecated; the new names log nothing.
func TestRunWarnsAboutOldNames(t *testing.T) {
	for _, tt := range []struct {
		prefix string
		warns  int
	}{{"BOTE_WORKER", 2}, {"BOTE_GATEWAY", 0}} {
		t.Run(tt.prefix, func(t *testing.T) {
			env := map[string]string{tt.prefix + "_STORAGE_CONNECTION_STRING": "garbage", tt.prefix + "_ISSUER": "http://idp"}
			var stderr strings.Builder
			err := run(context.Background(), nil, nil, io.Discard, &stderr, func(k string) string { return env[k] })
			assert.ErrorContains(t, err, "connection string", "the settings were read")
			assert.Equal(t, tt.warns, strings.Count(stderr.String(), `"msg":"deprecated name`), stderr.String())
			if tt.warns > 0 {
				assert.Contains(t, stderr.String(), `"old":"BOTE_WORKER_ISSUER","new":"BOTE_GATEWAY_ISSUER"`)
			}
		})
	}
}

// TestGCPercentYieldsToTheEnvironment: --gc-percent (or its default) sets
// the GC target unless Go's own GOGC or GOMEMLIMIT is in the environment.
func TestGCPercentYieldsToTheEnvironment(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	log := slog.New(slog.DiscardHandler)
	for _, env := range []string{"GOGC", "GOMEMLIMIT"} {
		setGCPercent(log, 40, func(k string) string { return map[string]string{env: "200"}[k] })
		assert.Equal(t, 100, debug.SetGCPercent(100), "%s wins", env)
	}
	setGCPercent(log, 40, func(string) string { return "" })
	assert.Equal(t, 40, debug.SetGCPercent(100))
}
