//! The CloudFormation templates in `deploy/` agree with the code: the table's key schema, attribute
//! definitions and global secondary indexes (with their sort keys), and the DynamoDB grants of
//! every function role, are exactly what [`crm_dynamo::TABLE`] says the repository needs. Change one
//! side without the other and this fails, naming each disagreement.
//!
//! The templates use CloudFormation's short-form tags (`!Ref`, `!Sub`, `!GetAtt`, `!If`, ...), which
//! `serde_yaml_ng` keeps as tagged values; they are rewritten into the long form (`{"Fn::GetAtt":
//! ["CustomersTable", "Arn"]}`) before anything is compared, so either spelling is understood.
//!
//! The listing indexes sit under conditions, so that a stack of the previous layout gets them one
//! per update (parameter `ListingIndexes`, deploy/README.md). The templates are compared as
//! CloudFormation would deploy them: conditions evaluated, `Fn::If` resolved and `AWS::NoValue`
//! dropped, with the parameter defaults (which must give the whole of `TABLE`), and again for every
//! step of the upgrade (which must give `byEmail` and the first N listing indexes, no more).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crm_dynamo::{IndexDefinition, TABLE};
use serde_json::{Map, Value, json};

const TEMPLATES: [&str; 2] = ["template.yaml", "rest-api.yaml"];

/// The parameter that says how many listing indexes the table has.
const LISTING_INDEXES: &str = "ListingIndexes";

/// How many of `TABLE`'s indexes a table of the previous layout had (`byEmail`): the rest are the
/// listing indexes, in the order an upgrade adds them.
const PREVIOUS_INDEXES: usize = 1;

fn template_text(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Parses a template and rewrites every short-form intrinsic function into its long form.
fn parse(text: &str) -> Result<Value, String> {
    let yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    to_json(yaml)
}

fn to_json(yaml: serde_yaml_ng::Value) -> Result<Value, String> {
    use serde_yaml_ng::Value as Y;
    Ok(match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::to_value(&n).map_err(|e| e.to_string())?,
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => {
            Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?)
        }
        Y::Mapping(mapping) => {
            let mut object = Map::new();
            for (key, value) in mapping {
                let Y::String(key) = key else {
                    return Err(format!("a mapping key that is not a string: {key:?}"));
                };
                object.insert(key, to_json(value)?);
            }
            Value::Object(object)
        }
        Y::Tagged(tagged) => {
            let name = tagged.tag.to_string();
            let name = name.trim_start_matches('!');
            let value = to_json(tagged.value)?;
            match (name, value) {
                ("Ref" | "Condition", value) => json!({ name: value }),
                // `!GetAtt Resource.Attribute` is `Fn::GetAtt: [Resource, Attribute]`.
                ("GetAtt", Value::String(dotted)) => match dotted.split_once('.') {
                    Some((resource, attribute)) => json!({ "Fn::GetAtt": [resource, attribute] }),
                    None => return Err(format!("!GetAtt without an attribute: {dotted}")),
                },
                (name, value) => json!({ format!("Fn::{name}"): value }),
            }
        }
    })
}

/// The parameter values of a deployment with the defaults, `overrides` aside.
fn parameters(template: &Value, overrides: &[(&str, String)]) -> BTreeMap<String, String> {
    let mut values: BTreeMap<String, String> = template
        .get("Parameters")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(name, spec)| Some((name.clone(), scalar_text(spec.get("Default")?))))
        .collect();
    for (name, value) in overrides {
        values.insert((*name).to_owned(), value.clone());
    }
    values
}

