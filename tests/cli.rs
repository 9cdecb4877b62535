//! `rostractl` as a user runs it: the real binary against an in-process dev server,
//! including the walkthrough's KV and watch steps.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::ctl;

fn ctl_stdin(addr: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(common::rostractl_bin())
        .args(args)
        .env("ROSTRA_ADDR", addr)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs blocking child-process work off the test's async runtime (the server lives there).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_commands_behave_like_consuls() {
    let (server, dir) = common::dev_server().await;
    let addr = server.grpc_addr.to_string();
    let file = dir.path().join("value.txt");
    std::fs::write(&file, "from a file").unwrap();
    let file = file.display().to_string();
    blocking(move || {
        let o = ctl(&addr, &["kv", "put", "app/name", "rostra"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o), "Success! Data written to: app/name\n");
        assert_eq!(stdout(&ctl(&addr, &["kv", "get", "app/name"])), "rostra\n");
        // A leading slash is stripped, as Consul's CLI does.
        assert_eq!(stdout(&ctl(&addr, &["kv", "get", "/app/name"])), "rostra\n");

        assert!(ctl(
            &addr,
            &["kv", "put", "-flags=42", "app/file", &format!("@{file}")]
        )
        .status
        .success());
        let o = ctl(&addr, &["kv", "get", "-detailed", "app/file"]);
        let text = stdout(&o);
        assert!(text.contains("Flags            42"), "{text}");
        assert!(text.contains("Value            from a file"), "{text}");
        let o = ctl_stdin(&addr, &["kv", "put", "app/stdin", "-"], b"piped\n");
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(
            stdout(&ctl(&addr, &["kv", "get", "-base64", "app/stdin"])),
            "cGlwZWQK\n"
        );
        assert!(ctl(&addr, &["kv", "put", "-base64", "app/b64", "aGk="])
            .status
            .success());
        assert_eq!(stdout(&ctl(&addr, &["kv", "get", "app/b64"])), "hi\n");

        let o = ctl(&addr, &["kv", "get", "-recurse", "app/"]);
        assert_eq!(
            stdout(&o),
            "app/b64:hi\napp/file:from a file\napp/name:rostra\napp/stdin:piped\n\n"
        );
        assert!(ctl(&addr, &["kv", "put", "app/dir/x", "1"])
            .status
            .success());
        assert_eq!(
            stdout(&ctl(&addr, &["kv", "get", "-keys", "app/"])),
            "app/b64\napp/dir/\napp/file\napp/name\napp/stdin\n"
        );
        assert_eq!(stdout(&ctl(&addr, &["kv", "keys", "app/d"])), "app/dir/\n");

        // Missing key, CAS conflict: message and exit 1.
        let o = ctl(&addr, &["kv", "get", "nope"]);
        assert_eq!(o.status.code(), Some(1));
        assert!(
            stderr(&o).contains("Error! No key exists at: nope"),
            "{}",
            stderr(&o)
        );
        let o = ctl(
            &addr,
            &["kv", "put", "-cas", "-modify-index=1", "app/name", "x"],
        );
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains("CAS failed"), "{}", stderr(&o));
        let o = ctl(&addr, &["kv", "put", "-cas", "app/name", "x"]);
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains("Must specify -modify-index with -cas!"));
        let o = ctl(
            &addr,
            &["kv", "put", "-cas", "-modify-index=abc", "app/name", "x"],
        );
        assert_eq!(
            o.status.code(),
            Some(2),
            "an unparsable index is a usage error"
        );
        let big = "x".repeat(512 * 1024 + 1);
        let o = ctl_stdin(&addr, &["kv", "put", "app/big", "-"], big.as_bytes());
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains("too large"), "{}", stderr(&o));

        // Export, delete, import round trip.
        let export = ctl(&addr, &["kv", "export", "app/"]);
        assert!(export.status.success());
        assert!(
            stdout(&export).starts_with("[\n\t{\n\t\t\"key\": \"app/b64\""),
            "{}",
            stdout(&export)
        );
        let o = ctl(&addr, &["kv", "delete", "-recurse", "app/"]);
        assert_eq!(stdout(&o), "Success! Deleted keys with prefix: app/\n");
        assert_eq!(
            ctl(&addr, &["kv", "get", "app/name"]).status.code(),
            Some(1)
        );
        let o = ctl_stdin(&addr, &["kv", "import", "-"], &export.stdout);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("Imported: app/name"));
        assert_eq!(stdout(&ctl(&addr, &["kv", "get", "app/name"])), "rostra\n");
        let o = ctl(&addr, &["kv", "delete", "app/name"]);
        assert_eq!(stdout(&o), "Success! Deleted key: app/name\n");
    })
    .await;
    server
        .shutdown()
        .await
        .expect("the server shuts down and closes its database");
}

