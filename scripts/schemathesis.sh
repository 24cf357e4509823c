#!/usr/bin/env bash
# Property-based API testing: schemathesis drives the local server (in-memory store) with cases
# generated from crm-http/openapi.json — at least 200 per operation, plus stateful sequences
# along the document's links — and fails on any server error or any response that breaks the
# document. Used by scripts/test.sh; runs alone too.
set -euo pipefail
cd "$(dirname "$0")/.."

port="${CRM_SCHEMATHESIS_PORT:-3917}"
examples="${CRM_SCHEMATHESIS_EXAMPLES:-200}"
base="http://127.0.0.1:${port}"

scripts/python-tools.sh >/dev/null
cargo build -q -p crm-http --bin crm-server

log="$(mktemp)"
env -u CRM_TABLE_NAME CRM_BIND="127.0.0.1:${port}" RUST_LOG=warn "${CARGO_TARGET_DIR:-target}/debug/crm-server" >"$log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
  if curl -fsS "${base}/health" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then
    echo "schemathesis: the server did not start:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.1
done

# `positive_data_acceptance` is left out on purpose: schemathesis counts any 4xx to a schema-valid
# request as a failure, but valid-looking requests are refused by design here (a random If-Match is
# stale: 412; email with cursor: 400; a well-formed cursor that decodes to nothing: 400).
common=(--url "$base" --max-examples "$examples" --checks all
  --exclude-checks positive_data_acceptance --seed 20261122 --no-color
  --suppress-health-check all)

# 1. Every operation, generated cases: examples, coverage, fuzzing. That includes the finding of
# customers: every parameter of GET /customers (sort, name, updatedSince, email, limit, cursor, and
# their combinations) and POST /customers/search with its body. Left out: GET, PATCH and DELETE
# /customers/search, which the document lists only because a concrete path comes before
# /customers/{id} in OpenAPI; they are the operations of /customers/{id} for the id `search`,
# tested here already, and generated cases would only meet its 404 (the router tests cover them).
.venv/bin/st run "${base}/openapi.json" "${common[@]}" --phases examples,coverage,fuzzing \
  --exclude-operation-id-regex '^(get|patch|delete)Customer(Search|Batch)$'

# 2. Stateful sequences along the links, on the resource routes only. The compatibility routes
# delete customers too (`DELETE /Customers` and the envelope's `delete`, both with the id in the
# body), which schemathesis cannot see as deletes: a sequence create → compat delete → PATCH would
# be reported as "created resource not found" (ST302) although the API did right.
# For the same reason they run without the Idempotency-Key header: schemathesis draws keys from a
# small pool, so a create it sends again with a key it used before is answered, as documented,
# with the first create's outcome (201), and if that customer was deleted since, ST302 reads the
# replay as a lost resource. The header's own cases (valid, invalid, reused) run in phase 1 and in
# the router tests (crm-http/tests/api/idempotency.rs).
without_keys="$(mktemp --suffix=.json)"
trap 'cleanup; rm -f "$without_keys"' EXIT
# shellcheck disable=SC2016 # the Python program's "$ref" is JSON, not a shell expansion
curl -fsS "${base}/openapi.json" | .venv/bin/python -c '
import json, sys
document = json.load(sys.stdin)
for path in document["paths"].values():
    for operation in path.values():
        if isinstance(operation, dict) and "parameters" in operation:
            operation["parameters"] = [p for p in operation["parameters"]
                                       if p.get("$ref") != "#/components/parameters/IdempotencyKey"]
json.dump(document, sys.stdout)
' >"$without_keys"
.venv/bin/st run "$without_keys" "${common[@]}" --phases stateful \
  --include-path-regex '^/customers'