fn scalar_text(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

/// The value of condition `name` with `parameters`.
fn condition(
    template: &Value,
    name: &str,
    parameters: &BTreeMap<String, String>,
    depth: usize,
) -> Result<bool, String> {
    let expression = template
        .pointer(&format!("/Conditions/{name}"))
        .ok_or_else(|| format!("condition {name} is not defined"))?;
    truth(template, expression, parameters, depth + 1)
}

/// Evaluates a condition expression (`Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`, `Condition`).
fn truth(
    template: &Value,
    expression: &Value,
    parameters: &BTreeMap<String, String>,
    depth: usize,
) -> Result<bool, String> {
    if depth > 20 {
        return Err("conditions nest too deep (a cycle?)".to_owned());
    }
    let all = |operands: &Value| -> Result<Vec<bool>, String> {
        one_or_many(operands)
            .into_iter()
            .map(|operand| truth(template, operand, parameters, depth + 1))
            .collect()
    };
    if let Some(name) = expression.get("Condition").and_then(Value::as_str) {
        condition(template, name, parameters, depth)
    } else if let Some(pair) = expression.get("Fn::Equals").and_then(Value::as_array) {
        let text = |value: &Value| match value.get("Ref").and_then(Value::as_str) {
            Some(name) => parameters
                .get(name)
                .cloned()
                .ok_or_else(|| format!("Ref {name} is not a parameter with a value")),
            None => Ok(scalar_text(value)),
        };
        match pair.as_slice() {
            [left, right] => Ok(text(left)? == text(right)?),
            _ => Err(format!("Fn::Equals with {} operands", pair.len())),
        }
    } else if let Some(operands) = expression.get("Fn::Not") {
        Ok(!all(operands)?.into_iter().all(|b| b))
    } else if let Some(operands) = expression.get("Fn::And") {
        Ok(all(operands)?.into_iter().all(|b| b))
    } else if let Some(operands) = expression.get("Fn::Or") {
        Ok(all(operands)?.into_iter().any(|b| b))
    } else {
        Err(format!(
            "a condition this test cannot evaluate: {expression}"
        ))
    }
}

/// The template as CloudFormation deploys it with `parameters`: every `Fn::If` replaced by its
/// branch, every `!Ref AWS::NoValue` dropped from its list or object.
fn resolve(
    template: &Value,
    value: &Value,
    parameters: &BTreeMap<String, String>,
) -> Result<Option<Value>, String> {
    if value.get("Ref").and_then(Value::as_str) == Some("AWS::NoValue") {
        return Ok(None);
    }
    if let Some(branches) = value.get("Fn::If").and_then(Value::as_array) {
        let [name, then, otherwise] = branches.as_slice() else {
            return Err(format!("Fn::If with {} operands", branches.len()));
        };
        let name = name
            .as_str()
            .ok_or("Fn::If on a condition that is not a name")?;
        let branch = if condition(template, name, parameters, 0)? {
            then
        } else {
            otherwise
        };
        return resolve(template, branch, parameters);
    }
    Ok(Some(match value {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| resolve(template, item, parameters))
                .filter_map(Result::transpose)
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(key, item)| {
                    Ok(resolve(template, item, parameters)?.map(|v| (key.clone(), v)))
                })
                .filter_map(Result::transpose)
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    }))
}

/// The template deployed with the parameter defaults, `overrides` aside.
fn deployed(template: &Value, overrides: &[(&str, String)]) -> Result<Value, String> {
    let parameters = parameters(template, overrides);
    Ok(resolve(template, template, &parameters)?.unwrap_or(Value::Null))
}

/// The resources of a template, by logical id.
fn resources(template: &Value) -> BTreeMap<&str, &Value> {
    template
        .get("Resources")
        .and_then(Value::as_object)
        .map(|r| r.iter().map(|(id, res)| (id.as_str(), res)).collect())
        .unwrap_or_default()
}

fn resource_type(resource: &Value) -> &str {
    resource.get("Type").and_then(Value::as_str).unwrap_or("")
}

fn properties(resource: &Value) -> &Value {
    resource.get("Properties").unwrap_or(&Value::Null)
}

/// A string or a list of strings (IAM's `Action` and `Resource`), as a list.
fn one_or_many(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// The one `AWS::DynamoDB::Table` of the template.
fn the_table<'t>(
    resources: &BTreeMap<&'t str, &'t Value>,
    errors: &mut Vec<String>,
) -> Option<(&'t str, &'t Value)> {
    let tables: Vec<_> = resources
        .iter()
        .filter(|(_, r)| resource_type(r) == "AWS::DynamoDB::Table")
        .map(|(id, r)| (*id, *r))
        .collect();
    if let [table] = tables.as_slice() {
        Some(*table)
    } else {
        errors.push(format!(
            "expected exactly one AWS::DynamoDB::Table, found {}",
            tables.len()
        ));
        None
    }
}

