package tfproviders

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Sources are where terraform init may install providers from, besides
// the plugin cache.
type Sources struct {
	// FilesystemMirror is a directory on the agent in one of Terraform's
	// mirror layouts: HOSTNAME/NAMESPACE/TYPE/terraform-provider-TYPE_VERSION_OS_ARCH.zip
	// (packed, what `terraform providers mirror` writes) or
	// HOSTNAME/NAMESPACE/TYPE/VERSION/OS_ARCH/ (unpacked).
	FilesystemMirror string `json:"filesystemMirror,omitempty"`
	// NetworkMirror is the base URL of a provider network mirror
	// (https only, as Terraform requires).
	NetworkMirror string `json:"networkMirror,omitempty"`
	// NoDirect turns off installation from the providers' origin
	// registries: a provider in no mirror fails init at once, instead of
	// after network timeouts in a network without a route to them.
	NoDirect bool `json:"noDirect,omitempty"`
}

// IsZero reports whether s sets nothing: Terraform's default installation.
func (s Sources) IsZero() bool { return s == Sources{} }

// Validate checks the fields and names the bad one.
func (s Sources) Validate() error {
	if p := s.FilesystemMirror; p != "" {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("provider sources: filesystemMirror %q must be an absolute path", p)
		}
		if err := hclSafe(p); err != nil {
			return fmt.Errorf("provider sources: filesystemMirror: %w", err)
		}
	}
	if u := s.NetworkMirror; u != "" {
		p, err := url.Parse(u)
		switch {
		case err != nil:
			return fmt.Errorf("provider sources: networkMirror: %w", err)
		case p.Scheme != "https" || p.Host == "" || p.User != nil || p.RawQuery != "" || p.Fragment != "":
			return fmt.Errorf("provider sources: networkMirror %q must be an https URL without credentials, query or fragment (Terraform requires https)", u)
		}
		if err := hclSafe(u); err != nil {
			return fmt.Errorf("provider sources: networkMirror: %w", err)
		}
	}
	return nil
}

// Override returns s with what a workspace's sources set: its mirrors
// replace the agent's, and it can turn direct installation off but not
// on (an air-gapped agent stays air-gapped).
func (s Sources) Override(ws Sources) Sources {
	if ws.FilesystemMirror != "" {
		s.FilesystemMirror = ws.FilesystemMirror
	}
	if ws.NetworkMirror != "" {
		s.NetworkMirror = ws.NetworkMirror
	}
	s.NoDirect = s.NoDirect || ws.NoDirect
	return s
}

// Tried describes the sources for a message: "filesystem mirror /m,
// network mirror https://m/; direct installation off".
func (s Sources) Tried() string {
	var parts []string
	if s.FilesystemMirror != "" {
		parts = append(parts, "filesystem mirror "+s.FilesystemMirror)
	}
	if s.NetworkMirror != "" {
		parts = append(parts, "network mirror "+networkMirrorURL(s.NetworkMirror))
	}
	if len(parts) == 0 {
		parts = append(parts, "no mirror")
	}
	direct := "direct installation from the origin registry on"
	if s.NoDirect {
		direct = "direct installation from the origin registry off"
	}
	return strings.Join(parts, ", ") + "; " + direct
}

// networkMirrorURL ends the base URL with a slash, as Terraform resolves
// the mirror's paths relative to it.
func networkMirrorURL(u string) string {
	if strings.HasSuffix(u, "/") {
		return u
	}
	return u + "/"
}

// maxSourceBytes bounds a path or URL (Linux's PATH_MAX): a workspace's
// sources travel in every run.assign.
const maxSourceBytes = 4096

// hclSafe refuses what cannot be written into a CLI configuration string
// plainly: control characters, "$", which Terraform expands as an
// environment variable in plugin_cache_dir (there is no escape for it),
// and invalid UTF-8, on which Terraform refuses the whole file.
func hclSafe(s string) error {
	switch {
	case len(s) > maxSourceBytes:
		return fmt.Errorf("must not be longer than %d bytes", maxSourceBytes)
	case !utf8.ValidString(s):
		return errors.New("must be valid UTF-8")
	case strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f || r == '$' }):
		return errors.New(`must not contain control characters or "$"`)
	}
	return nil
}

// hclString quotes s as an HCL string literal (s is hclSafe).
func hclString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// CLIConfig is the Terraform CLI configuration a run gets.
type CLIConfig struct {
	// PluginCacheDir is the shared plugin cache (Cache.Dir); empty: none.
	PluginCacheDir string
	Sources        Sources
	// Base is the agent's own CLI configuration (credentials for private
	// registries, host blocks), written first. It must not set what the
	// agent sets (CheckBase).
	Base []byte
}

var (
	baseInstallation = regexp.MustCompile(`(?m)^\s*provider_installation\b`)
	baseCache        = regexp.MustCompile(`(?m)^\s*plugin_cache_(dir|may_break_dependency_lock_file)\b`)
)

// CheckBase refuses a base CLI configuration that sets what c sets
// itself: Terraform would refuse the file (an attribute defined twice) or
// take one of two installation blocks.
func (c CLIConfig) CheckBase() error {
	if c.PluginCacheDir != "" && baseCache.Match(c.Base) {
		return errors.New("the agent's CLI configuration sets plugin_cache_dir; the agent keeps its own plugin cache (leave it out, or set the agent's --plugin-cache-dir)")
	}
	if !c.Sources.IsZero() && baseInstallation.Match(c.Base) {
		return errors.New("the agent's CLI configuration has a provider_installation block; give its mirrors to the agent (--provider-mirror-dir, --provider-network-mirror, --provider-direct) instead")
	}
	return nil
}

// Render writes the configuration in Terraform's CLI configuration
// syntax (HCL).
func (c CLIConfig) Render() []byte {
	var b bytes.Buffer
	if len(c.Base) > 0 {
		b.Write(c.Base)
		b.WriteString("\n\n# Written by the bote agent for this run.\n")
	}
	if c.PluginCacheDir != "" {
		fmt.Fprintf(&b, "plugin_cache_dir = %s\n", hclString(c.PluginCacheDir))
		// A cached provider is used only when its checksum is in the
		// run's lock file: never a build the lock file does not allow.
		b.WriteString("plugin_cache_may_break_dependency_lock_file = false\n")
	}
	if s := c.Sources; !s.IsZero() {
		b.WriteString("provider_installation {\n")
		if s.FilesystemMirror != "" {
			fmt.Fprintf(&b, "  filesystem_mirror {\n    path = %s\n  }\n", hclString(s.FilesystemMirror))
		}
		if s.NetworkMirror != "" {
			fmt.Fprintf(&b, "  network_mirror {\n    url = %s\n  }\n", hclString(networkMirrorURL(s.NetworkMirror)))
		}
		if !s.NoDirect {
			b.WriteString("  direct {}\n")
		}
		b.WriteString("}\n")
	}
	return b.Bytes()
}
