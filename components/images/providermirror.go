package images

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// ProviderMirrorDir is where the agent image carries a provider mirror;
// the image's BOTE_AGENT_PROVIDER_MIRROR_DIR points the agent at it.
// It is also one of Terraform's implicit local mirror directories.
const ProviderMirrorDir = "/usr/local/share/terraform/plugins"

// providerMirrorFiles are the files of a filesystem mirror (what
// `terraform providers mirror` writes: HOSTNAME/NAMESPACE/TYPE/
// terraform-provider-TYPE_VERSION_OS_ARCH.zip, or the unpacked
// HOSTNAME/NAMESPACE/TYPE/VERSION/OS_ARCH/ layout) that serve platform p,
// under ProviderMirrorDir. The network mirror's JSON indexes the command
// writes beside the zips are left out: a filesystem mirror does not read
// them.
func providerMirrorFiles(dir string, p v1.Platform) ([]file, error) {
	target := p.OS + "_" + p.Architecture
	var files []file
	dirs := map[string]bool{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		parts := strings.Split(filepath.ToSlash(rel), "/")
		packed := len(parts) == 4 && strings.HasSuffix(parts[3], "_"+target+".zip")
		unpacked := len(parts) == 6 && parts[4] == target
		if !packed && !unpacked {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("provider mirror: %s is not a regular file", rel)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		mode := int64(0o644)
		if unpacked {
			mode = 0o755 // the provider executable
		}
		for i := 1; i < len(parts); i++ {
			dirs[strings.Join(parts[:i], "/")] = true
		}
		files = append(files, file{name: ProviderMirrorDir + "/" + strings.Join(parts, "/"), mode: mode, data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("provider mirror %s: %w", dir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("provider mirror %s has no provider for %s (write it with terraform providers mirror -platform=%s)", dir, target, target)
	}
	for _, root := range []string{"/usr/local/share", "/usr/local/share/terraform", ProviderMirrorDir} {
		files = append(files, file{name: root, mode: 0o755, dir: true})
	}
	for d := range dirs {
		files = append(files, file{name: ProviderMirrorDir + "/" + d, mode: 0o755, dir: true})
	}
	return files, nil
}

// validateProviderMirror checks the mirror has providers for every
// platform, before anything is built.
func (c *Config) validateProviderMirror() error {
	if c.ProviderMirror == "" {
		return nil
	}
	for _, p := range c.platforms() {
		if _, err := providerMirrorFiles(c.ProviderMirror, p); err != nil {
			return fmt.Errorf("ProviderMirror: %w", err)
		}
	}
	return nil
}

// withProviderMirror adds, to the agent's image for platform p, the
// layer of p's providers from Config.ProviderMirror (a filesystem mirror
// `terraform providers mirror` wrote) and the variable that points the
// agent at it.
func withProviderMirror(cfg Config, b Binary, p v1.Platform, layers []mutate.Addendum, env []string) ([]mutate.Addendum, []string, error) {
	if !b.Terraform || cfg.ProviderMirror == "" {
		return layers, env, nil
	}
	files, err := providerMirrorFiles(cfg.ProviderMirror, p)
	if err != nil {
		return nil, nil, err
	}
	l, err := layer(cfg.Source.Created, files)
	if err != nil {
		return nil, nil, err
	}
	return append(layers, mutate.Addendum{Layer: l, History: history(cfg, "terraform provider mirror")}),
		append(env, "BOTE_AGENT_PROVIDER_MIRROR_DIR="+ProviderMirrorDir), nil
}
