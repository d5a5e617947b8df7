package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/operatorauth"
)

func TestParseOptions(t *testing.T) {
	const cs = "Endpoint=sb://ns.servicebus.usgovcloudapi.net/;SharedAccessKeyName=listen;SharedAccessKey=abc=;EntityPath=ops"
	keys := []string{"--api-keys-file", "keys.json"}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // error substring; empty for success
	}{
		{"connection string", append([]string{"--connection-string", cs}, keys...), nil, ""},
		{"connection string from env", keys, map[string]string{"BOTE_OPSSERVER_CONNECTION_STRING": cs}, ""},
		{"namespace and key", append([]string{"--namespace", "ns", "--cloud", "china", "--hybrid-connection", "ops", "--key-name", "l", "--key", "k"}, keys...), nil, ""},
		{"entra", append([]string{"--namespace", "ns.servicebus.windows.net", "--hybrid-connection", "ops", "--relay-auth", "entra"}, keys...), nil, ""},
		{"local only", append([]string{"--no-relay", "--local-listen", "127.0.0.1:0"}, keys...), nil, ""},
		{"oauth only", []string{"--no-relay", "--local-listen", "[::1]:8080", "--oauth-issuer", "https://login.microsoftonline.us/t/v2.0", "--oauth-audience", "api://ops"}, nil, ""},
		{"nothing", nil, nil, "--namespace or --connection-string"},
		{"both namespace forms", append([]string{"--connection-string", cs, "--namespace", "ns"}, keys...), nil, "give one"},
		{"bad cloud", append([]string{"--namespace", "ns", "--cloud", "mars", "--hybrid-connection", "ops", "--key-name", "l", "--key", "k"}, keys...), nil, "--cloud"},
		{"bad namespace", append([]string{"--namespace", "bad ns", "--hybrid-connection", "ops", "--key-name", "l", "--key", "k"}, keys...), nil, "--namespace"},
		{"no hybrid connection", append([]string{"--namespace", "ns", "--key-name", "l", "--key", "k"}, keys...), nil, "--hybrid-connection"},
		{"no key", append([]string{"--namespace", "ns", "--hybrid-connection", "ops"}, keys...), nil, "--key"},
		{"key without name", append([]string{"--namespace", "ns", "--hybrid-connection", "ops", "--key", "k"}, keys...), nil, "--key-name and --key"},
		{"entra with key", append([]string{"--namespace", "ns", "--hybrid-connection", "ops", "--relay-auth", "entra", "--key", "k"}, keys...), nil, "--relay-auth entra"},
		{"bad relay auth", append([]string{"--connection-string", cs, "--relay-auth", "x"}, keys...), nil, "--relay-auth"},
		{"no operator auth", []string{"--connection-string", cs}, nil, "--api-keys-file, --api-keys-table or --oauth-issuer"},
		{"keys file and table", append([]string{"--connection-string", cs, "--api-keys-table", "boteapikeys"}, keys...), nil, "give one"},
		{"keys table without storage", []string{"--connection-string", cs, "--api-keys-table", "boteapikeys"}, nil, "needs the run storage"},
		{"keys table in azure", []string{"--connection-string", cs, "--table-url", "https://t", "--blob-url", "https://b", "--azure-identity", "--registry", "r.json", "--queue-url", "https://q", "--api-keys-table", "boteapikeys"}, nil, ""},
		{"oauth without audience", []string{"--connection-string", cs, "--oauth-issuer", "https://idp.example"}, nil, "Audience"},
		{"oauth extras without issuer", append([]string{"--connection-string", cs, "--oauth-audience", "a"}, keys...), nil, "--oauth-issuer"},
		{"public local listen", append([]string{"--connection-string", cs, "--local-listen", "0.0.0.0:8080"}, keys...), nil, "--local-listen"},
		{"no-relay without local", append([]string{"--no-relay"}, keys...), nil, "--no-relay"},
		{"no-relay with namespace", append([]string{"--no-relay", "--local-listen", "127.0.0.1:1", "--connection-string", cs}, keys...), nil, "--no-relay"},
		{"two agent sources", append([]string{"--connection-string", cs, "--agents-file", "a", "--registry-file", "r"}, keys...), nil, "give one"},
		{"negative keys recheck", append([]string{"--connection-string", cs, "--api-keys-recheck", "-1s"}, keys...), nil, "--api-keys-recheck"},
		{"negative registry poll", append([]string{"--connection-string", cs, "--registry", "r", "--registry-poll", "-1s"}, keys...), nil, "--registry-poll"},
		{"zero event interval", append([]string{"--connection-string", cs, "--event-interval", "0s"}, keys...), nil, "--event-interval"},
		{"bad log format", append([]string{"--connection-string", cs, "--log-format", "xml"}, keys...), nil, "--log-format"},
		{"bad env value", keys, map[string]string{"BOTE_OPSSERVER_EVENT_INTERVAL": "often"}, "BOTE_OPSSERVER_EVENT_INTERVAL"},
		{"stray argument", append([]string{"--connection-string", cs, "serve"}, keys...), nil, "unexpected arguments"},
		{"runs locally", append([]string{"--connection-string", cs, "--storage-connection-string", "UseDevelopmentStorage=true", "--registry", "r.json", "--secrets-file", "s.json"}, keys...), nil, ""},
		{"runs from env", keys, map[string]string{"BOTE_OPSSERVER_CONNECTION_STRING": cs, "BOTE_OPSSERVER_STORAGE_CONNECTION_STRING": "x", "BOTE_OPSSERVER_REGISTRY": "r.json"}, ""},
		{"runs in azure", append([]string{"--connection-string", cs, "--table-url", "https://t", "--blob-url", "https://b", "--azure-identity", "--registry", "r.json",
			"--bus", "servicebus", "--servicebus-namespace", "sb.servicebus.usgovcloudapi.net", "--key-vault-url", "https://kv.vault.usgovcloudapi.net"}, keys...), nil, ""},
		{"runs without registry", append([]string{"--connection-string", cs, "--storage-connection-string", "x"}, keys...), nil, "--registry"},
		{"runs with agents file", append([]string{"--connection-string", cs, "--storage-connection-string", "x", "--registry", "r", "--agents-file", "a"}, keys...), nil, "give one"},
		{"storage twice", append([]string{"--connection-string", cs, "--storage-connection-string", "x", "--blob-url", "https://b", "--registry", "r"}, keys...), nil, "give one"},
		{"urls without identity", append([]string{"--connection-string", cs, "--table-url", "https://t", "--blob-url", "https://b", "--queue-url", "https://q", "--registry", "r"}, keys...), nil, "--azure-identity"},
		{"table url alone", append([]string{"--connection-string", cs, "--table-url", "https://t", "--azure-identity", "--registry", "r"}, keys...), nil, "--table-url and --blob-url"},
		{"storagequeue without queue url", append([]string{"--connection-string", cs, "--table-url", "https://t", "--blob-url", "https://b", "--azure-identity", "--registry", "r"}, keys...), nil, "--queue-url"},
		{"two secret stores", append([]string{"--connection-string", cs, "--storage-connection-string", "x", "--registry", "r", "--secrets-file", "s", "--key-vault-url", "https://kv"}, keys...), nil, "give one"},
		{"key vault without identity", append([]string{"--connection-string", cs, "--storage-connection-string", "x", "--registry", "r", "--key-vault-url", "https://kv"}, keys...), nil, "--key-vault-url"},
		{"bad bus", append([]string{"--connection-string", cs, "--storage-connection-string", "x", "--registry", "r", "--bus", "carrier-pigeon"}, keys...), nil, "--bus"},
		{"servicebus without namespace", append([]string{"--connection-string", cs, "--storage-connection-string", "x", "--registry", "r", "--bus", "servicebus"}, keys...), nil, "--servicebus"},
		{"huge bundle limit", append([]string{"--connection-string", cs, "--storage-connection-string", "x", "--registry", "r", "--max-bundle-bytes", "999999999999"}, keys...), nil, "--max-bundle-bytes"},
		{"negative tick", append([]string{"--connection-string", cs, "--storage-connection-string", "x", "--registry", "r", "--dispatch-tick", "-1s"}, keys...), nil, "--dispatch-tick"},
		{"negative sweep interval", append([]string{"--connection-string", cs, "--storage-connection-string", "x", "--registry", "r", "--sweep-interval", "-1s"}, keys...), nil, "--sweep-interval"},
		{"secrets without runs", append([]string{"--connection-string", cs, "--secrets-file", "s"}, keys...), nil, "needs runs enabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			o, err := parseOptions(tt.args, getenv, io.Discard)
			if tt.want != "" {
				assert.ErrorContains(t, err, tt.want)
				return
			}
			require.NoError(t, err)
			if !o.NoRelay {
				_, hc, err := o.Relay()
				require.NoError(t, err)
				assert.Equal(t, "ops", hc)
			}
		})
	}
}

