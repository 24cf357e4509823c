//! The CloudFormation templates in `deploy/` agree with the code: the table's key schema, attribute
//! definitions, global secondary indexes (with their sort keys) and stream, and the DynamoDB grants of
//! every function role, are exactly what [`crm_dynamo::TABLE`] says the repository needs. Change one
//! side without the other and this fails, naming each disagreement.
//!
//! The change events too: the event source mapping of the table's stream lets through exactly the
//! records that can tell an event ([`crm_dynamo::stream::EVENT_KINDS`] and the removes of customers,
//! evaluated record by record), with partial batch responses, bisection, bounded retries and an
//! on-failure queue; the events function's role grants exactly the stream, the bus and that queue (and
//! its logs and traces); and every resource of the optional webhook exists only when it is asked for.
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
//!
//! And what the templates promise an operator ("Operable in production"): every function's
//! timeouts and crashes are counted from Lambda's own `platform.report` records (a small evaluator
//! of `CloudWatch`'s JSON filter patterns runs each metric filter over sample records of every
//! kind) and alarm to the alarm topic; every route of `crm-http/openapi.json` is a route of the
//! HTTP API that asks a JWT for the read or write scope it needs, and OPTIONS stays open only for
//! CORS preflights; every REST API client has an API key and usage plan of its own; and the gateway
//! records no path, query string, header or body.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use aws_sdk_dynamodb::types::AttributeValue;
use crm_domain::{Customer, CustomerId, NewCustomer, Timestamp};
use crm_dynamo::items::to_item;
use crm_dynamo::stream::{EVENT_KINDS, KIND_ATTRIBUTE};
use crm_dynamo::{IndexDefinition, TABLE};
use serde_json::{Map, Value, json};

const TEMPLATES: [&str; 2] = ["template.yaml", "rest-api.yaml"];

/// The parameter that says how many listing indexes the table has.
const LISTING_INDEXES: &str = "ListingIndexes";

/// How many of `TABLE`'s indexes a table of the previous layout had (`byEmail`): the rest are the
/// listing indexes, in the order an upgrade adds them.
const PREVIOUS_INDEXES: usize = 1;

/// What Lambda needs of a DynamoDB stream to read it for an event source mapping, on the stream
/// (Lambda Developer Guide, "Using AWS Lambda with Amazon DynamoDB", execution role permissions)...
const STREAM_ACTIONS: [&str; 3] = [
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
];

/// ... and the one of them that has no resource-level permissions, on `*`.
const LIST_STREAMS: &str = "dynamodb:ListStreams";

/// The source of every change event (the issue's contract): the only one the events function may
/// put on the bus.
const EVENT_SOURCE: &str = "crm.customers";

/// Kinds of item that tell no event (email claims, idempotency records, the cursor key): none of
/// them may reach the events function.
const BOOKKEEPING_KINDS: [&str; 3] = ["email", "idempotency", "setting"];

/// Parameter values that switch the optional webhook on.
const WEBHOOK_ON: [(&str, &str); 2] = [
    ("WebhookUrl", "https://hooks.example.com/crm-events"),
    ("WebhookApiKey", "example-webhook-api-key"),
];

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
    let stream = props.pointer("/StreamSpecification/StreamViewType");
    if stream != Some(&json!(TABLE.stream_view_type)) {
        errors.push(format!(
            "{table_id}.StreamSpecification.StreamViewType is {stream:?}, the code reads {}",
            TABLE.stream_view_type
        ));
    }
}

/// What an IAM `Resource` entry names: the table, one of its indexes, its stream, or every resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Table,
    Index(String),
    Stream,
    Everything,
}

fn classify(resource: &Value, table_id: &str) -> Result<Target, String> {
    match get_att(resource) {
        Some((id, attribute)) if id == table_id && attribute == "Arn" => return Ok(Target::Table),
        Some((id, attribute)) if id == table_id && attribute == "StreamArn" => {
            return Ok(Target::Stream);
        }
        _ => {}
    }
    if resource.as_str() == Some("*") {
        return Ok(Target::Everything);
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
        "grants DynamoDB actions on {resource}, which is neither {table_id}, one of its indexes by name, nor its stream"
    ))
}

/// `(resource, attribute)` of a `Fn::GetAtt`, in either of its long forms.
fn get_att(value: &Value) -> Option<(&str, &str)> {
    match value.get("Fn::GetAtt")? {
        Value::Array(parts) => match parts.as_slice() {
            [Value::String(id), Value::String(attribute)] => Some((id, attribute)),
            _ => None,
        },
        Value::String(dotted) => dotted.split_once('.'),
        _ => None,
    }
}

/// The logical id a `Ref` names.
fn reference(value: &Value) -> Option<&str> {
    value.get("Ref").and_then(Value::as_str)
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
        let (documents, foreign) = role_documents(resources, role_id, role);
        for (origin, document) in documents {
            collect_grants(document, table_id, &origin, &mut grants, errors);
        }
        // An AWS managed policy may grant anything, e.g. AmazonDynamoDBFullAccess.
        if role_is_for_lambda(role) {
            for arn in foreign {
                errors.push(format!(
                    "{role_id}: managed policy {arn} is not one of this template, so its grants cannot be checked"
                ));
            }
        }
        by_role.insert((*role_id).to_owned(), grants);
    }
    by_role
}

/// Every policy document of a role, with where it comes from: its inline policies, the managed
/// policies of this template it lists, and `AWS::IAM::Policy`/`ManagedPolicy` resources that name
/// it; and the managed policies it lists that are not of this template.
fn role_documents<'t>(
    resources: &BTreeMap<&'t str, &'t Value>,
    role_id: &str,
    role: &'t Value,
) -> (Vec<(String, &'t Value)>, Vec<&'t Value>) {
    let mut documents = Vec::new();
    let mut foreign = Vec::new();
    let props = properties(role);
    for policy in one_or_many(props.get("Policies").unwrap_or(&Value::Null)) {
        let name = policy
            .get("PolicyName")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let document = policy.get("PolicyDocument").unwrap_or(&Value::Null);
        documents.push((format!("{role_id} inline policy {name}"), document));
    }
    for arn in one_or_many(props.get("ManagedPolicyArns").unwrap_or(&Value::Null)) {
        let local = reference(arn)
            .and_then(|id| resources.get(id).map(|p| (id, *p)))
            .filter(|(_, p)| resource_type(p) == "AWS::IAM::ManagedPolicy");
        match local {
            Some((policy_id, policy)) => {
                let document = properties(policy)
                    .get("PolicyDocument")
                    .unwrap_or(&Value::Null);
                documents.push((format!("{role_id} via {policy_id}"), document));
            }
            None => foreign.push(arn),
        }
    }
    for (policy_id, policy) in resources.iter().filter(|(_, p)| {
        matches!(
            resource_type(p),
            "AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy"
        )
    }) {
        let names_role = one_or_many(properties(policy).get("Roles").unwrap_or(&Value::Null))
            .into_iter()
            .any(|r| reference(r) == Some(role_id));
        if names_role {
            let document = properties(policy)
                .get("PolicyDocument")
                .unwrap_or(&Value::Null);
            documents.push((format!("{role_id} via {policy_id}"), document));
        }
    }
    (documents, foreign)
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

/// What reading the table's stream needs: [`STREAM_ACTIONS`] on the stream, [`LIST_STREAMS`] on `*`.
fn stream_grants() -> BTreeMap<Target, BTreeSet<String>> {
    BTreeMap::from([
        (
            Target::Stream,
            STREAM_ACTIONS.iter().map(|a| (*a).to_owned()).collect(),
        ),
        (
            Target::Everything,
            BTreeSet::from([LIST_STREAMS.to_owned()]),
        ),
    ])
}

/// The functions that an event source mapping of the table's stream invokes.
fn stream_readers<'t>(
    resources: &BTreeMap<&'t str, &'t Value>,
    table_id: &str,
) -> BTreeSet<&'t str> {
    resources
        .values()
        .filter(|r| resource_type(r) == "AWS::Lambda::EventSourceMapping")
        .map(|r| properties(r))
        .filter(|props| {
            props.get("EventSourceArn").and_then(get_att) == Some((table_id, "StreamArn"))
        })
        .filter_map(|props| function_named(props.get("FunctionName")?))
        .collect()
}

/// The function a `FunctionName` names: `!Ref Function` or `!GetAtt Function.Arn`.
fn function_named(value: &Value) -> Option<&str> {
    reference(value).or_else(|| {
        get_att(value)
            .filter(|(_, a)| *a == "Arn")
            .map(|(id, _)| id)
    })
}

