#!/usr/bin/env bash
# The cold-start harness (see benches/src/bin/cold-start.rs): builds the release bootstrap with
# deploy/build.sh, a Python 3 baseline (boto3 under awslambdaric) in .venv-bench, starts DynamoDB
# Local if needed, and measures both through the same fake Lambda Runtime API; then the events
# function (benches/cold-start-events.sh).
# Env: CRM_COLD_START_RUNS (default 20), CRM_COLD_START_WARM (default 1000),
# CRM_COLD_START_THROUGHPUT (invocations per concurrency in the throughput runs, default 4000).
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${CRM_COLD_START_RUNS:-20}"
warm="${CRM_COLD_START_WARM:-1000}"
throughput="${CRM_COLD_START_THROUGHPUT:-4000}"
venv=.venv-bench
requirements=benches/cold-start/requirements.txt

if [ ! -x "$venv/bin/python" ] || ! cmp -s "$requirements" "$venv/.requirements"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$venv/.requirements"
fi

started_here=0
stop_dynamodb() { if [ "$started_here" = 1 ]; then scripts/dynamodb-local.sh stop; fi; }
trap stop_dynamodb EXIT
if ! scripts/dynamodb-local.sh status >/dev/null 2>&1; then
  scripts/dynamodb-local.sh start
  started_here=1
fi

deploy/build.sh --builder host >/dev/null
# The physical baseline, with the bootstraps' profile and target.
cargo build --quiet --profile lambda --target x86_64-unknown-linux-gnu -p crm-hello-lambda
cargo build --quiet --release -p crm-benches --bin cold-start
target/release/cold-start \
  --bootstrap "$PWD/target/x86_64-unknown-linux-gnu/lambda/crm-lambda-http" \
  --hello "$PWD/target/x86_64-unknown-linux-gnu/lambda/hello-lambda" \
  --python "$PWD/$venv/bin/python" \
  --handler-dir "$PWD/benches/cold-start" \
  --runs "$runs" --warm "$warm" --throughput "$throughput" \
  --endpoint "http://127.0.0.1:${CRM_DYNAMODB_LOCAL_PORT:-8000}"
echo "zipped: $(stat -c %s target/lambda/crm-lambda-http/bootstrap.zip) bytes (target/lambda/crm-lambda-http/bootstrap.zip)"
# The events function, against a loopback EventBridge (it needs no table).
benches/cold-start-events.sh
