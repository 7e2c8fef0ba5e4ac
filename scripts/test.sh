#!/usr/bin/env bash
# The whole test suite: formatting, lints (host and wasm), unit tests of every
# component, and the end-to-end tests against the composed artifact. Each
# step prints its duration.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
started_all=$SECONDS
step "toolchain (wasm32-wasip2, protoc)" ensure_toolchain
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy

step "cargo fmt --check" cargo fmt --all -- --check
step "building and composing the components (dist/copilot-jit.wasm)" build_artifact
step "copilot-language-server (npm)" install_language_server
step "oidc-provider (npm)" install_oidc_provider
step "Copilot CLI (npm)" install_copilot_cli
step "garage" install_garage
step "redis-server" install_redis
step "chromium and chromium-driver" install_chromium
step "neovim and vim" install_editors

step "clippy (host, all targets)" cargo clippy --quiet --workspace --all-targets -- -D warnings
# masking-filter alone: it is no_std, and one invocation unifies features.
step "clippy (masking-filter for wasm32-wasip2)" \
  cargo clippy --quiet --release --target wasm32-wasip2 -p masking-filter -- -D warnings
step "clippy (components for wasm32-wasip2)" \
  cargo clippy --quiet --release --target wasm32-wasip2 \
  -p gateway -p auth-validator -p grant-store -p token-minter -p audit-sink \
  -p bench-passthrough -- -D warnings

echo "==> tests"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
tests_started=$SECONDS
set +e
# --no-fail-fast: one failing test binary still lets every other one run.
cargo test --no-fail-fast --workspace --lib --bins --tests 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
echo "    (tests: $((SECONDS - tests_started)) s; whole command: $((SECONDS - started_all)) s)"
awk '/^test result:/ { passed += $4; failed += $6 }
     END { printf "\ntests: %d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