/// Every function runs with a role of this template that grants exactly what the code needs: the
/// service's functions [`TABLE`]'s actions on the table and its indexes, the functions that read
/// the table's stream the stream actions and nothing on the table; no other role grants anything
/// on DynamoDB.
fn check_iam(resources: &BTreeMap<&str, &Value>, table_id: &str, errors: &mut Vec<String>) {
    let by_role = role_grants(resources, table_id, errors);
    let readers = stream_readers(resources, table_id);
    let mut function_roles = BTreeSet::new();
    let mut reader_roles = BTreeSet::new();
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
        let reads_stream = readers.contains(function_id);
        let role = props
            .get("Role")
            .and_then(get_att)
            .map(|(id, _)| id)
            .filter(|id| by_role.contains_key(*id));
        match role {
            Some(role) if reads_stream => {
                reader_roles.insert(role.to_owned());
            }
            Some(role) => {
                function_roles.insert(role.to_owned());
            }
            None => errors.push(format!(
                "{function_id}.Role is not !GetAtt <an AWS::IAM::Role of this template>.Arn"
            )),
        }
        let table_name = props.pointer("/Environment/Variables/CRM_TABLE_NAME");
        if reads_stream {
            if let Some(table_name) = table_name {
                errors.push(format!(
                    "{function_id} reads the table's stream, not the table, but gets CRM_TABLE_NAME {table_name}"
                ));
            }
        } else if table_name != Some(&json!({ "Ref": table_id })) {
            errors.push(format!(
                "{function_id}: CRM_TABLE_NAME is {table_name:?}, expected !Ref {table_id}"
            ));
        }
    }
    if function_roles.is_empty() {
        errors.push("no function role found".to_owned());
    }
    for role in function_roles.intersection(&reader_roles) {
        errors.push(format!(
            "{role} serves both the service and the stream; the events function needs a role of its own"
        ));
    }
    let (expected, stream) = (expected_grants(), stream_grants());
    for (role, grants) in &by_role {
        let needed = if function_roles.contains(role) {
            &expected
        } else if reader_roles.contains(role) {
            &stream
        } else {
            if !grants.is_empty() {
                errors.push(format!(
                    "{role} is no function's role but grants {grants:?} on DynamoDB"
                ));
            }
            continue;
        };
        let targets: BTreeSet<&Target> = grants.keys().chain(needed.keys()).collect();
        for target in targets {
            let granted = grants.get(target).cloned().unwrap_or_default();
            let needed = needed.get(target).cloned().unwrap_or_default();
            let extra: Vec<_> = granted.difference(&needed).collect();
            let missing: Vec<_> = needed.difference(&granted).collect();
            if !extra.is_empty() || !missing.is_empty() {
                errors.push(format!(
                    "{role} on {target:?}: grants {extra:?} that the code does not call, lacks {missing:?} that it calls"
                ));
            }
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

/// The kind of item a customer is, as the repository writes it.
fn customer_kind() -> Result<String, String> {
    let input = NewCustomer::from_json(&json!({"firstName": "Ada", "lastName": "Lovelace"}))
        .map_err(|e| format!("a customer for its kind: {e:?}"))?;
    let customer = Customer::create(input, CustomerId::generate(), Timestamp::now());
    let item = to_item(&customer).map_err(|e| format!("a customer item for its kind: {e}"))?;
    match item.get(KIND_ATTRIBUTE) {
        Some(AttributeValue::S(kind)) => Ok(kind.clone()),
        other => Err(format!("a customer item's {KIND_ATTRIBUTE} is {other:?}")),
    }
}

/// A stream record as Lambda hands it to a filter: `eventName` and, under `dynamodb`, the images
/// (`NEW_AND_OLD_IMAGES`: none before an insert, none after a remove) with their kind.
fn stream_record(event_name: &str, old: Option<&str>, new: Option<&str>) -> Value {
    let image = |kind: &str| json!({ KIND_ATTRIBUTE: { "S": kind }, "pk": { "S": "ITEM#1" } });
    let mut dynamodb = json!({
        "Keys": { "pk": { "S": "ITEM#1" } },
        "SequenceNumber": "100",
        "SizeBytes": 40,
        "StreamViewType": TABLE.stream_view_type,
    });
    if let Some(kind) = old {
        dynamodb["OldImage"] = image(kind);
    }
    if let Some(kind) = new {
        dynamodb["NewImage"] = image(kind);
    }
    json!({ "eventName": event_name, "eventSource": "aws:dynamodb", "dynamodb": dynamodb })
}

/// Whether `record` matches an event filter `pattern` (`EventBridge` pattern syntax, as Lambda
/// applies it): every field of the pattern must be in the record, an object matching an object, a
/// list of strings matching a value equal to one of them. Other operators are not evaluated here.
fn filter_matches(pattern: &Value, record: &Value) -> Result<bool, String> {
    let Value::Object(fields) = pattern else {
        return Err(format!("a filter pattern that is not an object: {pattern}"));
    };
    for (field, rule) in fields {
        let value = record.get(field);
        let matched = match rule {
            Value::Object(_) => match value {
                Some(inner @ Value::Object(_)) => filter_matches(rule, inner)?,
                _ => false,
            },
            Value::Array(allowed) => {
                if let Some(other) = allowed.iter().find(|a| !a.is_string()) {
                    return Err(format!(
                        "filter rule {other} is not a string; this test evaluates only exact strings"
                    ));
                }
                value.is_some_and(|v| allowed.contains(v))
            }
            other => {
                return Err(format!(
                    "filter rule {other} is neither an object nor a list"
                ));
            }
        };
        if !matched {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The mapping's filters let through exactly the records that can tell an event: a new image whose
/// kind is one of [`EVENT_KINDS`], or the remove of a customer; checked against every record a
/// customer item (customer or tombstone) or a bookkeeping item (claim, idempotency record, setting)
/// can write.
fn check_filter(mapping_id: &str, props: &Value, errors: &mut Vec<String>) {
    let customer = match customer_kind() {
        Ok(kind) => kind,
        Err(e) => return errors.push(e),
    };
    if !EVENT_KINDS.contains(&customer.as_str()) {
        errors.push(format!(
            "EVENT_KINDS {EVENT_KINDS:?} lacks the customer kind {customer}"
        ));
    }
    let mut patterns = Vec::new();
    for filter in one_or_many(
        props
            .pointer("/FilterCriteria/Filters")
            .unwrap_or(&Value::Null),
    ) {
        let text = filter.get("Pattern").and_then(Value::as_str).unwrap_or("");
        match serde_json::from_str::<Value>(text) {
            Ok(pattern) => {
                let keys: Vec<&String> = pattern
                    .as_object()
                    .into_iter()
                    .flat_map(Map::keys)
                    .collect();
                if keys.iter().any(|k| *k != "dynamodb") {
                    errors.push(format!(
                        "{mapping_id}: filter {text} uses {keys:?}; AWS documents that DynamoDB event source mappings filter on the dynamodb key only"
                    ));
                }
                patterns.push(pattern);
            }
            Err(e) => errors.push(format!(
                "{mapping_id}: filter pattern {text:?} is not JSON: {e}"
            )),
        }
    }
    if patterns.is_empty() {
        return errors.push(format!(
            "{mapping_id} has no filter: every write, bookkeeping included, would invoke the events function"
        ));
    }
    // The kinds one item can have over its life: a customer's item is a customer or a tombstone,
    // a bookkeeping item stays of its kind.
    let families: [Vec<&str>; 2] = [EVENT_KINDS.to_vec(), BOOKKEEPING_KINDS.to_vec()];
    let mut records = Vec::new();
    for family in &families {
        for kind in family {
            records.push(("INSERT", None, Some(*kind)));
            records.push(("REMOVE", Some(*kind), None));
            for after in family {
                records.push(("MODIFY", Some(*kind), Some(*after)));
            }
        }
    }
    for (event_name, old, new) in records {
        let tells = new.is_some_and(|k| EVENT_KINDS.contains(&k))
            || (event_name == "REMOVE" && old == Some(customer.as_str()));
        let record = stream_record(event_name, old, new);
        let mut kept = false;
        for pattern in &patterns {
            match filter_matches(pattern, &record) {
                Ok(matched) => kept |= matched,
                Err(e) => return errors.push(format!("{mapping_id}: {e}")),
            }
        }
        if kept != tells {
            errors.push(format!(
                "{mapping_id}: the filter {} the record {event_name} {old:?} -> {new:?}, which {}",
                if kept { "keeps" } else { "drops" },
                if tells {
                    "can tell an event"
                } else {
                    "tells none"
                },
            ));
        }
    }
}

/// One statement of a role, flattened: (action, resource, condition), each as canonical JSON text
/// (`!GetAtt X.Y` in its list form, so that both spellings compare equal).
type Grant = (String, String, String);

fn grant(action: &str, resource: &Value, condition: Option<&Value>) -> Grant {
    let resource = get_att(resource).map_or_else(
        || resource.to_string(),
        |(id, attribute)| json!({ "Fn::GetAtt": [id, attribute] }).to_string(),
    );
    (
        action.to_owned(),
        resource,
        condition.map(Value::to_string).unwrap_or_default(),
    )
}

/// Every (action, resource, condition) a role allows, from every policy of the template that
/// applies to it.
fn role_allows(
    resources: &BTreeMap<&str, &Value>,
    role_id: &str,
    errors: &mut Vec<String>,
) -> BTreeSet<Grant> {
    let mut allows = BTreeSet::new();
    let Some(role) = resources.get(role_id) else {
        errors.push(format!("{role_id} is not a resource of this template"));
        return allows;
    };
    let (documents, foreign) = role_documents(resources, role_id, role);
    for arn in foreign {
        errors.push(format!(
            "{role_id}: managed policy {arn} grants what this test cannot see"
        ));
    }
    for (origin, document) in documents {
        for statement in one_or_many(document.get("Statement").unwrap_or(&Value::Null)) {
            if statement.get("Effect").and_then(Value::as_str) != Some("Allow")
                || statement.get("NotAction").is_some()
                || statement.get("NotResource").is_some()
            {
                errors.push(format!(
                    "{origin}: a statement that is not a plain Allow: {statement}"
                ));
                continue;
            }
            for action in one_or_many(statement.get("Action").unwrap_or(&Value::Null)) {
                for resource in one_or_many(statement.get("Resource").unwrap_or(&Value::Null)) {
                    let action = action
                        .as_str()
                        .map_or_else(|| action.to_string(), str::to_owned);
                    allows.insert(grant(&action, resource, statement.get("Condition")));
                }
            }
        }
    }
    allows
}

/// `allowed` is exactly `needed`; each difference is reported.
fn check_allows(
    who: &str,
    allowed: &BTreeSet<Grant>,
    needed: &BTreeSet<Grant>,
    errors: &mut Vec<String>,
) {
    for extra in allowed.difference(needed) {
        errors.push(format!("{who} allows {extra:?}, which it must not"));
    }
    for missing in needed.difference(allowed) {
        errors.push(format!("{who} lacks {missing:?}, which it needs"));
    }
}

fn get_att_value(id: &str, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [id, attribute] })
}

/// The change events: one event source mapping of the table's stream, filtered (see
/// [`check_filter`]), with partial batch responses, bisection, a bounded number of retries and a
/// bounded record age, one batch per shard at a time, from the oldest record, and an SQS queue for
/// what it gives up; its function puts on a bus of this template, and its role allows exactly the
/// stream, that bus (for the events' source), that queue, its own log group and X-Ray.
fn check_events(resources: &BTreeMap<&str, &Value>, table_id: &str, errors: &mut Vec<String>) {
    let mappings: Vec<(&str, &Value)> = resources
        .iter()
        .filter(|(_, r)| resource_type(r) == "AWS::Lambda::EventSourceMapping")
        .filter(|(_, r)| {
            properties(r).get("EventSourceArn").and_then(get_att) == Some((table_id, "StreamArn"))
        })
        .map(|(id, r)| (*id, *r))
        .collect();
    let [(mapping_id, mapping)] = mappings.as_slice() else {
        return errors.push(format!(
            "expected one event source mapping of {table_id}'s stream, found {}",
            mappings.len()
        ));
    };
    let props = properties(mapping);
    check_mapping_settings(mapping_id, props, errors);
    check_filter(mapping_id, props, errors);

    let queue = props
        .pointer("/DestinationConfig/OnFailure/Destination")
        .and_then(get_att)
        .filter(|(id, attribute)| {
            *attribute == "Arn"
                && resources
                    .get(id)
                    .is_some_and(|q| resource_type(q) == "AWS::SQS::Queue")
        })
        .map(|(id, _)| id);
    let Some(queue) = queue else {
        return errors.push(format!(
            "{mapping_id}.DestinationConfig.OnFailure.Destination is not !GetAtt <an AWS::SQS::Queue>.Arn"
        ));
    };

    let function = props.get("FunctionName").and_then(function_named);
    let Some((function_id, function)) = function.and_then(|id| resources.get(id).map(|f| (id, *f)))
    else {
        return errors.push(format!(
            "{mapping_id}.FunctionName is no function of this template"
        ));
    };
    let function_props = properties(function);
    let bus = function_props
        .pointer("/Environment/Variables/CRM_EVENT_BUS_NAME")
        .and_then(reference)
        .filter(|id| {
            resources
                .get(id)
                .is_some_and(|b| resource_type(b) == "AWS::Events::EventBus")
        });
    let log_group = function_props
        .pointer("/LoggingConfig/LogGroup")
        .and_then(reference);
    let role = function_props
        .get("Role")
        .and_then(get_att)
        .map(|(id, _)| id);
    let (Some(bus), Some(log_group), Some(role)) = (bus, log_group, role) else {
        return errors.push(format!(
            "{function_id}: expected CRM_EVENT_BUS_NAME !Ref <an AWS::Events::EventBus>, LoggingConfig.LogGroup !Ref <a log group> and Role !GetAtt <a role>.Arn"
        ));
    };
    let allowed = role_allows(resources, role, errors);
    let needed = events_role_needs(table_id, bus, queue, log_group);
    check_allows(role, &allowed, &needed, errors);
}

/// What the events function's role must allow, and all it may: the stream, the bus for the events'
/// source, the on-failure queue, its log group, X-Ray.
fn events_role_needs(table_id: &str, bus: &str, queue: &str, log_group: &str) -> BTreeSet<Grant> {
    let everything = json!("*");
    let mut needed: BTreeSet<Grant> = STREAM_ACTIONS
        .iter()
        .map(|action| grant(action, &get_att_value(table_id, "StreamArn"), None))
        .collect();
    needed.insert(grant(LIST_STREAMS, &everything, None));
    needed.insert(grant(
        "events:PutEvents",
        &get_att_value(bus, "Arn"),
        Some(&json!({ "StringEquals": { "events:source": EVENT_SOURCE } })),
    ));
    needed.insert(grant("sqs:SendMessage", &get_att_value(queue, "Arn"), None));
    for action in ["logs:CreateLogStream", "logs:PutLogEvents"] {
        needed.insert(grant(action, &get_att_value(log_group, "Arn"), None));
    }
    for action in ["xray:PutTraceSegments", "xray:PutTelemetryRecords"] {
        needed.insert(grant(action, &everything, None));
    }
    needed
}

/// The mapping's settings that make delivery at least once, in order per customer, and never stuck.
fn check_mapping_settings(mapping_id: &str, props: &Value, errors: &mut Vec<String>) {
    let settings = [
        ("StartingPosition", json!("TRIM_HORIZON")),
        ("FunctionResponseTypes", json!(["ReportBatchItemFailures"])),
        ("BisectBatchOnFunctionError", json!(true)),
        ("ParallelizationFactor", json!(1)),
    ];
    for (setting, expected) in settings {
        let actual = props.get(setting);
        if actual != Some(&expected) {
            errors.push(format!(
                "{mapping_id}.{setting} is {actual:?}, expected {expected}"
            ));
        }
    }
    let bounded = [
        // A few retries, then the batch goes to the on-failure queue instead of blocking its shard.
        ("MaximumRetryAttempts", 1, 10),
        // Finite, and within the stream's 24 hours, so that a given-up range can still be read.
        ("MaximumRecordAgeInSeconds", 60, 86_400),
    ];
    for (setting, low, high) in bounded {
        let actual = props.get(setting).and_then(Value::as_i64);
        if !actual.is_some_and(|n| (low..=high).contains(&n)) {
            errors.push(format!(
                "{mapping_id}.{setting} is {actual:?}, expected {low} to {high}"
            ));
        }
    }
}

/// The optional webhook: an API-key connection, a POST API destination, a rule on the bus targeting
/// it with a retry policy, a role that may invoke exactly that destination, and a dead-letter queue
/// that only that rule may send to and that an alarm watches; each of these resources under one
/// condition, false with the defaults and true with a webhook URL and key.
fn check_webhook(template: &Value, errors: &mut Vec<String>) {
    let on: Vec<(&str, String)> = WEBHOOK_ON
        .iter()
        .map(|(n, v)| (*n, (*v).to_owned()))
        .collect();
    let deployed = match deployed(template, &on) {
        Ok(deployed) => deployed,
        Err(e) => return errors.push(format!("with the webhook on: {e}")),
    };
    let resources = resources(&deployed);
    let destinations: BTreeSet<&str> = resources
        .iter()
        .filter(|(_, r)| resource_type(r) == "AWS::Events::ApiDestination")
        .map(|(id, _)| *id)
        .collect();
    if destinations.is_empty() {
        return errors.push("no AWS::Events::ApiDestination: the webhook goes nowhere".to_owned());
    }
    let mut webhook: BTreeSet<&str> = destinations.clone();
    webhook.extend(
        resources
            .iter()
            .filter(|(_, r)| resource_type(r) == "AWS::Events::Connection")
            .map(|(id, _)| *id),
    );
    for destination in &destinations {
        check_destination(&resources, destination, errors);
    }
    let mut targeted = false;
    for (rule_id, rule) in resources
        .iter()
        .filter(|(_, r)| resource_type(r) == "AWS::Events::Rule")
    {
        for target in one_or_many(properties(rule).get("Targets").unwrap_or(&Value::Null)) {
            let Some((destination, _)) = target
                .get("Arn")
                .and_then(get_att)
                .filter(|(id, attribute)| *attribute == "Arn" && destinations.contains(id))
            else {
                continue;
            };
            targeted = true;
            webhook.insert(rule_id);
            check_webhook_target(
                &resources,
                rule_id,
                target,
                destination,
                &mut webhook,
                errors,
            );
        }
    }
    if !targeted {
        errors.push("no AWS::Events::Rule targets the webhook's API destination".to_owned());
    }
    let defaults = parameters(template, &[]);
    let switched_on = parameters(template, &on);
    for id in webhook {
        let Some(name) = resources[id].get("Condition").and_then(Value::as_str) else {
            errors.push(format!(
                "{id} belongs to the webhook but has no Condition: it would exist without one"
            ));
            continue;
        };
        match (condition(template, name, &defaults, 0), condition(template, name, &switched_on, 0)) {
            (Ok(false), Ok(true)) => {}
            (by_default, with_webhook) => errors.push(format!(
                "{id}: its condition {name} is {by_default:?} with the defaults and {with_webhook:?} with a webhook; expected false and true"
            )),
        }
    }
}

/// An API destination POSTs, through a connection with an API key.
fn check_destination(
    resources: &BTreeMap<&str, &Value>,
    destination: &str,
    errors: &mut Vec<String>,
) {
    let props = properties(resources[destination]);
    let connection = props
        .get("ConnectionArn")
        .and_then(get_att)
        .map(|(id, _)| id);
    let api_key = connection
        .and_then(|id| resources.get(id))
        .map(|c| properties(c).get("AuthorizationType"));
    if api_key != Some(Some(&json!("API_KEY"))) {
        errors.push(format!(
            "{destination}: its connection's AuthorizationType is {api_key:?}, expected API_KEY"
        ));
    }
    if props.get("HttpMethod") != Some(&json!("POST")) {
        errors.push(format!(
            "{destination}.HttpMethod is {:?}, expected POST",
            props.get("HttpMethod")
        ));
    }
}

/// A rule's target that is the webhook's API `destination`: it retries, its role may invoke exactly
/// that destination, and it has a dead-letter queue (see [`check_dead_letter_queue`]); the role, the
/// queue and what belongs to the queue join `webhook`.
fn check_webhook_target<'t>(
    resources: &BTreeMap<&'t str, &'t Value>,
    rule_id: &str,
    target: &'t Value,
    destination: &str,
    webhook: &mut BTreeSet<&'t str>,
    errors: &mut Vec<String>,
) {
    let retries = target
        .pointer("/RetryPolicy/MaximumRetryAttempts")
        .and_then(Value::as_i64);
    let age = target
        .pointer("/RetryPolicy/MaximumEventAgeInSeconds")
        .and_then(Value::as_i64);
    if retries.is_none() || age.is_none() {
        errors.push(format!("{rule_id}: the webhook target has no RetryPolicy (MaximumRetryAttempts, MaximumEventAgeInSeconds)"));
    }
    match target.get("RoleArn").and_then(get_att).map(|(id, _)| id) {
        Some(role) => {
            webhook.insert(role);
            let allowed = role_allows(resources, role, errors);
            let needed = BTreeSet::from([grant(
                "events:InvokeApiDestination",
                &get_att_value(destination, "ArnForPolicy"),
                None,
            )]);
            check_allows(role, &allowed, &needed, errors);
        }
        None => errors.push(format!(
            "{rule_id}: the webhook target has no RoleArn of this template"
        )),
    }
    let queue = target
        .pointer("/DeadLetterConfig/Arn")
        .and_then(get_att)
        .filter(|(id, _)| {
            resources
                .get(id)
                .is_some_and(|q| resource_type(q) == "AWS::SQS::Queue")
        })
        .map(|(id, _)| id);
    let Some(queue) = queue else {
        return errors.push(format!(
            "{rule_id}: the webhook target has no DeadLetterConfig on an SQS queue of this template"
        ));
    };
    webhook.insert(queue);
    check_dead_letter_queue(resources, rule_id, queue, webhook, errors);
}

/// Only `rule_id` may send to the webhook's dead-letter `queue` (a queue policy for
/// events.amazonaws.com with `aws:SourceArn` the rule), and an alarm watches its depth; both join
/// `webhook`.
fn check_dead_letter_queue<'t>(
    resources: &BTreeMap<&'t str, &'t Value>,
    rule_id: &str,
    queue: &str,
    webhook: &mut BTreeSet<&'t str>,
    errors: &mut Vec<String>,
) {
    let rule_arn = get_att_value(rule_id, "Arn");
    let mut admitted = false;
    for (policy_id, policy) in resources
        .iter()
        .filter(|(_, p)| resource_type(p) == "AWS::SQS::QueuePolicy")
    {
        let props = properties(policy);
        let names_queue = one_or_many(props.get("Queues").unwrap_or(&Value::Null))
            .into_iter()
            .any(|q| reference(q) == Some(queue));
        if !names_queue {
            continue;
        }
        webhook.insert(policy_id);
        for statement in one_or_many(
            props
                .pointer("/PolicyDocument/Statement")
                .unwrap_or(&Value::Null),
        ) {
            let source = ["ArnEquals", "ArnLike", "StringEquals"]
                .iter()
                .find_map(|operator| {
                    statement.pointer(&format!("/Condition/{operator}/aws:SourceArn"))
                });
            let to_events =
                statement.pointer("/Principal/Service") == Some(&json!("events.amazonaws.com"));
            if to_events && source.and_then(get_att) == get_att(&rule_arn) {
                admitted = true;
            } else if to_events {
                errors.push(format!("{policy_id}: EventBridge may send to {queue} for {source:?}, not for {rule_id} only"));
            }
        }
    }
    if !admitted {
        errors.push(format!(
            "no queue policy lets {rule_id} (aws:SourceArn) send to its dead-letter queue {queue}"
        ));
    }
    let depth = get_att_value(queue, "QueueName");
    let alarms: Vec<&str> = resources
        .iter()
        .filter(|(_, a)| resource_type(a) == "AWS::CloudWatch::Alarm")
        .filter(|(_, a)| {
            one_or_many(properties(a).get("Dimensions").unwrap_or(&Value::Null))
                .into_iter()
                .any(|d| d.get("Value").and_then(get_att) == get_att(&depth))
        })
        .map(|(id, _)| *id)
        .collect();
    if alarms.is_empty() {
        errors.push(format!(
            "no alarm watches the webhook's dead-letter queue {queue}"
        ));
    }
    webhook.extend(alarms);
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
                check_events(&resources, table_id, &mut errors);
            }
            check_index_dimensions(&default, &mut errors);
        }
        Err(e) => errors.push(format!("with the defaults: {e}")),
    }
    check_webhook(&template, &mut errors);
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
        (
            "the stream without the old images",
            "        StreamViewType: NEW_AND_OLD_IMAGES\n",
            "        StreamViewType: NEW_IMAGE\n",
        ),
        (
            "the stream turned off",
            "      StreamSpecification:\n        StreamViewType: NEW_AND_OLD_IMAGES\n",
            "",
        ),
        (
            "email claims let through the filter",
            "[\"customer\", \"deleted\"]",
            "[\"customer\", \"deleted\", \"email\"]",
        ),
        (
            "tombstones kept out of the filter",
            "[\"customer\", \"deleted\"]",
            "[\"customer\"]",
        ),
        (
            "the removes of customers filtered out",
            "          - Pattern: '{\"dynamodb\": {\"OldImage\": {\"kind\": {\"S\": [\"customer\"]}}}}'\n",
            "",
        ),
        (
            "the time to live's removal of tombstones let through",
            "{\"OldImage\": {\"kind\": {\"S\": [\"customer\"]}}}",
            "{\"OldImage\": {\"kind\": {\"S\": [\"customer\", \"deleted\"]}}}",
        ),
        (
            "a filter on a key AWS does not filter DynamoDB records on",
            "'{\"dynamodb\": {\"OldImage\"",
            "'{\"eventName\": [\"REMOVE\"], \"dynamodb\": {\"OldImage\"",
        ),
        (
            "no filter at all",
            "      FilterCriteria:\n        Filters:\n",
            "      FilterCriteriaUnused:\n        Filters:\n",
        ),
        (
            "no partial batch responses",
            "      FunctionResponseTypes:\n        - ReportBatchItemFailures\n",
            "",
        ),
        (
            "no bisection",
            "BisectBatchOnFunctionError: true",
            "BisectBatchOnFunctionError: false",
        ),
        (
            "retries without end",
            "MaximumRetryAttempts: 5",
            "MaximumRetryAttempts: -1",
        ),
        (
            "records kept until the stream drops them",
            "MaximumRecordAgeInSeconds: 21600",
            "MaximumRecordAgeInSeconds: -1",
        ),
        (
            "two batches of a shard at once",
            "ParallelizationFactor: 1",
            "ParallelizationFactor: 2",
        ),
        (
            "starting after the writes of the deploy",
            "StartingPosition: TRIM_HORIZON",
            "StartingPosition: LATEST",
        ),
        (
            "no on-failure queue",
            "          Destination: !GetAtt EventsFailedBatchesQueue.Arn\n",
            "          Destination: !GetAtt EventBus.Arn\n",
        ),
        (
            "the events role reading the table",
            "              - Sid: ListStreamsHasNoResourceLevelPermissions\n",
            "              - Effect: Allow\n                Action: dynamodb:GetItem\n                Resource: !GetAtt CustomersTable.Arn\n              - Sid: ListStreamsHasNoResourceLevelPermissions\n",
        ),
        (
            "the events role given the service's table grants",
            "      Description: !Sub \"${AWS::StackName}: crm change-events function\"\n",
            "      Description: !Sub \"${AWS::StackName}: crm change-events function\"\n      ManagedPolicyArns:\n        - !Ref TableAccessPolicy\n",
        ),
        (
            "stream actions on the table instead of its stream",
            "                Resource: !GetAtt CustomersTable.StreamArn\n",
            "                Resource: !GetAtt CustomersTable.Arn\n",
        ),
        (
            "stream actions on every stream",
            "                Resource: !GetAtt CustomersTable.StreamArn\n",
            "                Resource: \"*\"\n",
        ),
        (
            "PutEvents on every bus",
            "                Resource: !GetAtt EventBus.Arn\n",
            "                Resource: \"*\"\n",
        ),
        (
            "PutEvents for any source",
            "                Condition:\n                  StringEquals:\n                    events:source: crm.customers\n",
            "",
        ),
        (
            "SendMessage on every queue",
            "                Resource: !GetAtt EventsFailedBatchesQueue.Arn\n",
            "                Resource: \"*\"\n",
        ),
        (
            "the events function given the table's name",
            "          CRM_EVENT_BUS_NAME: !Ref EventBus\n",
            "          CRM_EVENT_BUS_NAME: !Ref EventBus\n          CRM_TABLE_NAME: !Ref CustomersTable\n",
        ),
        (
            "the webhook connection without its condition",
            "    Type: AWS::Events::Connection\n    Condition: HasWebhook\n",
            "    Type: AWS::Events::Connection\n",
        ),
        (
            "the webhook dead-letter queue without its condition",
            "  WebhookDeadLetterQueue:\n    Type: AWS::SQS::Queue\n    Condition: HasWebhook\n",
            "  WebhookDeadLetterQueue:\n    Type: AWS::SQS::Queue\n",
        ),
        (
            "the webhook under another condition",
            "    Type: AWS::Events::ApiDestination\n    Condition: HasWebhook\n",
            "    Type: AWS::Events::ApiDestination\n    Condition: HasTableKmsKey\n",
        ),
        (
            "the webhook role on every API destination",
            "                Resource: !GetAtt WebhookApiDestination.ArnForPolicy\n",
            "                Resource: \"*\"\n",
        ),
        (
            "the webhook without a dead-letter queue",
            "          DeadLetterConfig:\n            Arn: !GetAtt WebhookDeadLetterQueue.Arn\n",
            "",
        ),
        (
            "the webhook without retries",
            "          RetryPolicy:\n            MaximumRetryAttempts: 185\n            MaximumEventAgeInSeconds: 86400\n",
            "",
        ),
        (
            "the dead-letter queue open to every rule",
            "            Condition:\n              ArnEquals:\n                aws:SourceArn: !GetAtt WebhookRule.Arn\n",
            "",
        ),
        (
            "no alarm on the dead letters",
            "          Value: !GetAtt WebhookDeadLetterQueue.QueueName\n",
            "          Value: !GetAtt EventsFailedBatchesQueue.QueueName\n",
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

// ---------------------------------------------------------------- operability
//
// What the templates promise an operator beyond the table: alarms that fire on Lambda's own records
// of timeouts and crashes, routes that ask each JWT for the scope it needs, an API key and usage
// plan per REST client, and a gateway that records no URL, query string, header or body.

/// The OpenAPI document of the API, whose routes the HTTP API must route one by one.
fn openapi_routes() -> Result<BTreeSet<(String, String)>, String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crm-http/openapi.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let document: Value =
        serde_json::from_str(&text).map_err(|e| format!("crm-http/openapi.json: {e}"))?;
    let paths = document
        .get("paths")
        .and_then(Value::as_object)
        .ok_or("crm-http/openapi.json has no paths")?;
    let methods = ["get", "put", "post", "patch", "delete", "head", "options"];
    Ok(paths
        .iter()
        .flat_map(|(path, item)| {
            methods
                .iter()
                .filter(move |m| item.get(**m).is_some())
                .map(move |m| (m.to_ascii_uppercase(), path.clone()))
        })
        .collect())
}

