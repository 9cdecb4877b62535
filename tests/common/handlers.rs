//! Watch handlers that record what they were given: a script appending its stdin (one
//! JSON line per run) to a file, and readers of those files.

use std::path::Path;

use serde_json::{json, Value};

use super::wait_until;

/// A handler appending its stdin (one JSON line per run) to `out/<name>`.
pub fn appender(out: &Path, name: &str) -> Value {
    json!(["sh", "-c", format!("cat >> {}", out.join(name).display())])
}

/// Every JSON line a handler wrote so far.
pub fn runs(out: &Path, name: &str) -> Vec<Value> {
    std::fs::read_to_string(out.join(name))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {l:?}: {e}")))
        .collect()
}

pub async fn wait_runs(out: &Path, name: &str, n: usize) -> Vec<Value> {
    let what = format!("{name} handler has run {n} times");
    wait_until(&what, || async { runs(out, name).len() >= n }).await;
    let got = runs(out, name);
    assert_eq!(got.len(), n, "{name} ran more often than expected: {got:?}");
    got
}

/// The event names in handler runs, in delivery order.
pub fn names(runs: &[Value]) -> Vec<String> {
    runs.iter()
        .flat_map(|r| r.as_array().unwrap().clone())
        .map(|e| e["Name"].as_str().unwrap().to_string())
        .collect()
}
