package runspec

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunVarsJSON(t *testing.T) {
	data, err := RunVarsJSON(map[string]string{"region": "westeurope", "app-name": "x", "_n2": "2"})
	require.NoError(t, err)
	assert.Equal(t, "{\n  \"_n2\": \"2\",\n  \"app-name\": \"x\",\n  \"region\": \"westeurope\"\n}\n", string(data))
	for _, bad := range []string{"", "2x", "-x", "a b", "a.b", "é"} {
		_, err := RunVarsJSON(map[string]string{bad: "v"})
		assert.ErrorContains(t, err, "must be a Terraform identifier", "%q", bad)
	}
}
