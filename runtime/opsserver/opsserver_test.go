package opsserver

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/operatorauth"
)

// testConfig is a server on a loopback port only, with the keys file keys.
func testConfig(keys string) Config {
	return Config{
		NoRelay: true, LocalListen: "127.0.0.1:0", APIKeysFile: keys,
		Cloud: "public", RelayAuth: "sas", Bus: "storagequeue", ServiceName: "relayserver",
		EventInterval: 5 * time.Second, ShutdownTimeout: 15 * time.Second,
	}
}

// adminKey creates an admin key in the keys file and returns it.
func adminKey(t *testing.T, keys string) string {
	t.Helper()
	var key string
	store := &operatorauth.FileStore{Path: keys, Create: true}
	_, err := store.Edit(context.Background(), "op", func(f *operatorauth.KeysFile, now time.Time) (err error) {
		key, err = f.AddKey("op", "", operatorauth.Grants{Admin: true}, now)
		return err
	})
	require.NoError(t, err)
	return key
}

func TestValidateNamesTheBadField(t *testing.T) {
	keys := "keys.json"
	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"valid", func(*Config) {}, ""},
		{"no relay and nothing local", func(c *Config) { c.LocalListen = "" }, "--no-relay"},
		{"local port on the network", func(c *Config) { c.LocalListen = "0.0.0.0:8080" }, "--local-listen"},
		{"relay without namespace", func(c *Config) { c.NoRelay = false }, "--namespace or --connection-string"},
		{"no authentication", func(c *Config) { c.APIKeysFile = "" }, "operators need a way to authenticate"},
		{"roles without issuer", func(c *Config) { c.OAuthRoles = &operatorauth.RoleMap{} }, "--oauth-issuer"},
		{"keys table without storage", func(c *Config) { c.APIKeysFile, c.APIKeysTable = "", "keys" }, "--api-keys-table"},
		{"zero event interval", func(c *Config) { c.EventInterval = 0 }, "--event-interval"},
		{"zero shutdown timeout", func(c *Config) { c.ShutdownTimeout = 0 }, "--shutdown-timeout"},
		{"runs without registry", func(c *Config) { c.StorageConnectionString = "x" }, "--registry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig(keys)
			tt.modify(&c)
			err := c.Validate()
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.want)
			assert.ErrorContains(t, Run(context.Background(), c), tt.want, "Run refuses what Validate refuses")
		})
	}
}

// TestHealthListenServesOnlyTheHealthCheck: the port a host probes (App
// Service) answers /healthz, /readyz and /metrics, as the gateway does, and
// nothing of the API, not even with a valid key.
func TestHealthListenServesOnlyTheHealthCheck(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys.json")
	apiKey := adminKey(t, keys)

	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	cfg := testConfig(keys)
	cfg.HealthListen, cfg.Stdout = "127.0.0.1:0", pw
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	t.Cleanup(func() { cancel(); <-done })

	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var local, health string
	for local == "" || health == "" {
		select {
		case l := <-lines:
			if u, ok := strings.CutPrefix(l, "opsserver listening on "); ok {
				local = u
			}
			if u, ok := strings.CutPrefix(l, "opsserver health check on "); ok {
				health = strings.TrimSuffix(u, "/healthz")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("opsserver did not start both listeners")
		}
	}

	get := func(url string) int {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+apiKey)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusOK, get(health+"/healthz"))
	assert.Equal(t, http.StatusOK, get(health+"/readyz"), "ready: --no-relay waits for no listener")
	resp, err := http.Get(health + "/metrics")
	require.NoError(t, err)
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(metrics), "bote_relayserver_relay_online 0")
	assert.Contains(t, string(metrics), "bote_opsserver_relay_online 0")
	assert.Contains(t, string(metrics), "go_goroutines")
	assert.Equal(t, http.StatusNotFound, get(health+"/v1/status"), "no API on the health port")
	assert.Equal(t, http.StatusOK, get(local+"/v1/status"), "the key itself is good")
	assert.Equal(t, http.StatusOK, get(local+"/ui/"), "the web console on the local port")
	assert.Equal(t, http.StatusNotFound, get(health+"/ui/"), "no console on the health port")
	assert.Equal(t, http.StatusNotFound, get(local+"/uix"), "only /ui/ is the console's")
}
