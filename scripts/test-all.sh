#!/usr/bin/env bash
# Every test of the workspace: unit, integration, model checks at CI bounds,
# conformance at CI bounds, real-process cluster tests, and the loom models.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Explorer's browser test (model/tests/explorer_browser.rs) drives
# headless Chromium; a fresh Debian machine lacks it.
if ! command -v chromium >/dev/null && [ "${RAFT_SKIP_BROWSER:-}" != 1 ]; then
  echo "== installing chromium (Debian package) for the Explorer's browser test"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium
fi

echo "== cargo test (release: the model checks and conformance need optimised code)"
cargo test --workspace --release

echo "== loom (group commit, apply waiters)"
if grep -rq 'cfg(loom)' impl/src 2>/dev/null; then
  RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test --release -p raftkv --lib loom
fi
