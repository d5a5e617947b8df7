package images

import (
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The image for a platform carries that platform's providers, in either
// mirror layout, and nothing else from the mirror directory.
func TestProviderMirrorFilesAreThePlatformsProviders(t *testing.T) {
	dir := t.TempDir()
	write := func(rel string, data string) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(data), 0o644))
	}
	write("registry.terraform.io/hashicorp/azurerm/terraform-provider-azurerm_4.1.0_linux_amd64.zip", "amd64 zip")
	write("registry.terraform.io/hashicorp/azurerm/terraform-provider-azurerm_4.1.0_linux_arm64.zip", "arm64 zip")
	write("registry.terraform.io/hashicorp/azurerm/index.json", `{"versions":{"4.1.0":{}}}`)
	write("registry.terraform.io/hashicorp/azurerm/4.1.0.json", `{}`)
	write("example.com/acme/thing/1.0.0/linux_amd64/terraform-provider-thing_v1.0.0", "amd64 binary")
	write("example.com/acme/thing/1.0.0/linux_arm64/terraform-provider-thing_v1.0.0", "arm64 binary")

	files, err := providerMirrorFiles(dir, v1.Platform{OS: "linux", Architecture: "amd64"})
	require.NoError(t, err)
	got := map[string]string{}
	for _, f := range files {
		if !f.dir {
			got[f.name] = string(f.data)
			if f.name == ProviderMirrorDir+"/example.com/acme/thing/1.0.0/linux_amd64/terraform-provider-thing_v1.0.0" {
				assert.EqualValues(t, 0o755, f.mode, "the unpacked provider stays executable")
			}
		}
	}
	assert.Equal(t, map[string]string{
		ProviderMirrorDir + "/registry.terraform.io/hashicorp/azurerm/terraform-provider-azurerm_4.1.0_linux_amd64.zip": "amd64 zip",
		ProviderMirrorDir + "/example.com/acme/thing/1.0.0/linux_amd64/terraform-provider-thing_v1.0.0":                 "amd64 binary",
	}, got)

	_, err = providerMirrorFiles(dir, v1.Platform{OS: "linux", Architecture: "s390x"})
	assert.ErrorContains(t, err, "has no provider for linux_s390x (write it with terraform providers mirror -platform=linux_s390x)")
}