func TestFlagsWinOverEnvironment(t *testing.T) {
	env := map[string]string{"BOTE_OPSSERVER_EVENT_INTERVAL": "9s", "BOTE_OPSSERVER_LOCAL_LISTEN": "127.0.0.1:1"}
	o, err := parseOptions([]string{"--no-relay", "--api-keys-file", "k", "--event-interval", "2s"}, func(k string) string { return env[k] }, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 2*time.Second, o.EventInterval)
	assert.Equal(t, "127.0.0.1:1", o.LocalListen)
}

// The interval flags added for tests reach the config; left out they are
// zero, which the packages read as their production defaults (10 s sweep,
// 2 s registry poll, 5 s keys re-check).
func TestIntervalFlags(t *testing.T) {
	base := []string{"--no-relay", "--local-listen", "127.0.0.1:0", "--api-keys-file", "k", "--storage-connection-string", "x", "--registry", "r"}
	o, err := parseOptions(append(base, "--sweep-interval", "250ms", "--registry-poll", "200ms", "--api-keys-recheck", "500ms"), func(string) string { return "" }, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 250*time.Millisecond, o.SweepInterval)
	assert.Equal(t, 200*time.Millisecond, o.RegistryPoll)
	assert.Equal(t, 500*time.Millisecond, o.APIKeysRecheck)

	o, err = parseOptions(base, func(string) string { return "" }, io.Discard)
	require.NoError(t, err)
	assert.Zero(t, o.SweepInterval)
	assert.Zero(t, o.RegistryPoll)
	assert.Zero(t, o.APIKeysRecheck)
}