fn hash_key(attribute: &str) -> Value {
    json!([{ "AttributeName": attribute, "KeyType": "HASH" }])
}

fn index_key_schema(index: &IndexDefinition) -> Value {
    let mut schema = vec![json!({ "AttributeName": index.partition_key, "KeyType": "HASH" })];
    if let Some(sort_key) = index.sort_key {
        schema.push(json!({ "AttributeName": sort_key, "KeyType": "RANGE" }));
    }
    Value::Array(schema)
}

/// Key schema, attribute definitions and indexes of the table against [`TABLE`] with `indexes`
/// (all of them, or those of a step of the upgrade).
fn check_table_layout(
    table_id: &str,
    table: &Value,
    indexes: &[IndexDefinition],
    errors: &mut Vec<String>,
) {
    let props = properties(table);

    let key_schema = props.get("KeySchema").unwrap_or(&Value::Null);
    if *key_schema != hash_key(TABLE.partition_key) {
        errors.push(format!(
            "{table_id}.KeySchema is {key_schema}, the code uses {}",
            hash_key(TABLE.partition_key)
        ));
    }

    // DynamoDB refuses a definition no key schema uses, so these are exactly the key attributes.
    let expected_attributes: BTreeSet<(String, String)> = std::iter::once(TABLE.partition_key)
        .chain(indexes.iter().flat_map(IndexDefinition::key_attributes))
        .map(|name| (name.to_owned(), "S".to_owned()))
        .collect();
    let definitions = one_or_many(props.get("AttributeDefinitions").unwrap_or(&Value::Null));
    let actual_attributes: BTreeSet<(String, String)> = definitions
        .iter()
        .map(|d| {
            let field = |name| {
                d.get(name)
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned()
            };
            (field("AttributeName"), field("AttributeType"))
        })
        .collect();
    if actual_attributes != expected_attributes || definitions.len() != expected_attributes.len() {
        errors.push(format!(
            "{table_id}.AttributeDefinitions are {actual_attributes:?} ({} entries), the code uses {expected_attributes:?}",
            definitions.len()
        ));
    }

    let mut expected_indexes: BTreeMap<&str, Value> = BTreeMap::new();
    for index in indexes {
        expected_indexes.insert(
            index.name,
            json!({
                "IndexName": index.name,
                "KeySchema": index_key_schema(index),
                "Projection": { "ProjectionType": "ALL" },
            }),
        );
    }
    let mut actual_indexes: BTreeMap<String, &Value> = BTreeMap::new();
    for index in one_or_many(props.get("GlobalSecondaryIndexes").unwrap_or(&Value::Null)) {
        let name = index
            .get("IndexName")
            .and_then(Value::as_str)
            .unwrap_or("?");
        if actual_indexes.insert(name.to_owned(), index).is_some() {
            errors.push(format!("{table_id}: index {name} is defined twice"));
        }
    }
    let expected_names: BTreeSet<&str> = expected_indexes.keys().copied().collect();
    let actual_names: BTreeSet<&str> = actual_indexes.keys().map(String::as_str).collect();
    if expected_names != actual_names {
        errors.push(format!(
            "{table_id}.GlobalSecondaryIndexes are {actual_names:?}, the code uses {expected_names:?}"
        ));
    }
    for (name, expected) in &expected_indexes {
        if let Some(actual) = actual_indexes.get(*name)
            && *actual != expected
        {
            errors.push(format!(
                "{table_id}: index {name} is {actual}, the code uses {expected}"
            ));
        }
    }
    let time_to_live = json!({ "AttributeName": TABLE.time_to_live_attribute, "Enabled": true });
    let actual_time_to_live = props.get("TimeToLiveSpecification").unwrap_or(&Value::Null);
    if *actual_time_to_live != time_to_live {
        errors.push(format!(
            "{table_id}.TimeToLiveSpecification is {actual_time_to_live}, the code uses {time_to_live}"
        ));
    }
    if props.get("LocalSecondaryIndexes").is_some() {
        errors.push(format!(
            "{table_id} has LocalSecondaryIndexes; the code uses none"
        ));
    }
}

/// What an IAM `Resource` entry names: the table, one of its indexes, or something else.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Table,
    Index(String),
}

