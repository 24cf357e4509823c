#!/usr/bin/env bash
# Instructions per request of the local server, counted by valgrind's callgrind: a figure that does
# not move with the machine's load, unlike req/s (benches/load.sh).
#
#   benches/callgrind.sh [BINARY...]
#
# For each crm-server BINARY (default: this workspace's release build, built first) and each
# RUST_LOG level in CALLGRIND_LOG_LEVELS ["info warn"]: starts it under callgrind over the in-memory
# store, fills it with 1,000 customers (`seed`), zeroes the counters, drives GET /customers/{id}
# with wrk (one thread, two connections, CALLGRIND_DURATION seconds [10]; under valgrind that is a
# few thousand requests), dumps the counters and prints the user-space instructions of every
# thread divided by the requests wrk counted. Kernel work (the socket, the log write) is not in
# the figure. Needs valgrind (callgrind_control, callgrind_annotate) and wrk.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LEVELS=${CALLGRIND_LOG_LEVELS:-info warn}
DURATION=${CALLGRIND_DURATION:-10}
PORT=${CALLGRIND_PORT:-3320}
for tool in valgrind callgrind_control callgrind_annotate wrk; do
    command -v "$tool" >/dev/null || { echo "callgrind.sh: $tool is missing" >&2; exit 2; }
done

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if port_open "$PORT"; then
    echo "callgrind.sh: 127.0.0.1:$PORT is already in use (set CALLGRIND_PORT)" >&2
    exit 2
fi

echo "callgrind.sh: building release binaries" >&2
(cd "$ROOT" && cargo build --release --quiet -p crm-http --bin crm-server -p crm-benches --bin seed)
# Where cargo put them, whatever CARGO_TARGET_DIR or build.target-dir says.
TARGET=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[[ -d $TARGET ]] || { echo "callgrind.sh: no target directory found" >&2; exit 1; }
binaries=("$@")
((${#binaries[@]})) || binaries=("$TARGET/release/crm-server")
out=$(mktemp -d)
server=
cleanup() {
    [[ -n $server ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$out"
}
trap cleanup EXIT

echo "| binary | RUST_LOG | requests | instructions per request |"
echo "| --- | --- | ---: | ---: |"
for binary in "${binaries[@]}"; do
    [[ -x $binary ]] || { echo "callgrind.sh: not an executable: $binary" >&2; exit 2; }
    for level in $LEVELS; do
        env -u CRM_TABLE_NAME CRM_BIND="127.0.0.1:$PORT" RUST_LOG="$level" \
            valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.%p" "$binary" >"$out/server.log" 2>&1 &
        server=$!
        ready=0
        for _ in $(seq 300); do
            port_open "$PORT" && { ready=1; break; }
            kill -0 "$server" 2>/dev/null || break
            sleep 0.2
        done
        if ((!ready)); then
            echo "callgrind.sh: $binary did not start listening on 127.0.0.1:$PORT" >&2
            cat "$out/server.log" >&2
            exit 1
        fi
        "$TARGET/release/seed" "127.0.0.1:$PORT" 1000 4 "$out/cursors.txt" >/dev/null
        callgrind_control -z "$server" >"$out/control.log" 2>&1 \
            || { cat "$out/control.log" >&2; echo "callgrind.sh: cannot zero the counters" >&2; exit 1; }
        requests=$(LOAD_CUSTOMERS=1000 wrk -t1 -c2 -d"${DURATION}s" -s "$ROOT/benches/load/get.lua" \
            "http://127.0.0.1:$PORT" | awk '/requests in/ { print $1 }')
        callgrind_control -d "$server" >"$out/control.log" 2>&1 \
            || { cat "$out/control.log" >&2; echo "callgrind.sh: cannot dump the counters" >&2; exit 1; }
        [[ ${requests:-0} =~ ^[1-9][0-9]*$ ]] || { echo "callgrind.sh: wrk counted no request" >&2; exit 1; }
        kill "$server"
        wait "$server" 2>/dev/null || true
        server=
        dump=$(ls "$out"/callgrind.*.1)
        total=$(callgrind_annotate "$dump" | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
        rm -f "$out"/callgrind.*
        echo "| $binary | $level | $requests | $((total / requests)) |"
    done
done
