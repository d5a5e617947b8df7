package opsconfig

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func flags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	RegisterFlags(fs)
	require.NoError(t, fs.Parse(args))
	return fs
}

func write(t *testing.T, name, data string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(data), mode))
	return p
}

func TestPrecedence(t *testing.T) {
	file := write(t, "c.yaml", "namespace: file-ns\nhybrid_connection: file-hc\nkey_name: send\nkey: file-key\napi_key: file-api\noutput: json\ntimeout: 5s\n", 0o600)
	c, warnings, err := Resolve(
		flags(t, "--config", file, "--hybrid-connection", "flag-hc"),
		env(map[string]string{"OPSBOT_HYBRID_CONNECTION": "env-hc", "OPSBOT_API_KEY": "env-api", "HOME": t.TempDir()}),
	)
	require.NoError(t, err)
	assert.Empty(t, warnings)
	assert.Equal(t, "file-ns", c.Namespace)
	assert.Equal(t, "flag-hc", c.HybridConnection)
	assert.Equal(t, "env-api", c.APIKey)
	assert.Equal(t, "file-key", c.Key)
	assert.Equal(t, OutputJSON, c.Output)
	assert.Equal(t, 5*time.Second, c.Timeout)
	assert.Equal(t, "public", c.Cloud)

	assert.Equal(t, "file "+file, c.Source("namespace"))
	assert.Equal(t, "flag --hybrid-connection", c.Source("hybrid_connection"))
	assert.Equal(t, "env OPSBOT_API_KEY", c.Source("api_key"))
	assert.Equal(t, "default", c.Source("cloud"))
}

