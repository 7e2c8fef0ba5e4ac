# Shared by scripts/*.sh: toolchain target and a build cache outside the clone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/copilot-jit/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# `step NAME COMMAND…` runs one step and prints how long it took.
step() {
  local name="$1" started=$SECONDS
  shift
  echo "==> $name"
  "$@"
  echo "    ($name: $((SECONDS - started)) s)"
}

ensure_toolchain() {
  command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)" >&2; exit 1; }
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "==> installing the wasm32-wasip2 target"
    rustup target add wasm32-wasip2
  fi
  # The Cedar policies are compiled into Cedar's protobuf form at build
  # time; cedar-policy's build needs protoc for that.
  if ! command -v protoc >/dev/null; then
    echo "==> installing protoc (protobuf-compiler)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq protobuf-compiler >/dev/null
  fi
}

build_artifact() {
  cargo run --quiet --profile build-tool -p xtask -- build
}

# The real GitHub Copilot language server, for the drop-in client test.
COPILOT_LS_VERSION=1.539.0
install_language_server() {
  local arch
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) echo "no copilot-language-server build for $(uname -m)" >&2; exit 1 ;;
  esac
  local dir="$HOME/.cache/copilot-jit/copilot-language-server-$COPILOT_LS_VERSION"
  local pkg="@github/copilot-language-server-linux-$arch"
  export COPILOT_LS_BIN="$dir/node_modules/$pkg/copilot-language-server"
  if [ ! -x "$COPILOT_LS_BIN" ]; then
    if ! command -v npm >/dev/null; then
      echo "==> installing npm"
      apt-get update -qq && apt-get install -y -qq npm >/dev/null
    fi
    echo "==> installing $pkg@$COPILOT_LS_VERSION"
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "$pkg@$COPILOT_LS_VERSION"
  fi
}

# The certified Node.js OpenID provider, for the identity end-to-end test.
OIDC_PROVIDER_VERSION=9.13.3
install_oidc_provider() {
  export OIDC_PROVIDER_DIR="$HOME/.cache/copilot-jit/oidc-provider-$OIDC_PROVIDER_VERSION"
  if [ ! -f "$OIDC_PROVIDER_DIR/node_modules/oidc-provider/package.json" ]; then
    command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq npm >/dev/null; }
    echo "==> installing oidc-provider@$OIDC_PROVIDER_VERSION"
    npm install --prefix "$OIDC_PROVIDER_DIR" --no-audit --no-fund --loglevel=error "oidc-provider@$OIDC_PROVIDER_VERSION"
  fi
}

# Garage, a real S3-compatible server, for the audit shipping tests (it checks
# SigV4 like AWS). Built once per machine (about 13 minutes), then reused.
GARAGE_VERSION=2.5.0
install_garage() {
  local bin="${CARGO_HOME:-$HOME/.cargo}/bin/garage"
  if ! "$bin" --version 2>/dev/null | grep -q "cargo:$GARAGE_VERSION"; then
    echo "==> installing garage $GARAGE_VERSION (once per machine, ~13 min)"
    cargo install garage --version "$GARAGE_VERSION" --locked
  fi
  export GARAGE_BIN="$bin"
}

# A real Redis server, for the tests of Spin's Redis key-value store (the
# tests start their own on loopback and stop it).
install_redis() {
  if ! command -v redis-server >/dev/null; then
    echo "==> installing redis-server"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq redis-server >/dev/null
  fi
}

# The real GitHub Copilot CLI (it embeds its own Node), for the sign-in test.
COPILOT_CLI_VERSION=1.0.102
install_copilot_cli() {
  local dir="$HOME/.cache/copilot-jit/copilot-cli-$COPILOT_CLI_VERSION"
  export COPILOT_CLI_BIN="$dir/node_modules/.bin/copilot"
  if [ ! -x "$COPILOT_CLI_BIN" ]; then
    command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq npm >/dev/null; }
    echo "==> installing @github/copilot@$COPILOT_CLI_VERSION"
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "@github/copilot@$COPILOT_CLI_VERSION"
  fi
}

# Debian's Chromium and its WebDriver, for the pages in a real browser.
install_chromium() {
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "==> installing chromium and chromium-driver"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
}

# Neovim and Vim, for the test that they read what `copilot-jit configure`
# writes.
install_editors() {
  if ! command -v nvim >/dev/null || ! command -v vim >/dev/null; then
    echo "==> installing neovim and vim"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq neovim vim >/dev/null
  fi
}
