//! `rostractl lock` as the walkthrough's §4 runs it, with the real binaries against an
//! in-process server: contenders take a lock one at a time, `-n=2` two at a time, a
//! semaphore of 5 keeps exactly 5 children of 6 running, and a child whose lock is lost
//! (its session destroyed) is signalled at once. Children record what they do in a
//! shared log file, so the order across processes is the order of the appends.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn lock(addr: &str, args: &[&str]) -> Child {
    Command::new(common::rostractl_bin())
        .arg("lock")
        .args(args)
        .env("ROSTRA_ADDR", addr)
        .env("SHELL", "/bin/sh")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("rostractl lock starts")
}

fn lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn wait_all(children: Vec<Child>) {
    for mut c in children {
        let status = c.wait().unwrap();
        assert!(status.success(), "rostractl lock exited {status}");
    }
}

/// The most children that were ever between their `start` and `end` lines, checking
/// each `end` follows its own `start`.
fn max_concurrent(log: &[String]) -> usize {
    let (mut running, mut max) = (std::collections::BTreeSet::new(), 0);
    for line in log {
        let (what, who) = line.split_once(' ').unwrap();
        match what {
            "start" => assert!(running.insert(who.to_string()), "{who} started twice"),
            "end" => assert!(running.remove(who), "{who} ended without starting"),
            other => panic!("unexpected line {other}"),
        }
        max = max.max(running.len());
    }
    assert!(running.is_empty(), "{running:?} never ended");
    max
}

