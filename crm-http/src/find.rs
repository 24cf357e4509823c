//! Finding customers: the one reading of the filters that `GET /customers` takes in its query and
//! `POST /customers/search` in a JSON body, so that the two forms cannot drift apart.
//!
//! Each form only collects its members into [`Filters`] (rejecting unknown and repeated ones, and
//! in JSON values of the wrong type); [`Filters::read`] then checks them together and makes the
//! one [`Find`] both handlers answer:
//!
//! | members | finds | otherwise |
//! | --- | --- | --- |
//! | `email` alone | the customer with that email, or nobody | 400 with anything else; 422 on `email` |
//! | `name`, optional `sort` (`name`), `limit`, `cursor` | the customers whose name starts with the text, in name order | 400 with `updatedSince` or another sort; 422 on `name` |
//! | `updatedSince`, optional `sort` (`updatedAt`), `limit`, `cursor` | the change feed from that time, tombstones included | 400 with another sort or a time that is not RFC 3339 |
//! | optional `sort`, `limit`, `cursor` | every customer, in the order (`createdAt` by default) | 400 for an unknown sort |
//!
//! No message repeats a value the client sent: a name or an email never comes back in an error.
//! Member names (an unknown one included) may, as everywhere in this API.

use std::fmt;

use axum::extract::Query;
use crm_domain::{
    Cursor, Email, Listing, NamePrefix, PageLimit, SortOrder, Timestamp, ValidationErrors,
};
use http::Uri;
use serde_json::Value;

use crate::distinct;
use crate::error::ApiError;

/// What a request to find customers asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Find {
    /// The customer with this email (compared case-insensitively), if any: a page of one or none.
    Email(Email),
    /// A page of a listing: every customer in an order, or a search by name.
    Listing {
        listing: Listing,
        limit: PageLimit,
        cursor: Option<Cursor>,
    },
    /// A page of the change feed from `since`.
    Changes {
        since: Timestamp,
        limit: PageLimit,
        cursor: Option<Cursor>,
    },
}

/// The members both forms take, in the order messages list them.
pub(crate) const MEMBERS: &str = "name, email, updatedSince, sort, limit and cursor";

/// The filters of a request as the client gave them, each at most once, before they are read
/// together.
#[derive(Debug, Default)]
pub(crate) struct Filters {
    name: Option<String>,
    email: Option<String>,
    updated_since: Option<String>,
    sort: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Why a member could not be taken.
enum Refused {
    /// No filter has this name.
    Unknown,
    /// The member was given before.
    Repeated,
}

impl Filters {
    /// The place of the member called `member`.
    fn slot(&mut self, member: &str) -> Option<&mut Option<String>> {
        Some(match member {
            "name" => &mut self.name,
            "email" => &mut self.email,
            "updatedSince" => &mut self.updated_since,
            "sort" => &mut self.sort,
            "limit" => &mut self.limit,
            "cursor" => &mut self.cursor,
            _ => return None,
        })
    }

    /// Takes `value` for `member`.
    fn set(&mut self, member: &str, value: String) -> Result<(), Refused> {
        let slot = self.slot(member).ok_or(Refused::Unknown)?;
        match slot.replace(value) {
            Some(_) => Err(Refused::Repeated),
            None => Ok(()),
        }
    }

