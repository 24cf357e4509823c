//! Following a store's change events: the printer of the quickstart, shared with its test.

use std::io::Write;

use crm_memory::Subscription;

/// Writes each event of `subscription` to `out` as one line, `event: ` and its JSON, as it comes,
/// until the store is dropped and every event it sent was written; answers how many it wrote.
///
/// # Errors
/// When `out` refuses a line.
pub async fn print_events(
    mut subscription: Subscription,
    mut out: impl Write,
) -> std::io::Result<usize> {
    let mut written = 0;
    while let Some(event) = subscription.recv().await {
        writeln!(out, "event: {}", serde_json::to_string(&event)?)?;
        written += 1;
    }
    Ok(written)
}
