#!/usr/bin/env bash
# The whole test suite: formatting, lints (host and wasm), unit tests of every
# component, and the end-to-end tests against the composed artifact.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_toolchain
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy

echo "==> cargo fmt --check"
cargo fmt --all -- --check

build_artifact
install_language_server
install_oidc_provider
install_garage

echo "==> clippy (host, all targets)"
cargo clippy --quiet --workspace --all-targets -- -D warnings
echo "==> clippy (components for wasm32-wasip2)"
# masking-filter alone: it is no_std, and one invocation unifies features.
cargo clippy --quiet --release --target wasm32-wasip2 -p masking-filter -- -D warnings
cargo clippy --quiet --release --target wasm32-wasip2 \
  -p gateway -p auth-validator -p grant-store -p token-minter -p audit-sink \
  -p bench-passthrough -- -D warnings

echo "==> tests"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --lib --bins --tests 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { passed += $4; failed += $6 }
     END { printf "\ntests: %d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
