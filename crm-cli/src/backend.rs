//! The two stores a command works on, behind one small surface: the repository (DynamoDB,
//! through `crm-domain`'s service) or a crm server's HTTP API (`--url`).
//!
//! Both answer the same questions the same way: write a batch of new customers (each one
//! created, or refused because its id or email is taken, or unconfirmed), read one customer by
//! id or email, and read a page of a listing.

use std::collections::HashMap;

use crm_domain::{
    BulkRejection, Cursor, Customer, CustomerId, CustomerService, Email, FieldError, ImportSource,
    Listing, NewCustomer, PageLimit, RepositoryError, SortOrder,
};
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::exit::chain;
use crate::http_api::{HttpApi, HttpError, query_value};

/// What happened to one customer of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// It was created.
    Created,
    /// Its id is taken.
    IdTaken,
    /// Its email belongs to another customer.
    EmailTaken,
    /// The store stopped answering: maybe written, maybe not. Sending it again is safe.
    Unconfirmed,
    /// The store refused it as invalid (the API's rules are stricter than the file's reading).
    Invalid(Vec<FieldError>),
}

/// A store that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    /// True when trying again later may succeed (unavailable, throttling, a lost connection).
    pub transient: bool,
    /// What happened, in one line, without customer data.
    pub message: String,
}

impl StoreError {
    fn from_repository(error: &RepositoryError) -> Self {
        Self {
            transient: matches!(error, RepositoryError::Unavailable { .. }),
            message: chain(error),
        }
    }

    fn from_http(error: HttpError) -> Self {
        Self {
            transient: error.transient,
            message: error.message,
        }
    }

    fn refused(message: impl Into<String>) -> Self {
        Self {
            transient: false,
            message: message.into(),
        }
    }
}

/// How long to keep trying a store that does not answer: waits from 0.2 s, doubling up to 5 s,
/// until they add up to the patience.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patience(pub std::time::Duration);

impl Patience {
    /// The waits before each new try; none left means give up.
    pub fn waits(self) -> impl Iterator<Item = std::time::Duration> {
        let mut spent = std::time::Duration::ZERO;
        let mut next = std::time::Duration::from_millis(200);
        std::iter::from_fn(move || {
            if spent >= self.0 {
                return None;
            }
            let wait = next.min(self.0.saturating_sub(spent));
            spent += wait;
            next = (next * 2).min(std::time::Duration::from_secs(5));
            Some(wait)
        })
    }
}

/// The store of a command.
#[derive(Debug)]
pub enum Backend {
    /// A repository, through the domain's service.
    Repository(CustomerService),
    /// A crm server's HTTP API.
    Http(HttpApi),
}

/// One page of a listing.
pub type Page = (Vec<Customer>, Option<String>);

impl Backend {
    /// How many customers one write takes by default: a DynamoDB transaction's 50, the batch
    /// route's 100.
    pub fn default_batch_size(&self) -> usize {
        match self {
            Self::Repository(_) => 50,
            Self::Http(_) => 100,
        }
    }

    /// Writes `customers`, which all have ids and no two the same, as new customers of the
    /// import named `source`.
    ///
    /// # Errors
    /// When the whole write failed; [`StoreError::transient`] says whether to try again.
    pub async fn put(
        &self,
        source: &str,
        customers: Vec<NewCustomer>,
    ) -> Result<Vec<Written>, StoreError> {
        match self {
            Self::Repository(service) => {
                let positions: HashMap<CustomerId, usize> = customers
                    .iter()
                    .enumerate()
                    .filter_map(|(i, c)| c.id.clone().map(|id| (id, i)))
                    .collect();
                let count = customers.len();
                // Every customer has its id already (derived by the caller exactly as the service
                // would): the positions in the source are not contiguous, rejected rows apart.
                let source = ImportSource {
                    name: source,
                    first_position: 0,
                };
                let report = service
                    .import(source, customers)
                    .await
                    .map_err(|e| StoreError::from_repository(&e))?;
                let mut outcomes = vec![Written::Created; count];
                for (id, reason) in &report.rejected {
                    if let Some(i) = positions.get(id) {
                        outcomes[*i] = match reason {
                            BulkRejection::AlreadyExists => Written::IdTaken,
                            BulkRejection::EmailTaken => Written::EmailTaken,
                        };
                    }
                }
                for id in &report.unconfirmed {
                    if let Some(i) = positions.get(id) {
                        outcomes[*i] = Written::Unconfirmed;
                    }
                }
                Ok(outcomes)
            }
            Self::Http(api) => put_http(api, &customers).await,
        }
    }

