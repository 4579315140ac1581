#!/usr/bin/env bash
# Every test of the workspace: unit, integration, model checks at CI bounds,
# conformance at CI bounds, real-process cluster tests, and the loom models.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test (release: the model checks and conformance need optimised code)"
cargo test --workspace --release

echo "== loom (group commit, apply waiters)"
if grep -rq 'cfg(loom)' impl/src 2>/dev/null; then
  RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test --release -p raftkv --lib loom
fi