#[tokio::test]
async fn errors_and_help_without_a_server() {
    blocking(|| {
        // Nothing listens on port 1.
        let o = ctl("127.0.0.1:1", &["kv", "get", "x"]);
        assert_eq!(o.status.code(), Some(1));
        assert!(
            stderr(&o).contains("Error connecting to Rostra agent"),
            "{}",
            stderr(&o)
        );
        // Flag validation happens before connecting, with Consul's texts.
        let o = ctl(
            "127.0.0.1:1",
            &["watch", "-type", "keyprefix", "application/online"],
        );
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(stderr(&o).trim(), "Must specify a single prefix to watch");
        let o = ctl("127.0.0.1:1", &["watch", "-type=key"]);
        assert_eq!(stderr(&o).trim(), "Must specify a single key to watch");
        for cmd in [
            &["--help"][..],
            &["kv", "--help"],
            &["kv", "put", "-help"],
            &["kv", "get", "--help"],
            &["kv", "delete", "--help"],
            &["kv", "export", "--help"],
            &["kv", "import", "--help"],
            &["watch", "--help"],
            &["bench", "put", "--help"],
        ] {
            let o = ctl("127.0.0.1:1", cmd);
            assert!(o.status.success(), "{cmd:?}: {}", stderr(&o));
            assert!(stdout(&o).contains("Usage"), "{cmd:?}");
        }
        let o = ctl("127.0.0.1:1", &["kv", "frobnicate"]);
        assert_eq!(o.status.code(), Some(2));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walkthrough_watch_prints_foo_then_bar() {
    let (server, _dir) = common::dev_server().await;
    let addr = server.grpc_addr.to_string();
    let a = addr.clone();
    blocking(move || {
        assert!(ctl(&a, &["kv", "put", "workshop/kv_watch", "foo"])
            .status
            .success())
    })
    .await;

    // The walkthrough's exact handler uses jq; the test command installs it when missing.
    let (mut watch, rx) = common::watch_lines(
        &addr,
        &[
            "-type=key",
            "-key=workshop/kv_watch",
            "jq -r .Value | base64 -d && echo",
        ],
    );
    let line = rx
        .recv_timeout(common::DEADLINE)
        .expect("first handler run");
    assert_eq!(line, "foo");
    let a = addr.clone();
    blocking(move || {
        assert!(ctl(&a, &["kv", "put", "workshop/kv_watch", "bar"])
            .status
            .success())
    })
    .await;
    let line = rx
        .recv_timeout(common::DEADLINE)
        .expect("handler run after the change");
    assert_eq!(line, "bar");
    // Writing the same value again changes nothing, so the handler must not run; a real
    // change afterwards is the next thing it prints.
    let a = addr.clone();
    blocking(move || {
        assert!(ctl(&a, &["kv", "put", "workshop/kv_watch", "bar"])
            .status
            .success());
        assert!(ctl(&a, &["kv", "put", "workshop/other", "zzz"])
            .status
            .success());
        assert!(ctl(&a, &["kv", "put", "workshop/kv_watch", "baz"])
            .status
            .success());
    })
    .await;
    assert_eq!(rx.recv_timeout(common::DEADLINE).unwrap(), "baz");
    let _ = watch.kill();
    let _ = watch.wait();

    // Without a handler: the current result as Consul's indented JSON, then exit 0.
    let a = addr.clone();
    let o =
        blocking(move || ctl(&a, &["watch", "-type", "keyprefix", "-prefix", "workshop/"])).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["Key"], "workshop/kv_watch");
    assert_eq!(v[0]["Value"], "YmF6");
    assert_eq!(v[0]["Session"], "");
    assert!(
        stdout(&o).contains("\n    {\n        \"Key\""),
        "{}",
        stdout(&o)
    );

    // Handler stdin for keyprefix is the whole array, and CONSUL_INDEX is set.
    let a = addr.clone();
    let o = blocking(move || {
        let mut child = Command::new(common::rostractl_bin())
            .args([
                "watch",
                "-type",
                "keyprefix",
                "-prefix",
                "workshop/",
                "cat; echo index=$CONSUL_INDEX; exit 3",
            ])
            .env("ROSTRA_ADDR", &a)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The handler exits 3, which stops the watch with exit 1, as in Consul.
        let status = child.wait().unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut text).unwrap();
        (status, text)
    })
    .await;
    assert_eq!(o.0.code(), Some(1));
    assert!(
        o.1.starts_with("[{\"Key\":\"workshop/kv_watch\""),
        "{}",
        o.1
    );
    assert!(o.1.contains("index="), "{}", o.1);
    server
        .shutdown()
        .await
        .expect("the server shuts down and closes its database");
}

/// The catalog watch types print Consul's JSON for the whole answer, rebuilt on the client
/// from the stream's deltas: once without a handler, and on every change with one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_watch_types_render_the_whole_answer() {
    let (server, _dir) = common::dev_server().await;
    let addr = server.grpc_addr.to_string();
    let client = rostra::client::Client::connect(&addr).await.unwrap();
    let mut catalog = client.catalog();
    let reg = |node: &str, status: rostra::pb::HealthStatus| rostra::pb::RegisterRequest {
        node: Some(rostra::pb::Node {
            name: node.into(),
            address: "10.0.0.9".into(),
            ..Default::default()
        }),
        service: Some(rostra::pb::ServiceInstance {
            name: "web".into(),
            port: 80,
            tags: vec!["v2".into()],
            ..Default::default()
        }),
        checks: vec![rostra::pb::HealthCheck {
            check_id: "web-alive".into(),
            name: "alive".into(),
            status: status as i32,
            service_id: "web".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    catalog
        .register(reg("n1", rostra::pb::HealthStatus::Passing))
        .await
        .unwrap();

    let a = addr.clone();
    let outputs = blocking(move || {
        [
            vec!["watch", "-type", "services"],
            vec!["watch", "-type", "nodes"],
            vec!["watch", "-type", "service", "-service", "web"],
            vec!["watch", "-type", "checks", "-service", "web"],
        ]
        .map(|args| ctl(&a, &args))
    })
    .await;
    let json = |o: &Output| -> serde_json::Value {
        assert!(o.status.success(), "{}", stderr(o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    assert_eq!(json(&outputs[0])["web"], serde_json::json!(["v2"]));
    let nodes = json(&outputs[1]);
    assert!(nodes
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["Node"] == "n1" && n["Address"] == "10.0.0.9"));
    let entries = json(&outputs[2]);
    assert_eq!(entries[0]["Service"]["Service"], "web");
    assert_eq!(entries[0]["Checks"][0]["Status"], "passing");
    assert_eq!(json(&outputs[3])[0]["CheckID"], "web-alive");

    // With a handler: the passing instances' node names, once now and after each change.
    let (mut watch, rx) = common::watch_lines(
        &addr,
        &[
            "-type=service",
            "-service=web",
            "-passingonly=true",
            "jq -c '[.[].Node.Node]'",
        ],
    );
    assert_eq!(rx.recv_timeout(common::DEADLINE).unwrap(), r#"["n1"]"#);
    catalog
        .register(reg("n2", rostra::pb::HealthStatus::Passing))
        .await
        .unwrap();
    assert_eq!(rx.recv_timeout(common::DEADLINE).unwrap(), r#"["n1","n2"]"#);
    catalog
        .register(reg("n1", rostra::pb::HealthStatus::Critical))
        .await
        .unwrap();
    assert_eq!(rx.recv_timeout(common::DEADLINE).unwrap(), r#"["n2"]"#);
    let _ = watch.kill();
    let _ = watch.wait();
    server
        .shutdown()
        .await
        .expect("the server shuts down and closes its database");
}
