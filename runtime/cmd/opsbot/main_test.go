package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/internal/golden"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/cmd/internal/program"
	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/opsapi"
	"github.com/botehq/platform/runtime/opsclient"
	"github.com/botehq/platform/runtime/relay"
)

// startServer runs the real API on a loopback port with a fixed clock and
// returns its URL and a valid API key.
func startServer(t *testing.T) (string, string) {
	t.Helper()
	f := &operatorauth.KeysFile{Version: operatorauth.KeysFileVersion}
	key, err := f.AddKey("cli-test", "", operatorauth.Grants{Admin: true}, time.Now())
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "keys.json")
	require.NoError(t, f.Save(path))
	auth, err := operatorauth.New(context.Background(), operatorauth.Config{KeysFile: path})
	require.NoError(t, err)
	started := time.Date(2026, 5, 4, 8, 0, 0, 0, time.UTC)
	seen := time.Date(2026, 5, 4, 9, 59, 0, 0, time.UTC)
	api, err := opsapi.New(opsapi.Config{
		Version:        "1.4.0",
		StartedAt:      started,
		Now:            func() time.Time { return started.Add(2*time.Hour + 5*time.Second) },
		RelayConnected: func() bool { return true },
		Auth:           auth,
		Keys:           auth,
		Agents: opsapi.NewStaticAgents([]opsapi.Agent{
			{ID: "contoso/agent-01", Tenant: "contoso", Name: "agent-01", State: opsapi.AgentOnline, Version: "0.9.0", LastSeen: &seen},
			{ID: "fabrikam/agent-02", Tenant: "fabrikam", Name: "agent-02", State: opsapi.AgentUnknown},
		}),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return srv.URL, key
}

type result struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	if env == nil {
		env = map[string]string{}
	}
	if _, ok := env["HOME"]; !ok {
		env["HOME"] = t.TempDir() // no stray config file
	}
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(""), &out, &errOut, func(k string) string { return env[k] })
	return result{program.Exit("opsbot", err, &errOut), out.String(), errOut.String()}
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	golden.Check(t, name, []byte(got))
}

func TestCommandsAgainstLocalServer(t *testing.T) {
	url, key := startServer(t)
	env := map[string]string{"OPSBOT_LOCAL_URL": url, "OPSBOT_API_KEY": key}
	tests := []struct {
		args   []string
		golden string
	}{
		{[]string{"status"}, "status.txt"},
		{[]string{"status", "-o", "json"}, "status.json"},
		{[]string{"agents", "list"}, "agents.txt"},
		{[]string{"agents", "list", "--output", "json"}, "agents.json"},
		{[]string{"agents", "list", "--tenant", "nobody"}, "agents_none.txt"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runCLI(t, env, tt.args...)
			require.Equal(t, exitcode.OK, r.code, "stderr: %s", r.stderr)
			assert.Empty(t, r.stderr)
			checkGolden(t, tt.golden, r.stdout)
		})
	}
}

func TestEventsCommand(t *testing.T) {
	url, key := startServer(t)
	r := runCLI(t, map[string]string{"OPSBOT_LOCAL_URL": url, "OPSBOT_API_KEY": key}, "events", "--count", "2", "--interval", "100ms", "-o", "json")
	require.Equal(t, exitcode.OK, r.code, "stderr: %s", r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 2)
	assert.Contains(t, lines[1], `"seq":2`)
}