    /// The customer with `id`, if any.
    ///
    /// # Errors
    /// When the store failed.
    pub async fn get(&self, id: &CustomerId) -> Result<Option<Customer>, StoreError> {
        match self {
            Self::Repository(service) => match service.get(id).await {
                Ok(customer) => Ok(Some(customer)),
                Err(RepositoryError::NotFound) => Ok(None),
                Err(e) => Err(StoreError::from_repository(&e)),
            },
            Self::Http(api) => {
                let path = format!("/customers/{}", query_value(id.as_str()));
                let (status, body) = api
                    .send(Method::GET, &path, None)
                    .await
                    .map_err(StoreError::from_http)?;
                match status {
                    StatusCode::OK => parse::<Customer>(&body).map(Some),
                    StatusCode::NOT_FOUND => Ok(None),
                    other => Err(unexpected(api, other, &body)),
                }
            }
        }
    }

    /// The customer with this email (case-insensitively), if any.
    ///
    /// # Errors
    /// When the store failed.
    pub async fn find_by_email(&self, email: &Email) -> Result<Option<Customer>, StoreError> {
        match self {
            Self::Repository(service) => service
                .find_by_email(email)
                .await
                .map_err(|e| StoreError::from_repository(&e)),
            Self::Http(api) => {
                // The search route, so that the address stays out of the URL.
                let body = serde_json::to_vec(&json!({ "email": email.as_str() }))
                    .map_err(|e| StoreError::refused(e.to_string()))?;
                let (status, body) = api
                    .send(Method::POST, "/customers/search", Some(body))
                    .await
                    .map_err(StoreError::from_http)?;
                match status {
                    StatusCode::OK => Ok(parse::<ListPage>(&body)?.items.into_iter().next()),
                    other => Err(unexpected(api, other, &body)),
                }
            }
        }
    }

