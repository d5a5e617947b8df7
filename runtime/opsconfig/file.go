package opsconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// DefaultDir is where the config file is looked for.
func DefaultDir(lookup func(string) (string, bool)) string {
	if v, ok := lookup("XDG_CONFIG_HOME"); ok && v != "" {
		return filepath.Join(v, "opsbot")
	}
	if runtime.GOOS == "windows" {
		if d, err := os.UserConfigDir(); err == nil {
			return filepath.Join(d, "opsbot")
		}
	}
	if home, ok := lookup("HOME"); ok && home != "" {
		return filepath.Join(home, ".config", "opsbot")
	}
	return ""
}

func findDefaultFile(lookup func(string) (string, bool)) string {
	dir := DefaultDir(lookup)
	if dir == "" {
		return ""
	}
	for _, name := range []string{"config.yaml", "config.yml", "config.json"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// fileConfig is a config file: its top-level settings and its profiles,
// each setting as a string.
type fileConfig struct {
	settings map[string]string
	profile  string
	profiles map[string]map[string]string
	mode     os.FileMode
}

// readFile reads a YAML or JSON config file; unknown keys are errors.
func readFile(path string) (*fileConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read config file: %w", err)
	}
	raw := map[string]any{}
	if strings.EqualFold(filepath.Ext(path), ".json") {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("cannot decode config file %s: %w", path, err)
		}
	} else if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("cannot decode config file %s: %w", path, err)
	}
	f := &fileConfig{profiles: map[string]map[string]string{}}
	if fi, err := os.Stat(path); err == nil {
		f.mode = fi.Mode().Perm()
	}
	if v, ok := raw["profile"]; ok {
		name, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("config file %s: profile: want the name of a profile, got %T", path, v)
		}
		f.profile = name
		delete(raw, "profile")
	}
	if v, ok := raw["profiles"]; ok {
		profiles, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("config file %s: profiles: want a map of profile names to settings, got %T", path, v)
		}
		for name, p := range profiles {
			m, ok := p.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("config file %s: profiles.%s: want a map of settings, got %T", path, name, p)
			}
			if f.profiles[name], err = stringSettings(m); err != nil {
				return nil, fmt.Errorf("config file %s: profiles.%s.%w", path, name, err)
			}
		}
		delete(raw, "profiles")
	}
	if f.settings, err = stringSettings(raw); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return f, nil
}

// stringSettings checks the keys of raw and turns its values into strings.
func stringSettings(raw map[string]any) (map[string]string, error) {
	known := map[string]bool{}
	var keys []string
	for _, s := range settings() {
		known[s.Key] = true
		keys = append(keys, s.Key)
	}
	out := map[string]string{}
	for k, v := range raw {
		if !known[k] {
			return nil, fmt.Errorf("%s: unknown key (known: %s)", k, strings.Join(keys, ", "))
		}
		switch v := v.(type) {
		case string:
			out[k] = v
		case bool, int, json.Number, float64:
			out[k] = fmt.Sprint(v)
		case nil:
		default:
			return nil, fmt.Errorf("%s: want a string, got %T", k, v)
		}
	}
	return out, nil
}

// apply sets the given settings, in key order, noting source.
func (c *Config) apply(values map[string]string, source string) error {
	for _, s := range settings() {
		v, ok := values[s.Key]
		if !ok {
			continue
		}
		if err := s.set(c, v); err != nil {
			return fmt.Errorf("%s: %w", s.Key, err)
		}
		c.sources[s.Key] = source
	}
	return nil
}

// applyProfile applies the named profile of file (read from path).
func (c *Config) applyProfile(file *fileConfig, path, name string) error {
	if file == nil {
		where := path
		if where == "" {
			where = "$XDG_CONFIG_HOME/opsbot/config.yaml"
		}
		return fmt.Errorf("profile %q: no config file defines profiles (looked for %s)", name, where)
	}
	p, ok := file.profiles[name]
	if !ok {
		names := make([]string, 0, len(file.profiles))
		for n := range file.profiles {
			names = append(names, n)
		}
		sort.Strings(names)
		return fmt.Errorf("profile %q: config file %s has no such profile (its profiles: %s)", name, path, strings.Join(names, ", "))
	}
	if err := c.apply(p, fmt.Sprintf("profile %s in %s", name, path)); err != nil {
		return fmt.Errorf("config file %s: profiles.%s.%w", path, name, err)
	}
	return nil
}

// warnings says whether the file holds secrets others can read.
func (f *fileConfig) warnings(path string) []string {
	hasSecret := false
	for _, s := range settings() {
		hasSecret = hasSecret || (s.Secret && f.settings[s.Key] != "")
		for _, p := range f.profiles {
			hasSecret = hasSecret || (s.Secret && p[s.Key] != "")
		}
	}
	if hasSecret && runtime.GOOS != "windows" && f.mode&0o077 != 0 {
		return []string{fmt.Sprintf("config file %s holds secrets and is readable by others (mode %o); run chmod 600 %s", path, f.mode, path)}
	}
	return nil
}