func TestFailuresHaveDistinctExitCodes(t *testing.T) {
	url, key := startServer(t)
	dead := httptest.NewServer(nil)
	deadURL := dead.URL
	dead.Close()
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		wantMsg  string
	}{
		{"bad API key", map[string]string{"OPSBOT_LOCAL_URL": url, "OPSBOT_API_KEY": "obk_cli-test.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, []string{"status"}, exitcode.APIAuth, "refused the operator credential"},
		{"bad API key on events", map[string]string{"OPSBOT_LOCAL_URL": url, "OPSBOT_API_KEY": "nope"}, []string{"events"}, exitcode.APIAuth, "refused the operator credential"},
		{"server down", map[string]string{"OPSBOT_LOCAL_URL": deadURL, "OPSBOT_API_KEY": key}, []string{"agents", "list"}, exitcode.RelayUnreachable, "is it running with --local-listen"},
		{"no API key", map[string]string{"OPSBOT_LOCAL_URL": url}, []string{"status"}, exitcode.Usage, "api_key: required"},
		{"no namespace", map[string]string{"OPSBOT_API_KEY": key}, []string{"status"}, exitcode.Usage, "namespace: required"},
		{"unknown flag", map[string]string{"OPSBOT_LOCAL_URL": url}, []string{"status", "--frobnicate"}, exitcode.Usage, "unknown flag"},
		{"bad output", map[string]string{"OPSBOT_LOCAL_URL": url, "OPSBOT_API_KEY": key}, []string{"status", "-o", "yaml"}, exitcode.Usage, "output:"},
		{"unknown command", nil, []string{"deploy"}, exitcode.Usage, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.env, tt.args...)
			assert.Equal(t, tt.wantCode, r.code, "stderr: %s", r.stderr)
			assert.Contains(t, r.stderr, tt.wantMsg)
			assert.NotContains(t, r.stderr, key, "secrets stay out of messages")
		})
	}
}

// Relay failures come from the relay package as typed errors; each maps to
// its own exit code and a message naming what to check.
func TestExplainRelayErrors(t *testing.T) {
	tgt := target{host: "ns.servicebus.usgovcloudapi.net", hybridConnection: "ops"}
	tests := []struct {
		err      error
		wantCode int
		wantMsg  string
	}{
		{fmt.Errorf("cannot get status: %w", relay.ErrNoListener), exitcode.NoListener, `no ops server is listening on hybrid connection "ops"`},
		{&relay.UnreachableError{Host: tgt.host, Err: errors.New("dial tcp: no such host")}, exitcode.RelayUnreachable, "cannot reach the relay at ns.servicebus.usgovcloudapi.net"},
		{fmt.Errorf("x: %w", relay.ErrUnauthorized), exitcode.RelayAuth, "the relay at ns.servicebus.usgovcloudapi.net refused the credentials"},
		{fmt.Errorf("x: %w", relay.ErrNotFound), exitcode.NotFound, `hybrid connection "ops" does not exist`},
		{fmt.Errorf("x: %w", relay.ErrTimeout), exitcode.Timeout, "did not answer in time"},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), exitcode.Timeout, "did not answer in time"},
		{&opsclient.APIError{StatusCode: 401, Code: "unauthorized"}, exitcode.APIAuth, "refused the operator credential"},
		{&opsclient.APIError{StatusCode: 403, Code: "forbidden"}, exitcode.APIAuth, "lacks the required role"},
		{&opsclient.APIError{StatusCode: 500, Code: "internal"}, exitcode.Error, "ops API answered 500"},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			code, msg := explain(tt.err, tgt)
			assert.Equal(t, tt.wantCode, code)
			assert.Contains(t, msg, tt.wantMsg)
		})
	}
}

func TestConfigShowRedactsSecrets(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte("namespace: myns\nhybrid_connection: ops\nkey_name: send\nkey: s3cr3t\n"), 0o600))
	r := runCLI(t, map[string]string{"OPSBOT_API_KEY": "obk_x.y"}, "config", "show", "--config", cfgFile)
	require.Equal(t, exitcode.OK, r.code, "stderr: %s", r.stderr)
	assert.NotContains(t, r.stdout, "s3cr3t")
	assert.NotContains(t, r.stdout, "obk_x.y")
	assert.Regexp(t, `namespace\s+myns\s+file `, r.stdout)
	assert.Regexp(t, `api_key\s+<redacted>\s+env OPSBOT_API_KEY`, r.stdout)
}

