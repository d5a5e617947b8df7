package tfarchive

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPackAppliesTerraformIgnore: .terraformignore leaves files out of a
// bundle with Terraform Cloud's rules (negations, directory patterns, **),
// a large ignored file is never packed, and without the file Terraform
// Cloud's defaults apply (.git/ and .terraform/ out, .terraform/modules/
// in).
func TestPackAppliesTerraformIgnore(t *testing.T) {
	big := make([]byte, 2<<20)
	_, _ = rand.Read(big)
	dir := tree(t, map[string]string{
		".terraformignore":           "# build output\nbuild/\n*.zip\n!keep.zip\n**/secret.auto.tfvars\n",
		"main.tf":                    `resource "terraform_data" "x" {}`,
		"build/artifact.bin":         string(big),
		"release.zip":                "zip",
		"keep.zip":                   "kept by the negation",
		"env/dev/secret.auto.tfvars": "x = 1",
		"env/dev/main.tf":            "# dev",
	})
	var buf bytes.Buffer
	st, err := Pack(dir, &buf, PackOptions{Limits: BundleLimits, TerraformIgnore: true})
	require.NoError(t, err)
	assert.Equal(t, "0 0644     60 .terraformignore\n5 0755      0 env/\n5 0755      0 env/dev/\n0 0644      5 env/dev/main.tf\n"+
		"0 0644     20 keep.zip\n0 0644     32 main.tf\n", listing(t, buf.Bytes()))
	assert.Equal(t, 3, st.Ignored, "build/, release.zip, env/dev/secret.auto.tfvars")
	assert.Less(t, st.Bytes, int64(4096), "the 2 MiB ignored file was not packed")

	// No .terraformignore: Terraform Cloud's default rules. The lock file
	// travels (the agent's init honours it).
	dir = tree(t, map[string]string{
		"main.tf":                         "# main",
		".terraform.lock.hcl":             "# lock",
		".git/HEAD":                       "ref",
		".terraform/providers/p/provider": "binary",
		".terraform/modules/net/main.tf":  "# module",
		".terraform/modules/modules.json": "{}",
	})
	buf.Reset()
	_, err = Pack(dir, &buf, PackOptions{Limits: BundleLimits, TerraformIgnore: true})
	require.NoError(t, err)
	assert.Equal(t, "5 0755      0 .terraform/\n5 0755      0 .terraform/modules/\n0 0644      2 .terraform/modules/modules.json\n"+
		"5 0755      0 .terraform/modules/net/\n0 0644      8 .terraform/modules/net/main.tf\n0 0644      6 .terraform.lock.hcl\n0 0644      6 main.tf\n", listing(t, buf.Bytes()))
}

// TestPackWithoutProviders leaves a working directory's providers out and
// keeps the rest of .terraform/ (modules, backend) and the lock file.
func TestPackWithoutProviders(t *testing.T) {
	dir := tree(t, map[string]string{
		"tfplan":              "plan",
		".terraform.lock.hcl": "# lock",
		".terraform/providers/example.com/a/b/1.0.0/linux_amd64/terraform-provider-b": "binary",
		".terraform/modules/modules.json":                                             "{}",
		".terraform/terraform.tfstate":                                                "{}",
	})
	var buf bytes.Buffer
	_, err := Pack(dir, &buf, PackOptions{Limits: WorkdirLimits, Workdir: true, WithoutProviders: true})
	require.NoError(t, err)
	assert.Equal(t, "5 0755      0 .terraform/\n5 0755      0 .terraform/modules/\n0 0644      2 .terraform/modules/modules.json\n"+
		"0 0644      2 .terraform/terraform.tfstate\n0 0644      6 .terraform.lock.hcl\n0 0644      4 tfplan\n", listing(t, buf.Bytes()))
}
