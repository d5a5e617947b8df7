package opsconfig

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzConfigFile: an opsbot config file (YAML or JSON) never panics the
// reader, nor what is done with a config it accepts.
func FuzzConfigFile(f *testing.F) {
	f.Add([]byte("namespace: ns\nhybrid_connection: hc\nkey_name: send\nkey: k\ntimeout: 5s\n"), false)
	f.Add([]byte(`{"namespace":"ns","timeout":"5s","output":"json"}`), true)
	f.Add([]byte("tenant: t\nprofile: gov\nprofiles:\n  gov: {namespace: ns, cloud: usgovernment}\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, json bool) {
		name := "config.yaml"
		if json {
			name = "config.json"
		}
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		file, err := readFile(path)
		if err != nil {
			return
		}
		c := defaults()
		if c.apply(file.settings, "file") != nil {
			return
		}
		for name := range file.profiles {
			_ = defaults().applyProfile(file, path, name)
		}
		if c.Validate() == nil {
			_, _ = c.ParseNamespace()
		}
	})
}
