#!/bin/sh
# Makes a node_modules directory with Microsoft's hyco-https (the Azure Relay
# Node SDK) and ws, for TestInteropWithMicrosoftNodeSDK:
#   sh testdata/interop/setup.sh /tmp/relay-interop
#   RELAY_INTEROP_NODE_MODULES=/tmp/relay-interop/node_modules go test ./relay -run Interop
# hyco-https declares dependencies on "http", "https", "crypto"... @latest
# (npm placeholder packages that do not resolve), so it is unpacked by hand
# next to the two real dependencies it uses.
set -eu
dir=${1:?usage: setup.sh DIR}
mkdir -p "$dir"
cd "$dir"
[ -f package.json ] || npm init -y >/dev/null
npm install --no-save ws@6.2.3 moment@2.30.1 >/dev/null
npm pack hyco-https@1.4.5 >/dev/null
mkdir -p node_modules/hyco-https
tar xzf hyco-https-1.4.5.tgz -C node_modules/hyco-https --strip-components=1
echo "$dir/node_modules"
