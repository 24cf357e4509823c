//! A small HTTP/1.1 client for a crm server's API (`--url`): plain TCP, keep-alive connections
//! kept in a pool, one request at a time on each.
//!
//! It is for a local server and trials, so it speaks plain `http://` only; the AWS deployment
//! is reached through DynamoDB, with the operator's credentials. It is hyper's own connection
//! API (already in the tree through axum) rather than a client crate.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

use crate::exit::Failure;

/// The most one request may take, connecting included.
const REQUEST_TIMEOUT: Duration = Duration::from_mins(1);

/// A failed exchange: whether trying again may help, and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// True for a connection that failed or timed out: the request may or may not have been
    /// served.
    pub transient: bool,
    /// What happened, in one line.
    pub message: String,
}

/// The API of one crm server.
pub struct HttpApi {
    url: String,
    authority: String,
    base_path: String,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl std::fmt::Debug for HttpApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpApi")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl HttpApi {
    /// The API at `url` (`http://host:port`, optionally with a path prefix such as a stage).
    ///
    /// # Errors
    /// When `url` is not an `http://` URL with a host.
    pub fn new(url: &str) -> Result<Self, Failure> {
        let invalid = |why: &str| Failure::input(format!("--url {url}: {why}"));
        let uri: http::Uri = url
            .parse()
            .map_err(|_| invalid("is not a URL, such as http://127.0.0.1:3000"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(invalid(
                    "only plain http:// is supported (a local server); reach a deployment through its DynamoDB table",
                ));
            }
            _ => return Err(invalid("must start with http://")),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| invalid("has no host"))?
            .as_str()
            .to_owned();
        if authority.contains('@') {
            return Err(invalid("must not hold a user name or password"));
        }
        let authority = if uri.port().is_some() {
            authority
        } else {
            format!("{authority}:80")
        };
        if uri.query().is_some() {
            return Err(invalid("must not have a query"));
        }
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            authority,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// The base URL, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends one request; `path` starts with `/` and is put after the URL's own path.
    ///
    /// # Errors
    /// When no answer came: the connection failed or the request timed out.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        json: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), HttpError> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(method, path, json))
            .await
            .unwrap_or_else(|_| {
                Err(HttpError {
                    transient: true,
                    message: format!("{} did not answer within {REQUEST_TIMEOUT:?}", self.url),
                })
            })
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        json: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), HttpError> {
        let mut sender = self.connection().await?;
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_path))
            .header(header::HOST, &self.authority)
            .header(header::ACCEPT, "application/json");
        if json.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(json.unwrap_or_default())))
            .map_err(|e| HttpError {
                transient: false,
                message: format!("cannot build a request: {e}"),
            })?;
        let failed = |e: hyper::Error| HttpError {
            transient: true,
            message: format!("{}: {e}", self.url),
        };
        let response = sender.send_request(request).await.map_err(failed)?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(failed)?
            .to_bytes();
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(sender);
        }
        Ok((status, body))
    }

    /// An idle connection that is still open, or a new one.
    async fn connection(&self) -> Result<SendRequest<Full<Bytes>>, HttpError> {
        loop {
            let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            let Some(mut sender) = idle else { break };
            if sender.ready().await.is_ok() {
                return Ok(sender);
            }
        }
        let unreachable = |e: &dyn std::fmt::Display| HttpError {
            transient: true,
            message: format!("cannot reach {}: {e}", self.url),
        };
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| unreachable(&e))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(&e))?;
        tokio::spawn(async move {
            // Ends when the connection closes; its errors reach the request that meets them.
            let _ = connection.await;
        });
        Ok(sender)
    }
}

/// `text` as a query value: unreserved characters kept, every other byte percent-encoded.
pub fn query_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_urls_with_a_host_are_taken() {
        let api = HttpApi::new("http://127.0.0.1:3000/").unwrap();
        assert_eq!(api.authority, "127.0.0.1:3000");
        assert_eq!(api.base_path, "");
        let staged = HttpApi::new("http://localhost/prod").unwrap();
        assert_eq!(staged.authority, "localhost:80");
        assert_eq!(staged.base_path, "/prod");
        for bad in [
            "https://example.com",
            "127.0.0.1:3000",
            "ftp://x",
            "http://u:p@host",
            "http://h/?q=1",
        ] {
            assert!(HttpApi::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(query_value("a+b/c=="), "a%2Bb%2Fc%3D%3D");
        assert_eq!(query_value("-createdAt"), "-createdAt");
    }
}
