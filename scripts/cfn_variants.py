"""Writes the "every optional resource on" variants of CloudFormation templates, for the linters.

Usage: .venv/bin/python scripts/cfn_variants.py OUT_DIR TEMPLATE...

checkov (and, for some rules, cfn-lint) only looks at resources whose `Condition` is true with the
parameter defaults, so a resource that is off by default (the envelope function, the HTTP API's
OPTIONS routes, the JWT authorizer, the change-event webhook, ...) would never be scanned. For each TEMPLATE this writes
OUT_DIR/<name>.all-on.json: the same template (read with cfn-lint's YAML loader, so short-form tags
become their long form) with parameter defaults overridden from ALL_ON.

Some conditions are complements of others and can never be true together (rest-api.yaml has one
stage deployment per AuthMode and CORS combination, each under its own condition). For those, the
override sets of EXTRA_VARIANTS, each applied on top of ALL_ON, are tried in order, and each one that
makes a condition true that no earlier variant did is written as OUT_DIR/<name>.<variant>.json.
Together the variants of a template must make every one of its conditions true at least once.

It fails when a condition stays false in every variant (add a value to ALL_ON or a variant to
EXTRA_VARIANTS), when an override breaks the parameter's AllowedValues/AllowedPattern, or when a
checkov skip in the template carries no reason (still writing every variant it can). Prints one line
per variant written: its path.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from cfnlint.decode import cfn_yaml

# Parameter values that switch every optional resource and branch on (used where the parameter
# exists). Shaped like real values so that the templates' AllowedPattern/AllowedValues accept them.
ALL_ON = {
    "ReservedConcurrency": "50",
    "CodeSigningConfigArn": "arn:aws:lambda:eu-west-1:123456789012:code-signing-config:csc-0123456789abcdef0",
    "EnableEnvelopeFunction": "true",
    "AuthMode": "JWT",
    "JwtIssuer": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_EXAMPLE",
    "JwtAudience": "example-client-id",
    "CorsAllowedOrigins": "https://app.example.com,https://admin.example.com",
    "TableName": "crm-customers",
    "TableKmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
    "AlarmEmail": "oncall@example.com",
    "WebhookUrl": "https://hooks.example.com/crm-events",
    "WebhookApiKey": "example-webhook-api-key",
    "CreateApiGatewayAccountRole": "true",
    "EnableKnownBadInputsRule": "true",
    # rest-api.yaml's optional API client slots (slot 1 is always on).
    "Client2Name": "example-client-2",
    "Client3Name": "example-client-3",
    "Client4Name": "example-client-4",
}

# Further variants, each applied on top of ALL_ON, for conditions that ALL_ON cannot make true
# because they are the complement of one it does (written only where they add a true condition).
EXTRA_VARIANTS = {
    "auth-none": {"AuthMode": "NONE"},
    "cors-off": {"CorsAllowedOrigins": ""},
    "auth-none-cors-off": {"AuthMode": "NONE", "CorsAllowedOrigins": ""},
}

MIN_REASON = 20  # characters: "because" is not a reason


class VariantError(Exception):
    pass


def as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def evaluate(expr: object, name: str, template: dict, params: dict[str, str], seen: tuple = ()) -> object:
    """Evaluates a condition expression (Fn::Equals/Not/And/Or, Condition, Ref) with the defaults."""
    if isinstance(expr, dict) and len(expr) == 1:
        (fn, arg), = expr.items()
        if fn == "Ref":
            if arg not in params:
                raise VariantError(f"condition {name}: Ref {arg} is not a parameter with a default")
            return params[arg]
        if fn == "Condition":
            if arg in seen:
                raise VariantError(f"condition {name}: cycle through {arg}")
            return evaluate(template["Conditions"][arg], arg, template, params, seen + (arg,))
        if fn == "Fn::Equals":
            left, right = (as_text(evaluate(a, name, template, params, seen)) for a in arg)
            return left == right
        if fn == "Fn::Not":
            return not evaluate(arg[0], name, template, params, seen)
        if fn == "Fn::And":
            return all(evaluate(a, name, template, params, seen) for a in arg)
        if fn == "Fn::Or":
            return any(evaluate(a, name, template, params, seen) for a in arg)
        raise VariantError(f"condition {name}: {fn} is not supported here")
    return expr


def skips_without_reason(path: Path, template: dict) -> list[str]:
    problems = []
    for logical_id, resource in (template.get("Resources") or {}).items():
        skips = ((resource.get("Metadata") or {}).get("checkov") or {}).get("skip") or []
        for skip in skips:
            reason = str(skip.get("comment") or "").strip()
            if not skip.get("id") or len(reason) < MIN_REASON:
                problems.append(f"{path}: {logical_id} skips {skip.get('id')!r} without a reason")
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = re.search(r"checkov:skip=([^:\s]+)(?::(.*))?", line)
        if match and len((match.group(2) or "").strip()) < MIN_REASON:
            problems.append(f"{path}:{number}: checkov:skip={match.group(1)} without a reason")
    return problems


def with_overrides(path: Path, template: dict, overrides: dict[str, str]) -> tuple[dict, set[str]]:
    """A copy of the template with the parameter defaults overridden, and its true conditions."""
    variant = json.loads(json.dumps(template))
    parameters = variant.get("Parameters") or {}
    for name, value in overrides.items():
        if name not in parameters:
            continue
        spec = parameters[name]
        allowed = spec.get("AllowedValues")
        if allowed is not None and value not in [as_text(v) for v in allowed]:
            continue  # e.g. AuthMode=JWT where the template has no JWT: its default stays
        pattern = spec.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(pattern, value):
            raise VariantError(f"{path}: override {name}={value!r} does not match {pattern}")
        spec["Default"] = value
    defaults = {name: as_text(spec["Default"]) for name, spec in parameters.items() if "Default" in spec}
    true = {
        name
        for name, expr in (variant.get("Conditions") or {}).items()
        if evaluate(expr, name, variant, defaults) is True
    }
    return variant, true


def variants(path: Path, out_dir: Path, written: list[Path]) -> None:
    """Writes the all-on variant and the extra variants that switch on a condition it leaves off,
    appending each file to `written`; raises VariantError (after writing) when a condition stays off."""
    template = cfn_yaml.load(str(path))
    conditions = set(template.get("Conditions") or {})
    covered: set[str] = set()
    candidates = [("all-on", {})] + list(EXTRA_VARIANTS.items())
    for suffix, extra in candidates:
        variant, true = with_overrides(path, template, {**ALL_ON, **extra})
        if suffix != "all-on" and true <= covered:
            continue
        covered |= true
        out = out_dir / f"{path.stem}.{suffix}.json"
        out.write_text(json.dumps(variant, indent=1) + "\n")
        written.append(out)
    off = sorted(conditions - covered)
    if off:
        raise VariantError(f"{path}: conditions false in every variant: {', '.join(off)}")


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = Path(argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    problems = []
    for name in argv[2:]:
        path = Path(name)
        problems += skips_without_reason(path, cfn_yaml.load(str(path)))
        written: list[Path] = []
        try:
            variants(path, out_dir, written)
        except VariantError as error:
            problems.append(str(error))
        for out in written:
            print(out)
    for problem in problems:
        print(f"cfn_variants: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
