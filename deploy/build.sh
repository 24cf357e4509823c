#!/usr/bin/env bash
# Usage: deploy/build.sh [--builder auto|cargo-lambda|host|zigbuild] [--arch arm64|x86_64]
#
# Builds the three Lambda bootstraps of crm-lambda (binaries crm-lambda-http, the API;
# crm-lambda-envelope, the direct-invoke envelope; crm-lambda-events, the table's stream to EventBridge)
# for provided.al2023 with the `lambda` cargo profile (opt-level z, fat LTO, panic unwind, stripped) into
#   <repo>/target/lambda/crm-lambda-http/bootstrap.zip
#   <repo>/target/lambda/crm-lambda-envelope/bootstrap.zip
#   <repo>/target/lambda/crm-lambda-events/bootstrap.zip
# (the CodeUri paths of deploy/template.yaml and deploy/rest-api.yaml, relative to deploy/). These
# paths are fixed: with CARGO_TARGET_DIR pointing elsewhere, cargo builds there and the zips are
# still written (copied) to <repo>/target/lambda, where `aws cloudformation package` and `sam deploy`
# look for them. Then it checks each zip:
# one executable entry named bootstrap, an ELF for the requested architecture, no GLIBC_x.y symbol
# version newer than 2.34 (Amazon Linux 2023 ships glibc 2.34), and at most CRM_LAMBDA_MAX_ZIP_BYTES
# (4 MiB: the API, envelope and events bootstraps measure about 3.7, 3.3 and 2.8 MiB, so a build that
# lost strip or LTO fails).
# Prints the size and glibc floor of each. Safe to rerun: cargo rebuilds only what changed, and the
# zips are byte-for-byte reproducible (fixed timestamp), so an unchanged binary gives an unchanged zip
# and `aws cloudformation package` uploads nothing new.
#
# Builders:
#   cargo-lambda  `cargo lambda build --profile lambda --arm64 --output-format zip` (the default when
#                 cargo-lambda is installed; --arch x86_64 gives --x86-64). cargo-lambda cross-compiles
#                 with zig, so arm64 works from any host.
#   host          plain `cargo build --target x86_64-unknown-linux-gnu` with the host toolchain;
#                 x86_64 only. The default without cargo-lambda, and what CI runs.
#   zigbuild      `cargo zigbuild --target <triple>.2.34`: links against glibc 2.34 whatever the host
#                 has. Needs cargo-zigbuild (`cargo install cargo-zigbuild`), zig (on PATH, or the
#                 PyPI package `ziglang` in .venv) and, for arm64, `rustup target add
#                 aarch64-unknown-linux-gnu`.
# --arch defaults to arm64 for cargo-lambda and zigbuild, x86_64 for host. The templates default to
# arm64: deploy an x86_64 build with the parameter Architecture=x86_64.
#
# Env: CRM_LAMBDA_MAX_ZIP_BYTES (default 4194304 = 4 MiB), CRM_LAMBDA_MAX_GLIBC (default 2.34),
#      CARGO_TARGET_DIR (honoured for the build; the zips still land in <repo>/target/lambda).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

PACKAGE=crm-lambda
BINS=(crm-lambda-http crm-lambda-envelope crm-lambda-events)
PROFILE=lambda
MAX_ZIP_BYTES=${CRM_LAMBDA_MAX_ZIP_BYTES:-4194304}
MAX_GLIBC=${CRM_LAMBDA_MAX_GLIBC:-2.34}

die() { echo "build.sh: $*" >&2; exit 1; }
note() { echo "build.sh: $*"; }

builder=auto
arch=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --builder) builder=${2:?--builder needs a value}; shift 2 ;;
    --builder=*) builder=${1#*=}; shift ;;
    --arch) arch=${2:?--arch needs a value}; shift 2 ;;
    --arch=*) arch=${1#*=}; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

if [[ "$builder" == auto ]]; then
  if command -v cargo-lambda >/dev/null 2>&1; then builder=cargo-lambda; else builder=host; fi
fi
case "$builder" in
  cargo-lambda | zigbuild) arch=${arch:-arm64} ;;
  host) arch=${arch:-x86_64} ;;
  *) die "unknown builder $builder (auto, cargo-lambda, host, zigbuild)" ;;
