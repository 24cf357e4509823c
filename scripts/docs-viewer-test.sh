#!/usr/bin/env bash
# Usage: scripts/docs-viewer-test.sh [--install-only]
#
# The API docs page (`GET /docs`, crm-http's `docs-viewer` feature) end to end, as CI runs it from
# scripts/test.sh:
#   1. the vendored Swagger UI is byte for byte the pinned npm tarball (scripts/docs-viewer.sh --check);
#   2. Debian's Chromium and chromium-driver, installed with apt-get when missing (as root; a no-op
#      when both are there), and Selenium from the project venv (scripts/python-tools.sh);
#   3. crm-server (debug build, in-memory store, a free loopback port) with the page on;
#   4. scripts/docs_viewer_browser.py in headless Chromium: the page loads with no console error,
#      lists every operation of openapi.json, and a create sent from its "Try it out" answers 201
#      (at / and under a stage prefix, /prod).
# Fails, never skips, when Chromium cannot be installed or started. With --install-only it does
# step 2 alone (CI runs that early, in the background, beside the builds).
# Env: CARGO_TARGET_DIR (where crm-server is built), CRM_CHROMIUM and CRM_CHROMEDRIVER (the browser
# and driver; default /usr/bin/chromium and /usr/bin/chromedriver, Debian's).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "docs-viewer-test: $*" >&2; exit 1; }
chromium=${CRM_CHROMIUM:-/usr/bin/chromium}
chromedriver=${CRM_CHROMEDRIVER:-/usr/bin/chromedriver}
install_only=0
case "${1:-}" in
  "") ;;
  --install-only) install_only=1 ;;
  *) die "usage: scripts/docs-viewer-test.sh [--install-only]" ;;
esac

((install_only)) || scripts/docs-viewer.sh --check

if [[ ! -x "$chromium" || ! -x "$chromedriver" ]]; then
  [[ "$(id -u)" == 0 ]] \
    || die "$chromium or $chromedriver is missing: sudo apt-get install -y chromium chromium-driver"
  echo "docs-viewer-test: installing Debian's chromium and chromium-driver"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium chromium-driver >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null; } \
    || die "apt-get could not install chromium and chromium-driver"
fi
[[ -x "$chromium" && -x "$chromedriver" ]] || die "no $chromium or $chromedriver after the install"
if ((install_only)); then
  echo "docs-viewer-test: $chromium and $chromedriver are installed"
  exit 0
fi

scripts/python-tools.sh >/dev/null
cargo build -q -p crm-http --bin crm-server

log=$(mktemp)
# Port 0: the server takes a free port and says which on its first line.
env -u CRM_TABLE_NAME -u AWS_LAMBDA_RUNTIME_API CRM_BIND=127.0.0.1:0 CRM_DOCS=true RUST_LOG=warn \
  "${CARGO_TARGET_DIR:-target}/debug/crm-server" >"$log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT

base=
for _ in $(seq 1 100); do
  base=$(sed -n 's|^crm-server listening on \(http://[0-9.:]*\) .*|\1|p' "$log")
  [[ -n "$base" ]] && break
  kill -0 "$server" 2>/dev/null || { cat "$log" >&2; die "crm-server did not start"; }
  sleep 0.1
done
[[ -n "$base" ]] || { cat "$log" >&2; die "crm-server did not say where it listens"; }

CRM_CHROMIUM=$chromium CRM_CHROMEDRIVER=$chromedriver .venv/bin/python scripts/docs_viewer_browser.py "$base"
