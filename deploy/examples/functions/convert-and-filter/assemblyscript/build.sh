#!/usr/bin/env bash
# Builds the convert-and-filter function (AssemblyScript) into a WebAssembly
# module, with the compiler pinned in package-lock.json.
# Usage: build.sh [OUT.wasm]   (default: ./build/convert-and-filter.wasm; never commit it)
# It works in a temporary copy, so the source tree gets no node_modules.
# Needs node >= 20 and npm >= 10, and the npm registry (npm's cache serves repeats).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/build/convert-and-filter.wasm}
case $out in /*) ;; *) out=$PWD/$out ;; esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -R "$here/package.json" "$here/package-lock.json" "$here/asconfig.json" "$here/assembly" "$work/"
cd "$work"
npm ci --no-audit --no-fund --loglevel=error
mkdir -p "$(dirname "$out")"
npx --no-install asc assembly/index.ts --config asconfig.json --target release --outFile "$out"
echo "built $out"