esac
case "$arch" in
  arm64) triple=aarch64-unknown-linux-gnu; elf_machine=AArch64 ;;
  x86_64) triple=x86_64-unknown-linux-gnu; elf_machine=X86-64 ;;
  *) die "unknown arch $arch (arm64 or x86_64)" ;;
esac
[[ "$builder" != host || "$arch" == x86_64 ]] \
  || die "the host builder builds x86_64 only; for arm64 use --builder cargo-lambda or --builder zigbuild"

PYTHON=python3
[[ -x "$ROOT/.venv/bin/python" ]] && PYTHON="$ROOT/.venv/bin/python"
command -v "$PYTHON" >/dev/null 2>&1 || die "python3 is needed to write and check the zips"
command -v objdump >/dev/null 2>&1 || die "objdump (binutils) is needed for the glibc check"
command -v readelf >/dev/null 2>&1 || die "readelf (binutils) is needed for the architecture check"

target_dir=$(cargo metadata --format-version 1 --no-deps \
  | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
# Where the templates' CodeUri points, whatever CARGO_TARGET_DIR says.
out_dir="$ROOT/target/lambda"

bin_args=()
for bin in "${BINS[@]}"; do bin_args+=(--bin "$bin"); done

# Writes $2 (a zip holding only $1 as "bootstrap", mode 0755, timestamp 1980-01-01), reproducibly.
make_zip() {
  "$PYTHON" - "$1" "$2" <<'PY'
import os, sys, zipfile
binary, archive = sys.argv[1], sys.argv[2]
info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
info.create_system = 3  # Unix, so that Lambda honours the mode bits
info.external_attr = (0o100755 & 0xFFFF) << 16
info.compress_type = zipfile.ZIP_DEFLATED
tmp = archive + ".tmp"
with open(binary, "rb") as f, zipfile.ZipFile(tmp, "w") as z:
    z.writestr(info, f.read(), compresslevel=9)
os.replace(tmp, archive)
PY
}

started=$SECONDS
note "builder $builder, arch $arch ($triple), profile $PROFILE"
case "$builder" in
  cargo-lambda)
    arch_flag=--arm64
    [[ "$arch" == x86_64 ]] && arch_flag=--x86-64
    (set -x; cargo lambda build --profile "$PROFILE" "$arch_flag" --output-format zip \
      -p "$PACKAGE" "${bin_args[@]}")
    # cargo-lambda writes <target dir>/lambda/<bin>/bootstrap.zip; with another target dir, copy.
    for bin in "${BINS[@]}"; do
      built="$target_dir/lambda/$bin/bootstrap.zip"
      [[ -f "$built" ]] || die "cargo lambda did not produce $built"
      if [[ "$(realpath "$built")" != "$(realpath -m "$out_dir/$bin/bootstrap.zip")" ]]; then
        mkdir -p "$out_dir/$bin"
        cp "$built" "$out_dir/$bin/bootstrap.zip"
      fi
    done
    ;;
  host | zigbuild)
    if [[ "$builder" == host ]]; then
      (set -x; cargo build --profile "$PROFILE" --target "$triple" -p "$PACKAGE" "${bin_args[@]}")
    else
      command -v cargo-zigbuild >/dev/null 2>&1 \
        || die "cargo-zigbuild not found: cargo install --locked cargo-zigbuild"
      # cargo-zigbuild runs `$CARGO_ZIGBUILD_PYTHON_PATH -m ziglang` (default python3), else zig on
      # PATH. Prefer the project venv when it holds ziglang (.venv/bin/pip install ziglang).
      if [[ -z "${CARGO_ZIGBUILD_PYTHON_PATH:-}" ]] \
        && "$ROOT/.venv/bin/python" -m ziglang version >/dev/null 2>&1; then
        export CARGO_ZIGBUILD_PYTHON_PATH="$ROOT/.venv/bin/python"
      fi
      (set -x; cargo zigbuild --profile "$PROFILE" --target "$triple.$MAX_GLIBC" -p "$PACKAGE" \
        "${bin_args[@]}")
    fi
    for bin in "${BINS[@]}"; do
      binary="$target_dir/$triple/$PROFILE/$bin"
      [[ -x "$binary" ]] || die "cargo did not produce $binary"
      mkdir -p "$out_dir/$bin"
      cp "$binary" "$out_dir/$bin/bootstrap"
      make_zip "$out_dir/$bin/bootstrap" "$out_dir/$bin/bootstrap.zip"
    done
    ;;
