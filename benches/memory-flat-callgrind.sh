#!/usr/bin/env bash
# Instructions and cache misses per point operation of the memory store, at each store size,
# counted by valgrind's callgrind with its cache simulation: figures that do not move with the
# machine's load, unlike the times of `memory-flat` (benches/src/bin/memory-flat.rs).
#
#   benches/memory-flat-callgrind.sh [SIZE...]      (default: 10000 1000000)
#
# For each SIZE: builds the store of `memory-flat` uninstrumented (valgrind --instr-atstart=no;
# a million customers take a minute or two even so), turns instrumentation on (callgrind_control -i on),
# then lets `memory-flat --callgrind SIZE` run one warm-up round and MEMORY_FLAT_ROUNDS [2] rounds
# of MEMORY_FLAT_OPS [3000] operations each on customers spread across the store, and prints per
# operation: instructions (Ir), L1 data misses (D1mr + D1mw) and last-level data misses
# (DLmr + DLmw), per operation. The simulated caches are valgrind's default: the host's L1 data
# cache and its last-level cache (here the L3). The dumps stay in MEMORY_FLAT_OUT [a temporary
# directory, removed] for callgrind_annotate. MEMORY_FLAT_BINARY: a memory-flat already built
# (another build of the store, to compare) instead of this workspace's, built first. Needs
# valgrind (callgrind_control, callgrind_annotate).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${MEMORY_FLAT_ROUNDS:-2}
OPS=${MEMORY_FLAT_OPS:-3000}
sizes=("$@")
((${#sizes[@]})) || sizes=(10000 1000000)
for tool in valgrind callgrind_control callgrind_annotate; do
    command -v "$tool" >/dev/null || { echo "memory-flat-callgrind.sh: $tool is missing" >&2; exit 2; }
done

if [[ -n ${MEMORY_FLAT_BINARY:-} ]]; then
    binary=$MEMORY_FLAT_BINARY
else
    echo "memory-flat-callgrind.sh: building memory-flat" >&2
    (cd "$ROOT" && cargo build --release --quiet -p crm-benches --bin memory-flat)
    TARGET=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps \
        | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    binary="$TARGET/release/memory-flat"
fi
[[ -x $binary ]] || { echo "memory-flat-callgrind.sh: no $binary" >&2; exit 1; }
if [[ -n ${MEMORY_FLAT_OUT:-} ]]; then
    out=$MEMORY_FLAT_OUT
    mkdir -p "$out"
else
    out=$(mktemp -d)
fi
run=
cleanup() {
    [[ -n $run ]] && kill "$run" 2>/dev/null && wait "$run" 2>/dev/null
    [[ -n ${MEMORY_FLAT_OUT:-} ]] || rm -rf "$out"
}
trap cleanup EXIT

echo "| size | operation | Ir per op | D1 misses per op | LL misses per op |"
echo "| ---: | --- | ---: | ---: | ---: |"
for size in "${sizes[@]}"; do
    rm -f "$out/go.$size"
    valgrind --tool=callgrind --cache-sim=yes --instr-atstart=no --collect-atstart=no \
        --toggle-collect='memory_flat::batch_*' --zero-before='memory_flat::measured' \
        --callgrind-out-file="$out/callgrind.$size" \
        "$binary" --callgrind "$size" --rounds "$ROUNDS" --ops "$OPS" --wait-for "$out/go.$size" \
        >"$out/stdout.$size" 2>"$out/stderr.$size" &
    run=$!
    until grep -q "^memory-flat: built" "$out/stderr.$size" 2>/dev/null; do
        kill -0 "$run" 2>/dev/null || { cat "$out/stderr.$size" >&2; exit 1; }
        sleep 1
    done
    callgrind_control -i on "$run" >"$out/control.$size" 2>&1 \
        || { cat "$out/control.$size" >&2; echo "memory-flat-callgrind.sh: cannot turn instrumentation on" >&2; exit 1; }
    touch "$out/go.$size"
    wait "$run" || { cat "$out/stderr.$size" >&2; exit 1; }
    run=
    ops=$((ROUNDS * OPS))
    rows=$(callgrind_annotate --inclusive=yes --threshold=100 "$out/callgrind.$size" \
        | awk -v size="$size" -v ops="$ops" '
            /^Events shown:/ { for (i = 3; i <= NF; i++) column[$i] = i - 2 }
            /memory_flat::batch_/ {
                match($0, /memory_flat::batch_[a-z_]+/)
                name = substr($0, RSTART + 19, RLENGTH - 19)
                # The counts, without the percentages in parentheses.
                line = $0
                gsub(/\([^)]*\)/, "", line)
                gsub(",", "", line)
                split(line, f, " ")
                ir = f[column["Ir"]]
                d1 = f[column["D1mr"]] + f[column["D1mw"]]
                ll = f[column["DLmr"]] + f[column["DLmw"]]
                printf "| %s | %s | %.0f | %.1f | %.1f |\n", size, name, ir / ops, d1 / ops, ll / ops
            }')
    # No row means the dump holds none of the measured functions (renamed, say, or inlined away):
    # a failure, not an empty table.
    [[ -n $rows ]] || { echo "memory-flat-callgrind.sh: no memory_flat::batch_* function in the dump of $size customers" >&2; exit 1; }
    echo "$rows"
done
