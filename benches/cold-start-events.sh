#!/usr/bin/env bash
# The cold-start harness of the events function (see benches/src/bin/cold-start-events.rs): builds
# the crm-lambda-events bootstrap in the `lambda` profile, as deploy/build.sh builds the others
# (host builder, x86_64), and measures its init, its first answer and its warm cost per record
# against a loopback EventBridge. Needs neither DynamoDB Local nor Python.
# Env: CRM_COLD_START_RUNS (default 20), CRM_COLD_START_EVENTS_WARM (default 200),
#      CRM_COLD_START_EVENTS_RECORDS (default 100).
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${CRM_COLD_START_RUNS:-20}"
warm="${CRM_COLD_START_EVENTS_WARM:-200}"
records="${CRM_COLD_START_EVENTS_RECORDS:-100}"
triple=x86_64-unknown-linux-gnu

cargo build --quiet --profile lambda --target "$triple" -p crm-lambda --bin crm-lambda-events
cargo build --quiet --release -p crm-benches --bin cold-start-events
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
"$target_dir/release/cold-start-events" \
  --bootstrap "$target_dir/$triple/lambda/crm-lambda-events" \
  --runs "$runs" --warm "$warm" --records "$records"