/// The scope parameter a route needs with JWT: reads need `JwtReadScope` (every GET, and the search,
/// a read whose filters travel in a POST body); everything that can write needs `JwtWriteScope`.
fn scope_parameter(method: &str, path: &str) -> &'static str {
    if method == "GET" || (method == "POST" && path == "/customers/search") {
        "JwtReadScope"
    } else {
        "JwtWriteScope"
    }
}

/// The resources CloudFormation creates with `overrides`: conditions evaluated, `Fn::If` resolved,
/// and the resources whose `Condition` is false left out.
fn created(template: &Value, overrides: &[(&str, String)]) -> Result<Value, String> {
    let values = parameters(template, overrides);
    let mut deployed = resolve(template, template, &values)?.unwrap_or(Value::Null);
    if let Some(resources) = deployed.get_mut("Resources").and_then(Value::as_object_mut) {
        let mut kept = Map::new();
        for (id, resource) in std::mem::take(resources) {
            let on = match resource.get("Condition").and_then(Value::as_str) {
                Some(name) => condition(template, name, &values, 0)?,
                None => true,
            };
            if on {
                kept.insert(id, resource);
            }
        }
        *resources = kept;
    }
    Ok(deployed)
}

fn overrides<'a>(pairs: &[(&'a str, &str)]) -> Vec<(&'a str, String)> {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

fn of_type<'t>(resources: &BTreeMap<&'t str, &'t Value>, kind: &str) -> Vec<(&'t str, &'t Value)> {
    resources
        .iter()
        .filter(|(_, r)| resource_type(r) == kind)
        .map(|(id, r)| (*id, *r))
        .collect()
}

// ------------------------------------------------ CloudWatch Logs JSON filter patterns

/// A `CloudWatch` Logs JSON filter pattern, in the subset the templates use: `{ ... }` around
/// comparisons of a property selector (`$.a.b`) with a quoted string (`=`) or an integer (`=`, `>`,
/// `>=`, `<`, `<=`), joined with `&&` or `||`, grouped with parentheses. Anything else is refused,
/// so that a pattern this test cannot evaluate faithfully fails instead of passing.
#[derive(Debug)]
enum FilterPattern {
    All(Vec<FilterPattern>),
    Any(Vec<FilterPattern>),
    Compare {
        selector: Vec<String>,
        op: Comparison,
        literal: Literal,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Equal,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

#[derive(Debug)]
enum Literal {
    Text(String),
    Integer(i64),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Op(Comparison),
    Selector(Vec<String>),
    Text(String),
    Integer(i64),
}

fn tokens(pattern: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            '&' if next == Some('&') => {
                tokens.push(Token::And);
                i += 2;
            }
            '|' if next == Some('|') => {
                tokens.push(Token::Or);
                i += 2;
            }
            '=' => {
                tokens.push(Token::Op(Comparison::Equal));
                i += 1;
            }
            '>' | '<' => {
                let or_equal = next == Some('=');
                tokens.push(Token::Op(match (c, or_equal) {
                    ('>', false) => Comparison::Greater,
                    ('>', true) => Comparison::GreaterOrEqual,
                    ('<', false) => Comparison::Less,
                    _ => Comparison::LessOrEqual,
                }));
                i += if or_equal { 2 } else { 1 };
            }
            '$' if next == Some('.') => {
                let start = i + 2;
                let mut end = start;
                while end < chars.len()
                    && (chars[end].is_ascii_alphanumeric() || "_.".contains(chars[end]))
                {
                    end += 1;
                }
                let path: String = chars[start..end].iter().collect();
                let selector: Vec<String> = path.split('.').map(str::to_owned).collect();
                if selector.iter().any(String::is_empty) {
                    return Err(format!("selector $.{path} has an empty property"));
                }
                tokens.push(Token::Selector(selector));
                i = end;
            }
            '"' => {
                let start = i + 1;
                let end = (start..chars.len())
                    .find(|&j| chars[j] == '"')
                    .ok_or("a string without its closing quote")?;
                let text: String = chars[start..end].iter().collect();
                if text.contains(['*', '\\']) {
                    return Err(format!(
                        "\"{text}\": wildcards and escapes are not evaluated here"
                    ));
                }
                tokens.push(Token::Text(text));
                i = end + 1;
            }
            c if c.is_ascii_digit() || (c == '-' && next.is_some_and(|n| n.is_ascii_digit())) => {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let digits: String = chars[start..i].iter().collect();
                let value = digits
                    .parse()
                    .map_err(|e| format!("number {digits}: {e}"))?;
                tokens.push(Token::Integer(value));
            }
            other => {
                return Err(format!(
                    "'{other}' at {i} is not part of the filter syntax this test evaluates (no !=, \
                     NOT EXISTS, IS NULL, arrays, decimals or unquoted text)"
                ));
            }
        }
    }
    Ok(tokens)
}

/// Parses a JSON filter pattern (see [`FilterPattern`]).
fn parse_filter(pattern: &str) -> Result<FilterPattern, String> {
    let trimmed = pattern.trim();
    let inner = trimmed
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .ok_or_else(|| format!("{pattern}: not a JSON filter pattern ({{ ... }})"))?;
    let tokens = tokens(inner).map_err(|e| format!("{pattern}: {e}"))?;
    let mut at = 0;
    let parsed = expression(&tokens, &mut at).map_err(|e| format!("{pattern}: {e}"))?;
    if at == tokens.len() {
        Ok(parsed)
    } else {
        Err(format!("{pattern}: unexpected {:?}", tokens[at]))
    }
}

/// Terms joined by one kind of operator. `CloudWatch` does not document how `&&` and `||` bind when
/// both appear without parentheses, so such a pattern is refused.
fn expression(tokens: &[Token], at: &mut usize) -> Result<FilterPattern, String> {
    let mut terms = vec![term(tokens, at)?];
    let mut joiner: Option<Token> = None;
    while let Some(token @ (Token::And | Token::Or)) = tokens.get(*at) {
        if joiner.as_ref().is_some_and(|j| j != token) {
            return Err("&& and || at one level without parentheses".to_owned());
        }
        joiner = Some(token.clone());
        *at += 1;
        terms.push(term(tokens, at)?);
    }
    Ok(match joiner {
        None => terms.pop().ok_or("an empty expression")?,
        Some(Token::And) => FilterPattern::All(terms),
        Some(_) => FilterPattern::Any(terms),
    })
}

