package opsapi

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadAgentsFile: the ops server's agents seed file never panics the
// reader, and every agent it accepts has a tenant, a name and its id.
func FuzzLoadAgentsFile(f *testing.F) {
	f.Add([]byte(`{"agents":[{"tenant":"contoso","name":"agent-01","state":"online"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "agents.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		agents, err := LoadAgentsFile(path)
		if err != nil {
			return
		}
		for _, a := range agents {
			if a.Tenant == "" || a.Name == "" || a.ID != a.Tenant+"/"+a.Name {
				t.Fatalf("accepted agent %+v", a)
			}
		}
	})
}