// TestConfigShowRedactsEveryForm: whatever form a credential takes and
// whichever setting it lands in (also by mistake), config show prints no
// part of it, on stdout or in its warnings; what is not secret still shows.
func TestConfigShowRedactsEveryForm(t *testing.T) {
	const host = "contoso.servicebus.windows.net"
	tests := []struct {
		name    string
		env     map[string]string
		secrets []string
		shown   []string
	}{
		{"connection string with SharedAccessKey", map[string]string{"OPSBOT_NAMESPACE": "Endpoint=sb://" + host + "/;SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0LWtleS1ub3QtZm9y+/abc=;EntityPath=ops"},
			[]string{"c2VjcmV0LWtleS1ub3QtZm9y", "+/abc="}, []string{host, "SharedAccessKeyName=send", "EntityPath=ops"}},
		{"connection string, lower case and spaces", map[string]string{"OPSBOT_NAMESPACE": "endpoint=sb://" + host + "/; sharedaccesskeyname=send ; sharedaccesskey = bG93ZXJjYXNlLXNlY3JldA== ;entitypath=ops"},
			[]string{"bG93ZXJjYXNlLXNlY3JldA"}, []string{host}},
		{"connection string with SharedAccessSignature", map[string]string{"OPSBOT_NAMESPACE": "Endpoint=sb://" + host + "/;SharedAccessSignature=SharedAccessSignature sr=https%3A%2F%2F" + host + "%2Fops&sig=U2lnU2VjcmV0VmFsdWU%3D&se=1900000000&skn=send;EntityPath=ops"},
			[]string{"U2lnU2VjcmV0VmFsdWU"}, []string{host, "EntityPath=ops"}},
		{"bare SAS token as namespace", map[string]string{"OPSBOT_NAMESPACE": "SharedAccessSignature sr=https%3A%2F%2F" + host + "&sig=QmFyZVNhc1Rva2Vu%2B&se=1900000000&skn=send"},
			[]string{"QmFyZVNhc1Rva2Vu"}, nil},
		{"SAS query string on a namespace URL", map[string]string{"OPSBOT_NAMESPACE": "https://" + host + "/?sv=2&sig=UXVlcnlTaWdTZWNyZXQ%3D&se=1", "OPSBOT_HYBRID_CONNECTION": "ops"},
			[]string{"UXVlcnlTaWdTZWNyZXQ"}, []string{host}},
		{"password in a namespace URL", map[string]string{"OPSBOT_NAMESPACE": "sb://send:VXNlcmluZm9TZWNyZXQ@" + host, "OPSBOT_HYBRID_CONNECTION": "ops"},
			[]string{"VXNlcmluZm9TZWNyZXQ"}, []string{host}},
		{"storage connection string in the wrong place", map[string]string{"OPSBOT_NAMESPACE": "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=QWNjb3VudEtleVNlY3JldA==;EndpointSuffix=core.windows.net"},
			[]string{"QWNjb3VudEtleVNlY3JldA"}, []string{"AccountName=acct"}},
		{"relay key pasted as the namespace", map[string]string{"OPSBOT_NAMESPACE": "U0FTa2V5UGFzdGVkQXNOYW1lc3BhY2VYWVo0NTY3ODkwYWI="},
			[]string{"U0FTa2V5UGFzdGVkQXNOYW1lc3BhY2VY"}, nil},
		{"relay SAS key", map[string]string{"OPSBOT_NAMESPACE": "myns", "OPSBOT_HYBRID_CONNECTION": "ops", "OPSBOT_KEY_NAME": "send", "OPSBOT_KEY": "S2V5U2V0dGluZ1NlY3JldA=="},
			[]string{"S2V5U2V0dGluZ1NlY3JldA"}, []string{"send"}},
		{"operator API key", map[string]string{"OPSBOT_LOCAL_URL": "http://127.0.0.1:1", "OPSBOT_API_KEY": "obk_alice.QXBpS2V5U2VjcmV0VmFsdWVYWVo"},
			[]string{"QXBpS2V5U2VjcmV0VmFsdWVYWVo"}, nil},
		{"OAuth token as API key", map[string]string{"OPSBOT_LOCAL_URL": "http://127.0.0.1:1", "OPSBOT_API_KEY": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJvcGVyYXRvciJ9.T0F1dGhTaWduYXR1cmU"},
			[]string{"eyJzdWIiOiJvcGVyYXRvciJ9", "T0F1dGhTaWduYXR1cmU"}, nil},
		{"API key in the scope setting", map[string]string{"OPSBOT_LOCAL_URL": "http://127.0.0.1:1", "OPSBOT_API_SCOPE": "obk_alice.V3JvbmdGaWVsZFNlY3JldA"},
			[]string{"V3JvbmdGaWVsZFNlY3JldA"}, nil},
		{"token in the scope setting", map[string]string{"OPSBOT_LOCAL_URL": "http://127.0.0.1:1", "OPSBOT_API_SCOPE": "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.U2NvcGVUb2tlblNpZw"},
			[]string{"eyJzdWIiOiJ4In0", "U2NvcGVUb2tlblNpZw"}, nil},
		{"token in the local URL", map[string]string{"OPSBOT_LOCAL_URL": "http://127.0.0.1:9000/?access_token=TG9jYWxUb2tlblNlY3JldA&x=1"},
			[]string{"TG9jYWxUb2tlblNlY3JldA"}, []string{"127.0.0.1:9000"}},
		{"invalid namespace URL echoed in the error", map[string]string{"OPSBOT_NAMESPACE": "https://send:UGF0aFVybFNlY3JldA@" + host + "/ops?sig=UGF0aFNpZ1NlY3JldA", "OPSBOT_HYBRID_CONNECTION": "ops"},
			[]string{"UGF0aFVybFNlY3JldA", "UGF0aFNpZ1NlY3JldA"}, []string{host}},
		{"invalid local URL echoed in the error", map[string]string{"OPSBOT_LOCAL_URL": "ftp://op:RnRwU2VjcmV0UGFzcw@ops.example/?token=RnRwVG9rZW5TZWNyZXQ"},
			[]string{"RnRwU2VjcmV0UGFzcw", "RnRwVG9rZW5TZWNyZXQ"}, []string{"ops.example"}},
		{"password in the local URL", map[string]string{"OPSBOT_LOCAL_URL": "https://op:TG9jYWxQYXNzd29yZA@ops.example"},
			[]string{"TG9jYWxQYXNzd29yZA"}, []string{"ops.example"}},
		{"key in a flag", map[string]string{"OPSBOT_NAMESPACE": "myns", "OPSBOT_HYBRID_CONNECTION": "ops", "OPSBOT_KEY_NAME": "send"},
			[]string{"RmxhZ0tleVNlY3JldA"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"config", "show"}
			if tt.name == "key in a flag" {
				args = append(args, "--key", "RmxhZ0tleVNlY3JldA==")
			}
			r := runCLI(t, tt.env, args...)
			require.Equal(t, exitcode.OK, r.code, "stderr: %s", r.stderr)
			for _, secret := range tt.secrets {
				assert.NotContains(t, r.stdout, secret)
				assert.NotContains(t, r.stderr, secret)
			}
			for _, s := range tt.shown {
				assert.Contains(t, r.stdout, s)
			}
			assert.Contains(t, r.stdout, "<redacted>")

			// An error that echoes a setting hides it too.
			r = runCLI(t, tt.env, append([]string{"status"}, args[2:]...)...)
			require.NotEqual(t, exitcode.OK, r.code)
			for _, secret := range tt.secrets {
				assert.NotContains(t, r.stderr, secret)
			}
		})
	}
}

