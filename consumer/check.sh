#!/usr/bin/env bash
# Builds and tests consumer/ the way a dependent gets arfpn: outside the workspace, so
# candle-core comes from crates.io (stock 0.11.1), not third_party/candle-core. Shares the
# workspace's target/ so only candle-core, candle-nn and the arfpn crates are rebuilt.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$(cd .. && pwd)/target}
# Stock candle, or this check means nothing.
src=$(cargo metadata --format-version 1 | python3 -c '
import json, sys
m = json.load(sys.stdin)
print(next(p["source"] or p["manifest_path"] for p in m["packages"] if p["name"] == "candle-core"))')
echo "candle-core from: $src"
case "$src" in
  registry+*) ;;
  *) echo "error: the consumer does not build against candle-core from crates.io" >&2; exit 1 ;;
esac
cargo test --release -j 2 --tests
cargo test --release -j 2 --doc
