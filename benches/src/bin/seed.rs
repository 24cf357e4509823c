//! `seed`: pre-fills a running `crm-server` for the load harness (`benches/load.sh`).
//!
//! `seed ADDRESS COUNT CONNECTIONS CURSORS_FILE` creates customers `load-00000` … `load-<COUNT-1>`
//! (every field filled, as [`crm_benches::full_customer_json`] does) with `POST /customers` over
//! `CONNECTIONS` keep-alive connections, then walks every page of `GET /customers?limit=25` and
//! writes each page's cursor to `CURSORS_FILE`, one a line (the first page has none and is not
//! written), for the list-pages load script. Any status other than 201 on create or 200 on list
//! stops it with an error; the whole run is bounded by two minutes.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use serde_json::Value;

const PAGE: usize = 25;
const TIME_LIMIT: Duration = Duration::from_mins(2);

/// The id of the `i`-th load customer; the Lua scripts in `benches/load/` build the same.
fn load_id(i: usize) -> String {
    format!("load-{i:05}")
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [address, count, connections, cursors_file] = args.as_slice() else {
        eprintln!("usage: seed ADDRESS COUNT CONNECTIONS CURSORS_FILE");
        return ExitCode::FAILURE;
    };
    let run = async {
        let count: usize = count.parse().context("COUNT")?;
        let connections: usize = connections.parse().context("CONNECTIONS")?;
        if count > 100_000 {
            bail!("COUNT is at most 100000 (ids have five digits)");
        }
        let started = Instant::now();
        create_all(address, count, connections.max(1)).await?;
        let created_in = started.elapsed();
        let (pages, items, cursors) = walk_pages(address).await?;
        if items != count {
            bail!("the list pages hold {items} customers, not {count}: was the store empty?");
        }
        std::fs::write(cursors_file, cursors).with_context(|| cursors_file.clone())?;
        report(count, created_in, pages);
        Ok(())
    };
    match tokio::time::timeout(TIME_LIMIT, run).await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(error)) => {
            eprintln!("seed: {error:#}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("seed: not done within {TIME_LIMIT:?}");
            ExitCode::FAILURE
        }
    }
}

#[expect(
    clippy::print_stdout,
    reason = "the one summary line of the seeding step"
)]
fn report(count: usize, created_in: Duration, pages: usize) {
    println!("seed: created {count} customers in {created_in:.2?}; {pages} list pages of {PAGE}");
}

async fn connect(address: &str) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .with_context(|| format!("cannot connect to {address}"))?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Sends one request and returns its status and body.
async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    request: http::Request<Full<Bytes>>,
) -> anyhow::Result<(http::StatusCode, Bytes)> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

async fn create_all(address: &str, count: usize, connections: usize) -> anyhow::Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..connections.min(count.max(1)) {
        let mut sender = connect(address).await?;
        let next = Arc::clone(&next);
        let host = address.to_owned();
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, anyhow::Error>(());
                }
                let mut customer = crm_benches::full_customer_json(i);
                customer["id"] = Value::from(load_id(i));
                customer["email"] = Value::from(format!("{}@example.com", load_id(i)));
                let request = http::Request::post("/customers")
                    .header(http::header::HOST, &host)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(customer.to_string())))?;
                let (status, body) = send(&mut sender, request).await?;
                if status != http::StatusCode::CREATED {
                    bail!(
                        "POST /customers for {} answered {status}: {}",
                        load_id(i),
                        String::from_utf8_lossy(&body)
                    );
                }
            }
        });
    }
    while let Some(joined) = workers.join_next().await {
        joined??;
    }
    Ok(())
}

/// Walks every list page; returns the number of pages, of customers, and the cursors, one a line.
async fn walk_pages(address: &str) -> anyhow::Result<(usize, usize, String)> {
    let mut sender = connect(address).await?;
    let (mut pages, mut items, mut cursors) = (0, 0, String::new());
    let mut cursor: Option<String> = None;
    loop {
        let uri = match &cursor {
            None => format!("/customers?limit={PAGE}"),
            Some(cursor) => format!("/customers?limit={PAGE}&cursor={cursor}"),
        };
        let request = http::Request::get(&uri)
            .header(http::header::HOST, address)
            .body(Full::new(Bytes::new()))?;
        let (status, body) = send(&mut sender, request).await?;
        if status != http::StatusCode::OK {
            bail!("GET {uri} answered {status}");
        }
        let page: Value = serde_json::from_slice(&body).context("a list page")?;
        pages += 1;
        items += page["items"].as_array().map_or(0, Vec::len);
        match page["nextCursor"].as_str() {
            Some(next) => {
                let _ = writeln!(cursors, "{next}");
                cursor = Some(next.to_owned());
            }
            None => return Ok((pages, items, cursors)),
        }
    }
}
