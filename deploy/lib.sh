# Shared by deploy/run-local.sh and e2e/test-all.sh: where things are cached, and how the hydrated UI
# (wasm) is built: wasm32 target -> wasm-bindgen (exactly the version in Cargo.lock) -> wasm-opt.
# Sourced, not run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${SWITCHYARD_CACHE:-$HOME/.cache/switchyard}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
TOOLS="$CACHE/tools"
NODE_DIR="$CACHE/node"
export PATH="$TOOLS/bin:$NODE_DIR/node_modules/.bin:$HOME/.cargo/bin:$PATH"

step() { printf '\n==> %s\n' "$*" >&2; }

# wasm target, wasm-bindgen-cli matching Cargo.lock, wasm-opt (binaryen from npm: Debian's 108 breaks the wasm).
ensure_ui_tools() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    step "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
  local want
  want="$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock")"
  if ! "$TOOLS/bin/wasm-bindgen" --version 2>/dev/null | grep -q " $want\$"; then
    step "installing wasm-bindgen-cli $want (once; a few minutes)"
    cargo install wasm-bindgen-cli --version "=$want" --root "$TOOLS" --force
  fi
  if [ ! -x "$NODE_DIR/node_modules/.bin/wasm-opt" ] || [ ! -d "$NODE_DIR/node_modules/playwright-core" ]; then
    command -v npm >/dev/null || { echo "npm is needed (apt-get install -y nodejs npm)" >&2; return 1; }
    step "installing binaryen (wasm-opt) and playwright-core from npm"
    mkdir -p "$NODE_DIR"
    (cd "$NODE_DIR" && npm install --no-audit --no-fund --silent binaryen@132 playwright-core@1 >/dev/null)
  fi
}

# Builds the hydrated UI into $SITE_DIR/pkg (switchyard.js + switchyard_bg.wasm).
build_ui() {
  ensure_ui_tools
  export SITE_DIR="${SWITCHYARD_SITE_DIR:-$CACHE/site}"
  step "building the UI (wasm, release profile)"
  (cd "$ROOT" && cargo build -p switchyard-app --lib --target wasm32-unknown-unknown --features hydrate --profile wasm-release) || return 1
  local wasm="$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/switchyard_app.wasm"
  mkdir -p "$SITE_DIR/pkg"
  if [ ! -f "$SITE_DIR/pkg/.stamp" ] || [ "$wasm" -nt "$SITE_DIR/pkg/.stamp" ]; then
    wasm-bindgen --target web --no-typescript --out-dir "$SITE_DIR/pkg" --out-name switchyard "$wasm"
    wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
      --enable-mutable-globals --enable-reference-types --enable-multivalue \
      "$SITE_DIR/pkg/switchyard_bg.wasm" -o "$SITE_DIR/pkg/switchyard_bg.wasm"
    gzip -9 -k -f "$SITE_DIR/pkg/switchyard_bg.wasm" "$SITE_DIR/pkg/switchyard.js"
    touch "$SITE_DIR/pkg/.stamp"
  fi
  export SWITCHYARD_SITE_DIR="$SITE_DIR"
  echo "UI built: $(du -h "$SITE_DIR/pkg/switchyard_bg.wasm" | cut -f1) wasm ($(du -h "$SITE_DIR/pkg/switchyard_bg.wasm.gz" | cut -f1) gzipped) in $SITE_DIR/pkg" >&2
}
