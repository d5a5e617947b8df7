package platform

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOptionsValidate(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		opts Options
		err  string
	}{
		{"ok", Options{Dir: dir, Agents: []Agent{{Tenant: "t", ID: "a"}, {Tenant: "u", ID: "a"}}}, ""},
		{"no dir", Options{}, "Dir is required"},
		{"missing dir", Options{Dir: dir + "/nope"}, "must be an existing directory"},
		{"agent without tenant", Options{Dir: dir, Agents: []Agent{{ID: "a"}}}, "Agents[0]: Tenant and ID are required"},
		{"agent twice", Options{Dir: dir, Agents: []Agent{{Tenant: "t", ID: "a"}, {Tenant: "t", ID: "a"}}}, "Agents[1]: t/a is listed twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Validate()
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.err)
		})
	}
}

func TestPrefixWriterPrefixesWholeLines(t *testing.T) {
	var out bytes.Buffer
	w := &prefixWriter{w: &out, prefix: "idp | "}
	for _, chunk := range []string{"first li", "ne\nsecond\nthi", "rd\n"} {
		n, err := w.Write([]byte(chunk))
		require.NoError(t, err)
		assert.Equal(t, len(chunk), n)
	}
	assert.Equal(t, "idp | first line\nidp | second\nidp | third\n", out.String())
}

func TestQueuedRun(t *testing.T) {
	id, ok := QueuedRun(Result{Stderr: "Uploading x...\nRun run-06h0h5qgmtvvubsj queued (apply).\n"})
	assert.True(t, ok)
	assert.Equal(t, "run-06h0h5qgmtvvubsj", id)
	_, ok = QueuedRun(Result{Stderr: "opsbot: cannot start the run"})
	assert.False(t, ok)
}

func TestAgentArgs(t *testing.T) {
	p := &Platform{GatewayURL: "http://w", IdpURL: "http://i", Dir: "/d", keyFiles: map[string]string{"t/a": "/d/keys/t-a.pem"}}
	args := p.agentArgs(Agent{Tenant: "t", ID: "a", Capacity: 2, Labels: map[string]string{"zone": "b", "env": "prod"}})
	assert.Equal(t, []string{
		"--gateway-url", "http://w", "--issuer", "http://i", "--tenant", "t", "--id", "a", "--key", "/d/keys/t-a.pem",
		"--work-dir", "/d/agents/t/a", "--cancel-grace", "5s", "--shutdown-grace", "5s",
		"--concurrency", "2", "--labels", "env=prod,zone=b",
	}, args)
}