func TestAPIKeyCommands(t *testing.T) {
	file := filepath.Join(t.TempDir(), "keys.json")
	var out, errOut bytes.Buffer
	require.NoError(t, runAPIKey(context.Background(), []string{"create", "--keys-file", file, "--id", "alice", "--description", "laptop", "--admin"}, &out, &errOut))
	key := strings.TrimSpace(out.String())
	assert.True(t, strings.HasPrefix(key, operatorauth.KeyPrefix))
	assert.Contains(t, errOut.String(), "shown once")

	data, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.NotContains(t, string(data), key[len("obk_alice."):], "only the hash is stored")

	verify := func(key string) (operatorauth.Principal, error) {
		f, err := operatorauth.LoadKeysFile(file)
		require.NoError(t, err)
		return operatorauth.NewKeySet(f).Verify(key)
	}
	p, err := verify(key)
	require.NoError(t, err)
	assert.Equal(t, "alice", p.ID)
	assert.True(t, p.IsAdmin())

	out.Reset()
	require.NoError(t, runAPIKey(context.Background(), []string{"create", "--keys-file", file, "--id", "bob", "--role", "acme=operator", "--role", "globex=reader"}, &out, io.Discard))
	p, err = verify(strings.TrimSpace(out.String()))
	require.NoError(t, err)
	assert.False(t, p.IsAdmin())
	assert.Equal(t, operatorauth.RoleOperator, p.RoleIn("acme"))
	assert.Equal(t, operatorauth.RoleReader, p.RoleIn("globex"))

	for _, tt := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"create", "--keys-file", file, "--id", "alice", "--admin"}, "already exists"},
		{[]string{"create", "--keys-file", file, "--id", "Bad Id", "--admin"}, "--id"},
		{[]string{"create", "--keys-file", file, "--id", "carol"}, "a key without grants"},
		{[]string{"create", "--keys-file", file, "--id", "carol", "--admin", "--role", "acme=reader"}, "give one"},
		{[]string{"create", "--keys-file", file, "--id", "carol", "--role", "acme=owner"}, `role "owner"`},
		{[]string{"create", "--keys-file", file, "--id", "carol", "--role", "acme=reader", "--role", "acme=operator"}, "twice"},
		{[]string{"revoke", "--keys-file", file, "--id", "nobody"}, "no such key"},
		{[]string{"rotate", "--keys-file", file, "--id", "nobody"}, "no such key"},
		{[]string{"list", "--keys-file", filepath.Join(t.TempDir(), "none.json")}, "cannot read"},
		{[]string{"frobnicate", "--keys-file", file}, "unknown subcommand"},
		{nil, "subcommand"},
		{[]string{"list"}, "--keys-file or --keys-table"},
		{[]string{"list", "--keys-file", file, "--keys-table", "keys"}, "give one"},
		{[]string{"list", "--keys-table", "keys"}, "needs --storage-connection-string"},
		{[]string{"list", "--keys-table", "keys", "--table-url", "https://x.table.core.windows.net"}, "with --azure-identity"},
	} {
		assert.ErrorContains(t, runAPIKey(context.Background(), tt.args, io.Discard, io.Discard), tt.wantErr, "%q", tt.args)
	}

	out.Reset()
	require.NoError(t, runAPIKey(context.Background(), []string{"rotate", "--keys-file", file, "--id", "alice"}, &out, io.Discard))
	rotated := strings.TrimSpace(out.String())
	_, err = verify(key)
	assert.ErrorContains(t, err, "wrong secret", "the old secret stops working")
	p, err = verify(rotated)
	require.NoError(t, err)
	assert.True(t, p.IsAdmin(), "rotation keeps the grants")

	out.Reset()
	require.NoError(t, runAPIKey(context.Background(), []string{"revoke", "--keys-file", file, "--id", "alice"}, io.Discard, io.Discard))
	require.NoError(t, runAPIKey(context.Background(), []string{"list", "--keys-file", file}, &out, io.Discard))
	assert.Regexp(t, `alice\s+\S+\s+revoked\s+admin\s+laptop`, out.String())
	assert.Regexp(t, `bob\s+\S+\s+active\s+acme=operator,globex=reader`, out.String())
	_, err = verify(rotated)
	assert.ErrorContains(t, err, "disabled")
	assert.ErrorContains(t, runAPIKey(context.Background(), []string{"rotate", "--keys-file", file, "--id", "alice"}, io.Discard, io.Discard), "revoked")
}