fn classify(resource: &Value, table_id: &str) -> Result<Target, String> {
    let get_att = resource.get("Fn::GetAtt");
    if get_att == Some(&json!([table_id, "Arn"]))
        || get_att == Some(&json!(format!("{table_id}.Arn")))
    {
        return Ok(Target::Table);
    }
    let sub = match resource.get("Fn::Sub") {
        Some(Value::String(s)) => Some(s.as_str()),
        Some(Value::Array(parts)) => parts.first().and_then(Value::as_str),
        _ => None,
    };
    let arn = format!("${{{table_id}.Arn}}");
    if let Some(rest) = sub.and_then(|s| s.strip_prefix(arn.as_str())) {
        if rest.is_empty() {
            return Ok(Target::Table);
        }
        if let Some(index) = rest.strip_prefix("/index/")
            && !index.is_empty()
            && index
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            return Ok(Target::Index(index.to_owned()));
        }
    }
    Err(format!(
        "grants DynamoDB actions on {resource}, which is neither {table_id} nor one of its indexes by name"
    ))
}

/// The DynamoDB grants of one policy document, added to `grants`.
fn collect_grants(
    document: &Value,
    table_id: &str,
    origin: &str,
    grants: &mut BTreeMap<Target, BTreeSet<String>>,
    errors: &mut Vec<String>,
) {
    for statement in one_or_many(document.get("Statement").unwrap_or(&Value::Null)) {
        if statement.get("NotAction").is_some() || statement.get("NotResource").is_some() {
            errors.push(format!(
                "{origin}: NotAction/NotResource cannot be checked against the code"
            ));
            continue;
        }
        let actions: Vec<String> = one_or_many(statement.get("Action").unwrap_or(&Value::Null))
            .into_iter()
            .map(|a| a.as_str().map_or_else(|| a.to_string(), str::to_owned))
            .filter(|a| a == "*" || a.to_ascii_lowercase().starts_with("dynamodb:"))
            .collect();
        if actions.is_empty() {
            continue;
        }
        if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
            errors.push(format!(
                "{origin}: a DynamoDB statement that is not a plain Allow: {statement}"
            ));
            continue;
        }
        for resource in one_or_many(statement.get("Resource").unwrap_or(&Value::Null)) {
            match classify(resource, table_id) {
                Ok(target) => grants
                    .entry(target)
                    .or_default()
                    .extend(actions.iter().cloned()),
                Err(e) => errors.push(format!("{origin}: {e}")),
            }
        }
    }
}

/// Every DynamoDB grant of each IAM role in the template: its inline policies, the managed policies
/// of this template it lists, and `AWS::IAM::Policy`/`ManagedPolicy` resources that name it.
fn role_grants(
    resources: &BTreeMap<&str, &Value>,
    table_id: &str,
    errors: &mut Vec<String>,
) -> BTreeMap<String, BTreeMap<Target, BTreeSet<String>>> {
    let mut by_role = BTreeMap::new();
    for (role_id, role) in resources
        .iter()
        .filter(|(_, r)| resource_type(r) == "AWS::IAM::Role")
    {
        let mut grants = BTreeMap::new();
        let props = properties(role);
        for policy in one_or_many(props.get("Policies").unwrap_or(&Value::Null)) {
            let name = policy
                .get("PolicyName")
                .and_then(Value::as_str)
                .unwrap_or("?");
            let document = policy.get("PolicyDocument").unwrap_or(&Value::Null);
            let origin = format!("{role_id} inline policy {name}");
            collect_grants(document, table_id, &origin, &mut grants, errors);
        }
        for arn in one_or_many(props.get("ManagedPolicyArns").unwrap_or(&Value::Null)) {
            let local = arn
                .get("Ref")
                .and_then(Value::as_str)
                .and_then(|id| resources.get(id).map(|p| (id, p)))
                .filter(|(_, p)| resource_type(p) == "AWS::IAM::ManagedPolicy");
            match local {
                Some((policy_id, policy)) => {
                    let document = properties(policy).get("PolicyDocument").unwrap_or(&Value::Null);
                    let origin = format!("{role_id} via {policy_id}");
                    collect_grants(document, table_id, &origin, &mut grants, errors);
                }
                // An AWS managed policy may grant anything, e.g. AmazonDynamoDBFullAccess.
                None if !role_is_for_lambda(role) => {}
                None => errors.push(format!(
                    "{role_id}: managed policy {arn} is not one of this template, so its grants cannot be checked"
                )),
            }
        }
        let names_role = |policy: &Value| {
            one_or_many(properties(policy).get("Roles").unwrap_or(&Value::Null))
                .into_iter()
                .any(|r| r.get("Ref").and_then(Value::as_str) == Some(*role_id))
        };
        for (policy_id, policy) in resources.iter().filter(|(_, p)| {
            matches!(
                resource_type(p),
                "AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy"
            )
        }) {
            if names_role(policy) {
                let document = properties(policy)
                    .get("PolicyDocument")
                    .unwrap_or(&Value::Null);
                let origin = format!("{role_id} via {policy_id}");
                collect_grants(document, table_id, &origin, &mut grants, errors);
            }
        }
        by_role.insert((*role_id).to_owned(), grants);
    }
    by_role
}

