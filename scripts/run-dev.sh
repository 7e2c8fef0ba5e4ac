#!/usr/bin/env bash
# Runs copilot-jit locally: composed artifact, dev OIDC issuer, mock upstream.
# Usage: scripts/run-dev.sh [--listen 127.0.0.1:3000] [--kv memory|sqlite|redis://HOST:PORT]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
step "toolchain (wasm32-wasip2, protoc)" ensure_toolchain
step "building and composing the components (dist/copilot-jit.wasm)" build_artifact
step "building the local runner" \
  cargo build --quiet -p copilot-jit-testkit --bin copilot-jit-dev
exec "$CARGO_TARGET_DIR/debug/copilot-jit-dev" "$@"
