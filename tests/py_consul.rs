//! A third-party Consul client against the HTTP shim: the real py-consul library from
//! PyPI runs `tests/py/consul_compat.py` (KV get/put/delete/recurse/cas/keys, a blocking
//! index loop, transactions; agent service and TTL check registration, catalog and
//! health queries, catalog register/deregister, members). `.ci/test` installs py-consul into a virtualenv and points
//! `ROSTRA_PYTHON` at it.

mod common;

use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn py_consul_works_unchanged() {
    let python = std::env::var("ROSTRA_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_client = Command::new(&python)
        .args(["-c", "import consul"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        has_client,
        "{python} cannot import py-consul; run the suite with .ci/test, which installs it into ~/.cache/rostra/venv"
    );
    let (server, _dir) = common::dev_server().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/consul_compat.py");
    let addr = server.http_addr.to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .env("CONSUL_HTTP_ADDR", addr)
            .output()
            .expect("run python")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "py-consul checks failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all checks passed"));
    server
        .shutdown()
        .await
        .expect("the server shuts down and closes its database");
}
