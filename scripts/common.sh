# Shared by scripts/*.sh: toolchain target and a build cache outside the clone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/copilot-jit/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

ensure_toolchain() {
  command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)" >&2; exit 1; }
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "==> installing the wasm32-wasip2 target"
    rustup target add wasm32-wasip2
  fi
}

build_artifact() {
  echo "==> building and composing the components (dist/copilot-jit.wasm)"
  cargo run --quiet --release -p xtask -- build
}
