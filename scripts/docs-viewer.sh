#!/usr/bin/env bash
# Usage: scripts/docs-viewer.sh [--check]
#
# Vendors the API docs viewer that `GET /docs` serves (crm-http's `docs-viewer` feature): Swagger UI,
# from the npm package swagger-ui-dist at the exact version pinned below, into
# crm-http/docs-viewer/swagger-ui/. The tarball is fetched with `npm pack` and must match the pinned
# sha512 (npm's `dist.integrity`) before anything is copied; only the files the page needs are kept,
# with the package's licence files: swagger-ui-bundle.js, swagger-ui.css, LICENSE and NOTICE
# (Apache-2.0), swagger-ui-bundle.js.LICENSE.txt (the licences of what the bundle holds) and
# package.json (the version, which crm-http's tests compare with its own).
#   (none)   write them, replacing the folder (so that a file an older version had does not stay)
#   --check  write nothing; fail unless the vendored files are byte for byte those of the pinned
#            tarball (CI: no hand edit, no stale copy)
#
# To update: set VERSION, and INTEGRITY to `npm view swagger-ui-dist@<VERSION> dist.integrity`, run
# this script, set the same version in crm-http/src/docs.rs (`swagger_ui_version!`), then run
# scripts/docs-viewer-test.sh (the page in Chromium) and `cargo test -p crm-http --test docs`.
# Needs: npm and node (as scripts/dynamodb-local.sh), tar.
set -euo pipefail

VERSION=5.35.0
INTEGRITY=sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==
FILES=(swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css LICENSE NOTICE package.json)

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST="$ROOT/crm-http/docs-viewer/swagger-ui"
RUST_SOURCE="$ROOT/crm-http/src/docs.rs"

die() { echo "docs-viewer: $*" >&2; exit 1; }

check=0
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  *) echo "usage: scripts/docs-viewer.sh [--check]" >&2; exit 2 ;;
esac

command -v npm >/dev/null 2>&1 || die "npm not found (Node.js 18+ with npm is needed)"
command -v node >/dev/null 2>&1 || die "node not found"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# npm's cache makes a second run offline and quick; --ignore-scripts: a pack runs none anyway.
(cd "$scratch" && npm pack --silent --ignore-scripts "swagger-ui-dist@$VERSION" >/dev/null) \
  || die "npm pack swagger-ui-dist@$VERSION failed"
tarball="$scratch/swagger-ui-dist-$VERSION.tgz"
[[ -f "$tarball" ]] || die "npm pack did not write $(basename "$tarball")"

actual=$(node -e '
  const data = require("fs").readFileSync(process.argv[1]);
  process.stdout.write("sha512-" + require("crypto").createHash("sha512").update(data).digest("base64"));
' "$tarball")
[[ "$actual" == "$INTEGRITY" ]] \
  || die "swagger-ui-dist-$VERSION.tgz is $actual, not the pinned $INTEGRITY: refusing it"

mkdir "$scratch/package-files"
tar -xzf "$tarball" -C "$scratch/package-files" "${FILES[@]/#/package/}"
unpacked="$scratch/package-files/package"

# The package says what it is: the version pinned, under the licence this project ships it with.
node -e '
  const p = require(process.argv[1]);
  if (p.name !== "swagger-ui-dist" || p.version !== process.argv[2] || p.license !== "Apache-2.0") {
    console.error("docs-viewer: package.json says " + p.name + "@" + p.version + " (" + p.license + ")");
    process.exit(1);
  }
' "$unpacked/package.json" "$VERSION"

grep -Fqs "\"$VERSION\"" "$RUST_SOURCE" \
  || echo "docs-viewer: note: crm-http/src/docs.rs does not name $VERSION yet (swagger_ui_version!)" >&2

if ((check)); then
  stale=0
  for file in "${FILES[@]}"; do
    if ! cmp -s "$unpacked/$file" "$DEST/$file"; then
      echo "docs-viewer: $DEST/$file differs from swagger-ui-dist@$VERSION's" >&2
      stale=1
    fi
  done
  extra=$(find "$DEST" -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | grep -vxF -f <(printf '%s\n' "${FILES[@]}") || true)
  [[ -z "$extra" ]] || { echo "docs-viewer: $DEST holds files it should not: $extra" >&2; stale=1; }
  ((stale == 0)) || die "run scripts/docs-viewer.sh to vendor swagger-ui-dist@$VERSION again"
  echo "docs-viewer: $DEST is swagger-ui-dist@$VERSION ($INTEGRITY)"
  exit 0
fi

rm -rf "$DEST.new"
mkdir -p "$DEST.new"
for file in "${FILES[@]}"; do
  install -m 0644 "$unpacked/$file" "$DEST.new/$file"
done
rm -rf "$DEST"
mv "$DEST.new" "$DEST"
echo "docs-viewer: wrote swagger-ui-dist@$VERSION into ${DEST#"$ROOT"/}:"
(cd "$DEST" && wc -c "${FILES[@]}")
