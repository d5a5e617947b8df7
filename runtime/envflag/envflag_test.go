package envflag

import (
	"flag"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// env is a getenv over a map.
func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParse(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	listen := fs.String("listen", ":8080", "listen address")
	ping := fs.Duration("ping-interval", time.Second, "")
	issuer := fs.String("issuer", "", "")
	other := fs.String("other", "default", "")
	require.NoError(t, Parse(fs, []string{"-issuer", "from-flag"}, "BOTE_T", env(map[string]string{
		"BOTE_T_LISTEN": ":9", "BOTE_T_PING_INTERVAL": "5s", "BOTE_T_ISSUER": "from-env",
	})))
	assert.Equal(t, ":9", *listen)
	assert.Equal(t, 5*time.Second, *ping)
	assert.Equal(t, "from-flag", *issuer, "the command line wins")
	assert.Equal(t, "default", *other)
	assert.Equal(t, "listen address [$BOTE_T_LISTEN]", fs.Lookup("listen").Usage)
}

func TestApplyReportsBadValue(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Duration("ping-interval", time.Second, "")
	require.NoError(t, fs.Parse(nil))
	assert.ErrorContains(t, Apply(fs, "BOTE_T", env(map[string]string{"BOTE_T_PING_INTERVAL": "soon"})), "BOTE_T_PING_INTERVAL")
}

func TestApplyTreatsEmptyAsUnset(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	ttl := fs.Duration("token-ttl", time.Minute, "")
	name := fs.String("name", "default", "")
	vars := map[string]string{"P_TOKEN_TTL": "", "P_NAME": "from-env"}
	assert.NoError(t, fs.Parse(nil))
	assert.NoError(t, Apply(fs, "P", env(vars)))
	assert.Equal(t, time.Minute, *ttl, "an empty variable is not a value")
	assert.Equal(t, "from-env", *name)

	vars["P_TOKEN_TTL"] = "soon"
	assert.ErrorContains(t, Apply(fs, "P", env(vars)), "P_TOKEN_TTL")
}
