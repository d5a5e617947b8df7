package envflag

import (
	"flag"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestApply(t *testing.T) {
	t.Setenv("BOTE_T_LISTEN", ":9")
	t.Setenv("BOTE_T_PING_INTERVAL", "5s")
	t.Setenv("BOTE_T_ISSUER", "from-env")
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	listen := fs.String("listen", ":8080", "")
	ping := fs.Duration("ping-interval", time.Second, "")
	issuer := fs.String("issuer", "", "")
	other := fs.String("other", "default", "")
	require.NoError(t, fs.Parse([]string{"-issuer", "from-flag"}))
	require.NoError(t, Apply(fs, "BOTE_T"))
	assert.Equal(t, ":9", *listen)
	assert.Equal(t, 5*time.Second, *ping)
	assert.Equal(t, "from-flag", *issuer, "the command line wins")
	assert.Equal(t, "default", *other)
}

func TestApplyReportsBadValue(t *testing.T) {
	t.Setenv("BOTE_T_PING_INTERVAL", "soon")
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Duration("ping-interval", time.Second, "")
	require.NoError(t, fs.Parse(nil))
	assert.ErrorContains(t, Apply(fs, "BOTE_T"), "BOTE_T_PING_INTERVAL")
}

func TestApplyFuncTreatsEmptyAsUnset(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	ttl := fs.Duration("token-ttl", time.Minute, "")
	name := fs.String("name", "default", "")
	env := map[string]string{"P_TOKEN_TTL": "", "P_NAME": "from-env"}
	assert.NoError(t, fs.Parse(nil))
	assert.NoError(t, ApplyFunc(fs, "P", NonEmpty(func(k string) string { return env[k] })))
	assert.Equal(t, time.Minute, *ttl, "an empty variable is not a value")
	assert.Equal(t, "from-env", *name)

	env["P_TOKEN_TTL"] = "soon"
	assert.ErrorContains(t, ApplyFunc(fs, "P", NonEmpty(func(k string) string { return env[k] })), "P_TOKEN_TTL")
}
