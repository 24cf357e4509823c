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

/// The source of every change event (the contract): the only one the events function may
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