fn log_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("log")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contenders_take_turns_one_or_two_at_a_time() {
    let (server, _dir) = common::dev_server().await;
    let addr = server.grpc_addr.to_string();
    let work = tempfile::tempdir().unwrap();
    let log = log_path(&work);
    let a = addr.clone();
    let l = log.clone();
    tokio::task::spawn_blocking(move || {
        let child = |i: usize| {
            format!(
                "echo start {i} >> {log} && sleep 0.3 && echo end {i} >> {log}",
                log = l.display()
            )
        };
        // One at a time: five ordered start/end pairs, never overlapping.
        let contenders: Vec<Child> = (1..=5)
            .map(|i| lock(&a, &["workshop/lock", &child(i)]))
            .collect();
        wait_all(contenders);
        let one = lines(&l);
        assert_eq!(one.len(), 10, "{one:?}");
        assert_eq!(max_concurrent(&one), 1, "{one:?}");
        for pair in one.chunks(2) {
            assert_eq!(pair[0].replace("start", "end"), pair[1], "{one:?}");
        }

        // -n=2: never more than two at once, and two while others wait.
        std::fs::remove_file(&l).unwrap();
        let contenders: Vec<Child> = (1..=5)
            .map(|i| lock(&a, &["-n=2", "workshop/sem", &child(i)]))
            .collect();
        wait_all(contenders);
        let two = lines(&l);
        assert_eq!(two.len(), 10, "{two:?}");
        assert_eq!(max_concurrent(&two), 2, "{two:?}");
    })
    .await
    .unwrap();
    // Everything was cleaned up: no coordination keys, no sessions.
    let client = rostra::client::Client::connect(&addr).await.unwrap();
    let left = client
        .list(rostra::pb::ListRequest {
            prefix: "workshop/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(left.kvs.is_empty(), "{:?}", left.kvs);
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_semaphore_of_five_keeps_five_of_six_running() {
    let (server, _dir) = common::dev_server().await;
    let addr = server.grpc_addr.to_string();
    let work = tempfile::tempdir().unwrap();
    let log = log_path(&work);
    // Each child runs until its stop file appears.
    let child = |i: usize| {
        format!(
            "echo start {i} >> {log}; while [ ! -e {dir}/stop{i} ]; do sleep 0.05; done; echo end {i} >> {log}",
            log = log.display(),
            dir = work.path().display()
        )
    };
    let contenders: Vec<Child> = (1..=6)
        .map(|i| lock(&addr, &["-n=5", "svc/copies", &child(i)]))
        .collect();
    common::wait_until("five children run", || async { lines(&log).len() == 5 }).await;
    // The sixth waits: give it a moment to (wrongly) start, then stop one of the five.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let running = lines(&log);
    assert_eq!(running.len(), 5, "{running:?}");
    let first = running[0].split_once(' ').unwrap().1.to_string();
    std::fs::write(work.path().join(format!("stop{first}")), "").unwrap();
    common::wait_until("the sixth starts", || async { lines(&log).len() == 7 }).await;
    let now = lines(&log);
    assert_eq!(now[5], format!("end {first}"));
    assert!(now[6].starts_with("start "), "{now:?}");
    for i in 1..=6 {
        std::fs::write(work.path().join(format!("stop{i}")), "").unwrap();
    }
    tokio::task::spawn_blocking(move || wait_all(contenders))
        .await
        .unwrap();
    assert_eq!(max_concurrent(&lines(&log)), 5);
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_lock_signals_the_child_at_once() {
    let (server, _dir) = common::dev_server().await;
    let addr = server.grpc_addr.to_string();
    let work = tempfile::tempdir().unwrap();
    let log = log_path(&work);
    let child = format!(
        "trap 'echo term >> {log}; exit 0' TERM; echo up $ROSTRA_LOCK_TOKEN $CONSUL_LOCK_HELD >> {log}; while true; do sleep 0.05; done",
        log = log.display()
    );
    let mut holder = lock(&addr, &["held/lock", &child]);
    common::wait_until("the child runs", || async { !lines(&log).is_empty() }).await;
    let up = lines(&log)[0].clone();
    let parts: Vec<&str> = up.split(' ').collect();
    let token: u64 = parts[1].parse().expect("a fencing token");
    assert_eq!(parts[2], "true", "CONSUL_LOCK_HELD");
    let client = rostra::client::Client::connect(&addr).await.unwrap();
    let kv = client
        .get("held/lock/.lock", rostra::pb::Consistency::Default)
        .await
        .unwrap()
        .kv
        .expect("the lock key");
    assert_eq!(kv.flags, 0x2ddc_cbc0_58a5_0c18);
    assert_eq!(
        kv.modify_index, token,
        "the token is the acquiring write's index"
    );

    // Destroy the holder's session: the child must hear SIGTERM within a second.
    let mut sessions = rostra::pb::session_client::SessionClient::new(client.channel());
    let id = kv.session.clone();
    let destroyed = Instant::now();
    sessions
        .destroy(rostra::pb::SessionDestroyRequest { id })
        .await
        .unwrap();
    common::wait_until("the child is signalled", || async {
        lines(&log).iter().any(|l| l == "term")
    })
    .await;
    let took = destroyed.elapsed();
    assert!(took < Duration::from_secs(1), "signalled after {took:?}");
    let status = tokio::task::spawn_blocking(move || holder.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    server.shutdown().await.expect("clean shutdown");
}

/// Mixing a lock and a semaphore on one prefix, or semaphores of different sizes, fails
/// with Consul's errors and runs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_uses_of_a_prefix_are_refused() {
    let (server, _dir) = common::dev_server().await;
    let addr = server.grpc_addr.to_string();
    let work = tempfile::tempdir().unwrap();
    let marker = work.path().join("ran");
    let child = format!("touch {}; sleep 30", marker.display());
    // A semaphore of 2 holds mix/.lock while its child runs.
    let mut holder = lock(&addr, &["-n=2", "mix", &child]);
    common::wait_until("the semaphore's child runs", || async { marker.exists() }).await;
    std::fs::remove_file(&marker).unwrap();
    let a = addr.clone();
    let m = marker.clone();
    let outputs = tokio::task::spawn_blocking(move || {
        let run = |args: &[&str]| {
            Command::new(common::rostractl_bin())
                .arg("lock")
                .args(args)
                .env("ROSTRA_ADDR", &a)
                .output()
                .unwrap()
        };
        let touch = format!("touch {}", m.display());
        (
            run(&["-n=3", "mix", &touch]),
            run(&["mix", &touch]),
            run(&["-n=0", "mix", &touch]),
        )
    })
    .await
    .unwrap();
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(outputs.0.status.code(), Some(1));
    assert!(
        stderr(&outputs.0).contains("semaphore limit conflict (lock: 2, local: 3)"),
        "{}",
        stderr(&outputs.0)
    );
    assert_eq!(outputs.1.status.code(), Some(1));
    assert!(
        stderr(&outputs.1).contains("Existing key does not match lock use"),
        "{}",
        stderr(&outputs.1)
    );
    assert_eq!(outputs.2.status.code(), Some(1));
    assert!(stderr(&outputs.2).contains("Lock holder limit must be positive"));
    assert!(!marker.exists(), "no conflicting child ran");
    unsafe {
        libc::kill(holder.id() as libc::pid_t, libc::SIGTERM);
    }
    let status = holder.wait().unwrap();
    assert!(
        status.success(),
        "SIGTERM stops the child and releases: {status}"
    );
    server.shutdown().await.expect("clean shutdown");
}
