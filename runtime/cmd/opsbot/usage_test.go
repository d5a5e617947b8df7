package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
)

// Every group of the tree, whoever added it, refuses an unknown
// subcommand and every command an unknown flag: exit 2, nothing done.
func TestEveryCommandRefusesWhatItDoesNotKnow(t *testing.T) {
	api := newFakeRuns()
	var groups, leaves [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		if c.HasSubCommands() {
			groups = append(groups, path)
		} else {
			leaves = append(leaves, path)
		}
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string(nil), path...), sub.Name()))
		}
	}
	walk((&app{}).rootCommand(), nil)
	require.GreaterOrEqual(t, len(groups), 6, "root, agents, config, workspaces, runs, keys, state, ...")
	require.GreaterOrEqual(t, len(leaves), 15)

	for _, g := range groups {
		t.Run(strings.Join(append(g, "bogus"), " "), func(t *testing.T) {
			r := cli{t: t, api: api}.run(append(g, "bogus", "x")...)
			assert.Equal(t, exitcode.Usage, r.code, r.stderr)
			assert.Contains(t, r.stderr, `unknown command "bogus"`)
			assert.Contains(t, r.stderr, "its commands: ")
			assert.Empty(t, r.stdout)
		})
	}
	for _, l := range leaves {
		t.Run(strings.Join(append(l, "--bogus"), " "), func(t *testing.T) {
			r := cli{t: t, api: api}.run(append(l, "--bogus")...)
			assert.Equal(t, exitcode.Usage, r.code, r.stderr)
			assert.Contains(t, r.stderr, "unknown flag: --bogus for \"opsbot "+strings.Join(l, " ")+`"`)
		})
	}
	assert.Empty(t, api.created)
	assert.Empty(t, api.approved)
	assert.Empty(t, api.cancelled)
}

func TestUnknownCommandsAndFlagsGetSuggestions(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"runs", "lst"}, `unknown command "lst" for "opsbot runs"; did you mean "list"?`},
		{[]string{"agents", "lst"}, `unknown command "lst" for "opsbot agents"; did you mean "list"?`},
		{[]string{"workspaces", "delete", "demo"}, `unknown command "delete" for "opsbot workspaces"` + "\n  its commands: create, list, update"},
		{[]string{"ws", "lis"}, `did you mean "list"?`},
		{[]string{"agnts"}, `unknown command "agnts" for "opsbot"; did you mean "agents"?`},
		{[]string{"plan", "--workspce", "app"}, `unknown flag: --workspce for "opsbot plan"; did you mean --workspace?`},
		{[]string{"runs", "list", "--tennant", "x"}, `did you mean --tenant?`},
		{[]string{"plan", "-x"}, `unknown shorthand flag: 'x' in -x for "opsbot plan"`},
		{[]string{"logs", "run-1", "--offset", "x"}, `invalid argument "x" for "--offset"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := cli{t: t, api: newFakeRuns()}.run(tc.args...)
			assert.Equal(t, exitcode.Usage, r.code)
			assert.Contains(t, r.stderr, tc.msg)
			assert.NotContains(t, r.stderr, "configuration error", "a mistyped command is not a configuration problem")
		})
	}
}

// A group without a subcommand, or help, shows help: asked for, not a
// mistake, and without any configuration.
func TestHelpNeedsNoConfiguration(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"runs"}, "Available Commands:"},
		{[]string{"help", "runs"}, "Available Commands:"},
		{[]string{"help", "runs", "list"}, "--limit"},
		{[]string{"help"}, "Available Commands:"},
		{[]string{"completion", "bash"}, "bash completion"},
	} {
		r := cli{t: t, env: map[string]string{"OPSBOT_LOCAL_URL": "", "OPSBOT_API_KEY": ""}}.run(tc.args...)
		assert.Equal(t, exitcode.OK, r.code, "%v: %s", tc.args, r.stderr)
		assert.Contains(t, r.stdout, tc.want, tc.args)
		assert.Empty(t, r.stderr, "%v: no configuration is needed", tc.args)
	}
	r := cli{t: t}.run("help", "runs", "lst")
	assert.Equal(t, exitcode.Usage, r.code)
	assert.Contains(t, r.stderr, `unknown command "lst" for "opsbot runs"; did you mean "list"?`)
}

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"lst", "list", 1}, {"workspce", "workspace", 1}, {"abc", "", 3}, {"kitten", "sitting", 3}} {
		assert.Equal(t, tc.d, distance(tc.a, tc.b), "%q %q", tc.a, tc.b)
	}
}