// fakeCredential stands in for the Entra login.
type fakeCredential struct {
	token  string
	err    error
	scopes *[]string
}

func (f fakeCredential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	*f.scopes = o.Scopes
	return azcore.AccessToken{Token: f.token, ExpiresOn: time.Now().Add(time.Hour)}, f.err
}

func TestAPIScopeUsesTheEntraLogin(t *testing.T) {
	url, key := startServer(t)
	env := map[string]string{"HOME": t.TempDir(), "OPSBOT_LOCAL_URL": url, "OPSBOT_API_SCOPE": "api://ops/.default"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }

	// The server accepts whatever bearer the credential yields; an API key
	// stands in for the Entra token here.
	var scopes []string
	var out, errOut bytes.Buffer
	a := &app{lookup: lookup, stdout: &out, stderr: &errOut, azure: fakeCredential{token: key, scopes: &scopes}}
	require.NoError(t, a.run(context.Background(), []string{"status"}))
	assert.Equal(t, []string{"api://ops/.default"}, scopes)

	out.Reset()
	errOut.Reset()
	a = &app{lookup: lookup, stdout: &out, stderr: &errOut, azure: fakeCredential{err: errors.New("AADSTS700082: refresh token expired"), scopes: &scopes}}
	assert.Equal(t, exitcode.APIAuth, program.Exit("opsbot", a.run(context.Background(), []string{"agents", "list"}), &errOut))
	assert.Contains(t, errOut.String(), "run az login")
	assert.Contains(t, errOut.String(), "AADSTS700082")
}