fn term(tokens: &[Token], at: &mut usize) -> Result<FilterPattern, String> {
    match tokens.get(*at) {
        Some(Token::Open) => {
            *at += 1;
            let inner = expression(tokens, at)?;
            if tokens.get(*at) != Some(&Token::Close) {
                return Err("a parenthesis that is not closed".to_owned());
            }
            *at += 1;
            Ok(inner)
        }
        Some(Token::Selector(selector)) => {
            let (Some(Token::Op(op)), Some(literal)) = (tokens.get(*at + 1), tokens.get(*at + 2))
            else {
                return Err(format!(
                    "$.{} is not compared with a value",
                    selector.join(".")
                ));
            };
            let literal = match literal {
                Token::Text(text) if *op == Comparison::Equal => Literal::Text(text.clone()),
                Token::Integer(n) => Literal::Integer(*n),
                other => return Err(format!("{op:?} with {other:?} is not evaluated here")),
            };
            *at += 3;
            Ok(FilterPattern::Compare {
                selector: selector.clone(),
                op: *op,
                literal,
            })
        }
        other => Err(format!("expected a comparison or '(', found {other:?}")),
    }
}

/// Whether a log event matches: a JSON object whose selected properties compare as the pattern
/// says. A property that is missing, or of another type, matches nothing; a line that is not JSON
/// matches no JSON pattern.
fn filter_matches_event(pattern: &FilterPattern, event: &str) -> bool {
    match serde_json::from_str::<Value>(event) {
        Ok(value @ Value::Object(_)) => evaluate_filter(pattern, &value),
        _ => false,
    }
}

fn evaluate_filter(pattern: &FilterPattern, event: &Value) -> bool {
    match pattern {
        FilterPattern::All(terms) => terms.iter().all(|t| evaluate_filter(t, event)),
        FilterPattern::Any(terms) => terms.iter().any(|t| evaluate_filter(t, event)),
        FilterPattern::Compare {
            selector,
            op,
            literal,
        } => {
            let actual = selector
                .iter()
                .try_fold(event, |value, property| value.get(property));
            match (actual, literal) {
                (Some(Value::String(actual)), Literal::Text(expected)) => actual == expected,
                (Some(Value::Number(actual)), Literal::Integer(expected)) => {
                    let ordering = match actual.as_i64() {
                        Some(actual) => Some(actual.cmp(expected)),
                        #[allow(clippy::cast_precision_loss)]
                        None => actual
                            .as_f64()
                            .and_then(|actual| actual.partial_cmp(&(*expected as f64))),
                    };
                    ordering.is_some_and(|o| match op {
                        Comparison::Equal => o.is_eq(),
                        Comparison::Greater => o.is_gt(),
                        Comparison::GreaterOrEqual => o.is_ge(),
                        Comparison::Less => o.is_lt(),
                        Comparison::LessOrEqual => o.is_le(),
                    })
                }
                _ => false,
            }
        }
    }
}

// ------------------------------------------------ alarms that fire

/// What each kind of metric filter must count, by the end of its metric's name
/// (`<stack>-<function>-<kind>`).
const FILTER_KINDS: [(&str, &[&str]); 4] = [
    ("-timeouts", &["report: timeout"]),
    (
        "-crashes",
        &[
            "report: error, runtime exit",
            "report: error, out of memory",
            "report: failure",
        ],
    ),
    ("-panics", &["line: a panic"]),
    ("-server-errors", &["line: an invocation answered 503"]),
];

/// The kinds every function must have a filter and an alarm of.
const EVERY_FUNCTION: [&str; 2] = ["-timeouts", "-crashes"];

const SAMPLE_REQUEST_ID: &str = "6f1c2a7e-0d4b-4f8e-9a51-3c2b1d0e9f87";
const SAMPLE_TIME: &str = "2026-12-01T10:00:00.000Z";

/// Log events of every kind a function's log group holds, by name: Lambda's own records and the
/// functions' own lines.
fn sample_events() -> Vec<(&'static str, String)> {
    let mut events = platform_records();
    events.extend(function_lines());
    events
}

/// Lambda's own records, in the shapes of the Telemetry API `Event` schema reference
/// (platform.report: `record.status` success, failure, error or timeout, `errorType` when not
/// success), as Lambda writes them to `CloudWatch` Logs with `LogFormat: JSON`.
fn platform_records() -> Vec<(&'static str, String)> {
    let (id, time) = (SAMPLE_REQUEST_ID, SAMPLE_TIME);
    let metrics = json!({
        "durationMs": 10000.0, "billedDurationMs": 10000, "memorySizeMB": 256, "maxMemoryUsedMB": 61
    });
    let report = |status: &str, error_type: Option<&str>| {
        let mut record = json!({ "requestId": id, "metrics": metrics, "status": status });
        if let Some(error_type) = error_type {
            record["errorType"] = json!(error_type);
        }
        json!({ "time": time, "type": "platform.report", "record": record }).to_string()
    };
    let runtime_done = |status: &str, error_type: &str| {
        json!({
            "time": time,
            "type": "platform.runtimeDone",
            "record": {
                "requestId": id,
                "status": status,
                "errorType": error_type,
                "metrics": { "durationMs": 10000.0, "producedBytes": 0 }
            }
        })
        .to_string()
    };
    vec![
        ("report: success", report("success", None)),
        ("report: timeout", report("timeout", Some("Sandbox.Timedout"))),
        (
            "report: error, runtime exit",
            report("error", Some("Runtime.ExitError")),
        ),
        (
            "report: error, out of memory",
            report("error", Some("Runtime.OutOfMemory")),
        ),
        ("report: failure", report("failure", Some("Runtime.Unknown"))),
        (
            "runtimeDone: timeout",
            runtime_done("timeout", "Sandbox.Timedout"),
        ),
        (
            "runtimeDone: error",
            runtime_done("error", "Runtime.ExitError"),
        ),
        (
            "runtimeDone: failure",
            runtime_done("failure", "Runtime.Unknown"),
        ),
        (
            "start",
            json!({ "time": time, "type": "platform.start", "record": { "requestId": id, "version": "$LATEST" } })
                .to_string(),
        ),
        (
            "initReport: error",
            json!({
                "time": time,
                "type": "platform.initReport",
                "record": {
                    "initializationType": "on-demand", "phase": "init", "status": "error",
                    "errorType": "Runtime.ExitError", "metrics": { "durationMs": 120.5 }
                }
            })
            .to_string(),
        ),
    ]
}

/// The functions' own JSON lines, and a plain-text line of the text log format.
fn function_lines() -> Vec<(&'static str, String)> {
    let (id, time) = (SAMPLE_REQUEST_ID, SAMPLE_TIME);
    vec![
        (
            "line: a panic",
            json!({
                "timestamp": time, "level": "ERROR", "message": "panicked",
                "location": "crm-http/src/customers.rs:120:9", "request_id": id
            })
            .to_string(),
        ),
        (
            "line: an error that is no panic",
            json!({
                "timestamp": time, "level": "ERROR", "message": "store request failed",
                "request_id": id, "error": "throttled"
            })
            .to_string(),
        ),
        (
            "line: an invocation answered 503",
            json!({
                "timestamp": time, "level": "INFO", "message": "invocation", "request_id": id,
                "operation": "read", "status": 503, "latency_ms": 5001
            })
            .to_string(),
        ),
        (
            "line: an invocation answered 404",
            json!({
                "timestamp": time, "level": "INFO", "message": "invocation", "request_id": id,
                "operation": "read", "status": 404, "latency_ms": 12
            })
            .to_string(),
        ),
        (
            "line: a status that is no platform record's",
            json!({
                "timestamp": time, "level": "WARN", "message": "request deadline",
                "record": { "status": "timeout" }, "status": "error"
            })
            .to_string(),
        ),
        (
            "text: Lambda's timeout line of the text log format",
            format!("{time} {id} Task timed out after 10.01 seconds"),
        ),
    ]
}

/// One `AWS::Logs::MetricFilter` and what it counts.
struct MetricFilter<'t> {
    id: &'t str,
    log_group: Option<&'t str>,
    metric: &'t Value,
    kind: Option<&'static str>,
}

fn metric_filters<'t>(resources: &BTreeMap<&'t str, &'t Value>) -> Vec<MetricFilter<'t>> {
    of_type(resources, "AWS::Logs::MetricFilter")
        .into_iter()
        .map(|(id, filter)| {
            let props = properties(filter);
            let metric = props
                .pointer("/MetricTransformations/0/MetricName")
                .unwrap_or(&Value::Null);
            let name = metric.get("Fn::Sub").and_then(Value::as_str).unwrap_or("");
            MetricFilter {
                id,
                log_group: props.get("LogGroupName").and_then(reference),
                metric,
                kind: FILTER_KINDS
                    .iter()
                    .map(|(kind, _)| *kind)
                    .find(|kind| name.ends_with(kind)),
            }
        })
        .collect()
}

/// Every function logs JSON with the INFO (or DEBUG) system log level to a log group of this
/// template, on which a timeout filter and a crash filter count Lambda's platform.report records;
/// every metric filter counts exactly the sample events of its kind; each has an alarm to the
/// alarm topic and is on the dashboard, with its alarm.
fn check_alarms(template: &Value, errors: &mut Vec<String>) {
    let samples = sample_events();
    for (what, switches) in [
        ("with the defaults", vec![]),
        (
            "with the envelope function",
            overrides(&[("EnableEnvelopeFunction", "true")]),
        ),
    ] {
        let deployed = match created(template, &switches) {
            Ok(deployed) => deployed,
            Err(e) => {
                errors.push(format!("{what}: {e}"));
                continue;
            }
        };
        let resources = resources(&deployed);
        let filters = metric_filters(&resources);
        let dashboard = of_type(&resources, "AWS::CloudWatch::Dashboard")
            .first()
            .map(|(_, d)| d.to_string())
            .unwrap_or_default();
        let topic = of_type(&resources, "AWS::SNS::Topic")
            .first()
            .map(|(id, _)| json!([{ "Ref": id }]));
        for (function_id, function) in resources.iter().filter(|(_, r)| {
            matches!(
                resource_type(r),
                "AWS::Lambda::Function" | "AWS::Serverless::Function"
            )
        }) {
            let logging = properties(function)
                .get("LoggingConfig")
                .unwrap_or(&Value::Null);
            if logging.get("LogFormat").and_then(Value::as_str) != Some("JSON") {
                errors.push(format!(
                    "{function_id} does not log JSON: Lambda writes its platform records as JSON only with LogFormat JSON"
                ));
            }
            let level = logging.get("SystemLogLevel").and_then(Value::as_str);
            if !matches!(level, Some("INFO" | "DEBUG")) {
                errors.push(format!(
                    "{function_id}.LoggingConfig.SystemLogLevel is {level:?}: Lambda writes platform.report at INFO, so set INFO (or DEBUG) explicitly"
                ));
            }
            let group = logging.get("LogGroup").and_then(reference);
            if group.is_none_or(|g| !resources.contains_key(g)) {
                errors.push(format!(
                    "{function_id} logs to {group:?}, not to a log group of this template"
                ));
                continue;
            }
            for kind in EVERY_FUNCTION {
                let count = filters
                    .iter()
                    .filter(|f| f.log_group == group && f.kind == Some(kind))
                    .count();
                if count != 1 {
                    errors.push(format!(
                        "{what}: {function_id} has {count} metric filters of *{kind} on its log group, expected 1"
                    ));
                }
            }
        }
        for filter in &filters {
            check_filter_counts(filter, &resources, &samples, what, errors);
            check_filter_alarm(filter, &resources, topic.as_ref(), &dashboard, what, errors);
        }
    }
}

fn check_filter_counts(
    filter: &MetricFilter<'_>,
    resources: &BTreeMap<&str, &Value>,
    samples: &[(&str, String)],
    what: &str,
    errors: &mut Vec<String>,
) {
    let id = filter.id;
    let Some(kind) = filter.kind else {
        errors.push(format!(
            "{id} counts into {}, which is of no kind this test knows ({:?})",
            filter.metric,
            FILTER_KINDS.map(|(k, _)| k)
        ));
        return;
    };
    let pattern = resources
        .get(id)
        .and_then(|f| properties(f).get("FilterPattern"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let parsed = match parse_filter(pattern) {
        Ok(parsed) => parsed,
        Err(e) => {
            errors.push(format!("{what}: {id}: {e}"));
            return;
        }
    };
    let matched: BTreeSet<&str> = samples
        .iter()
        .filter(|(_, event)| filter_matches_event(&parsed, event))
        .map(|(name, _)| *name)
        .collect();
    let expected: BTreeSet<&str> = FILTER_KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, names)| names.iter().copied().collect())
        .unwrap_or_default();
    if matched != expected {
        errors.push(format!(
            "{what}: {id} ({pattern}) matches {matched:?}; a *{kind} filter must match exactly {expected:?}"
        ));
    }
}

fn check_filter_alarm(
    filter: &MetricFilter<'_>,
    resources: &BTreeMap<&str, &Value>,
    topic: Option<&Value>,
    dashboard: &str,
    what: &str,
    errors: &mut Vec<String>,
) {
    let id = filter.id;
    let transformation = resources
        .get(id)
        .and_then(|f| properties(f).pointer("/MetricTransformations/0"))
        .unwrap_or(&Value::Null);
    if transformation.get("MetricNamespace") != Some(&json!("crm"))
        || transformation.get("MetricValue") != Some(&json!("1"))
    {
        errors.push(format!(
            "{id} does not count 1 per event into the namespace crm: {transformation}"
        ));
    }
    let alarms: Vec<_> = of_type(resources, "AWS::CloudWatch::Alarm")
        .into_iter()
        .filter(|(_, a)| {
            let props = properties(a);
            props.get("Namespace") == Some(&json!("crm"))
                && props.get("MetricName") == Some(filter.metric)
        })
        .collect();
    let [(alarm_id, alarm)] = alarms.as_slice() else {
        errors.push(format!(
            "{what}: {} alarms watch the metric of {id}, expected 1",
            alarms.len()
        ));
        return;
    };
    let props = properties(alarm);
    let fires = props.get("Statistic") == Some(&json!("Sum"))
        && props.get("Threshold") == Some(&json!(0))
        && props.get("ComparisonOperator") == Some(&json!("GreaterThanThreshold"))
        && props.get("TreatMissingData") == Some(&json!("notBreaching"));
    if !fires {
        errors.push(format!(
            "{alarm_id} does not fire on the first event of {id} (Sum > 0, missing data not breaching)"
        ));
    }
    for actions in ["AlarmActions", "OKActions"] {
        if topic.is_none() || props.get(actions) != topic {
            errors.push(format!(
                "{alarm_id}.{actions} is {:?}, not the alarm topic {topic:?}",
                props.get(actions)
            ));
        }
    }
    let metric = filter
        .metric
        .get("Fn::Sub")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let arn = format!("${{{alarm_id}.Arn}}");
    for shown in [metric, arn.as_str()] {
        if !dashboard.contains(shown) {
            errors.push(format!("{what}: the dashboard does not show {shown}"));
        }
    }
}

// ------------------------------------------------ authorization that fits real clients

/// The HTTP API's routes with `overrides`, by route key.
fn routes(deployed: &Value) -> BTreeMap<String, Value> {
    of_type(&resources(deployed), "AWS::ApiGatewayV2::Route")
        .into_iter()
        .map(|(_, route)| {
            let props = properties(route);
            let key = props.get("RouteKey").and_then(Value::as_str).unwrap_or("?");
            (key.to_owned(), props.clone())
        })
        .collect()
}

