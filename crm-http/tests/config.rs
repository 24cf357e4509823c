//! Every environment variable the configuration reads is listed in `config::VARIABLES` and
//! documented where users look: the configuration module's docs, the README and the operations
//! guide. Read from the sources, so that a variable added to the reader cannot go undocumented.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crm_http::config::VARIABLES;

/// The names `config.rs` passes to `get` and `set`, its only readers of variables, and to `count`
/// and `flag`, which read through `get`.
fn names_read() -> Vec<&'static str> {
    let source = include_str!("../src/config.rs");
    let mut names = Vec::new();
    for opener in ["get(\"", "set(\"", "count(\"", "flag(\""] {
        for (start, _) in source.match_indices(opener) {
            let rest = &source[start + opener.len()..];
            let name = &rest[..rest.find('"').unwrap()];
            if name.chars().all(|c| c.is_ascii_uppercase() || c == '_') && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

#[test]
fn every_variable_read_is_listed_and_documented() {
    let mut read = names_read();
    read.sort_unstable();
    let mut listed = VARIABLES.to_vec();
    listed.sort_unstable();
    assert_eq!(
        read, listed,
        "VARIABLES and the variables config.rs reads differ"
    );
    for (name, document) in [
        (
            "crm-http/src/config.rs's module docs",
            include_str!("../src/config.rs"),
        ),
        ("README.md", include_str!("../../README.md")),
        (
            "docs/operations.md",
            include_str!("../../docs/operations.md"),
        ),
    ] {
        for variable in VARIABLES {
            assert!(
                document.contains(&format!("`{variable}`")),
                "{name} does not document {variable}"
            );
        }
    }
}
