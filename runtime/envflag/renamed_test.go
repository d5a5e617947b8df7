package envflag

import (
	"bytes"
	"flag"
	"io"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRenamedParse(t *testing.T) {
	r := Renamed{Prefix: "BOTE_WORKER", Flags: map[string]string{"worker-url": "gateway-url", "worker-keys": "gateway-keys"}}
	tests := []struct {
		name                string
		args                []string
		env                 map[string]string
		wantURL, wantListen string
		wantKeys            string
		wantUsed            []Deprecation
	}{
		{name: "new flag", args: []string{"--gateway-url", "new"}, wantURL: "new", wantListen: ":8080"},
		{name: "old flag", args: []string{"--worker-url", "old"}, wantURL: "old", wantListen: ":8080",
			wantUsed: []Deprecation{{"--worker-url", "--gateway-url"}}},
		{name: "both flags: the new one wins, in either order", args: []string{"--gateway-url", "new", "--worker-url", "old"}, wantURL: "new", wantListen: ":8080",
			wantUsed: []Deprecation{{"--worker-url", "--gateway-url"}}},
		{name: "new environment", env: map[string]string{"BOTE_GATEWAY_LISTEN": ":1", "BOTE_GATEWAY_GATEWAY_URL": "new"}, wantURL: "new", wantListen: ":1"},
		{name: "old prefix", env: map[string]string{"BOTE_WORKER_LISTEN": ":2"}, wantListen: ":2",
			wantUsed: []Deprecation{{"BOTE_WORKER_LISTEN", "BOTE_GATEWAY_LISTEN"}}},
		{name: "old flag name under the new prefix", env: map[string]string{"BOTE_GATEWAY_WORKER_URL": "old"}, wantURL: "old", wantListen: ":8080",
			wantUsed: []Deprecation{{"BOTE_GATEWAY_WORKER_URL", "BOTE_GATEWAY_GATEWAY_URL"}}},
		{name: "old flag name under the old prefix", env: map[string]string{"BOTE_WORKER_WORKER_KEYS": "old"}, wantKeys: "old", wantListen: ":8080",
			wantUsed: []Deprecation{{"BOTE_WORKER_WORKER_KEYS", "BOTE_GATEWAY_GATEWAY_KEYS"}}},
		{name: "both in the environment: the new one wins", env: map[string]string{"BOTE_GATEWAY_LISTEN": ":1", "BOTE_WORKER_LISTEN": ":2", "BOTE_GATEWAY_GATEWAY_URL": "new", "BOTE_GATEWAY_WORKER_URL": "old"},
			wantURL: "new", wantListen: ":1"},
		{name: "an old flag wins over the new environment", args: []string{"--worker-url", "old"}, env: map[string]string{"BOTE_GATEWAY_GATEWAY_URL": "new"},
			wantURL: "old", wantListen: ":8080", wantUsed: []Deprecation{{"--worker-url", "--gateway-url"}}},
		{name: "an empty old variable is no value", env: map[string]string{"BOTE_WORKER_LISTEN": ""}, wantListen: ":8080"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
			url := fs.String("gateway-url", "", "gateway URL")
			keys := fs.String("gateway-keys", "", "")
			listen := fs.String("listen", ":8080", "")
			used, err := r.Parse(fs, tt.args, "BOTE_GATEWAY", env(tt.env))
			require.NoError(t, err)
			assert.Equal(t, tt.wantURL, *url)
			assert.Equal(t, tt.wantKeys, *keys)
			assert.Equal(t, tt.wantListen, *listen)
			assert.Equal(t, tt.wantUsed, used)
		})
	}
}

func TestRenamedParseOldBoolAndBadValues(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	verbose := fs.Bool("verbose", false, "")
	used, err := Renamed{Flags: map[string]string{"old-verbose": "verbose"}}.Parse(fs, []string{"--old-verbose"}, "P", env(nil))
	require.NoError(t, err)
	assert.True(t, *verbose, "an old boolean flag needs no value, like the new one")
	assert.Equal(t, []Deprecation{{"--old-verbose", "--verbose"}}, used)

	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Int("n", 0, "")
	r := Renamed{Flags: map[string]string{"old-n": "n"}}
	_, err = r.Parse(fs, []string{"--old-n", "many"}, "P", env(nil))
	assert.ErrorContains(t, err, "--old-n", "the error names the flag given")

	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Int("n", 0, "")
	_, err = r.Parse(fs, nil, "P", env(map[string]string{"P_OLD_N": "many"}))
	assert.ErrorContains(t, err, "P_OLD_N", "the error names the variable set")
}

func TestWarnLogsEachOldName(t *testing.T) {
	var buf bytes.Buffer
	Warn(slog.New(slog.NewTextHandler(&buf, nil)), []Deprecation{{"--worker-url", "--gateway-url"}, {"BOTE_WORKER_LISTEN", "BOTE_GATEWAY_LISTEN"}})
	assert.Equal(t, 2, bytes.Count(buf.Bytes(), []byte("level=WARN msg=\"deprecated name")))
	assert.Contains(t, buf.String(), "the old one stops working in the next release", "the warning says by when")
	assert.Contains(t, buf.String(), "old=--worker-url new=--gateway-url")
	assert.Contains(t, buf.String(), "old=BOTE_WORKER_LISTEN new=BOTE_GATEWAY_LISTEN")
}