/// A scalar as CloudFormation makes it: the parameter's value for a `Ref` to one, else itself.
fn text_of(value: &Value, values: &BTreeMap<String, String>) -> String {
    reference(value)
        .and_then(|name| values.get(name))
        .cloned()
        .unwrap_or_else(|| scalar_text(value))
}

/// A list of strings as CloudFormation makes it: a list, or `Fn::Split` of a parameter.
fn string_list(value: &Value, values: &BTreeMap<String, String>) -> Option<Vec<String>> {
    if let Some([Value::String(delimiter), source]) = value
        .get("Fn::Split")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        let text = reference(source).and_then(|name| values.get(name))?;
        return Some(text.split(delimiter.as_str()).map(str::to_owned).collect());
    }
    value
        .as_array()
        .map(|items| items.iter().map(scalar_text).collect())
}

/// With `AuthMode` JWT every route of the OpenAPI document has a route of its own with the JWT
/// authorizer and the scope it needs (from the scope parameters, or none where a parameter is
/// empty), and nothing reaches the function by `$default`; with `AWS_IAM` or NONE the same routes
/// carry no scope and `$default` serves the rest. OPTIONS routes exist only with CORS, open.
fn check_routes(template: &Value, errors: &mut Vec<String>) {
    let expected = match openapi_routes() {
        Ok(routes) => routes,
        Err(e) => return errors.push(e),
    };
    for parameter in ["JwtReadScope", "JwtWriteScope"] {
        let default = template
            .pointer(&format!("/Parameters/{parameter}/Default"))
            .and_then(Value::as_str);
        if default.is_none_or(str::is_empty) {
            errors.push(format!(
                "parameter {parameter} has no default scope ({default:?}): a JWT deployment would check none"
            ));
        }
    }
    for pairs in route_deployments() {
        let what = format!("with {pairs:?}");
        let switches = overrides(&pairs);
        let values = parameters(template, &switches);
        let deployed = match created(template, &switches) {
            Ok(deployed) => deployed,
            Err(e) => {
                errors.push(format!("{what}: {e}"));
                continue;
            }
        };
        let authorizer = of_type(&resources(&deployed), "AWS::ApiGatewayV2::Authorizer")
            .into_iter()
            .filter(|(_, a)| properties(a).get("AuthorizerType") == Some(&json!("JWT")))
            .map(|(id, _)| json!({ "Ref": id }))
            .next();
        let deployment = RouteDeployment {
            what: &what,
            mode: values.get("AuthMode").cloned().unwrap_or_default(),
            values: &values,
            authorizer: authorizer.as_ref(),
        };
        let routes = routes(&deployed);
        let actual: BTreeSet<(String, String)> = routes
            .keys()
            .filter(|key| *key != "$default" && !key.starts_with("OPTIONS "))
            .filter_map(|key| key.split_once(' '))
            .map(|(method, path)| (method.to_owned(), path.to_owned()))
            .collect();
        if actual != expected {
            errors.push(format!(
                "{what}: routes the document lacks {:?}, document routes without a route {:?}",
                actual.difference(&expected).collect::<Vec<_>>(),
                expected.difference(&actual).collect::<Vec<_>>()
            ));
        }
        for (key, route) in &routes {
            check_route(&deployment, key, route, errors);
        }
        if deployment.mode != "JWT" && !routes.contains_key("$default") {
            errors.push(format!(
                "{what}: no $default route: the router's 404 and 405 answers and prefixed paths are lost"
            ));
        }
        let preflights: BTreeSet<&str> = routes
            .keys()
            .map(String::as_str)
            .filter(|key| key.starts_with("OPTIONS "))
            .collect();
        let cors = values
            .get("CorsAllowedOrigins")
            .is_some_and(|o| !o.is_empty());
        let wanted: BTreeSet<&str> = if cors {
            BTreeSet::from(["OPTIONS /", "OPTIONS /{proxy+}"])
        } else {
            BTreeSet::new()
        };
        if preflights != wanted {
            errors.push(format!(
                "{what}: OPTIONS routes {preflights:?}, expected {wanted:?} (open only for CORS preflights)"
            ));
        }
    }
}

/// The deployments the routes are checked in: JWT with two read scopes, JWT with no read scope,
/// JWT with the default scopes, `AWS_IAM` and NONE; with and without CORS.
fn route_deployments() -> Vec<Vec<(&'static str, &'static str)>> {
    let jwt = [
        ("AuthMode", "JWT"),
        ("JwtIssuer", "https://issuer.example.com/"),
        ("JwtAudience", "crm-clients"),
    ];
    let cors = ("CorsAllowedOrigins", "https://app.example.com");
    vec![
        [
            &jwt[..],
            &[
                cors,
                ("JwtReadScope", "test/read,test/admin"),
                ("JwtWriteScope", "test/write"),
            ],
        ]
        .concat(),
        [
            &jwt[..],
            &[("JwtReadScope", ""), ("JwtWriteScope", "test/write")],
        ]
        .concat(),
        [&jwt[..], &[cors]].concat(),
        vec![("AuthMode", "AWS_IAM"), cors],
        vec![("AuthMode", "AWS_IAM")],
        vec![("AuthMode", "NONE"), cors],
    ]
}

/// One deployment of the HTTP API, as [`check_route`] needs it.
struct RouteDeployment<'a> {
    what: &'a str,
    mode: String,
    values: &'a BTreeMap<String, String>,
    authorizer: Option<&'a Value>,
}

/// One route: it targets the function; an OPTIONS route is open; `$default` exists only without
/// JWT and has no scope; every other route asks for `AuthMode`, and with JWT for the authorizer and
/// its scope.
fn check_route(
    deployment: &RouteDeployment<'_>,
    key: &str,
    route: &Value,
    errors: &mut Vec<String>,
) {
    let RouteDeployment {
        what,
        mode,
        values,
        authorizer,
    } = deployment;
    let target = route.get("Target");
    if target != Some(&json!({ "Fn::Sub": "integrations/${HttpApiIntegration}" })) {
        errors.push(format!("{what}: {key} targets {target:?}"));
    }
    let (authorization, authorizer_id, scopes) = (
        route.get("AuthorizationType").map(|v| text_of(v, values)),
        route.get("AuthorizerId"),
        route.get("AuthorizationScopes"),
    );
    if key.starts_with("OPTIONS ") {
        if authorization.as_deref() != Some("NONE") || authorizer_id.is_some() || scopes.is_some() {
            errors.push(format!(
                "{what}: {key} is not open ({authorization:?}, {authorizer_id:?}, {scopes:?}); a CORS preflight carries no credentials"
            ));
        }
        return;
    }
    if authorization.as_deref() != Some(mode.as_str()) {
        errors.push(format!(
            "{what}: {key} has AuthorizationType {authorization:?}, not {mode}"
        ));
    }
    let is_jwt = mode == "JWT";
    if key == "$default" {
        if is_jwt {
            errors.push(format!(
                "{what}: $default exists: a prefixed path (/x/customers/...) matches no scoped route and would reach the function with any valid token"
            ));
        }
        if authorizer_id.is_some() || scopes.is_some() {
            errors.push(format!("{what}: $default has an authorizer or scopes"));
        }
        return;
    }
    if !is_jwt {
        if authorizer_id.is_some() || scopes.is_some() {
            errors.push(format!(
                "{what}: {key} has an authorizer or scopes without JWT"
            ));
        }
        return;
    }
    if authorizer.is_none() || authorizer_id != *authorizer {
        errors.push(format!(
            "{what}: {key} has authorizer {authorizer_id:?}, not the JWT authorizer {authorizer:?}"
        ));
    }
    let Some((method, path)) = key.split_once(' ') else {
        return errors.push(format!("{what}: route key {key} is not METHOD /path"));
    };
    let parameter = scope_parameter(method, path);
    let wanted: Vec<String> = values
        .get(parameter)
        .filter(|v| !v.is_empty())
        .map(|v| v.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let granted = scopes
        .and_then(|s| string_list(s, values))
        .unwrap_or_default();
    if granted != wanted {
        errors.push(format!(
            "{what}: {key} asks for the scopes {granted:?}, it needs {parameter}: {wanted:?}"
        ));
    }
}

/// Every REST method asks for an API key and `AuthMode`, but OPTIONS with CORS, which is open for
/// the preflight.
fn check_rest_methods(template: &Value, errors: &mut Vec<String>) {
    for pairs in [
        vec![
            ("AuthMode", "AWS_IAM"),
            ("CorsAllowedOrigins", "https://app.example.com"),
        ],
        vec![("AuthMode", "AWS_IAM")],
        vec![
            ("AuthMode", "NONE"),
            ("CorsAllowedOrigins", "https://app.example.com"),
        ],
        vec![("AuthMode", "NONE")],
    ] {
        let what = format!("with {pairs:?}");
        let switches = overrides(&pairs);
        let values = parameters(template, &switches);
        let deployed = match created(template, &switches) {
            Ok(deployed) => deployed,
            Err(e) => {
                errors.push(format!("{what}: {e}"));
                continue;
            }
        };
        let cors = values
            .get("CorsAllowedOrigins")
            .is_some_and(|o| !o.is_empty());
        let mode = values.get("AuthMode").cloned().unwrap_or_default();
        for (id, method) in of_type(&resources(&deployed), "AWS::ApiGateway::Method") {
            let props = properties(method);
            let preflight = cors && props.get("HttpMethod") == Some(&json!("OPTIONS"));
            let (authorization, key) = if preflight {
                ("NONE".to_owned(), false)
            } else {
                (mode.clone(), true)
            };
            let actual = (
                props.get("AuthorizationType").map(|v| text_of(v, &values)),
                props.get("ApiKeyRequired"),
            );
            if actual != (Some(authorization.clone()), Some(&json!(key))) {
                errors.push(format!(
                    "{what}: {id} has {actual:?}, expected AuthorizationType {authorization} and ApiKeyRequired {key}"
                ));
            }
        }
    }
}

/// The REST API's client slots: parameters `Client<N>Name` with their throttle and quota. Every
/// named slot, and only those, has an API key of its own (named after the client, so that a
/// renamed slot gets a new key; slot 1 under its default name keeps the generated name of the key
/// of earlier releases), a usage plan of its own on the stage with the slot's limits, and the usage
/// plan key that joins them; a stack rule refuses a stack without a client.
fn check_clients(template: &Value, errors: &mut Vec<String>) {
    let slots: Vec<usize> = (1..=9)
        .filter(|n| {
            template
                .pointer(&format!("/Parameters/Client{n}Name"))
                .is_some()
        })
        .collect();
    if slots.len() < 2 || slots.iter().enumerate().any(|(i, n)| i + 1 != *n) {
        errors.push(format!(
            "client slots {slots:?}: expected Client1Name, Client2Name, ... (more than one)"
        ));
        return;
    }
    for n in &slots {
        for suffix in ["BurstLimit", "RateLimit", "QuotaLimit", "QuotaPeriod"] {
            if template
                .pointer(&format!("/Parameters/Client{n}{suffix}"))
                .is_none()
            {
                errors.push(format!(
                    "client slot {n} has no parameter Client{n}{suffix}"
                ));
            }
        }
    }
    let rules = template.get("Rules").unwrap_or(&Value::Null);
    let guarded = rules.as_object().is_some_and(|rules| {
        rules.values().any(|rule| {
            let text = rule.to_string();
            text.contains("Fn::Or")
                && slots
                    .iter()
                    .all(|n| text.contains(&format!("{{\"Ref\":\"Client{n}Name\"}}")))
        })
    });
    if !guarded {
        errors.push(
            "no stack rule asks for at least one client name: a stack without a key serves nobody"
                .to_owned(),
        );
    }
    let all: Vec<(String, String)> = slots
        .iter()
        .map(|n| (format!("Client{n}Name"), format!("client-{n}")))
        .collect();
    let mut cases: Vec<ClientCase> = vec![
        ("with the defaults".to_owned(), vec![], vec![1]),
        ("with every slot named".to_owned(), all, slots.clone()),
    ];
    let last = slots.len();
    cases.push((
        format!("with slot {last} alone"),
        vec![
            ("Client1Name".to_owned(), String::new()),
            (format!("Client{last}Name"), "only-client".to_owned()),
        ],
        vec![last],
    ));
    for (what, pairs, named) in cases {
        let switches: Vec<(&str, String)> =
            pairs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let values = parameters(template, &switches);
        match created(template, &switches) {
            Ok(deployed) => check_client_resources(&deployed, &values, &named, &what, errors),
            Err(e) => errors.push(format!("{what}: {e}")),
        }
    }
}

/// A deployment of the client slots: what it is, the parameters it sets, the slots it names.
type ClientCase = (String, Vec<(String, String)>, Vec<usize>);

fn check_client_resources(
    deployed: &Value,
    values: &BTreeMap<String, String>,
    named: &[usize],
    what: &str,
    errors: &mut Vec<String>,
) {
    let resources = resources(deployed);
    let api = of_type(&resources, "AWS::ApiGateway::RestApi")
        .first()
        .map(|(id, _)| *id);
    let stage = of_type(&resources, "AWS::ApiGateway::Stage")
        .first()
        .map(|(id, _)| *id);
    let keys = of_type(&resources, "AWS::ApiGateway::ApiKey");
    let clients = ClientDeployment {
        what,
        values,
        deployed,
        stages: json!([{ "ApiId": { "Ref": api }, "Stage": { "Ref": stage } }]),
        plans: of_type(&resources, "AWS::ApiGateway::UsagePlan"),
        joins: of_type(&resources, "AWS::ApiGateway::UsagePlanKey"),
    };
    let key_slots: BTreeSet<usize> = keys
        .iter()
        .filter_map(|(key_id, key)| check_client_key(&clients, key_id, key, errors))
        .collect();
    let wanted: BTreeSet<usize> = named.iter().copied().collect();
    if key_slots != wanted || keys.len() != named.len() {
        errors.push(format!(
            "{what}: API keys of slots {key_slots:?} ({} keys), expected one for each named slot {wanted:?}",
            keys.len()
        ));
    }
    if clients.plans.len() != named.len() || clients.joins.len() != named.len() {
        errors.push(format!(
            "{what}: {} usage plans and {} usage plan keys for {} clients",
            clients.plans.len(),
            clients.joins.len(),
            named.len()
        ));
    }
}

/// One deployment of the REST API's clients, as [`check_client_key`] needs it.
struct ClientDeployment<'t> {
    what: &'t str,
    values: &'t BTreeMap<String, String>,
    deployed: &'t Value,
    stages: Value,
    plans: Vec<(&'t str, &'t Value)>,
    joins: Vec<(&'t str, &'t Value)>,
}

/// The slot whose name a key's or plan's `Description` holds, when it holds exactly one.
fn slot_of(resource: &Value) -> Option<usize> {
    let description = properties(resource).get("Description")?.to_string();
    let slots: Vec<usize> = (1..=9)
        .filter(|n| description.contains(&format!("${{Client{n}Name}}")))
        .collect();
    match slots.as_slice() {
        [slot] => Some(*slot),
        _ => None,
    }
}