fn role_is_for_lambda(role: &Value) -> bool {
    properties(role)
        .get("AssumeRolePolicyDocument")
        .is_some_and(|d| d.to_string().contains("lambda.amazonaws.com"))
}

/// The grants the code needs: `table_actions` on the table, `index_actions` on each index.
fn expected_grants() -> BTreeMap<Target, BTreeSet<String>> {
    let mut expected = BTreeMap::new();
    expected.insert(
        Target::Table,
        TABLE
            .table_actions
            .iter()
            .map(|a| (*a).to_owned())
            .collect(),
    );
    for index in TABLE.indexes {
        expected.insert(
            Target::Index(index.name.to_owned()),
            TABLE
                .index_actions
                .iter()
                .map(|a| (*a).to_owned())
                .collect(),
        );
    }
    expected
}

/// Every function runs with a role of this template that grants exactly what the code needs, and
/// no other role grants anything on DynamoDB.
fn check_iam(resources: &BTreeMap<&str, &Value>, table_id: &str, errors: &mut Vec<String>) {
    let by_role = role_grants(resources, table_id, errors);
    let mut function_roles = BTreeSet::new();
    for (function_id, function) in resources.iter().filter(|(_, r)| {
        matches!(
            resource_type(r),
            "AWS::Lambda::Function" | "AWS::Serverless::Function"
        )
    }) {
        let props = properties(function);
        if props.get("Policies").is_some() {
            errors.push(format!(
                "{function_id} has SAM Policies; give it a Role of this template so its grants can be checked"
            ));
        }
        let role = props
            .get("Role")
            .and_then(|r| r.get("Fn::GetAtt"))
            .and_then(|g| g.get(0))
            .and_then(Value::as_str)
            .filter(|id| by_role.contains_key(*id));
        match role {
            Some(role) => {
                function_roles.insert(role.to_owned());
            }
            None => errors.push(format!(
                "{function_id}.Role is not !GetAtt <an AWS::IAM::Role of this template>.Arn"
            )),
        }
        let table_name = props.pointer("/Environment/Variables/CRM_TABLE_NAME");
        if table_name != Some(&json!({ "Ref": table_id })) {
            errors.push(format!(
                "{function_id}: CRM_TABLE_NAME is {table_name:?}, expected !Ref {table_id}"
            ));
        }
    }
    if function_roles.is_empty() {
        errors.push("no function role found".to_owned());
    }
    let expected = expected_grants();
    for (role, grants) in &by_role {
        if function_roles.contains(role) {
            let targets: BTreeSet<&Target> = grants.keys().chain(expected.keys()).collect();
            for target in targets {
                let (granted, needed) = (grants.get(target), expected.get(target));
                let (granted, needed) = (
                    granted.cloned().unwrap_or_default(),
                    needed.cloned().unwrap_or_default(),
                );
                let extra: Vec<_> = granted.difference(&needed).collect();
                let missing: Vec<_> = needed.difference(&granted).collect();
                if !extra.is_empty() || !missing.is_empty() {
                    errors.push(format!(
                        "{role} on {target:?}: grants {extra:?} that the code does not call, lacks {missing:?} that it calls"
                    ));
                }
            }
        } else if !grants.is_empty() {
            errors.push(format!(
                "{role} is no function's role but grants {grants:?} on DynamoDB"
            ));
        }
    }
}

