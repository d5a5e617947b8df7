#!/bin/sh
# Regenerates plan.json with the real terraform and the test provider
# (integration/tfprovider/testdata/botetest, which has a file resource
# that reads its file back on refresh): apply main.tf, change the file
# outside Terraform, then terraform plan -refresh-only and show -json.
# Run from runtime/drift: sh testdata/refresh-only/regen.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$here/../../../../integration/tfprovider/testdata/botetest" && GOWORK=off go build -o "$work/bin/terraform-provider-botetest" .)
cat >"$work/cli.tfrc" <<RC
provider_installation {
  dev_overrides { "example.com/bote/botetest" = "$work/bin" }
  direct {}
}
RC
export TF_CLI_CONFIG_FILE="$work/cli.tfrc" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
cp "$here/main.tf" "$work/"
cd "$work"
terraform apply -auto-approve -no-color -input=false >/dev/null 2>&1
printf 'changed by hand' >motd.txt
terraform plan -refresh-only -no-color -input=false -out=tfplan >/dev/null 2>&1 || true
terraform show -json tfplan >"$here/plan.json"
echo "$here/plan.json: $(wc -c <"$here/plan.json") bytes"
