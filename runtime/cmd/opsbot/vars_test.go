package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/opsapi"
	"github.com/botehq/platform/runtime/opsclient"
)

// fakeVars is the variable API of fakeRuns: name → variable as set.
func (f *fakeRuns) Vars(context.Context, string, string) ([]opsapi.Variable, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []opsapi.Variable
	for _, v := range f.vars {
		if v.Sensitive {
			v.Value = nil
		}
		out = append(out, v)
	}
	return out, nil
}

func (f *fakeRuns) SetVar(_ context.Context, _, _, name, value string, sensitive bool) (*opsapi.Variable, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vars = append(f.vars, opsapi.Variable{Name: name, Value: &value, Sensitive: sensitive})
	out := opsapi.Variable{Name: name, Sensitive: sensitive}
	if !sensitive {
		out.Value = &value
	}
	return &out, nil
}

func (f *fakeRuns) UnsetVar(_ context.Context, _, _, name string) (*opsapi.Variable, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, v := range f.vars {
		if v.Name == name {
			f.vars = append(f.vars[:i], f.vars[i+1:]...)
			return &opsapi.Variable{Name: name, Sensitive: v.Sensitive}, nil
		}
	}
	return nil, &opsclient.APIError{StatusCode: 404, Code: "not_found", Message: "workspace app has no variable " + name}
}

func TestVarsCommands(t *testing.T) {
	api := newFakeRuns()
	r := cli{t: t, api: api}.run("vars", "set", "-w", "app", "region", "westeurope")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Equal(t, "Variable region set for workspace app.\n", r.stdout)

	// A sensitive value from stdin, out of the shell's history.
	r = cli{t: t, api: api, stdin: "hunter2-secret\n"}.run("vars", "set", "-w", "app", "db_password", "--sensitive")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Equal(t, "Variable db_password (sensitive) set for workspace app.\n", r.stdout)
	require.Len(t, api.vars, 2)
	assert.Equal(t, "hunter2-secret", *api.vars[1].Value, "the trailing newline is not part of the value")

	r = cli{t: t, api: api}.run("vars", "list", "-w", "app")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Equal(t, "NAME         VALUE\nregion       westeurope\ndb_password  <sensitive>\n", r.stdout)
	assert.NotContains(t, r.stdout+r.stderr, "hunter2-secret")

	r = cli{t: t, api: api}.run("vars", "unset", "-w", "app", "region")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	r = cli{t: t, api: api}.run("vars", "unset", "-w", "app", "region")
	assert.NotEqual(t, exitcode.OK, r.code)
	assert.Contains(t, r.stderr, "no variable region")

	r = cli{t: t, api: api}.run("vars", "list")
	assert.Equal(t, exitcode.Usage, r.code)
	assert.Contains(t, r.stderr, "--workspace: required")
}

// TestVarsSetWithNothingOnStdinSetsNothing: `vars set NAME` in a script
// whose stdin is empty (/dev/null, a CI step) is a mistake, not an empty
// value; an empty value is given as an argument.
func TestVarsSetWithNothingOnStdinSetsNothing(t *testing.T) {
	api := newFakeRuns()
	r := cli{t: t, api: api}.run("vars", "set", "-w", "app", "db_password", "--sensitive")
	assert.Equal(t, exitcode.Usage, r.code)
	assert.Contains(t, r.stderr, "no value on stdin")
	assert.Empty(t, api.vars)

	r = cli{t: t, api: api}.run("vars", "set", "-w", "app", "suffix", "")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	require.Len(t, api.vars, 1)
	assert.Equal(t, "", *api.vars[0].Value)
}
