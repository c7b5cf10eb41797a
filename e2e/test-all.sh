#!/usr/bin/env bash
# Runs every test: unit and integration tests (SQLite and PostgreSQL, fake upstreams over real HTTP, the
# official openai and anthropic Python SDKs in their own processes) and the browser tests (Playwright + Debian Chromium).
# Installs what the tests need when it is missing and starts PostgreSQL when it is not running.
set -euo pipefail
source "$(dirname "$0")/../deploy/lib.sh"
cd "$ROOT"
SECONDS=0

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v npm >/dev/null || missing+=(nodejs npm)
command -v pg_isready >/dev/null || missing+=(postgresql postgresql-client)
command -v gzip >/dev/null || missing+=(gzip)
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]} (Debian packages)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  step "starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 >/dev/null || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
# Test databases left behind by an interrupted run.
psql -h 127.0.0.1 -U postgres -d test -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'sy\_t\_%'" 2>/dev/null |
  while read -r db; do psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" || true; done

VENV="$CACHE/venv"
if ! "$VENV/bin/python" -c "import openai, anthropic" 2>/dev/null; then
  step "installing the openai and anthropic Python SDKs (PyPI) into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check openai anthropic
fi
export SWITCHYARD_PYTHON="$VENV/bin/python"

build_ui

LOGS="$(mktemp -d)"
step "cargo test (SQLite and PostgreSQL)"
# A failing step still lets the others run and the summary print; the exit status says if any failed.
status=0
cargo test --workspace --all-targets 2>&1 | tee "$LOGS/cargo.log" || status=1

step "browser tests (Playwright, Debian Chromium)"
export SWITCHYARD_BIN="$CARGO_TARGET_DIR/debug/switchyard"
export SWITCHYARD_NODE_MODULES="$NODE_DIR/node_modules"
export SWITCHYARD_SCREENSHOTS="${SWITCHYARD_SCREENSHOTS:-$CACHE/screenshots}"
mkdir -p "$SWITCHYARD_SCREENSHOTS"
node --test --test-reporter=tap e2e/browser.test.mjs 2>&1 | tee "$LOGS/node.log" || status=1
echo "screenshots: $SWITCHYARD_SCREENSHOTS" >&2

# One closing line for the whole suite.
count() { # count WORD: sums "N WORD;" on cargo's result lines and "# WORD N" on node's
  awk -v w="$1" '/^test result:/ { for (i = 2; i <= NF; i++) if ($i == w";") n += $(i-1) }
                 $1 == "#" && $2 == w { n += $3 } END { print n + 0 }' "$LOGS/cargo.log" "$LOGS/node.log"
}
passed=$(count pass); passed=$(( passed + $(count passed) ))
failed=$(count fail); failed=$(( failed + $(count failed) ))
echo "finished in ${SECONDS}s" >&2
echo "tests: $passed passed, $failed failed"
if [ "$failed" -gt 0 ] || [ "$status" -ne 0 ]; then exit 1; fi