/// Metrics and alarms name only indexes that exist.
fn check_index_dimensions(template: &Value, errors: &mut Vec<String>) {
    let names: BTreeSet<&str> = TABLE.indexes.iter().map(|i| i.name).collect();
    let mut stack = vec![template];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(object) => {
                if object.get("Name").and_then(Value::as_str) == Some("GlobalSecondaryIndexName") {
                    let index = object.get("Value").and_then(Value::as_str).unwrap_or("?");
                    if !names.contains(index) {
                        errors.push(format!(
                            "a metric dimension names index {index}; the code has {names:?}"
                        ));
                    }
                }
                stack.extend(object.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
}

/// Every disagreement between a template and [`TABLE`]; empty when they agree.
fn disagreements(text: &str) -> Vec<String> {
    let template = match parse(text) {
        Ok(template) => template,
        Err(e) => return vec![e],
    };
    let mut errors = Vec::new();
    match deployed(&template, &[]) {
        Ok(default) => {
            let resources = resources(&default);
            if let Some((table_id, table)) = the_table(&resources, &mut errors) {
                check_table_layout(table_id, table, TABLE.indexes, &mut errors);
                check_iam(&resources, table_id, &mut errors);
            }
            check_index_dimensions(&default, &mut errors);
        }
        Err(e) => errors.push(format!("with the defaults: {e}")),
    }
    check_upgrade_steps(&template, &mut errors);
    errors
}

/// `ListingIndexes` = N gives the table `byEmail` and the first N listing indexes of `TABLE`, for
/// every N from 0 (the previous layout) to all of them (the default): each step of an upgrade adds
/// exactly one index, the most DynamoDB adds in one table update.
fn check_upgrade_steps(template: &Value, errors: &mut Vec<String>) {
    let listing = TABLE.indexes.len() - PREVIOUS_INDEXES;
    let steps: Vec<String> = (0..=listing).map(|n| n.to_string()).collect();
    let parameter = template.pointer(&format!("/Parameters/{LISTING_INDEXES}"));
    let allowed: Vec<String> = parameter
        .and_then(|p| p.get("AllowedValues"))
        .map(|values| one_or_many(values).into_iter().map(scalar_text).collect())
        .unwrap_or_default();
    if allowed != steps {
        errors.push(format!(
            "parameter {LISTING_INDEXES} allows {allowed:?}, the upgrade takes {steps:?}"
        ));
    }
    let default = parameter.and_then(|p| p.get("Default")).map(scalar_text);
    if default != Some(listing.to_string()) {
        errors.push(format!(
            "parameter {LISTING_INDEXES} defaults to {default:?}, not to every listing index ({listing})"
        ));
    }
    for (n, step) in steps.iter().enumerate() {
        let deployed = match deployed(template, &[(LISTING_INDEXES, step.clone())]) {
            Ok(deployed) => deployed,
            Err(e) => {
                errors.push(format!("with {LISTING_INDEXES}={step}: {e}"));
                continue;
            }
        };
        let resources = resources(&deployed);
        let mut step_errors = Vec::new();
        let present = PREVIOUS_INDEXES + n;
        if let Some((table_id, table)) = the_table(&resources, &mut step_errors) {
            check_table_layout(table_id, table, &TABLE.indexes[..present], &mut step_errors);
        }
        errors.extend(
            step_errors
                .into_iter()
                .map(|e| format!("with {LISTING_INDEXES}={step}: {e}")),
        );
    }
}

/// The table properties a production deployment needs (docs/operations.md, deploy/README.md): not
/// in [`TABLE`], which is about layout.
fn production_disagreements(text: &str) -> Vec<String> {
    let template = match parse(text) {
        Ok(template) => template,
        Err(e) => return vec![e],
    };
    let resources = resources(&template);
    let mut errors = Vec::new();
    let Some((table_id, table)) = the_table(&resources, &mut errors) else {
        return errors;
    };
    let expectations = [
        ("/DeletionPolicy", json!("Retain")),
        ("/UpdateReplacePolicy", json!("Retain")),
        ("/Properties/BillingMode", json!("PAY_PER_REQUEST")),
        (
            "/Properties/PointInTimeRecoverySpecification/PointInTimeRecoveryEnabled",
            json!(true),
        ),
        ("/Properties/SSESpecification/SSEEnabled", json!(true)),
        ("/Properties/DeletionProtectionEnabled", json!(true)),
    ];
    for (pointer, expected) in expectations {
        let actual = table.pointer(pointer);
        if actual != Some(&expected) {
            errors.push(format!(
                "{table_id}{pointer} is {actual:?}, expected {expected}"
            ));
        }
    }
    errors
}

fn assert_agrees(name: &str, errors: &[String]) {
    assert!(
        errors.is_empty(),
        "deploy/{name} disagrees with crm_dynamo::TABLE or the production table settings:\n  - {}",
        errors.join("\n  - ")
    );
}

#[test]
fn every_template_agrees_with_the_table_definition_and_its_iam_actions() {
    for name in TEMPLATES {
        assert_agrees(name, &disagreements(&template_text(name)));
    }
}

#[test]
fn every_template_keeps_the_table_on_demand_recoverable_encrypted_and_retained() {
    for name in TEMPLATES {
        assert_agrees(name, &production_disagreements(&template_text(name)));
    }
}

/// The check itself: each edit below makes a template disagree with the code, and each must be
/// reported, in every template (both carry the same table and IAM sections). An edit whose text is
/// not found fails too, so the list cannot silently go stale.
#[test]
fn drift_in_a_template_is_reported() {
    for name in TEMPLATES {
        drift_is_reported(name);
    }
}

fn drift_is_reported(name: &str) {
    let table_statement = "            Action:\n              - dynamodb:GetItem\n";
    let item_grant =
        "              - dynamodb:DeleteItem\n            Resource: !GetAtt CustomersTable.Arn\n";
    let index_grant = "Action: dynamodb:Query\n            Resource:\n              - !Sub \"${CustomersTable.Arn}/index/byEmail\"\n";
    let created_index = "          - IndexName: byCreated\n            KeySchema:\n              - AttributeName: shard\n                KeyType: HASH\n              - AttributeName: createdKey\n                KeyType: RANGE\n";
    let mutations: &[(&str, &str, &str)] = &[
        (
            "an action removed",
            "              - dynamodb:DeleteItem\n",
            "",
        ),
        (
            "an action added",
            table_statement,
            "            Action:\n              - dynamodb:GetItem\n              - dynamodb:BatchWriteItem\n",
        ),
        (
            "the Scan of the old listing granted again",
            table_statement,
            "            Action:\n              - dynamodb:GetItem\n              - dynamodb:Scan\n",
        ),
        (
            "a wildcard action",
            "Action: dynamodb:Query",
            "Action: dynamodb:*",
        ),
        (
            "the index action on the table",
            index_grant,
            "Action: dynamodb:Query\n            Resource:\n              - !GetAtt CustomersTable.Arn\n",
        ),
        ("every index", "/index/byEmail\"", "/index/*\""),
        (
            "a listing index left out of the grants",
            "              - !Sub \"${CustomersTable.Arn}/index/byFirstName\"\n",
            "",
        ),
        (
            "a wildcard resource",
            item_grant,
            "              - dynamodb:DeleteItem\n            Resource: \"*\"\n",
        ),
        (
            "the long form of GetAtt is understood, and a wrong table caught",
            item_grant,
            "              - dynamodb:DeleteItem\n            Resource:\n              Fn::GetAtt: [OtherTable, Arn]\n",
        ),
        (
            "a grant in a role's inline policy",
            "              - Sid: WriteOwnLogGroupOnly\n",
            "              - Effect: Allow\n                Action: dynamodb:DescribeTable\n                Resource: !GetAtt CustomersTable.Arn\n              - Sid: WriteOwnLogGroupOnly\n",
        ),
        (
            "an AWS managed policy",
            "        - !Ref TableAccessPolicy\n",
            "        - !Ref TableAccessPolicy\n        - arn:aws:iam::aws:policy/AmazonDynamoDBFullAccess\n",
        ),
        (
            "the partition key renamed",
            "      KeySchema:\n        - AttributeName: pk\n          KeyType: HASH\n",
            "      KeySchema:\n        - AttributeName: id\n          KeyType: HASH\n",
        ),
        (
            "a sort key added",
            "      KeySchema:\n        - AttributeName: pk\n          KeyType: HASH\n",
            "      KeySchema:\n        - AttributeName: pk\n          KeyType: HASH\n        - AttributeName: emailKey\n          KeyType: RANGE\n",
        ),
        (
            "a key attribute typed as a number",
            "        - AttributeName: pk\n          AttributeType: S\n",
            "        - AttributeName: pk\n          AttributeType: N\n",
        ),
        (
            "the index renamed",
            "IndexName: byEmail",
            "IndexName: byMail",
        ),
        (
            "the index keyed on another attribute",
            "            - AttributeName: emailKey\n              KeyType: HASH\n",
            "            - AttributeName: email\n              KeyType: HASH\n",
        ),
        (
            "the index projecting keys only",
            "ProjectionType: ALL",
            "ProjectionType: KEYS_ONLY",
        ),
        (
            "a listing index sorted by another key",
            created_index,
            "          - IndexName: byCreated\n            KeySchema:\n              - AttributeName: shard\n                KeyType: HASH\n              - AttributeName: updatedKey\n                KeyType: RANGE\n",
        ),
        (
            "a listing index without its sort key",
            created_index,
            "          - IndexName: byCreated\n            KeySchema:\n              - AttributeName: shard\n                KeyType: HASH\n",
        ),
        (
            "a listing index partitioned by something other than the shard",
            created_index,
            "          - IndexName: byCreated\n            KeySchema:\n              - AttributeName: pk\n                KeyType: HASH\n              - AttributeName: createdKey\n                KeyType: RANGE\n",
        ),
        (
            "a listing key's attribute definition left out",
            "          - AttributeName: firstNameKey\n            AttributeType: S\n",
            "          - AttributeName: nameKey\n            AttributeType: S\n",
        ),
        (
            "two indexes in one step of the upgrade",
            "          - HasFirstNameIndex\n          - IndexName: byFirstName\n",
            "          - HasNameIndex\n          - IndexName: byFirstName\n",
        ),
        (
            "an attribute definition that comes before its index",
            "          - HasFirstNameIndex\n          - AttributeName: firstNameKey\n",
            "          - HasCreatedIndex\n          - AttributeName: firstNameKey\n",
        ),
        (
            "fewer listing indexes by default",
            "    Default: \"4\"\n    AllowedValues: [\"0\", \"1\", \"2\", \"3\", \"4\"]\n",
            "    Default: \"3\"\n    AllowedValues: [\"0\", \"1\", \"2\", \"3\", \"4\"]\n",
        ),
        (
            "the function pointed at another table",
            "          CRM_TABLE_NAME: !Ref CustomersTable\n",
            "          CRM_TABLE_NAME: customers\n",
        ),
    ];
    let original = template_text(name);
    assert_agrees(name, &disagreements(&original));
    for (what, from, to) in mutations {
        assert!(
            original.contains(from),
            "mutation \"{what}\": deploy/{name} no longer contains {from:?}; update the test"
        );
        let drifted = original.replacen(from, to, 1);
        assert!(
            !disagreements(&drifted).is_empty(),
            "mutation \"{what}\" was not reported in deploy/{name}"
        );
    }

    for (what, from, to) in [
        (
            "on-demand",
            "BillingMode: PAY_PER_REQUEST",
            "BillingMode: PROVISIONED",
        ),
        (
            "retained",
            "    DeletionPolicy: Retain\n",
            "    DeletionPolicy: Delete\n",
        ),
        (
            "deletion protection",
            "DeletionProtectionEnabled: true",
            "DeletionProtectionEnabled: false",
        ),
    ] {
        assert!(
            original.contains(from),
            "mutation \"{what}\": deploy/{name} no longer contains {from:?}; update the test"
        );
        assert!(
            !production_disagreements(&original.replacen(from, to, 1)).is_empty(),
            "mutation \"{what}\" was not reported in deploy/{name}"
        );
    }
}
