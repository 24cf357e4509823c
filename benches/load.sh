#!/usr/bin/env bash
# The load harness: the local customers API against a bare hyper "hello" server, same generator,
# same run.
#
#   benches/load.sh
#
# Builds release `crm-server` (crm-http) and `hello-server` + `seed` (crm-benches); starts
# hello-server and, once per RUST_LOG level in LOAD_LOG_LEVELS, crm-server over the in-memory store,
# pre-filled by `seed` with LOAD_CUSTOMERS customers (ids load-00000 …); then drives them with wrk
# and the Lua scripts in benches/load/:
#   hello  GET      get.lua on hello-server (the reference ceiling), first and again last
#   crm    GET      get.lua: GET /customers/{id} over random known ids
#   crm    mix      mix.lua: 90% GET by id, 10% PATCH (merge patch) of a random known customer
#   crm    list     list.lua: GET /customers?limit=25 on a random page (real cursors from `seed`)
# and prints a Markdown table (req/s, p50, p99, error counts, the server's peak RSS during that
# scenario) to stdout and to target/load-report.md. Every process it starts is stopped on exit.
#
# Environment (defaults in brackets):
#   LOAD_THREADS [2]  LOAD_CONNECTIONS [32]  LOAD_DURATION seconds per scenario [10]
#   LOAD_CUSTOMERS [10000]  LOAD_LOG_LEVELS RUST_LOG of crm-server, one run each ["info warn"]
#   LOAD_CRM_PORT [3100]  LOAD_HELLO_PORT [3101]  (loopback only)
#   LOAD_PIN [0]  1: servers on CPU 0 with one tokio worker (TOKIO_WORKER_THREADS=1), wrk on CPU 1,
#                 so that generator and server stop competing for the same cores (needs taskset)
#   LOAD_CRM_BASELINE []  another crm-server binary (an earlier build, say) whose GET by id is run
#                 too at each level, right after this build's: a before/after in one run
#   LOAD_AB_ROUNDS [0]  with a baseline: that many more rounds of GET by id at the first level,
#                 each on a fresh seeded server, this build first in odd rounds and the baseline
#                 first in even ones (so a steady drift of the machine favours neither); the
#                 report gives the medians of both and the median of the rounds' ratios
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPTS=$ROOT/benches/load
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$TARGET/load
REPORT=$TARGET/load-report.md

THREADS=${LOAD_THREADS:-2}
CONNECTIONS=${LOAD_CONNECTIONS:-32}
DURATION=${LOAD_DURATION:-10}
CUSTOMERS=${LOAD_CUSTOMERS:-10000}
LOG_LEVELS=${LOAD_LOG_LEVELS:-info warn}
CRM_PORT=${LOAD_CRM_PORT:-3100}
HELLO_PORT=${LOAD_HELLO_PORT:-3101}
PIN=${LOAD_PIN:-0}
BASELINE=${LOAD_CRM_BASELINE:-}
AB_ROUNDS=${LOAD_AB_ROUNDS:-0}
read -r AB_LEVEL _ <<<"$LOG_LEVELS"
HOST=127.0.0.1
SERVER_ENV=()
SERVER_PIN=()
WRK_PIN=()
SETUP="generator and server share the CPUs (each server: one tokio worker per CPU)"
if [[ $PIN == 1 ]]; then
    command -v taskset >/dev/null || { echo "load.sh: LOAD_PIN=1 needs taskset (util-linux)" >&2; exit 2; }
    SERVER_ENV=(TOKIO_WORKER_THREADS=1)
    SERVER_PIN=(taskset -c 0)
    WRK_PIN=(taskset -c 1)
    SETUP="pinned: each server on CPU 0 with one tokio worker, wrk on CPU 1"
fi

if [[ -n $BASELINE ]]; then
    [[ -f $BASELINE && -x $BASELINE ]] || { echo "load.sh: LOAD_CRM_BASELINE is not an executable file: $BASELINE" >&2; exit 2; }
    BASELINE=$(realpath "$BASELINE")