func TestConfigShowWorksOnBrokenConfig(t *testing.T) {
	r := runCLI(t, map[string]string{"OPSBOT_NAMESPACE": "myns", "OPSBOT_OUTPUT": "xml"}, "config", "show")
	require.Equal(t, exitcode.OK, r.code, "stderr: %s", r.stderr)
	assert.Contains(t, r.stderr, "the configuration is invalid")
	assert.Regexp(t, `output\s+xml\s+env OPSBOT_OUTPUT`, r.stdout)
}

// A profile selects the namespace, credentials and tenant; config show
// says which profile and where each value came from.
func TestProfilesSelectNamespaceCredentialsAndTenant(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte(`hybrid_connection: ops
profiles:
  dev:
    local_url: http://127.0.0.1:1
    api_key: obk_dev.devsecret
    tenant: contoso
  gov:
    namespace: ops-gov
    cloud: usgovernment
    key_name: send
    key: govkeysecret
    api_key: obk_gov.govsecret
    tenant: contoso-gov
`), 0o600))
	r := runCLI(t, nil, "config", "show", "--config", cfgFile, "--profile", "gov")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "Config file: "+cfgFile+"\nProfile:     gov (flag --profile)\n")
	assert.Regexp(t, `tenant\s+contoso-gov\s+profile gov in `+regexp.QuoteMeta(cfgFile), r.stdout)
	assert.Regexp(t, `namespace\s+ops-gov\s+profile gov in `, r.stdout)
	assert.Regexp(t, `hybrid_connection\s+ops\s+file `+regexp.QuoteMeta(cfgFile), r.stdout)
	assert.Regexp(t, `api_key\s+<redacted>\s+profile gov in `, r.stdout)
	assert.Regexp(t, `output\s+table\s+default`, r.stdout)
	assert.NotContains(t, r.stdout, "govsecret")
	assert.NotContains(t, r.stdout, "govkeysecret")

	r = runCLI(t, map[string]string{"OPSBOT_PROFILE": "dev", "OPSBOT_TENANT": "fabrikam"}, "config", "show", "--config", cfgFile)
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "Profile:     dev (env OPSBOT_PROFILE)")
	assert.Regexp(t, `tenant\s+fabrikam\s+env OPSBOT_TENANT`, r.stdout)

	// The profile's tenant and credential reach the request.
	url, key := startServer(t)
	require.NoError(t, os.WriteFile(cfgFile, []byte("profiles:\n  local:\n    local_url: "+url+"\n    api_key: "+key+"\n    tenant: nobody\n"), 0o600))
	r = runCLI(t, nil, "runs", "list", "--config", cfgFile, "--profile", "local")
	assert.Equal(t, exitcode.Error, r.code, r.stderr)
	assert.Contains(t, r.stderr, "runs are not configured", "the request reached the server as the profile's key")

	r = runCLI(t, nil, "runs", "list", "--config", cfgFile, "--profile", "prod")
	assert.Equal(t, exitcode.Usage, r.code)
	assert.Contains(t, r.stderr, `profile "prod": config file `+cfgFile+` has no such profile (its profiles: local)`)
}
