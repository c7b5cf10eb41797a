#!/usr/bin/env bash
# Runs Switchyard locally: builds the UI and the server (release), then serves on SQLite with the demo
# catalog, credits and key. Extra arguments go to `switchyard serve`. Ctrl-C (or SIGTERM) stops it cleanly.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
build_ui
step "building the server (release)"
cargo build --release -p switchyard --bin switchyard
export DATABASE_URL="${DATABASE_URL:-sqlite://data/switchyard.db}"
step "starting: switchyard serve --demo $*"
exec "$CARGO_TARGET_DIR/release/switchyard" serve --demo "$@"
