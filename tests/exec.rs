//! Remote exec on a cluster of three servers and three client agents, each on its own
//! loopback address: `exec` answered by every node with exit codes, `-node` and
//! `-service` filters, a command that writes one key per node through its own agent,
//! an agent with exec disabled that says so, and bad flags.

mod common;

use std::process::{Command, Output};

use common::{wait_until, Agent};

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn exec(addr: &str, args: &[&str]) -> Output {
    Command::new(common::rostractl_bin())
        .arg("exec")
        .args(args)
        .env("ROSTRA_ADDR", addr)
        .output()
        .unwrap()
}

fn list(prefix: &str) -> rostra::pb::ListRequest {
    rostra::pb::ListRequest {
        prefix: prefix.into(),
        ..Default::default()
    }
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Nodes that reported `finished with exit code N`, with N.
fn finished(out: &str) -> Vec<(String, i32)> {
    let mut v: Vec<(String, i32)> = out
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("==> ")?;
            let (node, what) = rest.split_once(": ")?;
            let code = what
                .strip_prefix("finished with exit code ")?
                .parse()
                .ok()?;
            Some((node.to_string(), code))
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_on_servers_and_client_agents() {
    let dirs: Vec<_> = (0..7).map(|_| tempfile::tempdir().unwrap()).collect();
    let on = dirs[6].path().join("exec-on.json");
    std::fs::write(&on, r#"{"disable_remote_exec": false}"#).unwrap();
    let web = dirs[6].path().join("web.json");
    std::fs::write(
        &web,
        r#"{"disable_remote_exec": false, "service": {"name": "web", "port": 80}}"#,
    )
    .unwrap();
    let servers = common::spawn_servers(&dirs, &["s1", "s2", "s3"], |_| {
        vec!["-config-file".to_string(), on.display().to_string()]
    });
    let mut clients: Vec<Agent> = Vec::new();
    for (i, (name, config)) in [
        ("client001", Some(&on)),
        ("client002", Some(&web)),
        ("client003", None),
    ]
    .into_iter()
    .enumerate()
    {
        let ip = format!("127.0.0.{}", i + 5);
        let mut args = strings(&["-node", name, "-bind", &ip, "-client", &ip, "-join"]);
        args.push(servers[i % 3].raft_addr.clone());
        if let Some(c) = config {
            args.extend(["-config-file".to_string(), c.display().to_string()]);
        }
        clients.push(Agent::spawn(dirs[i + 3].path(), &args));
    }
    let addr = servers[0].grpc_addr.clone();
    let s1 = servers[0].client().await;
    wait_until("six alive members, web registered", || {
        let s1 = s1.clone();
        async move {
            let members = rostra::pb::status_client::StatusClient::new(s1.channel())
                .members(rostra::pb::MembersRequest {})
                .await
                .map(|r| r.into_inner().members)
                .unwrap_or_default();
            let alive = members
                .iter()
                .filter(|m| m.status == rostra::pb::MemberStatus::Alive as i32)
                .count();
            let web = s1
                .catalog()
                .service(rostra::pb::ServiceRequest {
                    name: "web".into(),
                    ..Default::default()
                })
                .await
                .is_ok_and(|r| !r.into_inner().instances.is_empty());
            alive == 6 && web
        }
    })
    .await;

    // Every node answers; the one with exec off says so.
    let o = exec(&addr, &["uptime"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let all: Vec<(String, i32)> = ["client001", "client002", "s1", "s2", "s3"]
        .iter()
        .map(|n| (n.to_string(), 0))
        .collect();
    assert_eq!(finished(&out), all, "{out}");
    assert!(
        out.contains("    client001: ") && out.contains("load average"),
        "{out}"
    );
    assert!(
        out.contains("==> client003: declined: remote exec is disabled"),
        "{out}"
    );
    assert!(
        out.ends_with("5 / 5 node(s) completed / acknowledged\n"),
        "{out}"
    );

    // Filters.
    let o = exec(&addr, &["-node", "^client", "uptime"]);
    let names: Vec<String> = finished(&text(&o)).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["client001", "client002"], "{}", text(&o));
    let o = exec(&addr, &["-service", "web", "true"]);
    let names: Vec<String> = finished(&text(&o)).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["client002"], "{}", text(&o));

    // Each node writes its own key through its own agent.
    let o = exec(
        &addr,
        &["rostractl kv put machines/$ROSTRA_NODE/uptime \"$(uptime)\""],
    );
    assert!(o.status.success(), "{}", text(&o));
    let keys = s1.list(list("machines/")).await.unwrap();
    let mut got: Vec<String> = keys.kvs.iter().map(|kv| kv.key.clone()).collect();
    got.sort();
    assert_eq!(
        got,
        [
            "machines/client001/uptime",
            "machines/client002/uptime",
            "machines/s1/uptime",
            "machines/s2/uptime",
            "machines/s3/uptime"
        ]
    );

    // A failing command: exit 2, its code shown; the run's keys are gone afterwards.
    let o = exec(&addr, &["-node", "^s2$", "echo oops; exit 7"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("    s2: oops\n==> s2: finished with exit code 7"),
        "{}",
        text(&o)
    );
    wait_until("the runs' keys are deleted", || {
        let s1 = s1.clone();
        async move {
            s1.list(list("_rexec/"))
                .await
                .is_ok_and(|r| r.kvs.is_empty())
        }
    })
    .await;

    // A targeted node that is gone is named as not answering.
    clients[0].kill();
    let o = exec(&addr, &["-node", "^client001$", "-wait", "1s", "true"]);
    let out = text(&o);
    // The leader marks it failed only after 10 s of silence (the default); until then
    // it is a live member, targeted, and cannot answer.
    assert!(out.contains("==> client001: did not answer"), "{out}");
    assert!(
        out.ends_with("0 / 0 node(s) completed / acknowledged\n"),
        "{out}"
    );
    assert_eq!(o.status.code(), Some(2));

    // Bad input.
    for (args, message) in [
        (vec![], "Must specify a command to execute"),
        (
            vec!["-tag", "x", "uptime"],
            "Cannot provide tag filter without service filter.",
        ),
        (
            vec!["-node", "(", "uptime"],
            "Failed to compile node filter regexp",
        ),
        (
            vec!["-shell=false", "-"],
            "Cannot configure -shell=false when reading from stdin",
        ),
    ] {
        let o = exec(&addr, &args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(message),
            "{args:?}: {o:?}"
        );
    }
}

/// Whether a process with this pid exists.
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the pid exists; nothing is delivered.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_output_is_capped_and_ctrl_c_stops_the_remote_command() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let on = work.path().join("on.json");
    std::fs::write(&on, r#"{"disable_remote_exec": false}"#).unwrap();
    let agent = Agent::spawn(
        dir.path(),
        &strings(&[
            "-dev",
            "-node",
            "solo",
            "-config-file",
            &on.display().to_string(),
        ]),
    );
    // Alive means registered with a passing serfHealth (sessions need it), not only
    // listed: a raft server is a member before its first heartbeat lands.
    let url = format!("http://{}/v1/health/node/solo", agent.http_addr);
    wait_until("the node is alive", || {
        let url = url.clone();
        async move {
            let Ok(r) = reqwest::get(&url).await else {
                return false;
            };
            let checks: serde_json::Value = r.json().await.unwrap_or_default();
            checks.as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["CheckID"] == "serfHealth" && c["Status"] == "passing")
            })
        }
    })
    .await;

    // 300,000 bytes of output: the first 256 KiB, then the notice, never more.
    let o = exec(&agent.grpc_addr, &["head -c 300000 /dev/zero | tr '\\0' x"]);
    let out = text(&o);
    assert!(
        o.status.success(),
        "{}{}",
        &out[out.len().saturating_sub(300)..],
        String::from_utf8_lossy(&o.stderr)
    );
    let xs: usize = out
        .lines()
        .filter_map(|l| l.strip_prefix("    solo: "))
        .map(|l| l.bytes().filter(|b| *b == b'x').count())
        .sum();
    assert_eq!(xs, rostra::agent::exec::OUTPUT_CAP);
    assert!(out.contains("[output truncated after 262144 bytes]"));

    // Ctrl-C on rostractl ends the run; the remote command is killed.
    let pidfile = work.path().join("pid");
    let mut ctl = Command::new(common::rostractl_bin())
        .args([
            "exec",
            &format!("echo $$ > {}; exec sleep 60", pidfile.display()),
        ])
        .env("ROSTRA_ADDR", &agent.grpc_addr)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the remote command runs", || async {
        std::fs::read_to_string(&pidfile).is_ok_and(|p| p.trim().parse::<i32>().is_ok())
    })
    .await;
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(pid));
    // SAFETY: our own child, not yet reaped.
    unsafe { libc::kill(ctl.id() as i32, libc::SIGINT) };
    let _ = ctl.wait();
    wait_until("the remote command is killed", || async {
        // A killed child stays a zombie until the agent reaps it; either way it is not
        // sleeping any more.
        !alive(pid)
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
    })
    .await;
}