/// One client's key: enabled, named after its client (but slot 1 under its default name), in
/// exactly one usage plan that holds no other key, on the stage, with its slot's limits, and given
/// by an output. Returns the key's slot.
fn check_client_key(
    clients: &ClientDeployment<'_>,
    key_id: &str,
    key: &Value,
    errors: &mut Vec<String>,
) -> Option<usize> {
    let what = clients.what;
    let Some(slot) = slot_of(key) else {
        errors.push(format!(
            "{what}: {key_id}'s Description names no single client slot"
        ));
        return None;
    };
    let props = properties(key);
    if props.get("Enabled") != Some(&json!(true)) {
        errors.push(format!("{what}: {key_id} is not enabled"));
    }
    let name = props.get("Name");
    let keeps_generated =
        slot == 1 && clients.values.get("Client1Name").map(String::as_str) == Some("default");
    let wanted = (!keeps_generated)
        .then(|| json!({ "Fn::Sub": format!("${{AWS::StackName}}-${{Client{slot}Name}}") }));
    if name != wanted.as_ref() {
        errors.push(format!(
            "{what}: {key_id}.Name is {name:?}, expected {wanted:?}: a key's name must change, and the key with it, when its slot goes to another client"
        ));
    }
    let exported = clients
        .deployed
        .get("Outputs")
        .and_then(Value::as_object)
        .is_some_and(|o| {
            o.values()
                .any(|out| out.get("Value") == Some(&json!({ "Ref": key_id })))
        });
    if !exported {
        errors.push(format!("{what}: no output gives the id of {key_id}"));
    }
    let joins_of = |field: &str, id: &str| -> Vec<&str> {
        clients
            .joins
            .iter()
            .filter(|(_, j)| properties(j).get(field).and_then(reference) == Some(id))
            .map(|(join_id, _)| *join_id)
            .collect()
    };
    let joined = joins_of("KeyId", key_id);
    let [join_id] = joined.as_slice() else {
        errors.push(format!(
            "{what}: {key_id} is in {} usage plans, expected 1",
            joined.len()
        ));
        return Some(slot);
    };
    let join = clients
        .joins
        .iter()
        .find(|(id, _)| id == join_id)
        .map_or(&Value::Null, |(_, j)| properties(j));
    if join.get("KeyType") != Some(&json!("API_KEY")) {
        errors.push(format!("{what}: {join_id}.KeyType is not API_KEY"));
    }
    let plan_id = join.get("UsagePlanId").and_then(reference);
    let Some((plan_id, plan)) = clients.plans.iter().find(|(id, _)| Some(*id) == plan_id) else {
        errors.push(format!(
            "{what}: {join_id} joins {key_id} to no usage plan of this template"
        ));
        return Some(slot);
    };
    let holders = joins_of("UsagePlanId", plan_id).len();
    if holders != 1 {
        errors.push(format!(
            "{what}: {plan_id} holds {holders} keys; every client needs a usage plan of its own"
        ));
    }
    let props = properties(plan);
    for (pointer, suffix) in [
        ("/Throttle/BurstLimit", "BurstLimit"),
        ("/Throttle/RateLimit", "RateLimit"),
        ("/Quota/Limit", "QuotaLimit"),
        ("/Quota/Period", "QuotaPeriod"),
    ] {
        let parameter = format!("Client{slot}{suffix}");
        let limit = props.pointer(pointer).and_then(reference);
        if limit != Some(parameter.as_str()) {
            errors.push(format!(
                "{what}: {plan_id}{pointer} is {limit:?}, the key's slot {slot} has {parameter}"
            ));
        }
    }
    if props.get("ApiStages") != Some(&clients.stages) {
        errors.push(format!(
            "{what}: {plan_id}.ApiStages is {:?}, expected the stage {}",
            props.get("ApiStages"),
            clients.stages
        ));
    }
    Some(slot)
}

// ------------------------------------------------ no personal data in traces

/// The access-log variables that carry nothing of a request's path, query string, headers or body:
/// ids, times, the method, the route or resource *template*, statuses, sizes, latencies, the type
/// of a gateway error, the JWT authorizer's reason, the WAF's answer, the API key's id and the
/// caller's IP (personal data kept on purpose; deploy/README.md, "Observability"). Never
/// `$context.path` (with a prefixed or encoded id), `$context.error.message` (for a signature that
/// does not match, it quotes the canonical request: query string and security token), the user
/// agent, the domain, or the claims of a token.
const ACCESS_LOG_VARIABLES: [&str; 18] = [
    "requestId",
    "extendedRequestId",
    "requestTimeEpoch",
    "httpMethod",
    "routeKey",
    "resourcePath",
    "status",
    "protocol",
    "responseLength",
    "responseLatency",
    "integrationLatency",
    "integrationStatus",
    "integrationErrorMessage",
    "error.responseType",
    "authorizer.error",
    "wafResponseCode",
    "identity.apiKeyId",
    "identity.sourceIp",
];

/// The gateway records no path, query string, header or body: the stage's access-log format is one
/// JSON object of allowed variables only; a REST stage writes no execution log (which can hold
/// bodies); and WAF logs (REST) redact the query string.
fn check_gateway_records(template: &Value, errors: &mut Vec<String>) {
    let resources = resources(template);
    let formats: Vec<(&str, &Value)> = resources
        .iter()
        .filter_map(|(id, r)| {
            let props = properties(r);
            match resource_type(r) {
                "AWS::ApiGatewayV2::Stage" => props.pointer("/AccessLogSettings/Format"),
                "AWS::ApiGateway::Stage" => props.pointer("/AccessLogSetting/Format"),
                _ => None,
            }
            .map(|format| (*id, format))
        })
        .collect();
    if formats.is_empty() {
        errors.push("no stage with an access-log format".to_owned());
    }
    for (stage, format) in formats {
        let Some(format) = format.as_str() else {
            errors.push(format!(
                "{stage}: the access-log format is not a plain string"
            ));
            continue;
        };
        let mut placeholders = String::new();
        let mut rest = format;
        while let Some(at) = rest.find("$context.") {
            placeholders.push_str(&rest[..at]);
            let tail = &rest[at + "$context.".len()..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
                .unwrap_or(tail.len());
            let variable = tail[..end].trim_end_matches('.');
            if !ACCESS_LOG_VARIABLES.contains(&variable) {
                errors.push(format!(
                    "{stage}: the access log records $context.{variable}, which is not one of the variables known to carry no path, query string, header or body"
                ));
            }
            placeholders.push('x');
            rest = &tail[variable.len()..];
        }
        placeholders.push_str(rest);
        if !serde_json::from_str::<Value>(&placeholders).is_ok_and(|v| v.is_object()) {
            errors.push(format!(
                "{stage}: the access-log format is not one JSON object"
            ));
        }
    }
    for (stage, props) in of_type(&resources, "AWS::ApiGateway::Stage")
        .into_iter()
        .map(|(id, s)| (id, properties(s)))
    {
        for setting in one_or_many(props.get("MethodSettings").unwrap_or(&Value::Null)) {
            if setting.get("LoggingLevel") != Some(&json!("OFF"))
                || setting.get("DataTraceEnabled") != Some(&json!(false))
            {
                errors.push(format!(
                    "{stage}: execution logging is on ({setting}); it can record bodies"
                ));
            }
        }
    }
    for (id, logging) in of_type(&resources, "AWS::WAFv2::LoggingConfiguration") {
        let redacted = one_or_many(
            properties(logging)
                .get("RedactedFields")
                .unwrap_or(&Value::Null),
        );
        if !redacted.iter().any(|f| f.get("QueryString").is_some()) {
            errors.push(format!("{id}: WAF logs keep the query string"));
        }
    }
}

// ------------------------------------------------ the functions' own (EMF) metrics

/// The contract between the code and the templates on the functions' EMF metrics, written by
/// crm-lambda and held to the code by its tests (`tests/metrics.rs`, `tests/lambda/stream.rs`):
/// each metric's dimension sets (sorted), and the metrics each bootstrap writes.
struct EmfContract {
    sets: BTreeMap<String, BTreeSet<Vec<String>>>,
    writers: BTreeMap<String, BTreeSet<String>>,
}

const EMF_CONTRACT: &str = "crm-lambda/tests/fixtures/emf-metrics.json";

fn emf_contract() -> Result<EmfContract, String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(EMF_CONTRACT);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let contract: Value =
        serde_json::from_str(&text).map_err(|e| format!("{EMF_CONTRACT}: {e}"))?;
    let strings = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    let mut sets = BTreeMap::new();
    for (name, metric) in contract
        .get("metrics")
        .and_then(Value::as_object)
        .ok_or(format!("{EMF_CONTRACT} has no metrics"))?
    {
        let of_metric: BTreeSet<Vec<String>> = metric
            .get("dimension_sets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|set| {
                let mut set = strings(set);
                set.sort();
                set
            })
            .collect();
        sets.insert(name.clone(), of_metric);
    }
    let writers = contract
        .get("functions")
        .and_then(Value::as_object)
        .ok_or(format!("{EMF_CONTRACT} has no functions"))?
        .iter()
        .map(|(bootstrap, names)| (bootstrap.clone(), strings(names).into_iter().collect()))
        .collect();
    Ok(EmfContract { sets, writers })
}

/// An alarm the templates promise on the functions' own metrics: the metric, its dimension set,
/// and a dimension value the alarm must select (besides `function`).
type EmfAlarm = (
    &'static str,
    &'static [&'static str],
    Option<(&'static str, &'static str)>,
);

/// The alarms the templates promise on the functions' own metrics.
const EMF_ALARMS: [EmfAlarm; 3] = [
    // The HTTP function's 5xx by its own count.
    (
        "http_requests",
        &["function", "status_class"],
        Some(("status_class", "5xx")),
    ),
    // DynamoDB calls that failed as the HTTP function saw them, every operation together.
    ("dynamodb_errors", &["function"], None),
    // Stream records the events function handed back.
    ("events_failed_records", &["function"], None),
];

/// The metrics the dashboard promises to show, under these dimension sets.
const EMF_WIDGETS: [(&str, &[&str]); 12] = [
    ("http_requests", &["function", "status_class"]),
    ("http_request_duration_ms", &["function", "route"]),
    ("dynamodb_calls", &["function", "operation"]),
    ("dynamodb_call_duration_ms", &["function", "operation"]),
    ("dynamodb_retries", &["function", "operation"]),
    ("dynamodb_throttles", &["function", "operation"]),
    ("dynamodb_cancelled", &["function", "operation"]),
    ("cold_starts", &["function"]),
    ("events_published", &["function"]),
    ("events_failed_entries", &["function"]),
    ("events_failed_records", &["function"]),
    ("events_batch_duration_ms", &["function"]),
];

/// One use of an EMF metric by an alarm or a widget.
#[derive(Debug)]
struct EmfUse {
    /// The alarm's or widget's name, for the message.
    by: String,
    metric: String,
    /// Dimension name to value (`${HttpFunction}` or `{"Ref": ...}` as the template writes it).
    dimensions: BTreeMap<String, String>,
}

/// The bootstrap a function runs (`CodeUri: ../target/lambda/<bootstrap>/bootstrap.zip`).
fn bootstrap_of(function: &Value) -> Option<&str> {
    properties(function)
        .get("CodeUri")
        .and_then(Value::as_str)?
        .strip_prefix("../target/lambda/")?
        .split('/')
        .next()
}

/// A Lambda function of the template, as far as its metrics go.
struct EmfFunction<'t> {
    bootstrap: Option<&'t str>,
    /// `CRM_METRICS_NAMESPACE`.
    namespace: Option<&'t str>,
    /// `CRM_METRICS`.
    metrics: Option<&'t str>,
}

/// The Lambda functions, by logical id.
fn emf_functions<'t>(
    resources: &BTreeMap<&'t str, &'t Value>,
) -> BTreeMap<&'t str, EmfFunction<'t>> {
    resources
        .iter()
        .filter(|(_, r)| {
            matches!(
                resource_type(r),
                "AWS::Lambda::Function" | "AWS::Serverless::Function"
            )
        })
        .map(|(id, function)| {
            let variables = properties(function).pointer("/Environment/Variables");
            let variable = |name: &str| variables.and_then(|v| v.get(name)).and_then(Value::as_str);
            (
                *id,
                EmfFunction {
                    bootstrap: bootstrap_of(function),
                    namespace: variable("CRM_METRICS_NAMESPACE"),
                    metrics: variable("CRM_METRICS"),
                },
            )
        })
        .collect()
}

/// The dimensions of a metric reference of an alarm (`Dimensions: [{Name, Value}]`), values as
/// the template writes them (`${Id}` for `!Ref Id`).
fn alarm_dimensions(metric: &Value) -> BTreeMap<String, String> {
    metric
        .get("Dimensions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|d| {
            let name = d.get("Name").and_then(Value::as_str).unwrap_or("?");
            let value = d.get("Value").unwrap_or(&Value::Null);
            let value =
                reference(value).map_or_else(|| scalar_text(value), |id| format!("${{{id}}}"));
            (name.to_owned(), value)
        })
        .collect()
}

/// The metrics an alarm reads in `namespace`, by name: a plain metric (`Namespace`,
/// `MetricName`) or the `MetricStat`s of its metric math. Names written with `!Sub` (the metric
/// filters' `<stack>-...`) are not EMF metrics and are left out.
fn alarm_uses(id: &str, alarm: &Value, namespace: &str) -> Vec<EmfUse> {
    let props = properties(alarm);
    let mut metrics: Vec<&Value> = Vec::new();
    if props.get("Namespace").is_some() {
        metrics.push(props);
    }
    for query in props
        .get("Metrics")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(metric) = query.pointer("/MetricStat/Metric") {
            metrics.push(metric);
        }
    }
    metrics
        .into_iter()
        .filter(|m| m.get("Namespace").and_then(Value::as_str) == Some(namespace))
        .filter_map(|m| {
            Some(EmfUse {
                by: id.to_owned(),
                metric: m.get("MetricName")?.as_str()?.to_owned(),
                dimensions: alarm_dimensions(m),
            })
        })
        .collect()
}

/// The dashboard's body as `CloudWatch` gets it, but for the `${...}` inside its strings: the
/// `Fn::Sub` text with the variables of its map (the optional widgets and alarm lists) put in,
/// parsed.
fn dashboard_body(resources: &BTreeMap<&str, &Value>) -> Result<Value, String> {
    let [(id, dashboard)] = of_type(resources, "AWS::CloudWatch::Dashboard")[..] else {
        return Err("expected one AWS::CloudWatch::Dashboard".to_owned());
    };
    let body = properties(dashboard)
        .pointer("/DashboardBody/Fn::Sub")
        .ok_or(format!("{id}.DashboardBody is no Fn::Sub"))?;
    let (text, variables) = match body {
        Value::String(text) => (text.clone(), Map::new()),
        Value::Array(pair) => (
            pair.first()
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            pair.get(1)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        ),
        _ => return Err(format!("{id}.DashboardBody: an Fn::Sub of no known shape")),
    };
    let mut text = text;
    for (name, value) in &variables {
        let value = value
            .get("Fn::Sub")
            .unwrap_or(value)
            .as_str()
            .ok_or(format!("{id}: the variable {name} is no text"))?;
        text = text.replace(&format!("${{{name}}}"), value);
    }
    serde_json::from_str(&text).map_err(|e| format!("{id}.DashboardBody is not JSON: {e}"))
}

/// One `SEARCH('{namespace,dimension,...} MetricName="name" dimension="value" ...', ...)`.
struct Search {
    namespace: String,
    metric: Option<String>,
    /// The schema's dimensions: the metrics found have exactly these.
    schema: Vec<String>,
    /// The values its terms select, by dimension.
    selected: BTreeMap<String, String>,
}

