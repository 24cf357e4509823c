#!/usr/bin/env bash
# Usage: scripts/check-packages.sh [extra `cargo publish` flags, e.g. --allow-dirty]
#
# Checks that the library crates are ready to publish, as CI runs it:
#   1. each published package ships only what it needs: `cargo package --list` holds its sources,
#      the files they include (openapi.json, the Amazon root certificates, the change event's JSON
#      Schema), README.md, both licence
#      files and what cargo adds itself; nothing else (no tests, fixtures, benches or scripts);
#   2. crm-http has no Lambda crate in its dependency tree, and without its default features no
#      AWS crate either;
#   3. `cargo publish --workspace --dry-run` packages every published crate in dependency order and
#      builds each from its package alone;
#   4. crm-domain's public API equals the committed crm-domain/public-api.txt
#      (scripts/check-public-api.sh; `--bless` there rewrites it after an intended change).
set -euo pipefail
cd "$(dirname "$0")/.."

PUBLISHED=(crm-domain crm-memory crm-dynamo crm-http crm-lambda crm-cli)
step() { printf '\n-- %s\n' "$1"; }
fail() { echo "check-packages: $*" >&2; exit 1; }

step "what each package ships"
for package in "${PUBLISHED[@]}"; do
  extra='^$'
  case "$package" in
    crm-domain) extra='^schema/customer-event\.json$' ;;
    crm-http) extra='^(openapi\.json|docs-viewer/swagger-ui/(swagger-ui-bundle\.js|swagger-ui-bundle\.js\.LICENSE\.txt|swagger-ui\.css|LICENSE|NOTICE|package\.json))$' ;;
    crm-dynamo) extra='^certs/[a-z-]+\.pem$' ;;
  esac
  files=$(cargo package --list --locked --allow-dirty -p "$package") \
    || fail "cargo package --list -p $package failed"
  unexpected=$(grep -Ev '^(\.cargo_vcs_info\.json|Cargo\.lock|Cargo\.toml|Cargo\.toml\.orig|README\.md|LICENSE-MIT|LICENSE-APACHE|src/[A-Za-z0-9_/-]+\.rs)$' <<<"$files" \
    | grep -Ev "$extra" || true)
  [[ -z "$unexpected" ]] || fail "$package would ship files it does not need: $unexpected"
  for needed in README.md LICENSE-MIT LICENSE-APACHE Cargo.toml; do
    grep -qx "$needed" <<<"$files" || fail "$package does not ship $needed"
  done
  grep -Eqx 'src/(lib|main)\.rs' <<<"$files" || fail "$package ships no src/lib.rs"
  echo "$package: $(wc -l <<<"$files") files, all needed"
done

step "crm-http stays apart from Lambda (and, without its default features, from AWS)"
# The trees first, on their own, so that a failing `cargo tree` fails the check instead of reading
# as an empty list.
tree=$(cargo tree --locked -p crm-http -e normal,build --prefix none)
lean_tree=$(cargo tree --locked -p crm-http --no-default-features -e normal,build --prefix none)
grep -q '^crm-dynamo ' <<<"$tree" || fail "cargo tree -p crm-http does not list crm-dynamo: is the tree right?"
lambda=$(grep -E '^lambda_' <<<"$tree" | sort -u || true)
[[ -z "$lambda" ]] || fail "crm-http depends on Lambda crates: $lambda"
aws=$(grep -E '^aws-' <<<"$lean_tree" | sort -u || true)
[[ -z "$aws" ]] || fail "crm-http without default features depends on AWS crates: $aws"
echo "crm-http: no lambda_* crate; no aws-* crate without the dynamodb feature"

step "cargo publish --workspace --dry-run"
# cargo unpacks each package it verifies under $CARGO_HOME/registry/src/<local overlay>/, and, as for
# any registry crate, never unpacks the same name and version again: a second dry run (a developer's,
# or CI's on a reused machine) would build against the first one's sources. Those copies are ours,
# never crates.io's: remove them first.
# The same holds for what cargo compiled of them: a registry crate's build is reused by name and
# version, whatever its sources now say, so forget those builds too (the workspace's own builds of
# these crates are redone, which takes seconds).
cargo_home=${CARGO_HOME:-$HOME/.cargo}
target_dir=${CARGO_TARGET_DIR:-target}
for package in "${PUBLISHED[@]}"; do
  rm -rf "$cargo_home"/registry/src/*/"$package"-[0-9]*
  rm -rf "$target_dir"/debug/.fingerprint/"$package"-[0-9a-f]*
done
# Each package is built from its .crate alone, under cargo's default dev profile. Without debug
# info, as the workspace's own profile builds dependencies, those builds reuse what the test
# suite compiled instead of compiling every dependency again.
CARGO_PROFILE_DEV_DEBUG=false cargo publish --workspace --dry-run --locked "$@"

step "crm-domain's public API"
scripts/check-public-api.sh crm-domain