func TestDefaultFileLocations(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, ".config", "opsbot")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"local_url":"http://127.0.0.1:9000","api_key":"k","relay_insecure":false,"timeout":"2s"}`), 0o600))

	c, _, err := Resolve(flags(t), env(map[string]string{"HOME": home}))
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:9000", c.LocalURL)
	assert.Equal(t, 2*time.Second, c.Timeout)

	// XDG_CONFIG_HOME wins over HOME; yaml before json.
	xdg := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(xdg, "opsbot"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(xdg, "opsbot", "config.yaml"), []byte("local_url: https://ops.internal.example\n"), 0o600))
	c, _, err = Resolve(flags(t), env(map[string]string{"HOME": home, "XDG_CONFIG_HOME": xdg}))
	require.NoError(t, err)
	assert.Equal(t, "https://ops.internal.example", c.LocalURL)

	// No file at all is fine when everything comes from elsewhere.
	c, _, err = Resolve(flags(t, "--local-url", "http://localhost:1"), env(map[string]string{"HOME": t.TempDir()}))
	require.NoError(t, err)
	assert.Equal(t, "http://localhost:1", c.LocalURL)
}

func TestConnectionStringCarriesKeyAndEntity(t *testing.T) {
	cs := "Endpoint=sb://myns.servicebus.usgovcloudapi.net/;SharedAccessKeyName=send;SharedAccessKey=abc=;EntityPath=ops"
	c, _, err := Resolve(flags(t), env(map[string]string{"OPSBOT_NAMESPACE": cs, "HOME": t.TempDir()}))
	require.NoError(t, err)
	ns, err := c.ParseNamespace()
	require.NoError(t, err)
	assert.Equal(t, "myns.servicebus.usgovcloudapi.net", ns.Host)
	assert.Equal(t, "ops", ns.EntityPath)
}

func TestBareNameInGovCloud(t *testing.T) {
	c, _, err := Resolve(flags(t, "--namespace", "myns", "--cloud", "usgovernment", "--hybrid-connection", "ops", "--relay-auth", "entra"), env(map[string]string{"HOME": t.TempDir()}))
	require.NoError(t, err)
	ns, err := c.ParseNamespace()
	require.NoError(t, err)
	assert.Equal(t, "myns.servicebus.usgovcloudapi.net", ns.Host)
}

func TestErrorsNameTheSetting(t *testing.T) {
	relay := []string{"--namespace", "myns", "--hybrid-connection", "ops", "--key-name", "send", "--key", "k"}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		file string // yaml config contents
		want string
	}{
		{"nothing", nil, nil, "", "namespace: required"},
		{"bad output", append(relay, "-o", "xml"), nil, "", "output:"},
		{"bad timeout", append(relay, "--timeout", "soon"), nil, "", "--timeout"},
		{"zero timeout", append(relay, "--timeout", "0s"), nil, "", "timeout:"},
		{"bad env timeout", relay, map[string]string{"OPSBOT_TIMEOUT": "x"}, "", "OPSBOT_TIMEOUT"},
		{"bad namespace", []string{"--namespace", "bad_ns!", "--hybrid-connection", "ops", "--key-name", "a", "--key", "b"}, nil, "", "namespace:"},
		{"bad cloud", append(relay, "--cloud", "mars"), nil, "", "namespace:"},
		{"no hybrid connection", []string{"--namespace", "myns", "--key-name", "a", "--key", "b"}, nil, "", "hybrid_connection: required"},
		{"no key", []string{"--namespace", "myns", "--hybrid-connection", "ops"}, nil, "", "key: relay_auth sas"},
		{"key without name", []string{"--namespace", "myns", "--hybrid-connection", "ops", "--key", "b"}, nil, "", "key_name and key"},
		{"entra with key", append(relay, "--relay-auth", "entra"), nil, "", "key: relay_auth entra"},
		{"bad relay auth", append(relay, "--relay-auth", "password"), nil, "", "relay_auth:"},
		{"api key and scope", append(relay, "--api-key", "k", "--api-scope", "api://ops/.default"), nil, "", "api_key and api_scope"},
		{"remote http", []string{"--local-url", "http://10.0.0.5:8080"}, nil, "", "local_url:"},
		{"bad scheme", []string{"--local-url", "ftp://127.0.0.1"}, nil, "", "local_url:"},
		{"unknown file key", nil, nil, "namspace: typo\n", `namspace: unknown key (known: namespace, cloud,`},
		{"bad file bool", nil, nil, "relay_insecure: maybe\n", "relay_insecure"},
		{"file not yaml", nil, nil, "namespace: [\n", "cannot decode config file"},
		{"nested file value", nil, nil, "namespace:\n  a: b\n", "want a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.file != "" {
				args = append(args, "--config", write(t, "c.yaml", tt.file, 0o600))
			}
			e := map[string]string{"HOME": t.TempDir()}
			for k, v := range tt.env {
				e[k] = v
			}
			_, _, err := Resolve(flags(t, args...), env(e))
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

func TestExplicitMissingFileIsAnError(t *testing.T) {
	_, _, err := Resolve(flags(t, "--config", filepath.Join(t.TempDir(), "nope.yaml")), env(map[string]string{}))
	assert.ErrorContains(t, err, "cannot read config file")
	_, _, err = Resolve(flags(t), env(map[string]string{"OPSBOT_CONFIG": filepath.Join(t.TempDir(), "nope.yaml")}))
	assert.ErrorContains(t, err, "cannot read config file")
}

func TestWarnsAboutReadableSecrets(t *testing.T) {
	open := write(t, "c.yaml", "local_url: http://127.0.0.1:1\napi_key: secret\n", 0o644)
	_, warnings, err := Resolve(flags(t, "--config", open), env(map[string]string{}))
	require.NoError(t, err)
	require.Len(t, warnings, 1)
	assert.Contains(t, warnings[0], "chmod 600")
	assert.NotContains(t, warnings[0], "secret\n")

	noSecrets := write(t, "c.yaml", "local_url: http://127.0.0.1:1\n", 0o644)
	_, warnings, err = Resolve(flags(t, "--config", noSecrets), env(map[string]string{}))
	require.NoError(t, err)
	assert.Empty(t, warnings)
}

func TestSettingsRedactSecrets(t *testing.T) {
	c := &Config{Key: "k", APIKey: "a", Namespace: "ns"}
	for _, s := range Settings() {
		switch s.Key {
		case "key", "api_key":
			assert.Equal(t, "<redacted>", s.Get(c))
		case "namespace":
			assert.Equal(t, "ns", s.Get(c))
		}
		assert.Regexp(t, `^OPSBOT_[A-Z_]+$`, s.Env())
	}
}

func TestRedact(t *testing.T) {
	c := &Config{Key: "bXlLZXk=", Namespace: "Endpoint=sb://ns.example/;SharedAccessKeyName=send;SharedAccessKey=Q29ublN0cktleQ=="}
	tests := []struct{ in, want string }{
		{"SharedAccessKey=abc;EntityPath=ops", "SharedAccessKey=<redacted>;EntityPath=ops"},
		{"x SharedAccessSignature=SharedAccessSignature sr=a&sig=b&se=1;EntityPath=ops", "x SharedAccessSignature=<redacted>;EntityPath=ops"},
		{"token: SharedAccessSignature sr=a&sig=b&se=1&skn=send end", "token: SharedAccessSignature <redacted> end"},
		{"https://h/?sv=1&sig=abc%2B&se=2", "https://h/?sv=1&sig=<redacted>&se=2"},
		{"AccountName=a;AccountKey=abc==;EndpointSuffix=x", "AccountName=a;AccountKey=<redacted>;EndpointSuffix=x"},
		{"sb://user:pa55@host/", "sb://user:<redacted>@host/"},
		{"Authorization: Bearer abc.def-ghi", "Authorization: Bearer <redacted>"},
		{"key obk_alice.c2VjcmV0 refused", "key <redacted> refused"},
		{"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "<redacted>"},
		{"echo bXlLZXk= and Q29ublN0cktleQ==", "echo <redacted> and <redacted>"},
		// Not secrets: left alone.
		{`--label: "novalue": want key=value`, `--label: "novalue": want key=value`},
		{"/tmp/TestRunCommandErrors347866595/001 is too large", "/tmp/TestRunCommandErrors347866595/001 is too large"},
		{"run 0a1b2c3d-1111-4222-8333-444455556666 on contoso.servicebus.windows.net", "run 0a1b2c3d-1111-4222-8333-444455556666 on contoso.servicebus.windows.net"},
		{"SharedAccessKeyName=RootManageSharedAccessKey", "SharedAccessKeyName=RootManageSharedAccessKey"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, c.Redact(tt.in), tt.in)
	}
	var none *Config
	assert.Equal(t, "SharedAccessKey=<redacted>", none.Redact("SharedAccessKey=x"), "a nil config still redacts by shape")
}

const profilesFile = `api_key: obk_shared.secret
hybrid_connection: ops
tenant: contoso
profile: dev
profiles:
  dev:
    namespace: ops-dev
    relay_auth: entra
  gov:
    namespace: ops-gov
    cloud: usgovernment
    tenant: contoso-gov
    key_name: send
    key: gov-key
`

func TestProfiles(t *testing.T) {
	file := write(t, "c.yaml", profilesFile, 0o600)
	home := env(map[string]string{"HOME": t.TempDir()})
	resolve := func(t *testing.T, lookup func(string) (string, bool), args ...string) *Config {
		t.Helper()
		c, warnings, err := Resolve(flags(t, append([]string{"--config", file}, args...)...), lookup)
		require.NoError(t, err)
		assert.Empty(t, warnings)
		return c
	}

	// The file's default profile.
	c := resolve(t, home)
	assert.Equal(t, "dev", c.Profile)
	assert.Equal(t, "file "+file, c.ProfileSource)
	assert.Equal(t, "ops-dev", c.Namespace)
	assert.Equal(t, "contoso", c.Tenant)
	assert.Equal(t, "profile dev in "+file, c.Source("namespace"))
	assert.Equal(t, "file "+file, c.Source("tenant"))

	// --profile selects one; its settings win over the file's top level.
	c = resolve(t, home, "--profile", "gov")
	assert.Equal(t, "gov", c.Profile)
	assert.Equal(t, "flag --profile", c.ProfileSource)
	assert.Equal(t, "contoso-gov", c.Tenant)
	assert.Equal(t, "usgovernment", c.Cloud)
	assert.Equal(t, "gov-key", c.Key)
	assert.Equal(t, "obk_shared.secret", c.APIKey, "the file's top level holds for every profile")
	assert.Equal(t, "profile gov in "+file, c.Source("tenant"))
	ns, err := c.ParseNamespace()
	require.NoError(t, err)
	assert.Equal(t, "ops-gov.servicebus.usgovcloudapi.net", ns.Host)

	// OPSBOT_PROFILE too; the environment and flags still win over it.
	c = resolve(t, env(map[string]string{"HOME": t.TempDir(), "OPSBOT_PROFILE": "gov", "OPSBOT_TENANT": "fabrikam"}), "--namespace", "other")
	assert.Equal(t, "env OPSBOT_PROFILE", c.ProfileSource)
	assert.Equal(t, "fabrikam", c.Tenant)
	assert.Equal(t, "env OPSBOT_TENANT", c.Source("tenant"))
	assert.Equal(t, "other", c.Namespace)
	assert.Equal(t, "flag --namespace", c.Source("namespace"))
	assert.Equal(t, "profile gov in "+file, c.Source("key"))
}

func TestProfileErrors(t *testing.T) {
	file := write(t, "c.yaml", profilesFile, 0o600)
	for _, tc := range []struct {
		name string
		file string
		args []string
		env  map[string]string
		msg  string
	}{
		{"unknown profile", file, []string{"--profile", "prod"}, nil, `flag --profile: profile "prod": config file ` + file + ` has no such profile (its profiles: dev, gov)`},
		{"unknown profile from env", file, nil, map[string]string{"OPSBOT_PROFILE": "qa"}, `env OPSBOT_PROFILE: profile "qa"`},
		{"no file", "", []string{"--profile", "gov"}, nil, `profile "gov": no config file defines profiles`},
		{"unknown key in a profile", write(t, "bad.yaml", "profiles:\n  gov:\n    tennant: x\n", 0o600), nil, nil, `profiles.gov.tennant: unknown key (known: `},
		{"profiles not a map", write(t, "bad2.yaml", "profiles: [gov]\n", 0o600), nil, nil, "profiles: want a map"},
		{"default profile missing", write(t, "bad3.yaml", "profile: gov\n", 0o600), nil, nil, `profile "gov": config file`},
		{"bad value in a profile", write(t, "bad4.yaml", "profiles:\n  gov:\n    timeout: soon\n", 0o600), []string{"--profile", "gov"}, nil, `profiles.gov.timeout: "soon" is not a duration`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := map[string]string{"HOME": t.TempDir()}
			for k, v := range tc.env {
				e[k] = v
			}
			args := tc.args
			if tc.file != "" {
				args = append([]string{"--config", tc.file}, args...)
			}
			_, _, err := Resolve(flags(t, args...), env(e))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
}

func TestSecretsInAProfileAreWarnedAbout(t *testing.T) {
	file := write(t, "c.yaml", "local_url: http://127.0.0.1:1\nprofiles:\n  gov:\n    api_key: obk_a.b\n", 0o644)
	_, warnings, err := Resolve(flags(t, "--config", file), env(map[string]string{"HOME": t.TempDir()}))
	require.NoError(t, err)
	require.Len(t, warnings, 1)
	assert.Contains(t, warnings[0], "holds secrets and is readable by others")
}

func TestTenantIsASetting(t *testing.T) {
	file := write(t, "c.json", `{"local_url":"http://127.0.0.1:1","tenant":"contoso"}`, 0o600)
	c, _, err := Resolve(flags(t, "--config", file), env(map[string]string{"HOME": t.TempDir()}))
	require.NoError(t, err)
	assert.Equal(t, "contoso", c.Tenant)
	c, _, err = Resolve(flags(t, "--config", file, "--tenant", "fabrikam"), env(map[string]string{"HOME": t.TempDir()}))
	require.NoError(t, err)
	assert.Equal(t, "fabrikam", c.Tenant)
	assert.Equal(t, "flag --tenant", c.Source("tenant"))
}

// The config files docs/ops.md shows are accepted as they are: every key
// (tenant and profiles included) is one the file may hold.
func TestDocumentedConfigFilesAreAccepted(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "ops.md"))
	require.NoError(t, err)
	blocks := regexp.MustCompile("(?s)```yaml\n(# [^\n]*opsbot[^\n]*\n.*?)```").FindAllStringSubmatch(string(doc), -1)
	require.Len(t, blocks, 2, "the plain and the profiles example")
	for i, b := range blocks {
		path := write(t, "config.yaml", b[1], 0o600)
		f, err := readFile(path)
		require.NoError(t, err, "example %d", i)
		c := defaults()
		require.NoError(t, c.apply(f.settings, "file"), "example %d", i)
		assert.NotEmpty(t, f.settings["tenant"]+f.profiles["gov"]["tenant"], "example %d shows the tenant key", i)
		for name := range f.profiles {
			require.NoError(t, defaults().applyProfile(f, path, name), "example %d, profile %s", i, name)
		}
	}
}