/// Every `SEARCH` of a metric math expression.
fn searches(expression: &str) -> Vec<Search> {
    let mut found = Vec::new();
    for (_, rest) in expression
        .match_indices("SEARCH('")
        .map(|(at, _)| expression.split_at(at + 8))
    {
        let query = rest.split('\'').next().unwrap_or("");
        let Some(schema) = query.strip_prefix('{').and_then(|q| q.split_once('}')) else {
            continue;
        };
        let (schema, terms) = schema;
        let mut names = schema
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_owned());
        let namespace = names.next().unwrap_or_default();
        let mut selected = BTreeMap::new();
        let mut metric = None;
        for term in terms.split_whitespace() {
            if let Some((key, value)) = term.split_once('=') {
                let value = value.trim_matches('"').to_owned();
                if key == "MetricName" {
                    metric = Some(value);
                } else {
                    selected.insert(key.to_owned(), value);
                }
            }
        }
        found.push(Search {
            namespace,
            metric,
            schema: names.collect(),
            selected,
        });
    }
    found
}

/// The metrics the dashboard's widgets read in `namespace`: rows of a metric widget (with
/// `CloudWatch`'s `.` for "as the row before") and `SEARCH` expressions. A `SEARCH` without
/// `MetricName`, and a row of a name written with `${AWS::StackName}` (a metric filter's), are
/// reported as `?` and skipped, respectively.
fn widget_uses(body: &Value, namespace: &str) -> Vec<EmfUse> {
    let mut uses = Vec::new();
    for widget in body
        .get("widgets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let title = widget
            .pointer("/properties/title")
            .and_then(Value::as_str)
            .unwrap_or("a widget")
            .to_owned();
        let mut previous: Vec<String> = Vec::new();
        for row in widget
            .pointer("/properties/metrics")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let items = row.as_array().cloned().unwrap_or_default();
            if let Some(expression) = items
                .first()
                .and_then(|first| first.get("expression"))
                .and_then(Value::as_str)
            {
                for mut search in searches(expression) {
                    if search.namespace != namespace {
                        continue;
                    }
                    // The schema names the dimension set exactly; a term may select a value.
                    let dimensions = search
                        .schema
                        .into_iter()
                        .map(|d| {
                            let value =
                                search.selected.remove(&d).unwrap_or_else(|| "*".to_owned());
                            (d, value)
                        })
                        .collect();
                    uses.push(EmfUse {
                        by: title.clone(),
                        metric: search.metric.unwrap_or_else(|| "?".to_owned()),
                        dimensions,
                    });
                }
                continue;
            }
            let texts: Vec<String> = items
                .iter()
                .map_while(Value::as_str)
                .enumerate()
                .map(|(at, text)| match text {
                    "." => previous.get(at).cloned().unwrap_or_default(),
                    other => other.to_owned(),
                })
                .collect();
            let texts = if texts.first().map(String::as_str) == Some("...") {
                previous.clone()
            } else {
                texts
            };
            previous.clone_from(&texts);
            if texts.first().map(String::as_str) != Some(namespace) {
                continue;
            }
            let Some(metric) = texts.get(1) else { continue };
            if metric.contains("${AWS::StackName}") {
                continue;
            }
            let dimensions = texts[2..]
                .chunks(2)
                .map(|pair| (pair[0].clone(), pair.get(1).cloned().unwrap_or_default()))
                .collect();
            uses.push(EmfUse {
                by: title.clone(),
                metric: metric.clone(),
                dimensions,
            });
        }
    }
    uses
}

/// Checks one use of an EMF metric against the contract: a metric the code writes, filed under
/// exactly this dimension set, of a function of the template that writes it, with dimension
/// values the code can write.
fn check_emf_use(
    used: &EmfUse,
    contract: &EmfContract,
    functions: &BTreeMap<&str, EmfFunction<'_>>,
    errors: &mut Vec<String>,
) {
    let by = &used.by;
    let metric = &used.metric;
    let Some(sets) = contract.sets.get(metric) else {
        errors.push(format!(
            "{by} reads {metric}, which no function writes ({EMF_CONTRACT})"
        ));
        return;
    };
    let set: Vec<String> = used.dimensions.keys().cloned().collect();
    if !sets.contains(&set) {
        errors.push(format!(
            "{by} reads {metric} under the dimensions {set:?}; CloudWatch matches a set exactly and the code files it under {sets:?} only"
        ));
    }
    let selected = used.dimensions.get("function").map(String::as_str);
    let writer = selected
        .and_then(|value| value.strip_prefix("${"))
        .and_then(|value| value.strip_suffix('}'))
        .and_then(|id| functions.get(id).map(|f| (id, f.bootstrap)));
    match writer {
        Some((id, bootstrap)) => {
            let emits = bootstrap
                .and_then(|b| contract.writers.get(b))
                .is_some_and(|names| names.contains(metric));
            if !emits {
                errors.push(format!(
                    "{by} reads {metric} of {id}, whose bootstrap {bootstrap:?} does not write it"
                ));
            }
        }
        None => errors.push(format!(
            "{by} reads {metric} with function = {selected:?}, not one function of the template"
        )),
    }
    for (dimension, value) in &used.dimensions {
        let known = match dimension.as_str() {
            "status_class" => ["1xx", "2xx", "3xx", "4xx", "5xx", "*"].contains(&value.as_str()),
            "operation" => {
                value == "*"
                    || value == crm_dynamo::metrics::OTHER_OPERATION
                    || crm_dynamo::metrics::OPERATIONS.contains(&value.as_str())
            }
            _ => true,
        };
        if !known {
            errors.push(format!(
                "{by} reads {metric} with {dimension} = {value:?}, a value the code never writes"
            ));
        }
    }
}

/// The one namespace of the functions' metrics (`CRM_METRICS_NAMESPACE`, which every function
/// writing EMF metrics sets, none of them turning the metrics off).
fn emf_namespace<'t>(
    functions: &BTreeMap<&'t str, EmfFunction<'t>>,
    contract: &EmfContract,
    what: &str,
    errors: &mut Vec<String>,
) -> Option<&'t str> {
    let mut namespaces = BTreeSet::new();
    for (id, function) in functions {
        let writes = function
            .bootstrap
            .is_some_and(|b| contract.writers.contains_key(b));
        match function.namespace {
            Some(namespace) => {
                namespaces.insert(namespace);
            }
            // The alarms name the namespace: it must not be left to the code's default.
            None if writes => errors.push(format!(
                "{what}: {id} does not set CRM_METRICS_NAMESPACE, which its metrics' alarms name"
            )),
            None => {}
        }
        if writes && function.metrics.is_some_and(|m| m.trim() == "off") {
            errors.push(format!(
                "{what}: {id} turns its metrics off (CRM_METRICS=off)"
            ));
        }
    }
    if let [namespace] = namespaces.into_iter().collect::<Vec<_>>()[..] {
        Some(namespace)
    } else {
        errors.push(format!(
            "{what}: the functions do not share one CRM_METRICS_NAMESPACE"
        ));
        None
    }
}

/// The alarms on the functions' metrics: each reads what the code writes, notifies the alarm
/// topic, treats missing data as not breaching (a quiet period writes no line) and is on the
/// dashboard; and the promised ones ([`EMF_ALARMS`]) are there.
fn check_emf_alarms(
    resources: &BTreeMap<&str, &Value>,
    namespace: &str,
    contract: &EmfContract,
    dashboard: &str,
    what: &str,
    errors: &mut Vec<String>,
) {
    let functions = emf_functions(resources);
    let topic = of_type(resources, "AWS::SNS::Topic")
        .first()
        .map(|(id, _)| json!([{ "Ref": id }]));
    let mut alarmed = Vec::new();
    for (id, alarm) in of_type(resources, "AWS::CloudWatch::Alarm") {
        let uses = alarm_uses(id, alarm, namespace);
        if uses.is_empty() {
            continue;
        }
        let props = properties(alarm);
        for actions in ["AlarmActions", "OKActions"] {
            if topic.is_none() || props.get(actions) != topic.as_ref() {
                errors.push(format!("{what}: {id}.{actions} is not the alarm topic"));
            }
        }
        if props.get("TreatMissingData") != Some(&json!("notBreaching")) {
            errors.push(format!(
                "{what}: {id} does not treat missing data as not breaching (a quiet period writes no EMF line)"
            ));
        }
        if !dashboard.contains(&format!("${{{id}.Arn}}")) {
            errors.push(format!("{what}: the dashboard does not show {id}"));
        }
        for used in uses {
            check_emf_use(&used, contract, &functions, errors);
            alarmed.push(used);
        }
    }
    for (metric, set, selected) in EMF_ALARMS {
        let found = alarmed.iter().any(|u| {
            u.metric == metric
                && u.dimensions
                    .keys()
                    .map(String::as_str)
                    .eq(set.iter().copied())
                && selected.is_none_or(|(d, v)| u.dimensions.get(d).map(String::as_str) == Some(v))
        });
        if !found {
            errors.push(format!(
                "{what}: no alarm reads {metric} under {set:?}{}",
                selected
                    .map(|(d, v)| format!(" with {d} = {v}"))
                    .unwrap_or_default()
            ));
        }
    }
}

/// Every alarm and widget on the functions' own metrics (in the namespace the functions'
/// `CRM_METRICS_NAMESPACE` sets) names a metric and a dimension set the code writes
/// ([`EMF_CONTRACT`]), of a function that writes it; the promised alarms ([`EMF_ALARMS`]) and
/// widgets ([`EMF_WIDGETS`]) are there.
fn check_emf(template: &Value, errors: &mut Vec<String>) {
    let contract = match emf_contract() {
        Ok(contract) => contract,
        Err(e) => return errors.push(e),
    };
    for (what, switches) in [
        ("with the defaults", vec![]),
        (
            "with the envelope function",
            overrides(&[("EnableEnvelopeFunction", "true")]),
        ),
    ] {
        let deployed = match created(template, &switches) {
            Ok(deployed) => deployed,
            Err(e) => {
                errors.push(format!("{what}: {e}"));
                continue;
            }
        };
        let resources = resources(&deployed);
        let functions = emf_functions(&resources);
        let Some(namespace) = emf_namespace(&functions, &contract, what, errors) else {
            continue;
        };
        let body = match dashboard_body(&resources) {
            Ok(body) => body,
            Err(e) => {
                errors.push(format!("{what}: {e}"));
                continue;
            }
        };
        check_emf_alarms(
            &resources,
            namespace,
            &contract,
            &body.to_string(),
            what,
            errors,
        );
        let shown = widget_uses(&body, namespace);
        for used in &shown {
            check_emf_use(used, &contract, &functions, errors);
        }
        for (metric, set) in EMF_WIDGETS {
            let found = shown.iter().any(|u| {
                u.metric == metric
                    && u.dimensions
                        .keys()
                        .map(String::as_str)
                        .eq(set.iter().copied())
            });
            if !found {
                errors.push(format!(
                    "{what}: the dashboard does not show {metric} under {set:?}"
                ));
            }
        }
    }
}

/// The checks themselves: each edit below makes an alarm or a widget read what the code does not
/// write, and each must be reported.
const EMF_DRIFTS: &[(&str, &str, &str)] = &[
    (
        "an alarm on a metric no function writes",
        "      MetricName: dynamodb_errors\n",
        "      MetricName: dynamodb_failures\n",
    ),
    (
        "the 5xx alarm on a dimension set the code does not file (status class and route)",
        "                - Name: status_class\n                  Value: 5xx\n",
        "                - Name: status_class\n                  Value: 5xx\n                - Name: route\n                  Value: /customers\n",
    ),
    (
        "the DynamoDB errors alarm on the fine set without its operation",
        "      MetricName: dynamodb_errors\n      Dimensions:\n        - Name: function\n          Value: !Ref HttpFunction\n",
        "      MetricName: dynamodb_errors\n      Dimensions:\n        - Name: function\n          Value: !Ref HttpFunction\n        - Name: operation\n          Value: Everything\n",
    ),
    (
        "the events alarm on the HTTP function, which writes no events metric",
        "      MetricName: events_failed_records\n      Dimensions:\n        - Name: function\n          Value: !Ref EventsFunction\n",
        "      MetricName: events_failed_records\n      Dimensions:\n        - Name: function\n          Value: !Ref HttpFunction\n",
    ),
    (
        "a widget's SEARCH on a dimension set the code does not file",
        "SEARCH('{crm,function,route} MetricName",
        "SEARCH('{crm,function,method} MetricName",
    ),
    (
        "a widget row on a metric of another name",
        "[\"crm\", \"events_published\", \"function\"",
        "[\"crm\", \"events_put\", \"function\"",
    ),
    (
        "the events function's metrics in another namespace",
        "          CRM_EVENT_BUS_NAME: !Ref EventBus\n          RUST_LOG: !Ref RustLog\n          CRM_METRICS_NAMESPACE: crm\n",
        "          CRM_EVENT_BUS_NAME: !Ref EventBus\n          RUST_LOG: !Ref RustLog\n          CRM_METRICS_NAMESPACE: crm-events\n",
    ),
    (
        "the events function's metrics turned off",
        "          CRM_EVENT_BUS_NAME: !Ref EventBus\n",
        "          CRM_EVENT_BUS_NAME: !Ref EventBus\n          CRM_METRICS: \"off\"\n",
    ),
    (
        "an EMF alarm left off the dashboard",
        "\"${EventsFailedRecordsAlarm.Arn}\", ",
        "",
    ),
];

#[test]
fn every_emf_alarm_and_widget_reads_a_metric_and_dimension_set_the_code_writes() {
    for (name, errors) in each_template(check_emf) {
        assert_keeps(
            name,
            "the alarms and widgets on the functions' own metrics",
            &errors,
        );
    }
    for name in TEMPLATES {
        let original = template_text(name);
        for (what, from, to) in EMF_DRIFTS {
            assert!(
                original.contains(from),
                "mutation \"{what}\": deploy/{name} no longer contains {from:?}; update the test"
            );
            let drifted = original.replacen(from, to, 1);
            let mut errors = Vec::new();
            match parse(&drifted) {
                Ok(template) => check_emf(&template, &mut errors),
                Err(e) => errors.push(e),
            }
            assert!(
                !errors.is_empty(),
                "mutation \"{what}\" was not reported in deploy/{name}"
            );
        }
    }
}

/// Every operability disagreement of a template; empty when it keeps every promise.
fn operability_disagreements(text: &str) -> Vec<String> {
    let template = match parse(text) {
        Ok(template) => template,
        Err(e) => return vec![e],
    };
    let mut errors = Vec::new();
    check_alarms(&template, &mut errors);
    check_emf(&template, &mut errors);
    check_gateway_records(&template, &mut errors);
    let types: BTreeSet<&str> = resources(&template)
        .values()
        .map(|r| resource_type(r))
        .collect();
    if types.contains("AWS::ApiGatewayV2::Api") {
        check_routes(&template, &mut errors);
    }
    if types.contains("AWS::ApiGateway::RestApi") {
        check_rest_methods(&template, &mut errors);
        check_clients(&template, &mut errors);
    }
    errors
}

fn assert_keeps(name: &str, what: &str, errors: &[String]) {
    assert!(
        errors.is_empty(),
        "deploy/{name}: {what}:\n  - {}",
        errors.join("\n  - ")
    );
}

fn each_template(check: fn(&Value, &mut Vec<String>)) -> Vec<(&'static str, Vec<String>)> {
    TEMPLATES
        .iter()
        .map(|name| {
            let mut errors = Vec::new();
            match parse(&template_text(name)) {
                Ok(template) => check(&template, &mut errors),
                Err(e) => errors.push(e),
            }
            (*name, errors)
        })
        .collect()
}