esac
note "built in $((SECONDS - started)) s"

# ---------------------------------------------------------------- checks

version_le() { [[ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" == "$1" ]]; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

failed=0
printf '%-20s %12s %12s %8s %s\n' function "zip bytes" "binary bytes" glibc "needed libraries"
for bin in "${BINS[@]}"; do
  zip="$out_dir/$bin/bootstrap.zip"
  [[ -f "$zip" ]] || die "missing $zip"
  # The zip must hold exactly one executable entry, bootstrap; extract it to inspect the ELF.
  "$PYTHON" - "$zip" "$scratch/$bin" <<'PY' || die "$zip is not a single executable bootstrap"
import stat, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    entries = z.infolist()
    names = [e.filename for e in entries]
    if names != ["bootstrap"]:
        sys.exit(f"entries {names}, expected ['bootstrap']")
    if not (entries[0].external_attr >> 16) & stat.S_IXUSR:
        sys.exit("bootstrap is not executable in the zip")
    with open(sys.argv[2], "wb") as out:
        out.write(z.read("bootstrap"))
PY
  machine=$(readelf -h "$scratch/$bin" | sed -n 's/^ *Machine: *//p')
  if [[ "$machine" != *"$elf_machine"* ]]; then
    echo "build.sh: FAIL $bin is for '$machine', expected $elf_machine ($arch)" >&2
    failed=1
  fi
  # Highest GLIBC_x.y any dynamic symbol needs (objdump -T), or the version needs (readelf -V) when
  # the host objdump cannot read a foreign architecture.
  versions=$( { objdump -T "$scratch/$bin" 2>/dev/null || readelf -V --wide "$scratch/$bin"; } \
    | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//' | sort -uV || true)
  glibc=$(tail -n1 <<<"$versions")
  if [[ -z "$glibc" ]]; then
    glibc=none # statically linked (e.g. musl): nothing to check
  elif ! version_le "$glibc" "$MAX_GLIBC"; then
    newer=$(while read -r v; do version_le "$v" "$MAX_GLIBC" || printf 'GLIBC_%s ' "$v"; done <<<"$versions")
    echo "build.sh: FAIL $bin needs glibc $glibc > $MAX_GLIBC (symbol versions: $newer); use --builder zigbuild" >&2
    failed=1
  fi
  needed=$(readelf -d "$scratch/$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | paste -sd, -)
  zip_bytes=$(stat -c %s "$zip")
  bin_bytes=$(stat -c %s "$scratch/$bin")
  printf '%-20s %12s %12s %8s %s\n' "$bin" "$zip_bytes" "$bin_bytes" "$glibc" "${needed:-none}"
  if ((zip_bytes > MAX_ZIP_BYTES)); then
    echo "build.sh: FAIL $zip is $zip_bytes bytes, over the limit of $MAX_ZIP_BYTES" >&2
    failed=1
  fi
done
((failed == 0)) || die "checks failed"
note "ok: ${#BINS[@]} zips under $MAX_ZIP_BYTES bytes, glibc <= $MAX_GLIBC, $arch, in $out_dir"
if [[ "$arch" == x86_64 ]]; then
  note "x86_64 build: deploy it with the template parameter Architecture=x86_64 (the default is arm64)"
fi