    /// The filters of the query string of `GET /customers`.
    ///
    /// # Errors
    /// 400 when the query is not form-urlencoded, or names a parameter that is unknown or given
    /// twice; then those of [`Filters::read`].
    pub(crate) fn from_query(uri: &Uri) -> Result<Find, ApiError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|_| bad("the query string is not valid application/x-www-form-urlencoded"))?;
        let mut filters = Self::default();
        for (name, value) in pairs {
            filters.set(&name, value).map_err(|refused| match refused {
                // The name goes back to the client who sent it, never to a log.
                Refused::Unknown => bad(format!(
                    "unknown query parameter `{name}`; GET /customers takes {MEMBERS}"
                )),
                Refused::Repeated => {
                    bad(format!("query parameter `{name}` is given more than once"))
                }
            })?;
        }
        filters.read()
    }

    /// The filters of the JSON body of `POST /customers/search`: an object whose members are all
    /// optional; `null` is the same as leaving a member out (so that a client may send back the
    /// `nextCursor` of the last page as it is).
    ///
    /// # Errors
    /// 400 `malformed-json` when the body is not JSON or repeats a member name; 400 when it is not
    /// an object, or a member is unknown or of the wrong JSON type; then those of
    /// [`Filters::read`].
    pub(crate) fn from_json(body: &[u8]) -> Result<Find, ApiError> {
        let Value::Object(members) = distinct::from_slice(body).map_err(ApiError::MalformedJson)?
        else {
            return Err(bad(format!(
                "the body must be a JSON object with any of the members {MEMBERS}"
            )));
        };
        let mut filters = Self::default();
        for (name, value) in members {
            let Some(slot) = filters.slot(&name) else {
                return Err(bad(format!(
                    "unknown member `{name}`; POST /customers/search takes {MEMBERS}"
                )));
            };
            *slot = match (name.as_str(), value) {
                (_, Value::Null) => None,
                // The number as written: `PageLimit::parse` refuses what is not an integer in range.
                ("limit", Value::Number(n)) => Some(n.to_string()),
                ("limit", _) => {
                    return Err(bad("member `limit` must be a JSON integer from 1 to 100"));
                }
                (_, Value::String(text)) => Some(text),
                (_, _) => return Err(bad(format!("member `{name}` must be a JSON string"))),
            };
        }
        filters.read()
    }

    /// The filters read together: which [`Find`] they ask for.
    ///
    /// # Errors
    /// 400 for a combination the API does not serve (`email` with anything; `name` with
    /// `updatedSince`; a `sort` the filter does not come in), an unknown sort, a bad limit, a time
    /// that is not RFC 3339, or a cursor not shaped like one this API issues; 422 for an invalid
    /// `email` or `name`.
    pub(crate) fn read(self) -> Result<Find, ApiError> {
        let Self {
            name,
            email,
            updated_since,
            sort,
            limit,
            cursor,
        } = self;
        if let Some(email) = email {
            let others: Vec<&str> = [
                ("name", name.is_some()),
                ("updatedSince", updated_since.is_some()),
                ("sort", sort.is_some()),
                ("limit", limit.is_some()),
                ("cursor", cursor.is_some()),
            ]
            .into_iter()
            .filter_map(|(member, given)| given.then_some(member))
            .collect();
            if !others.is_empty() {
                return Err(bad(format!(
                    "email cannot be combined with {}: a lookup by email finds at most one customer, so it takes no other filter, sort, limit or cursor",
                    Words(&others)
                )));
            }
            return Email::parse(&email)
                .map(Find::Email)
                .map_err(|e| ValidationErrors::single("email", e.message()).into());
        }
        if name.is_some() && updated_since.is_some() {
            return Err(bad(
                "name and updatedSince cannot be combined: search by name, or read the changes since a time",
            ));
        }
        let sort = sort
            .map(|s| s.parse::<SortOrder>())
            .transpose()
            .map_err(|e| bad(format!("sort {}", e.message())))?;
        let limit = limit
            .map(|l| PageLimit::parse(&l))
            .transpose()
            .map_err(|e| bad(format!("limit {}", e.message())))?
            .unwrap_or_default();
        let cursor = cursor
            .map(|c| Cursor::parse(&c))
            .transpose()
            .map_err(|_| ApiError::MalformedCursor)?;
        if let Some(name) = name {
            if sort.is_some_and(|s| s != SortOrder::Name) {
                return Err(bad(
                    "a search by name comes in name order: sort must be name, or be left out",
                ));
            }
            let prefix = NamePrefix::parse(&name)
                .map_err(|e| ValidationErrors::single("name", e.message()))?;
            return Ok(Find::Listing {
                listing: Listing::Name(prefix),
                limit,
                cursor,
            });
        }
        if let Some(since) = updated_since {
            if sort.is_some_and(|s| s != SortOrder::UpdatedAt) {
                return Err(bad(
                    "the changes since a time (updatedSince) come in updatedAt order: sort must be updatedAt, or be left out",
                ));
            }
            let since = Timestamp::parse(&since).map_err(|_| {
                bad(
                    "updatedSince must be an RFC 3339 date-time, such as 2026-11-22T04:15:20Z (in a URL, write the + of an offset as %2B)",
                )
            })?;
            return Ok(Find::Changes {
                since,
                limit,
                cursor,
            });
        }
        Ok(Find::Listing {
            listing: Listing::All(sort.unwrap_or_default()),
            limit,
            cursor,
        })
    }
}

