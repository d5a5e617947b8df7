package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/runs"
)

func TestTermSafe(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain line\n\tindented\n", "plain line\n\tindented\n"},
		{"caf\u00e9 \u00b0C \u00a9 \u2713\n", "caf\u00e9 \u00b0C \u00a9 \u2713\n"},
		{"\x1b[31mred\x1b[0m\n", "^[[31mred^[[0m\n"},
		{"\x1b]52;c;ZXZpbA==\x07copied\n", "^[]52;c;ZXZpbA==^Gcopied\n"},
		{"over\rwritten\b\x7f\n", "over^Mwritten^H^?\n"},
		{"\u009b2J cleared\n", `\u009b2J cleared` + "\n"},
		{"bad \xff byte\n", "bad \xff byte\n"},
	} {
		var b strings.Builder
		n, err := termSafe{&b}.Write([]byte(tc.in))
		require.NoError(t, err)
		assert.Equal(t, len(tc.in), n)
		assert.Equal(t, tc.want, b.String(), "%q", tc.in)
	}
}

// TestLogsShowEscapesRatherThanSendThem: a configuration's command can
// print escape sequences into the run's log; opsbot logs shows them to
// whoever reads the log instead of letting them drive the terminal.
func TestLogsShowEscapesRatherThanSendThem(t *testing.T) {
	api := newFakeRuns()
	api.set(runs.Applied, "applied", nil)
	api.mu.Lock()
	api.log = "terraform_data.x (local-exec): \x1b]52;c;ZXZpbA==\x07\x1b[2J\n"
	api.mu.Unlock()
	r := cli{t: t, api: api}.run("logs", api.run.ID)
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Equal(t, "terraform_data.x (local-exec): ^[]52;c;ZXZpbA==^G^[[2J\n", r.stdout)
}
