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

echo "==> clippy (host, all targets)"
cargo clippy --quiet --workspace --all-targets -- -D warnings
echo "==> clippy (components for wasm32-wasip2)"
cargo clippy --quiet --release --target wasm32-wasip2 \
  -p gateway -p auth-validator -p grant-store -p token-minter -p masking-filter -p audit-sink -- -D warnings

echo "==> tests"
cargo test --workspace