    /// The page of every customer in `sort` order after `cursor`, 100 at most.
    ///
    /// # Errors
    /// When the store failed.
    pub async fn page(&self, sort: SortOrder, cursor: Option<&str>) -> Result<Page, StoreError> {
        match self {
            Self::Repository(service) => {
                let cursor = cursor
                    .map(Cursor::parse)
                    .transpose()
                    .map_err(|e| StoreError::refused(format!("a cursor {e}")))?;
                let page = service
                    .list(&Listing::All(sort), PageLimit::MAX, cursor.as_ref())
                    .await
                    .map_err(|e| StoreError::from_repository(&e))?;
                let next = page.next_cursor.as_ref().map(|c| c.as_str().to_owned());
                Ok((page.items, next))
            }
            Self::Http(api) => {
                let mut path = format!("/customers?limit=100&sort={}", query_value(sort.as_str()));
                if let Some(cursor) = cursor {
                    path.push_str("&cursor=");
                    path.push_str(&query_value(cursor));
                }
                let (status, body) = api
                    .send(Method::GET, &path, None)
                    .await
                    .map_err(StoreError::from_http)?;
                match status {
                    StatusCode::OK => {
                        let page = parse::<ListPage>(&body)?;
                        Ok((page.items, page.next_cursor))
                    }
                    other => Err(unexpected(api, other, &body)),
                }
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListPage {
    items: Vec<Customer>,
    #[serde(default)]
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct BatchAnswer {
    results: Vec<BatchResult>,
}

#[derive(Deserialize)]
struct BatchResult {
    status: u16,
    #[serde(default)]
    problem: Option<ProblemBody>,
}

#[derive(Deserialize)]
struct ProblemBody {
    #[serde(rename = "type", default)]
    problem_type: String,
    #[serde(default)]
    detail: String,
    #[serde(default)]
    errors: Option<Vec<FieldErrorBody>>,
}

#[derive(Deserialize)]
struct FieldErrorBody {
    field: String,
    message: String,
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(body).map_err(|e| {
        StoreError::refused(format!("the server answered what crm does not read: {e}"))
    })
}

fn unexpected(api: &HttpApi, status: StatusCode, body: &[u8]) -> StoreError {
    let detail = serde_json::from_slice::<ProblemBody>(body)
        .map(|p| p.detail)
        .unwrap_or_default();
    StoreError {
        transient: matches!(
            status,
            StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::BAD_GATEWAY
                | StatusCode::GATEWAY_TIMEOUT
                | StatusCode::TOO_MANY_REQUESTS
        ),
        message: format!("{} answered {status}: {detail}", api.url())
            .trim_end_matches([' ', ':'])
            .to_owned(),
    }
}

/// `POST /customers/batch`.
async fn put_http(api: &HttpApi, customers: &[NewCustomer]) -> Result<Vec<Written>, StoreError> {
    let items: Vec<Value> = customers.iter().map(customer_json).collect();
    let body = serde_json::to_vec(&json!({ "customers": items }))
        .map_err(|e| StoreError::refused(e.to_string()))?;
    let (status, body) = api
        .send(Method::POST, "/customers/batch", Some(body))
        .await
        .map_err(StoreError::from_http)?;
    match status {
        StatusCode::OK | StatusCode::MULTI_STATUS => {}
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => {
            return Err(StoreError::refused(format!(
                "{} has no POST /customers/batch: is it an older crm-server?",
                api.url()
            )));
        }
        other => return Err(unexpected(api, other, &body)),
    }
    let answer: BatchAnswer = parse(&body)?;
    if answer.results.len() != customers.len() {
        return Err(StoreError::refused(format!(
            "{} answered {} results for {} customers",
            api.url(),
            answer.results.len(),
            customers.len()
        )));
    }
    Ok(answer
        .results
        .into_iter()
        .map(|result| {
            let problem = result.problem.unwrap_or(ProblemBody {
                problem_type: String::new(),
                detail: String::new(),
                errors: None,
            });
            match result.status {
                201 => Written::Created,
                409 if problem.problem_type.ends_with(":email-taken") => Written::EmailTaken,
                409 if problem.problem_type.ends_with(":id-taken") => Written::IdTaken,
                422 => Written::Invalid(
                    problem
                        .errors
                        .unwrap_or_default()
                        .into_iter()
                        .map(|e| FieldError::new(e.field, e.message))
                        .collect(),
                ),
                429 | 500..=599 => Written::Unconfirmed,
                other => Written::Invalid(vec![FieldError::new(
                    "$",
                    format!("refused by the server ({other}): {}", problem.detail),
                )]),
            }
        })
        .collect())
}

/// A new customer in the API's JSON shape.
pub fn customer_json(customer: &NewCustomer) -> Value {
    let mut object = serde_json::Map::new();
    if let Some(id) = &customer.id {
        object.insert("id".into(), id.as_str().into());
    }
    object.insert("firstName".into(), customer.first_name.as_str().into());
    object.insert("lastName".into(), customer.last_name.as_str().into());
    if let Some(email) = &customer.email {
        object.insert("email".into(), email.as_str().into());
    }
    if let Some(phone) = &customer.phone {
        object.insert("phone".into(), phone.as_str().into());
    }
    if let Some(address) = &customer.address {
        object.insert(
            "address".into(),
            serde_json::to_value(address).unwrap_or(Value::Null),
        );
    }
    Value::Object(object)
}
