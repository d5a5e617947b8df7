package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/envflag"
)

func TestParse(t *testing.T) {
	base := []string{"--gateway-url", "http://127.0.0.1:1", "--tenant", "contoso", "--id", "a1", "--key", "k.pem"}
	old := []string{"--worker-url", "http://127.0.0.1:1", "--tenant", "contoso", "--id", "a1", "--key", "k.pem"}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, o *options)
	}{
		{name: "issuer gives the token endpoint", args: append(base, "--issuer", "http://idp/"), check: func(t *testing.T, o *options) {
			assert.Equal(t, "http://idp/oauth2/token", o.tokenURL)
			assert.Equal(t, 1, o.concurrency)
			assert.Equal(t, filepath.Join(os.TempDir(), "bote-agent", "contoso", "a1"), o.workDir)
		}},
		{name: "labels repeated and comma separated", args: append(base, "--token-url", "http://idp/t", "--labels", "env=prod,region=eu", "--labels", "tier=1"), check: func(t *testing.T, o *options) {
			assert.Equal(t, labels{"env": "prod", "region": "eu", "tier": "1"}, o.labels)
			assert.Equal(t, "env=prod,region=eu,tier=1", o.labels.String())
		}},
		{name: "aliases", args: []string{"--gateway-url", "http://w", "--tenant", "contoso", "--agent", "a2", "--key", "k.pem", "--issuer", "http://idp", "--capacity", "4", "--label", "env=dev"}, check: func(t *testing.T, o *options) {
			assert.Equal(t, "a2", o.id)
			assert.Equal(t, 4, o.concurrency)
			assert.Equal(t, labels{"env": "dev"}, o.labels)
		}},
		{name: "old gateway flag still read", args: append(old, "--issuer", "http://idp"), check: func(t *testing.T, o *options) {
			assert.Equal(t, "http://127.0.0.1:1", o.gatewayURL)
			assert.Equal(t, []envflag.Deprecation{{Old: "--worker-url", New: "--gateway-url"}}, o.deprecated)
		}},
		{name: "gateway flag", args: append(base, "--issuer", "http://idp"), check: func(t *testing.T, o *options) {
			assert.Equal(t, "http://127.0.0.1:1", o.gatewayURL)
			assert.Empty(t, o.deprecated)
		}},
		{name: "both gateway flags: the new one wins", args: append(old, "--issuer", "http://idp", "--gateway-url", "http://g"), check: func(t *testing.T, o *options) {
			assert.Equal(t, "http://g", o.gatewayURL)
			assert.Equal(t, []envflag.Deprecation{{Old: "--worker-url", New: "--gateway-url"}}, o.deprecated)
		}},
		{name: "gateway URL from the environment, old and new", args: []string{"--tenant", "contoso", "--id", "a1", "--key", "k.pem", "--issuer", "http://idp"},
			env: map[string]string{"BOTE_AGENT_WORKER_URL": "http://w", "BOTE_AGENT_GATEWAY_URL": "http://g"}, check: func(t *testing.T, o *options) {
				assert.Equal(t, "http://g", o.gatewayURL)
				assert.Empty(t, o.deprecated)
			}},
		{name: "gateway URL from the old environment variable", args: []string{"--tenant", "contoso", "--id", "a1", "--key", "k.pem", "--issuer", "http://idp"},
			env: map[string]string{"BOTE_AGENT_WORKER_URL": "http://w"}, check: func(t *testing.T, o *options) {
				assert.Equal(t, "http://w", o.gatewayURL)
				assert.Equal(t, []envflag.Deprecation{{Old: "BOTE_AGENT_WORKER_URL", New: "BOTE_AGENT_GATEWAY_URL"}}, o.deprecated)
			}},
		{name: "environment", args: base, env: map[string]string{"BOTE_AGENT_ISSUER": "http://idp", "BOTE_AGENT_CONCURRENCY": "3", "BOTE_AGENT_CANCEL_GRACE": "5s"}, check: func(t *testing.T, o *options) {
			assert.Equal(t, 3, o.concurrency)
			assert.Equal(t, 5*time.Second, o.cancelGrace)
			assert.Equal(t, "http://idp/oauth2/token", o.tokenURL)
		}},
		{name: "flag wins over environment", args: append(base, "--issuer", "http://idp", "--concurrency", "2"), env: map[string]string{"BOTE_AGENT_CONCURRENCY": "3"}, check: func(t *testing.T, o *options) {
			assert.Equal(t, 2, o.concurrency)
		}},
		{name: "plugin cache in the work dir by default", args: append(base, "--issuer", "http://idp", "--work-dir", "/w"), check: func(t *testing.T, o *options) {
			assert.Equal(t, "/w/plugin-cache", o.providers.cacheDir)
			assert.EqualValues(t, 10<<30, o.providers.cacheMax)
			assert.False(t, o.providers.sources.NoDirect)
		}},
		{name: "provider sources", args: append(base, "--issuer", "http://idp", "--plugin-cache-dir", "off", "--provider-mirror-dir", "/m",
			"--provider-network-mirror", "https://mirror.example.com/p", "--provider-direct=false", "--plan-without-providers"), check: func(t *testing.T, o *options) {
			assert.True(t, o.providers.planWithout)
			assert.Empty(t, o.providers.cacheDir)
			assert.Equal(t, "/m", o.providers.sources.FilesystemMirror)
			assert.Equal(t, "https://mirror.example.com/p", o.providers.sources.NetworkMirror)
			assert.True(t, o.providers.sources.NoDirect)
		}},
		{name: "plugin cache size", args: append(base, "--issuer", "http://idp"), env: map[string]string{"BOTE_AGENT_PLUGIN_CACHE_MAX_SIZE": "512MiB"}, check: func(t *testing.T, o *options) {
			assert.EqualValues(t, 512<<20, o.providers.cacheMax)
			assert.Equal(t, "512MiB", o.providers.cacheMax.String())
		}},
		{name: "bad plugin cache size", args: append(base, "--issuer", "http://idp", "--plugin-cache-max-size", "lots"), wantErr: `size "lots"`},
		{name: "plain http mirror", args: append(base, "--issuer", "http://idp", "--provider-network-mirror", "http://m/"), wantErr: "must be an https URL"},
		{name: "no token endpoint", args: base, wantErr: "--token-url or --issuer is required"},
		{name: "both token endpoints", args: append(base, "--issuer", "http://idp", "--token-url", "http://idp/t"), wantErr: "not both"},
		{name: "no key", args: []string{"--issuer", "http://idp"}, wantErr: "--key is required"},
		{name: "zero concurrency", args: append(base, "--issuer", "http://idp", "--concurrency", "0"), wantErr: "--concurrency 0"},
		{name: "bad label", args: append(base, "--issuer", "http://idp", "--labels", "novalue"), wantErr: "want key=value"},
		{name: "bad duration", args: append(base, "--issuer", "http://idp", "--cancel-grace", "0s"), wantErr: "must be positive"},
		{name: "short visibility", args: append(base, "--issuer", "http://idp", "--visibility", "1s"), wantErr: "--visibility 1s must be at least 2s"},
		{name: "visibility", args: append(base, "--issuer", "http://idp", "--visibility", "5s"), check: func(t *testing.T, o *options) {
			assert.Equal(t, 5*time.Second, o.visibility)
		}},
		{name: "stray argument", args: append(base, "--issuer", "http://idp", "extra"), wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parse(tt.args, io.Discard, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			tt.check(t, o)
		})
	}
}

