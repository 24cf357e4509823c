//! `crm-public-api <rustdoc.json>`: prints the crate's public API, one item per line, sorted.

use std::process::ExitCode;

#[derive(serde::Deserialize)]
struct Header {
    format_version: u32,
}

fn run(path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
    let header: Header =
        serde_json::from_str(&text).map_err(|e| format!("{path}: no format_version: {e}"))?;
    if header.format_version != rustdoc_types::FORMAT_VERSION {
        return Err(format!(
            "{path} has rustdoc JSON format_version {}, this tool reads {} \
             (bump public-api/rustdoc-types together with the toolchain)",
            header.format_version,
            rustdoc_types::FORMAT_VERSION
        ));
    }
    // Auto-trait (Send/Sync/Unpin/...) impls stay in: losing `Send` is a breaking change.
    // Blanket impls (`impl<T> Into<U> for T`, `Any`, `Borrow`, ...) are noise that follows from
    // the rest, so they are left out.
    let api = public_api::Builder::from_rustdoc_json(path)
        .omit_blanket_impls(true)
        .build()
        .map_err(|e| format!("{path}: {e}"))?;
    // `Builder` sorts by default: by item path, each type followed by its fields/variants, inherent
    // methods, then trait impls. Deterministic, and keeps a type's items together in diffs.
    Ok(api.to_string())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path] = args.as_slice() else {
        eprintln!("usage: crm-public-api <rustdoc.json>");
        return ExitCode::from(2);
    };
    match run(path) {
        Ok(listing) => {
            print!("{listing}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("crm-public-api: {e}");
            ExitCode::FAILURE
        }
    }
}