fi
[[ $AB_ROUNDS =~ ^[0-9]+$ ]] || { echo "load.sh: LOAD_AB_ROUNDS must be an integer from 0 to 50" >&2; exit 2; }
AB_ROUNDS=$((10#$AB_ROUNDS))
((AB_ROUNDS <= 50)) || { echo "load.sh: LOAD_AB_ROUNDS must be an integer from 0 to 50" >&2; exit 2; }
((AB_ROUNDS == 0)) || [[ -n $BASELINE ]] || { echo "load.sh: LOAD_AB_ROUNDS needs LOAD_CRM_BASELINE" >&2; exit 2; }
for n in THREADS CONNECTIONS DURATION CUSTOMERS CRM_PORT HELLO_PORT; do
    [[ ${!n} =~ ^[0-9]+$ && ${!n} -gt 0 ]] || { echo "load.sh: $n must be a positive integer" >&2; exit 2; }
done
((DURATION <= 300)) || { echo "load.sh: LOAD_DURATION is at most 300 seconds" >&2; exit 2; }
((CUSTOMERS <= 100000)) || { echo "load.sh: LOAD_CUSTOMERS is at most 100000" >&2; exit 2; }

# --- processes we start, stopped on any exit -------------------------------------------------
PIDS=()
stop() { # stop PID: SIGTERM, then SIGKILL after 5 s
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop "$pid"; done
    PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
wait_for_port() { # wait_for_port PORT PID: up to 10 s, while PID lives
    local i
    for ((i = 0; i < 100; i++)); do
        port_open "$1" && return 0
        kill -0 "$2" 2>/dev/null || { echo "load.sh: the server on port $1 exited" >&2; return 1; }
        sleep 0.1
    done
    echo "load.sh: nothing listens on $HOST:$1 after 10 s" >&2
    return 1
}

# --- prerequisites ---------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
    echo "load.sh: installing wrk (Debian package)" >&2
    sudo=()
    ((EUID == 0)) || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq wrk >/dev/null
fi
for port in "$CRM_PORT" "$HELLO_PORT"; do
    if port_open "$port"; then
        echo "load.sh: $HOST:$port is already in use (set LOAD_CRM_PORT / LOAD_HELLO_PORT)" >&2
        exit 1
    fi
done

echo "load.sh: building release binaries" >&2
(cd "$ROOT" && cargo build --release --quiet -p crm-http --bin crm-server \
    -p crm-benches --bin hello-server --bin seed)
BIN=$TARGET/release
mkdir -p "$OUT"
rm -f "$OUT"/wrk-*.txt "$OUT"/*.log "$OUT/cursors.txt"

# --- measuring -------------------------------------------------------------------------------
ROWS=()
declare -A RPS=()
declare -A CPU=()

to_ms() { # wrk latency ("812.00us", "1.23ms", "1.01s") → milliseconds, 3 decimals
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n }'
}
peak_rss_mib() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # utime + stime of PID, in clock ticks
TICK=$(getconf CLK_TCK)
reset_peak_rss() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || echo "load.sh: cannot reset VmHWM; peak RSS is since start" >&2; }

# scenario LABEL SERVER_NAME PID PORT SCRIPT
scenario() {
    local label=$1 server=$2 pid=$3 port=$4 script=$5 file
    file=$OUT/wrk-${label//[^A-Za-z0-9=]/_}.txt
    echo "load.sh: $label: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency -s $script" >&2
    reset_peak_rss "$pid"
    local ticks_before ticks_after
    ticks_before=$(cpu_ticks "$pid")
    LOAD_CUSTOMERS=$CUSTOMERS LOAD_CURSORS=$OUT/cursors.txt \
        timeout $((DURATION + 30)) "${WRK_PIN[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency \
        -s "$SCRIPTS/$script" "http://$HOST:$port" >"$file"
    kill -0 "$pid" 2>/dev/null || { echo "load.sh: $server died during $label" >&2; exit 1; }
    ticks_after=$(cpu_ticks "$pid")
    local rps p50 p99 non2xx sockerr rss requests cpu
    rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$file")
    p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$file")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$file")")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$file")
    sockerr=$(awk -F'[ ,]+' '/Socket errors:/ { print $4 + $6 + $8 + $10 }' "$file")
    rss=$(peak_rss_mib "$pid")
    requests=$(awk '/ requests in / { print $1 }' "$file")
    cpu=$(awk -v t=$((ticks_after - ticks_before)) -v hz="$TICK" -v n="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
    RPS[$label]=$rps
    CPU[$label]=$cpu
    ROWS+=("| $label | $rps | $p50 | $p99 | ${non2xx:-0} | ${sockerr:-0} | $cpu | $rss |")
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)

hello_log=$OUT/hello-server.log
env "${SERVER_ENV[@]}" "${SERVER_PIN[@]}" "$BIN/hello-server" "$HOST:$HELLO_PORT" >"$hello_log" 2>&1 &
HELLO_PID=$!
PIDS+=("$HELLO_PID")
wait_for_port "$HELLO_PORT" "$HELLO_PID"
scenario "hello GET" hello-server "$HELLO_PID" "$HELLO_PORT" get.lua

LOG_NOTES=()
# crm_run LEVEL BINARY SUFFIX SCRIPT...: crm-server BINARY at RUST_LOG=LEVEL, seeded, through each
# scenario script; labels end with SUFFIX.
crm_run() {
    local level=$1 binary=$2 suffix=$3 script
    shift 3
    local crm_log=$OUT/crm-server-$level${suffix//[^A-Za-z0-9]/_}.log
    env -u CRM_TABLE_NAME -u AWS_LAMBDA_RUNTIME_API "${SERVER_ENV[@]}" CRM_BIND="$HOST:$CRM_PORT" \
        RUST_LOG="$level" "${SERVER_PIN[@]}" "$binary" >"$crm_log" 2>&1 &
    CRM_PID=$!
    PIDS+=("$CRM_PID")
    wait_for_port "$CRM_PORT" "$CRM_PID"
    "$BIN/seed" "$HOST:$CRM_PORT" "$CUSTOMERS" 16 "$OUT/cursors.txt" >&2
    seeded_rss=$(awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$CRM_PID/status")
    for script in "$@"; do
        case $script in
            get.lua) scenario "crm GET (RUST_LOG=$level$suffix)" crm-server "$CRM_PID" "$CRM_PORT" get.lua ;;
            mix.lua) scenario "crm mix 90/10 (RUST_LOG=$level$suffix)" crm-server "$CRM_PID" "$CRM_PORT" mix.lua ;;
            list.lua) scenario "crm list 25 (RUST_LOG=$level$suffix)" crm-server "$CRM_PID" "$CRM_PORT" list.lua ;;
        esac
    done
    stop "$CRM_PID"
    PIDS=("$HELLO_PID")
    LOG_NOTES+=("RUST_LOG=$level$suffix: RSS after seeding $seeded_rss MiB; $(wc -l <"$crm_log") log lines, $(du -h "$crm_log" | cut -f1) on stdout (to a file on disk)")
    # Keep the head of the log only: an info run writes ~200 MB.
    head -n 100 "$crm_log" >"$crm_log.head" && mv "$crm_log.head" "$crm_log"
}

for level in $LOG_LEVELS; do
    crm_run "$level" "$BIN/crm-server" "" get.lua mix.lua list.lua
    if [[ -n $BASELINE ]]; then
        crm_run "$level" "$BASELINE" ", baseline" get.lua
    fi
done

for ((round = 1; round <= AB_ROUNDS; round++)); do
    if ((round % 2)); then
        crm_run "$AB_LEVEL" "$BIN/crm-server" ", A/B $round" get.lua
        crm_run "$AB_LEVEL" "$BASELINE" ", baseline, A/B $round" get.lua
    else
        crm_run "$AB_LEVEL" "$BASELINE" ", baseline, A/B $round" get.lua
        crm_run "$AB_LEVEL" "$BIN/crm-server" ", A/B $round" get.lua
    fi
done

scenario "hello GET (again)" hello-server "$HELLO_PID" "$HELLO_PORT" get.lua
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report ----------------------------------------------------------------------------------
hello_first=${RPS["hello GET"]}
hello_again=${RPS["hello GET (again)"]}
hello=$(((hello_first + hello_again) / 2))
{
    echo "## Load: crm-server (memory store, $CUSTOMERS customers) vs bare hyper hello"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%MZ); $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)); $(uname -r);" \
        "$(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2) -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency, on the same machine;" \
        "$SETUP. Load average (1/5/15 min) before: $load_before; after: $load_after."
    echo
    echo "| scenario | req/s | p50 ms | p99 ms | non-2xx/3xx | socket errors | server CPU µs/req | server peak RSS MiB |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    printf '%s\n' "${ROWS[@]}"
    echo
    for level in $LOG_LEVELS; do
        for suffix in "" ${BASELINE:+", baseline"}; do
            crm=${RPS["crm GET (RUST_LOG=$level$suffix)"]}
            echo "- GET by id, RUST_LOG=$level$suffix: $crm req/s = $(awk -v a="$crm" -v b="$hello" 'BEGIN { printf "%.0f", 100 * a / b }') % of hello's (mean of its two runs, $hello req/s)."
        done
    done
    if [[ -n $BASELINE ]]; then
        echo "- Baseline: $BASELINE (LOAD_CRM_BASELINE), GET by id only, run right after the build under test at each level."
    fi
    if ((AB_ROUNDS > 0)); then
        median() { LC_ALL=C sort -g | awk '{ v[NR] = $1 } END { printf "%.6g", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
        rps_a=() rps_b=() cpu_a=() cpu_b=() ratios=()
        for ((round = 1; round <= AB_ROUNDS; round++)); do
            a="crm GET (RUST_LOG=$AB_LEVEL, A/B $round)"
            b="crm GET (RUST_LOG=$AB_LEVEL, baseline, A/B $round)"
            rps_a+=("${RPS[$a]}") rps_b+=("${RPS[$b]}") cpu_a+=("${CPU[$a]}") cpu_b+=("${CPU[$b]}")
            ratios+=("$(awk -v a="${RPS[$a]}" -v b="${RPS[$b]}" 'BEGIN { if (b > 0) printf "%.4f", a / b; else print "nan" }')")
        done
        echo "- A/B, GET by id at RUST_LOG=$AB_LEVEL, $AB_ROUNDS rounds (this build first in odd rounds, the baseline in even ones):" \
            "this build $(printf '%s\n' "${rps_a[@]}" | median) req/s and $(printf '%s\n' "${cpu_a[@]}" | median) µs/req (medians)," \
            "the baseline $(printf '%s\n' "${rps_b[@]}" | median) req/s and $(printf '%s\n' "${cpu_b[@]}" | median) µs/req;" \
            "median of the rounds' req/s ratios $(printf '%s\n' "${ratios[@]}" | median) (rounds: ${ratios[*]})."
    fi
    printf -- '- %s\n' "${LOG_NOTES[@]}"
    echo "- Server CPU µs/req: user + system time of the server process over the scenario / requests (kernel loopback TCP work on the send side is included)."
    echo "- Peak RSS is VmHWM of the server, reset (clear_refs) before each scenario. Raw wrk output: target/load/."
} | tee "$REPORT"
echo "load.sh: report written to $REPORT" >&2