func TestRunRefusesBrokenConfig(t *testing.T) {
	dir := t.TempDir()
	key, err := clientauth.GenerateKey()
	require.NoError(t, err)
	keyPath := filepath.Join(dir, "key.pem")
	require.NoError(t, clientauth.WriteKeyFile(keyPath, key))
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"missing key file", []string{"--issuer", "http://idp", "--tenant", "t", "--id", "a", "--key", filepath.Join(dir, "none.pem"), "--gateway-url", "http://w"}, "none.pem"},
		{"no terraform", []string{"--issuer", "http://idp", "--tenant", "t", "--id", "a", "--key", keyPath, "--gateway-url", "http://w", "--terraform", filepath.Join(dir, "no-terraform")}, "cannot find terraform"},
		{"bad tenant", []string{"--issuer", "http://idp", "--tenant", "a/b", "--id", "a", "--key", keyPath, "--gateway-url", "http://w", "--work-dir", dir}, "Tenant"},
		{"bad worker URL", []string{"--issuer", "http://idp", "--tenant", "t", "--id", "a", "--key", keyPath, "--worker-url", "nope", "--work-dir", dir}, "GatewayURL"},
		{"bad gateway URL", []string{"--issuer", "http://idp", "--tenant", "t", "--id", "a", "--key", keyPath, "--gateway-url", "nope", "--work-dir", dir}, "GatewayURL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tt.args, nil, &out, &errOut, noEnv)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

// TestRunWarnsAboutTheOldGatewayFlag: --worker-url, the name before the
// rename, is logged once as deprecated.
func TestRunWarnsAboutTheOldGatewayFlag(t *testing.T) {
	var errOut bytes.Buffer
	err := run(context.Background(), []string{"--issuer", "http://idp", "--tenant", "t", "--id", "a", "--key", filepath.Join(t.TempDir(), "none.pem"), "--worker-url", "http://w"}, nil, io.Discard, &errOut, noEnv)
	require.ErrorContains(t, err, "none.pem")
	assert.Equal(t, 1, strings.Count(errOut.String(), `"msg":"deprecated name`), errOut.String())
	assert.Contains(t, errOut.String(), `"old":"--worker-url","new":"--gateway-url"`)
}

func TestVersionNamesTheBuildAndTheTerraform(t *testing.T) {
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("no terraform on PATH")
	}
	var b strings.Builder
	printVersion(context.Background(), &b, []string{"--version"}, func(string) string { return "" })
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 2, b.String())
	assert.Regexp(t, `^agent \S+ .*go1\.\d+`, lines[0])
	assert.Regexp(t, `^terraform \d+\.\d+\.\d+`, lines[1])

	b.Reset()
	printVersion(context.Background(), &b, []string{"--terraform", "/nonexistent/terraform", "--version"}, func(string) string { return "" })
	assert.Contains(t, b.String(), `terraform: unknown: cannot find terraform executable "/nonexistent/terraform"`)
	b.Reset()
	printVersion(context.Background(), &b, []string{"--version"}, func(k string) string {
		if k == "BOTE_AGENT_TERRAFORM" {
			return "/from/env/terraform"
		}
		return ""
	})
	assert.Contains(t, b.String(), `"/from/env/terraform"`)
}

func TestTerraformFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--version"}, ""},
		{[]string{"--terraform", "/a/tf", "--version"}, "/a/tf"},
		{[]string{"-terraform=/b/tf", "--version"}, "/b/tf"},
		{[]string{"--version", "--terraform"}, ""},
		{[]string{"--tenant", "terraform"}, ""},
	} {
		assert.Equal(t, tc.want, terraformFlag(tc.args), "%q", tc.args)
	}
}

func noEnv(string) string { return "" }