fn bad(detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest(detail.into())
}

/// Names in a sentence: `a`, `a and b`, `a, b and c`.
struct Words<'a>(&'a [&'a str]);

impl fmt::Display for Words<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, word) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(if i + 1 == self.0.len() { " and " } else { ", " })?;
            }
            f.write_str(word)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(q: &str) -> Result<Find, ApiError> {
        Filters::from_query(&format!("/customers?{q}").parse::<Uri>().unwrap())
    }

    fn json(body: &str) -> Result<Find, ApiError> {
        Filters::from_json(body.as_bytes())
    }

    fn detail(result: Result<Find, ApiError>) -> (u16, String) {
        let error = result.unwrap_err();
        (error.status().as_u16(), error.problem().detail)
    }

    #[test]
    fn no_filter_lists_everyone_by_creation() {
        let expected = Find::Listing {
            listing: Listing::All(SortOrder::CreatedAt),
            limit: PageLimit::DEFAULT,
            cursor: None,
        };
        assert_eq!(query("").unwrap(), expected);
        assert_eq!(json("{}").unwrap(), expected);
        assert_eq!(
            json(r#"{"sort": null, "limit": null, "cursor": null}"#).unwrap(),
            expected
        );
    }

    #[test]
    fn both_forms_read_into_the_same_find() {
        let pairs = [
            (
                "sort=-createdAt&limit=5",
                r#"{"sort": "-createdAt", "limit": 5}"#,
            ),
            ("sort=name", r#"{"sort": "name"}"#),
            (
                "sort=updatedAt&cursor=abc",
                r#"{"sort": "updatedAt", "cursor": "abc"}"#,
            ),
            ("name=%C3%89mile", r#"{"name": "Émile"}"#),
            (
                "name=zo&sort=name&limit=3",
                r#"{"name": "zo", "sort": "name", "limit": 3}"#,
            ),
            (
                "updatedSince=2026-01-01T00:00:00Z",
                r#"{"updatedSince": "2026-01-01T00:00:00Z"}"#,
            ),
            (
                "updatedSince=2026-01-01T02:00:00%2B02:00&sort=updatedAt",
                r#"{"updatedSince": "2026-01-01T02:00:00+02:00", "sort": "updatedAt"}"#,
            ),
            ("email=ada%40example.com", r#"{"email": "ada@example.com"}"#),
        ];
        for (q, body) in pairs {
            assert_eq!(query(q).unwrap(), json(body).unwrap(), "{q}");
        }
        assert_eq!(
            query("updatedSince=2026-01-01T02:00:00%2B02:00").unwrap(),
            Find::Changes {
                since: Timestamp::parse("2026-01-01T00:00:00Z").unwrap(),
                limit: PageLimit::DEFAULT,
                cursor: None,
            }
        );
    }

    #[test]
    fn both_forms_refuse_alike() {
        let pairs = [
            ("sort=size", r#"{"sort": "size"}"#, 400),
            ("sort=", r#"{"sort": ""}"#, 400),
            ("limit=0", r#"{"limit": 0}"#, 400),
            ("limit=1.5", r#"{"limit": 1.5}"#, 400),
            (
                "cursor=not%20a%20cursor",
                r#"{"cursor": "not a cursor"}"#,
                400,
            ),
            (
                "name=a&email=a%40b.co",
                r#"{"name": "a", "email": "a@b.co"}"#,
                400,
            ),
            (
                "email=a%40b.co&limit=2",
                r#"{"email": "a@b.co", "limit": 2}"#,
                400,
            ),
            (
                "email=a%40b.co&sort=name",
                r#"{"email": "a@b.co", "sort": "name"}"#,
                400,
            ),
            (
                "name=a&updatedSince=2026-01-01T00:00:00Z",
                r#"{"name": "a", "updatedSince": "2026-01-01T00:00:00Z"}"#,
                400,
            ),
            (
                "name=a&sort=createdAt",
                r#"{"name": "a", "sort": "createdAt"}"#,
                400,
            ),
            (
                "updatedSince=2026-01-01T00:00:00Z&sort=name",
                r#"{"updatedSince": "2026-01-01T00:00:00Z", "sort": "name"}"#,
                400,
            ),
            (
                "updatedSince=yesterday",
                r#"{"updatedSince": "yesterday"}"#,
                400,
            ),
            ("name=", r#"{"name": ""}"#, 422),
            ("name=%20%20", r#"{"name": "  "}"#, 422),
            ("email=nope", r#"{"email": "nope"}"#, 422),
        ];
        for (q, body, status) in pairs {
            let (got, text) = detail(query(q));
            assert_eq!(got, status, "{q}: {text}");
            assert_eq!(detail(json(body)), (got, text), "{body}");
        }
    }

    #[test]
    fn messages_say_what_is_supported_and_never_repeat_a_value() {
        let (_, text) = detail(query("sort=secret-sort"));
        assert!(text.contains(&SortOrder::supported()), "{text}");
        assert!(!text.contains("secret-sort"), "{text}");
        let (_, text) = detail(query("email=ada%40example.com&name=Lovelace"));
        assert!(
            text.contains("name") && !text.contains("Lovelace"),
            "{text}"
        );
        assert!(!text.contains("ada@example.com"), "{text}");
        let (_, text) = detail(query("updatedSince=Lovelace"));
        assert!(
            text.contains("RFC 3339") && !text.contains("Lovelace"),
            "{text}"
        );
        let (_, text) = detail(query("name=Lovelace&sort=createdAt"));
        assert!(text.contains("sort must be name"), "{text}");
        let (_, text) = detail(query("updatedSince=2026-01-01T00:00:00Z&sort=name"));
        assert!(text.contains("sort must be updatedAt"), "{text}");
        assert_eq!(
            Words(&["a", "b", "c"]).to_string(),
            "a, b and c",
            "the list of members"
        );
    }

    #[test]
    fn a_member_is_taken_once_and_only_if_known() {
        let (status, text) = detail(query("name=a&name=b"));
        assert_eq!(status, 400);
        assert!(text.contains("more than once"), "{text}");
        let (status, text) = detail(json(r#"{"name": "a", "name": "b"}"#));
        assert_eq!(status, 400);
        assert!(text.contains("more than once"), "{text}");
        let (status, text) = detail(json(r#"{"Name": "a"}"#));
        assert_eq!(status, 400);
        assert!(text.contains("`Name`") && text.contains(MEMBERS), "{text}");
        let (status, text) = detail(query("page=2"));
        assert_eq!(status, 400);
        assert!(text.contains("`page`") && text.contains(MEMBERS), "{text}");
    }

    #[test]
    fn json_values_of_the_wrong_type_or_shape_are_400s() {
        for body in [
            r#"{"limit": "5"}"#,
            r#"{"name": 5}"#,
            r#"{"email": ["a@b.co"]}"#,
            r#"{"cursor": {}}"#,
            r#"{"sort": true}"#,
            "[]",
            r#""name""#,
            "null",
        ] {
            let error = json(body).unwrap_err();
            assert_eq!(error.code(), "bad-request", "{body}");
        }
        for body in ["", "{", r#"{"name": "a"} x"#, "{name: 1}"] {
            let error = json(body).unwrap_err();
            assert_eq!(error.code(), "malformed-json", "{body}");
        }
    }
}
