package images

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
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
