package azurite_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/azurite"
	"github.com/botehq/platform/integration/procs"
)

// TestPinsAgree: the Node.js version README.md asks for is the harness's
// NodeMinimum, every package the lock file pins runs on it (npm would
// print EBADENGINE warnings otherwise), and so does the Node on PATH; the
// Docker image is the Azurite package.json pins.
func TestPinsAgree(t *testing.T) {
	root, err := procs.RepoRoot()
	require.NoError(t, err)

	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	m := regexp.MustCompile(`Node\.js (\d+(?:\.\d+)?)\+`).FindSubmatch(readme)
	require.NotNil(t, m, "README.md states the Node.js version as 'Node.js N+'")
	assert.Equal(t, azurite.NodeMinimum, string(m[1]), "README.md and the harness (azurite.NodeMinimum) name the same Node.js")

	var pkg struct {
		DevDependencies map[string]string `json:"devDependencies"`
	}
	readJSON(t, filepath.Join(root, "package.json"), &pkg)
	assert.Equal(t, "mcr.microsoft.com/azure-storage/azurite:"+pkg.DevDependencies["azurite"], azurite.Image)

	var lock struct {
		Packages map[string]struct {
			Version string          `json:"version"`
			Engines json.RawMessage `json:"engines"`
		} `json:"packages"`
	}
	readJSON(t, filepath.Join(root, "package-lock.json"), &lock)
	nodes := []string{azurite.NodeMinimum}
	if out, err := exec.Command("node", "--version").Output(); err == nil {
		nodes = append(nodes, strings.TrimPrefix(strings.TrimSpace(string(out)), "v"))
	}
	checked := 0
	for name, p := range lock.Packages {
		var engines struct {
			Node string `json:"node"`
		}
		if json.Unmarshal(p.Engines, &engines) != nil || engines.Node == "" {
			continue // none, or the old array form
		}
		checked++
		for _, node := range nodes {
			ok, err := satisfies(node, engines.Node)
			require.NoError(t, err, "%s: engines.node %q", name, engines.Node)
			assert.True(t, ok, "%s@%s declares node %q: Node.js %s is not enough", name, p.Version, engines.Node, node)
		}
	}
	assert.Greater(t, checked, 50, "the lock file records engines")
}

// The range check itself must refuse what npm refuses.
func TestSatisfies(t *testing.T) {
	for _, tc := range []struct {
		v, r string
		ok   bool
	}{
		{"20.6", ">=20.0.0", true},
		{"20.6", ">=22", false},
		{"20.6", ">= 14", true},
		{"20.6", "^18.19.0 || >=20.6.0", true},
		{"20.5", "^18.19.0 || >=20.6.0", false},
		{"18.20.1", "^18.19.0 || >=20.6.0", true},
		{"20.6", "^12.22.0 || ^14.17.0 || >=16.0.0", true},
		{"20.6", "<=0.11.8 || >0.11.10", true},
		{"20.6", ">=0.6.11 <=0.7.0 || >=0.7.3", true},
		{"20.6", "*", true},
		{"20.6", ">=0.8.x", true},
		{"20.6", "6.* || 8.* || >= 10.*", true},
		{"9.1", "6.* || 8.* || >= 10.*", false},
		{"20.20.2", ">=21.0.0", false},
	} {
		ok, err := satisfies(tc.v, tc.r)
		require.NoError(t, err, tc.r)
		assert.Equal(t, tc.ok, ok, "%s in %q", tc.v, tc.r)
	}
	_, err := satisfies("20.6", "~20.1")
	assert.Error(t, err, "an operator the check does not know fails the test rather than passing it")
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, v), path)
}

// satisfies reports whether version v is in the npm semver range r, for
// the forms package locks use: alternatives (||) of space-separated
// comparators (>=, >, <=, <, =, ^) with x or * wildcards.
func satisfies(v, r string) (bool, error) {
	have, _, err := parseVersion(v)
	if err != nil {
		return false, err
	}
	for _, alt := range strings.Split(r, "||") {
		// ">= 14" is one comparator.
		alt = regexp.MustCompile(`([<>=^]+)\s+`).ReplaceAllString(strings.TrimSpace(alt), "$1")
		all := true
		for _, c := range strings.Fields(alt) {
			ok, err := compare(have, c)
			if err != nil {
				return false, err
			}
			all = all && ok
		}
		if all {
			return true, nil
		}
	}
	return false, nil
}

func compare(have [3]int, c string) (bool, error) {
	op := c[:len(c)-len(strings.TrimLeft(c, "<>=^~"))]
	want, parts, err := parseVersion(strings.TrimPrefix(c, op))
	if err != nil {
		return false, err
	}
	cmp := 0
	for i := range parts { // wildcards and missing parts match anything
		if have[i] != want[i] {
			cmp = map[bool]int{true: 1, false: -1}[have[i] > want[i]]
			break
		}
	}
	switch op {
	case ">=":
		return cmp >= 0, nil
	case ">":
		return cmp > 0, nil
	case "<=":
		return cmp <= 0, nil
	case "<":
		return cmp < 0, nil
	case "", "=":
		return cmp == 0, nil
	case "^":
		return cmp >= 0 && have[0] == want[0], nil
	}
	return false, fmt.Errorf("comparator %q: operator %q not understood", c, op)
}

// parseVersion parses "20", "20.6", "0.8.x", "*"; parts is how many
// leading numbers were given (the rest are wildcards).
func parseVersion(s string) ([3]int, int, error) {
	var v [3]int
	if s == "*" || s == "" {
		return v, 0, nil
	}
	fields := strings.Split(s, ".")
	if len(fields) > 3 {
		return v, 0, fmt.Errorf("version %q: too many parts", s)
	}
	parts := 0
	for i, f := range fields {
		if f == "x" || f == "*" {
			break
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return v, 0, fmt.Errorf("version %q: %w", s, err)
		}
		v[i], parts = n, i+1
	}
	return v, parts, nil
}