func TestCreateResourcesDefaultsOnWithAConnectionString(t *testing.T) {
	base := []string{"--no-relay", "--local-listen", "127.0.0.1:0", "--api-keys-file", "k", "--registry", "r"}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want bool
	}{
		{"connection string", []string{"--storage-connection-string", "x"}, nil, true},
		{"turned off", []string{"--storage-connection-string", "x", "--create-resources=false"}, nil, false},
		{"turned off by env", []string{"--storage-connection-string", "x"}, map[string]string{"BOTE_OPSSERVER_CREATE_RESOURCES": "false"}, false},
		{"service urls", []string{"--table-url", "https://t", "--blob-url", "https://b", "--queue-url", "https://q", "--azure-identity"}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseOptions(append(base, tt.args...), func(k string) string { return tt.env[k] }, io.Discard)
			require.NoError(t, err)
			assert.Equal(t, tt.want, o.CreateResources)
		})
	}
}

func TestDeployedAgentVersionFromTheStack(t *testing.T) {
	env := map[string]string{"BOTE_OPSSERVER_DEPLOYED_AGENT_VERSION": "v0.0.0-20261206070000-0123456789ab"}
	o, err := parseOptions([]string{"--no-relay", "--local-listen", "127.0.0.1:0", "--api-keys-file", "keys.json"},
		func(k string) string { return env[k] }, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "v0.0.0-20261206070000-0123456789ab", o.DeployedAgentVersion)
}

func TestPprofListenIsLoopbackOnly(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys.json")
	require.NoError(t, os.WriteFile(keys, []byte("[]"), 0o600))
	_, err := parseOptions([]string{"--no-relay", "--local-listen", "127.0.0.1:0", "--pprof-listen", "0.0.0.0:6060", "--api-keys-file", keys},
		func(string) string { return "" }, io.Discard)
	require.ErrorContains(t, err, "--pprof-listen")
	_, err = parseOptions([]string{"--no-relay", "--local-listen", "127.0.0.1:0", "--pprof-listen", "127.0.0.1:6060", "--api-keys-file", keys},
		func(string) string { return "" }, io.Discard)
	require.NoError(t, err)
}

// renamedTo gives an old name's new one: the gateway was the worker, the
// ops server relayserver.
var renamedTo = strings.NewReplacer("BOTE_RELAYSERVER_", "BOTE_OPSSERVER_", "WORKER", "GATEWAY", "worker", "gateway")

// assertDeprecated: stderr holds one "deprecated name" warning for each of
// olds and no other, each naming the old name and its new one.
func assertDeprecated(t *testing.T, stderr string, olds []string) {
	t.Helper()
	assert.Equal(t, len(olds), strings.Count(stderr, `"msg":"deprecated name`), stderr)
	for _, old := range olds {
		assert.Contains(t, stderr, `"old":"`+old+`","new":"`+renamedTo.Replace(old)+`"`)
	}
}

