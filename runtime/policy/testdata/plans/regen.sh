#!/bin/sh
# Regenerates testdata/plans/*/plan.json with the real terraform: before.tf
# (if any) is applied, then after.tf is planned and the saved plan shown as
# JSON (terraform show -json; large/ gzipped). Run from runtime/policy: sh testdata/plans/regen.sh
set -eu
tf=$(command -v terraform)
for dir in testdata/plans/*/; do
	work=$(mktemp -d)
	: >"$work/cli.tfrc"
	export TF_CLI_CONFIG_FILE="$work/cli.tfrc" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
	(
		cd "$work"
		"$tf" init -no-color -input=false >/dev/null
		if [ -f "$OLDPWD/$dir/before.tf" ]; then
			cp "$OLDPWD/$dir/before.tf" main.tf
			"$tf" apply -auto-approve -no-color -input=false >/dev/null
		fi
		cp "$OLDPWD/$dir/after.tf" main.tf
		"$tf" plan -no-color -input=false -out=tfplan >/dev/null
		"$tf" show -json tfplan
	) >"$dir/plan.json"
	rm -rf "$work"
	echo "$dir: $(wc -c <"$dir/plan.json") bytes"
	case $dir in */large/) gzip -n -9 -f "$dir/plan.json" ;; esac # 1,000 resources
done
