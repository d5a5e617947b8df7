package main

import (
	"context"
	"io"
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
		{"negative session cap", []string{"--storage-connection-string", "x", "--issuer", "http://idp", "--max-sessions-per-connector", "-1"}, nil, "MaxSessionsPerConnector"},
		{"fan-out too large", []string{"--storage-connection-string", "x", "--issuer", "http://idp", "--route-fan-out", "100000"}, nil, "FanOut"},
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