// TestGatewayFlagNames: --gateway-url and --gateway-keys
// (BOTE_OPSSERVER_GATEWAY_*); --worker-url and --worker-keys, their names
// before the rename, still work with one warning each, and the new name
// wins when both are given.
func TestGatewayFlagNames(t *testing.T) {
	base := []string{"--no-relay", "--local-listen", "127.0.0.1:0", "--api-keys-file", "k", "--log-format", "json"}
	tests := []struct {
		name          string
		args          []string
		env           map[string]string
		wantURL, keys string
		warn          []string
	}{
		{"new flags", []string{"--gateway-url", "http://g", "--gateway-keys", "g.json"}, nil, "http://g", "g.json", nil},
		{"old flags", []string{"--worker-url", "http://w", "--worker-keys", "w.json"}, nil, "http://w", "w.json", []string{"--worker-keys", "--worker-url"}},
		{"both flags", []string{"--worker-url", "http://w", "--gateway-url", "http://g"}, nil, "http://g", "", []string{"--worker-url"}},
		{"new variables", nil, map[string]string{"BOTE_OPSSERVER_GATEWAY_URL": "http://g"}, "http://g", "", nil},
		{"old variables", nil, map[string]string{"BOTE_RELAYSERVER_WORKER_URL": "http://w"}, "http://w", "", []string{"BOTE_RELAYSERVER_WORKER_URL"}},
		{"both variables", nil, map[string]string{"BOTE_RELAYSERVER_WORKER_URL": "http://w", "BOTE_OPSSERVER_GATEWAY_URL": "http://g"}, "http://g", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			o, err := parseOptions(append(base, tt.args...), func(k string) string { return tt.env[k] }, &stderr)
			require.NoError(t, err)
			assert.Equal(t, tt.wantURL, o.GatewayURL)
			assert.Equal(t, tt.keys, o.GatewayKeys)
			assertDeprecated(t, stderr.String(), tt.warn)
		})
	}
}

// TestRelayserverNames: BOTE_OPSSERVER_* is the environment; BOTE_RELAYSERVER_*,
// the names from before the binary was renamed, are still read with one
// warning each, and neither wins over the new name or a flag.
func TestRelayserverNames(t *testing.T) {
	base := []string{"--no-relay", "--local-listen", "127.0.0.1:0", "--api-keys-file", "k", "--log-format", "json"}
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		interval time.Duration
		version  string
		warn     []string // old names warned about
	}{
		{"new names", nil, map[string]string{"BOTE_OPSSERVER_EVENT_INTERVAL": "9s", "BOTE_OPSSERVER_DEPLOYED_AGENT_VERSION": "1.2.3"}, 9 * time.Second, "1.2.3", nil},
		{"old names", nil, map[string]string{"BOTE_RELAYSERVER_EVENT_INTERVAL": "9s", "BOTE_RELAYSERVER_DEPLOYED_AGENT_VERSION": "1.2.3"}, 9 * time.Second, "1.2.3",
			[]string{"BOTE_RELAYSERVER_DEPLOYED_AGENT_VERSION", "BOTE_RELAYSERVER_EVENT_INTERVAL"}},
		{"both: the new one wins", nil, map[string]string{"BOTE_RELAYSERVER_EVENT_INTERVAL": "9s", "BOTE_OPSSERVER_EVENT_INTERVAL": "3s"}, 3 * time.Second, "", nil},
		{"a flag wins over the old name", []string{"--event-interval", "2s"}, map[string]string{"BOTE_RELAYSERVER_EVENT_INTERVAL": "9s"}, 2 * time.Second, "", nil},
		{"old and new names of different flags", nil, map[string]string{"BOTE_RELAYSERVER_EVENT_INTERVAL": "9s", "BOTE_OPSSERVER_DEPLOYED_AGENT_VERSION": "1.2.3"}, 9 * time.Second, "1.2.3",
			[]string{"BOTE_RELAYSERVER_EVENT_INTERVAL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			o, err := parseOptions(append(base, tt.args...), func(k string) string { return tt.env[k] }, &stderr)
			require.NoError(t, err)
			assert.Equal(t, tt.interval, o.EventInterval)
			assert.Equal(t, tt.version, o.DeployedAgentVersion)
			assertDeprecated(t, stderr.String(), tt.warn)
		})
	}
	_, err := parseOptions(base, func(k string) string { return map[string]string{"BOTE_RELAYSERVER_EVENT_INTERVAL": "often"}[k] }, io.Discard)
	assert.ErrorContains(t, err, "BOTE_RELAYSERVER_EVENT_INTERVAL", "a bad value names the variable it came from")
}
