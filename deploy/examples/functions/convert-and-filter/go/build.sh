#!/usr/bin/env bash
# Builds the convert-and-filter function (Go) into a WebAssembly reactor.
# Usage: build.sh [OUT.wasm]   (default: ./convert-and-filter.wasm; never commit it)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/convert-and-filter.wasm}
cd "$here"
GOOS=wasip1 GOARCH=wasm go build -trimpath -buildmode=c-shared -o "$out" .
echo "built $out"
