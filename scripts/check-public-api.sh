#!/usr/bin/env bash
# Usage: check-public-api.sh [--bless] [PACKAGE]   (run from anywhere inside the workspace)
#   Builds PACKAGE's rustdoc JSON on stable (RUSTC_BOOTSTRAP=1), renders it with crm-public-api and
#   compares it with the committed <crate dir>/public-api.txt: prints a unified diff and exits 1 on
#   any difference. --bless rewrites the file instead.
# Env: PUBLIC_API_FEATURES (default --features testkit: the contract suite is API other crates
#   build on; the `mock` feature is mockall's code generated from the port, which the listing of
#   the port already covers), PUBLIC_API_TARGET_DIR (default
#   ${CARGO_TARGET_DIR:-<workspace>/target}/public-api), PUBLIC_API_TOOL (Cargo.toml of the tool;
#   default: tools/public-api/Cargo.toml).
set -euo pipefail

bless=false
if [[ "${1:-}" == "--bless" ]]; then bless=true; shift; fi
package="${1:-crm-domain}"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tool_manifest="${PUBLIC_API_TOOL:-$here/../tools/public-api/Cargo.toml}"
root="$(dirname "$(cargo locate-project --workspace --message-format plain)")"
crate_dir="$(dirname "$(cargo pkgid --manifest-path "$root/Cargo.toml" "$package" \
  | sed -E 's|^path\+file://||; s|#.*$||')/Cargo.toml")"
target_dir="${PUBLIC_API_TARGET_DIR:-${CARGO_TARGET_DIR:-$root/target}/public-api}"
read -r -a features <<<"${PUBLIC_API_FEATURES:---features testkit}"
snapshot="$crate_dir/public-api.txt"
json="$target_dir/doc/${package//-/_}.json"

# (a) rustdoc JSON on the stable toolchain. RUSTC_BOOTSTRAP only unlocks `-Z unstable-options` for
# this one command; the JSON format_version is checked by the tool.
rm -f "$json"
(cd "$root" && RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$target_dir" cargo rustdoc --quiet --locked \
  -p "$package" --lib "${features[@]}" -- -Z unstable-options --output-format json)

# (b) render (debug profile: compiles ~15 s faster cold than release; rendering takes ~0.1 s)
CARGO_TARGET_DIR="$target_dir/tool" cargo build --quiet --locked --manifest-path "$tool_manifest"
actual="$(mktemp)"; trap 'rm -f "$actual"' EXIT
"$target_dir/tool/debug/crm-public-api" "$json" > "$actual"

# (c) compare or bless
if $bless; then
  cp "$actual" "$snapshot"
  echo "public API of $package: wrote $(wc -l < "$snapshot") lines to ${snapshot#"$root"/}"
  exit 0
fi
if [[ ! -f "$snapshot" ]]; then
  echo "error: ${snapshot#"$root"/} is missing; run: $0 --bless $package" >&2
  exit 1
fi
if ! diff -u --label "a/${snapshot#"$root"/} (committed)" --label "b/${snapshot#"$root"/} (current)" \
     "$snapshot" "$actual"; then
  echo >&2
  echo "error: the public API of $package changed (diff above). If intended, run:" >&2
  echo "  $0 --bless $package   and commit ${snapshot#"$root"/}" >&2
  exit 1
fi
echo "public API of $package: unchanged ($(wc -l < "$snapshot") lines)"
