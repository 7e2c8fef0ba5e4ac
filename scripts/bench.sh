#!/usr/bin/env bash
# Benchmarks (not tests): copilot-jit against the upstream and a bare
# pass-through component, on one host. Prints the figures and writes them to
# target-bench-results.md. Options: --seconds N --concurrency N; --stores or
# --masking for one table only
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_toolchain
build_artifact
# The stores table writes the audit log to a bucket too (Garage on loopback).
case " $* " in *" --stores "*) install_garage ;; esac
echo "==> building the bare pass-through component"
cargo build --quiet --release --target wasm32-wasip2 -p bench-passthrough
mkdir -p dist/bench
cp "$CARGO_TARGET_DIR/wasm32-wasip2/release/bench_passthrough.wasm" dist/bench/passthrough.wasm
echo "==> building the bench runner (release)"
cargo build --quiet --profile bench-host -p copilot-jit-testkit --bin copilot-jit-bench
exec "$CARGO_TARGET_DIR/bench-host/copilot-jit-bench" "$@"
