//! Test-only failure points, compiled in with the cargo feature
//! `failpoints` (which `make test` turns on) and absent from the release
//! binary. They are armed through the `fail` crate's `FAILPOINTS`
//! environment variable, e.g. `FAILPOINTS=catalog-register=return(panic:x.txt)`;
//! a point that is not armed costs nothing. Each one names the document it
//! hits, so one server can host good and failing documents side by side.
//!
//! - `catalog-register=return(panic|error:FILENAME)`: registering an
//!   upload of that name makes the Catalog panic mid-batch, or fails that
//!   one operation.
//! - `extract-worker=return(FILENAME)`: an Extract worker that takes the
//!   document of that name dies holding it (only its lease notices).
//! - `parser=return`: in the parser process, a document containing
//!   `FAULT:panic`, `FAULT:hang`, `FAULT:abort` or `FAULT:oom` (after any
//!   prefix) makes the parser misbehave that way.

use crate::model::NewDocument;

/// Reads `FAILPOINTS` (once per process: the server and each parser).
pub fn setup() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::mem::forget(fail::FailScenario::setup()));
}

pub fn catalog_register(docs: &[NewDocument]) -> anyhow::Result<()> {
    fail::fail_point!("catalog-register", |spec: Option<String>| {
        let spec = spec.unwrap_or_default();
        let (action, name) = spec.split_once(':').unwrap_or(("panic", spec.as_str()));
        if docs.iter().any(|d| d.filename == name) {
            if action == "error" {
                anyhow::bail!("injected catalog error");
            }
            panic!("injected catalog fault");
        }
        Ok(())
    });
    Ok(())
}

pub fn extract_worker(filename: &str) {
    fail::fail_point!("extract-worker", |name: Option<String>| {
        if name.as_deref() == Some(filename) {
            panic!("injected worker fault");
        }
    });
}

pub fn parser(body: &[u8]) {
    fail::fail_point!("parser", |_| {
        if contains(body, b"FAULT:panic") {
            panic!("injected fault");
        }
        if contains(body, b"FAULT:hang") {
            loop {
                std::thread::park();
            }
        }
        if contains(body, b"FAULT:abort") {
            std::process::abort();
        }
        if contains(body, b"FAULT:oom") {
            // Far more than any sane limit: the allocation fails under RLIMIT_AS.
            let v: Vec<u8> = vec![1u8; 64 << 30];
            std::hint::black_box(v);
        }
    });
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}