#[test]
fn the_filter_pattern_evaluator_reads_what_cloudwatch_reads_and_refuses_the_rest() {
    let event = r#"{"type": "platform.report", "record": {"status": "timeout"}, "code": 503}"#;
    let cases = [
        (r#"{ $.type = "platform.report" }"#, true),
        (r#"{ $.type = "platform.start" }"#, false),
        (
            r#"{ $.record.status = "timeout" && $.type = "platform.report" }"#,
            true,
        ),
        (
            r#"{ $.record.status = "error" && $.type = "platform.report" }"#,
            false,
        ),
        (
            r#"{ $.record.status = "error" || $.type = "platform.report" }"#,
            true,
        ),
        (
            r#"{ $.type = "platform.report" && ($.record.status = "error" || $.record.status = "timeout") }"#,
            true,
        ),
        (
            r#"{ ($.type = "platform.report" && $.record.status = "error") || $.code >= 500 }"#,
            true,
        ),
        ("{ $.code >= 503 }", true),
        ("{ $.code > 503 }", false),
        ("{ $.code = 503 }", true),
        ("{ $.code < 500 }", false),
        (r#"{ $.missing.property = "timeout" }"#, false),
        (r#"{ $.record = "timeout" }"#, false),
        (r#"{ $.code = "503" }"#, false),
    ];
    for (pattern, expected) in cases {
        let parsed = parse_filter(pattern).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            filter_matches_event(&parsed, event),
            expected,
            "{pattern} on {event}"
        );
        assert!(
            !filter_matches_event(&parsed, "Task timed out after 3.00 seconds"),
            "{pattern} matched a line that is not JSON"
        );
    }
    for refused in [
        r#"{ $.a = "x" && $.b = "y" || $.c = "z" }"#,
        r#"{ $.a != "x" }"#,
        r#"{ $.a = "x*" }"#,
        r#"{ $.a[0] = "x" }"#,
        r"{ $.a = x }",
        r#"{ $.a > "x" }"#,
        r#"{ ($.a = "x" }"#,
        r#"?panicked ?"Task timed out""#,
        r#"{ $.a = "x" "#,
    ] {
        assert!(
            parse_filter(refused).is_err(),
            "{refused} was accepted; the evaluator must refuse what it cannot evaluate faithfully"
        );
    }
}

#[test]
fn every_function_alarms_on_its_timeouts_and_crashes_from_lambdas_platform_reports() {
    for (name, errors) in each_template(check_alarms) {
        assert_keeps(name, "the alarms do not fire as promised", &errors);
    }
}

#[test]
fn every_http_api_route_asks_a_jwt_for_the_scope_it_needs_and_options_stays_open_only_for_cors_preflights()
 {
    let mut errors = Vec::new();
    match parse(&template_text("template.yaml")) {
        Ok(template) => check_routes(&template, &mut errors),
        Err(e) => errors.push(e),
    }
    assert_keeps(
        "template.yaml",
        "the routes do not fit the clients",
        &errors,
    );
}

#[test]
fn every_rest_method_asks_for_a_key_and_options_stays_open_only_for_cors_preflights() {
    let mut errors = Vec::new();
    match parse(&template_text("rest-api.yaml")) {
        Ok(template) => check_rest_methods(&template, &mut errors),
        Err(e) => errors.push(e),
    }
    assert_keeps(
        "rest-api.yaml",
        "the methods do not fit the clients",
        &errors,
    );
}

#[test]
fn every_rest_api_client_has_its_own_key_and_usage_plan() {
    let mut errors = Vec::new();
    match parse(&template_text("rest-api.yaml")) {
        Ok(template) => check_clients(&template, &mut errors),
        Err(e) => errors.push(e),
    }
    assert_keeps(
        "rest-api.yaml",
        "the API clients are not kept apart",
        &errors,
    );
}

#[test]
fn the_gateway_records_no_path_query_string_header_or_body() {
    for (name, errors) in each_template(check_gateway_records) {
        assert_keeps(name, "the gateway may record personal data", &errors);
    }
}

/// Edits that break a promise of either template: (what, text, replacement).
const DRIFTS_OF_EITHER: &[(&str, &str, &str)] = &[
    (
        "the timeout filter counting runtimeDone too",
        r#"'{ $.type = "platform.report" && $.record.status = "timeout" }'"#,
        r#"'{ $.record.status = "timeout" }'"#,
    ),
    (
        "the crash filter counting successes",
        r#"($.record.status = "error" || $.record.status = "failure")"#,
        r#"($.record.status = "error" || $.record.status = "success")"#,
    ),
    (
        "the crash filter missing the failures",
        r#"($.record.status = "error" || $.record.status = "failure")"#,
        r#"$.record.status = "error""#,
    ),
    (
        "&& and || without parentheses",
        r#"&& ($.record.status = "error" || $.record.status = "failure")"#,
        r#"&& $.record.status = "error" || $.record.status = "failure""#,
    ),
    (
        "the envelope's old text filter back",
        "      FilterName: envelope-crashes\n      FilterPattern: '",
        "      FilterName: envelope-crashes\n      FilterPattern: '?panicked ?\"Task timed out\" ?\"Runtime exited\"' #",
    ),
    (
        "the panic filter counting every error line",
        r#"FilterPattern: '{ $.message = "panicked" }'"#,
        r#"FilterPattern: '{ $.level = "ERROR" }'"#,
    ),
    (
        "system logs at WARN",
        "        SystemLogLevel: INFO\n",
        "        SystemLogLevel: WARN\n",
    ),
    (
        "the system log level left to Lambda's default",
        "        SystemLogLevel: INFO\n",
        "",
    ),
    (
        "text logs",
        "        LogFormat: JSON\n",
        "        LogFormat: Text\n",
    ),
    (
        "the events function without a timeout filter",
        "      LogGroupName: !Ref EventsFunctionLogGroup\n      FilterName: events-timeouts\n",
        "      LogGroupName: !Ref HttpFunctionLogGroup\n      FilterName: events-timeouts\n",
    ),
    (
        "a crash alarm on another metric",
        "      Namespace: crm\n      MetricName: !Sub \"${AWS::StackName}-http-crashes\"\n",
        "      Namespace: crm\n      MetricName: !Sub \"${AWS::StackName}-http-crash\"\n",
    ),
    (
        "a timeout alarm that tells nobody",
        "      MetricName: !Sub \"${AWS::StackName}-http-timeouts\"\n      Statistic: Sum\n      Period: 300\n      EvaluationPeriods: 1\n      DatapointsToAlarm: 1\n      Threshold: 0\n      ComparisonOperator: GreaterThanThreshold\n      TreatMissingData: notBreaching\n      AlarmActions: [!Ref AlarmTopic]\n",
        "      MetricName: !Sub \"${AWS::StackName}-http-timeouts\"\n      Statistic: Sum\n      Period: 300\n      EvaluationPeriods: 1\n      DatapointsToAlarm: 1\n      Threshold: 0\n      ComparisonOperator: GreaterThanThreshold\n      TreatMissingData: notBreaching\n      AlarmActions: []\n",
    ),
    (
        "a timeout alarm that waits for two",
        "      MetricName: !Sub \"${AWS::StackName}-events-timeouts\"\n      Statistic: Sum\n      Period: 300\n      EvaluationPeriods: 1\n      DatapointsToAlarm: 1\n      Threshold: 0\n",
        "      MetricName: !Sub \"${AWS::StackName}-events-timeouts\"\n      Statistic: Sum\n      Period: 300\n      EvaluationPeriods: 1\n      DatapointsToAlarm: 1\n      Threshold: 1\n",
    ),
    (
        "an alarm off the dashboard",
        "\"${HttpCrashesAlarm.Arn}\", ",
        "",
    ),
    (
        "a metric off the dashboard",
        ",\n                   [\"crm\", \"${AWS::StackName}-events-crashes\", {\"label\": \"crashes\"}]",
        "",
    ),
    (
        "the envelope's timeouts off the dashboard",
        "              [\"crm\", \"${AWS::StackName}-envelope-timeouts\", {\"label\": \"timeouts\"}],\n",
        "",
    ),
    (
        "the path in the access log",
        "\"httpMethod\":\"$context.httpMethod\"",
        "\"httpMethod\":\"$context.httpMethod\",\"path\":\"$context.path\"",
    ),
    (
        "the error message in the access log",
        "\"errorType\":\"$context.error.responseType\"",
        "\"errorMessage\":\"$context.error.message\"",
    ),
    (
        "the user agent in the access log",
        "\"ip\":\"$context.identity.sourceIp\"",
        "\"ip\":\"$context.identity.sourceIp\",\"agent\":\"$context.identity.userAgent\"",
    ),
];

/// Edits that break a promise of the HTTP API template.
const DRIFTS_OF_THE_HTTP_API: &[(&str, &str, &str)] = &[
    (
        "a document route without a route",
        "      RouteKey: DELETE /Customers\n",
        "      RouteKey: PUT /Customers\n",
    ),
    ("$default with JWT", "    Condition: NotJwt\n", ""),
    (
        "a scope condition that ignores its parameter",
        "  HasJwtReadScope: !And [!Condition IsJwt, !Not [!Equals [!Ref JwtReadScope, \"\"]]]\n",
        "  HasJwtReadScope: !Condition IsJwt\n",
    ),
    (
        "no default scope",
        "    Default: crm/customers.write\n",
        "    Default: \"\"\n",
    ),
    (
        "a preflight route behind the authorizer",
        "      RouteKey: OPTIONS /\n      Target: !Sub \"integrations/${HttpApiIntegration}\"\n      AuthorizationType: NONE\n",
        "      RouteKey: OPTIONS /\n      Target: !Sub \"integrations/${HttpApiIntegration}\"\n      AuthorizationType: !Ref AuthMode\n",
    ),
    (
        "OPTIONS open without CORS",
        "  HttpApiPreflightProxyRoute:\n    Type: AWS::ApiGatewayV2::Route\n    Condition: HasCors\n",
        "  HttpApiPreflightProxyRoute:\n    Type: AWS::ApiGatewayV2::Route\n",
    ),
];

/// Edits that break a promise of the REST API template.
const DRIFTS_OF_THE_REST_API: &[(&str, &str, &str)] = &[
    (
        "two clients on one usage plan",
        "      UsagePlanId: !Ref Client3UsagePlan\n",
        "      UsagePlanId: !Ref Client2UsagePlan\n",
    ),
    (
        "a client on another slot's limits",
        "        BurstLimit: !Ref Client2BurstLimit\n",
        "        BurstLimit: !Ref Client1BurstLimit\n",
    ),
    (
        "a slot's key without its condition",
        "  Client4ApiKey:\n    Type: AWS::ApiGateway::ApiKey\n    Condition: HasClient4\n",
        "  Client4ApiKey:\n    Type: AWS::ApiGateway::ApiKey\n",
    ),
    (
        "a renamed client keeping its key",
        "      Name: !Sub \"${AWS::StackName}-${Client2Name}\"\n",
        "",
    ),
    (
        "slot 1 keeping its key under any name",
        "      Name: !If [Client1KeepsGeneratedName, !Ref AWS::NoValue, !Sub \"${AWS::StackName}-${Client1Name}\"]\n",
        "",
    ),
    (
        "a client's key disabled",
        "(slot 1)\"\n      Enabled: true\n",
        "(slot 1)\"\n      Enabled: false\n",
    ),
    (
        "a plan on no stage",
        "          Stage: !Ref RestApiStage\n",
        "          Stage: prod\n",
    ),
    (
        "no output for a key",
        "    Value: !Ref Client3ApiKey\n",
        "    Value: !Ref Client3UsagePlan\n",
    ),
    (
        "a stack that may have no client",
        "          - !Not [!Equals [!Ref Client4Name, \"\"]]\n",
        "",
    ),
    (
        "a method without the key",
        "      ApiKeyRequired: true\n",
        "      ApiKeyRequired: false\n",
    ),
    (
        "OPTIONS open without CORS",
        "      ApiKeyRequired: !If [HasCors, false, true]\n",
        "      ApiKeyRequired: false\n",
    ),
    (
        "execution logs",
        "          LoggingLevel: \"OFF\"\n",
        "          LoggingLevel: INFO\n",
    ),
    (
        "the query string in the WAF logs",
        "        - QueryString: {}\n",
        "",
    ),
];

/// Edits that give an HTTP API route the wrong scope, or no authorizer.
fn scope_drifts() -> Vec<(&'static str, String, String)> {
    let route = |key: &str, parameter: &str| {
        format!(
            "      RouteKey: {key}\n      Target: !Sub \"integrations/${{HttpApiIntegration}}\"\n      AuthorizationType: !Ref AuthMode\n      AuthorizerId: !If [IsJwt, !Ref HttpApiJwtAuthorizer, !Ref AWS::NoValue]\n      AuthorizationScopes: !If [Has{parameter}, !Split [\",\", !Ref {parameter}], !Ref AWS::NoValue]\n"
        )
    };
    let swapped = |key: &str, from: &str, to: &str| (route(key, from), route(key, to));
    let http_routes = [
        ("a read asking for the write scope", swapped("GET /customers/{id}", "JwtReadScope", "JwtWriteScope")),
        ("the search asking for the write scope", swapped("POST /customers/search", "JwtReadScope", "JwtWriteScope")),
        ("a delete asking for the read scope", swapped("DELETE /customers/{id}", "JwtWriteScope", "JwtReadScope")),
        ("the envelope asking for the read scope", swapped("POST /DynamoDBManager", "JwtWriteScope", "JwtReadScope")),
        ("a change of the compatibility route asking for the read scope", swapped("PATCH /Customers", "JwtWriteScope", "JwtReadScope")),
        (
            "a route without the authorizer",
            (
                route("GET /health", "JwtReadScope"),
                route("GET /health", "JwtReadScope").replace(
                    "      AuthorizerId: !If [IsJwt, !Ref HttpApiJwtAuthorizer, !Ref AWS::NoValue]\n",
                    "",
                ),
            ),
        ),
    ];
    http_routes
        .into_iter()
        .map(|(what, (from, to))| (what, from, to))
        .collect()
}

/// The operability checks themselves: each edit below breaks a promise, and each must be reported.
/// An edit whose text is not found fails too, so the list cannot silently go stale.
#[test]
fn drift_in_alarms_routes_clients_or_gateway_records_is_reported() {
    let scopes = scope_drifts();
    for name in TEMPLATES {
        let original = template_text(name);
        assert_keeps(
            name,
            "the unchanged template",
            &operability_disagreements(&original),
        );
        let specific: Vec<(&str, &str, &str)> = if name == "template.yaml" {
            scopes
                .iter()
                .map(|(w, f, t)| (*w, f.as_str(), t.as_str()))
                .chain(DRIFTS_OF_THE_HTTP_API.iter().copied())
                .collect()
        } else {
            DRIFTS_OF_THE_REST_API.to_vec()
        };
        for (what, from, to) in DRIFTS_OF_EITHER.iter().copied().chain(specific) {
            assert!(
                original.contains(from),
                "mutation \"{what}\": deploy/{name} no longer contains {from:?}; update the test"
            );
            let drifted = original.replacen(from, to, 1);
            assert!(
                !operability_disagreements(&drifted).is_empty(),
                "mutation \"{what}\" was not reported in deploy/{name}"
            );
        }
    }
}
