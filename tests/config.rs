//! Consul-format config files through the real binary: `rostra validate` and
//! `rostra agent -config-file` (a bad file stops the agent before it binds anything; a
//! good one is used, its `log_json` included).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Long enough for a slow CI machine; an agent that fails on its config exits at once.
const DEADLINE: Duration = Duration::from_secs(60);

fn rostra() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rostra"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs to completion, or kills the child and fails if it outlives `DEADLINE` (an agent
/// that started instead of refusing its config).
fn run_bounded(mut command: Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rostra");
    let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let _ = stdout.read_to_end(&mut out);
        let _ = stderr.read_to_end(&mut err);
        let _ = tx.send((out, err));
    });
    match rx.recv_timeout(DEADLINE) {
        Ok((stdout, stderr)) => Output {
            status: child.wait().unwrap(),
            stdout,
            stderr,
        },
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rostra did not exit within {DEADLINE:?}");
        }
    }
}

/// Kills the agent when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const WALKTHROUGH: &str = r#"{
  "node_name": "walkthrough-node",
  "enable_local_script_checks": true,
  "service": {"name": "example", "tags": ["special"], "address": "127.0.0.1", "port": 3456},
  "services": [
    {"name": "example_green", "port": 1, "checks": [{"args": ["./check_green.sh"], "interval": "15s"}]},
    {"name": "example_failed", "port": 2, "checks": [{"args": ["./check_failed.sh"], "interval": "15s"}]}
  ]
}"#;

#[test]
fn validate_accepts_a_valid_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "consul.json", WALKTHROUGH);
    let mut command = rostra();
    command.arg("validate").arg(&file);
    let out = run_bounded(command);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Configuration is valid!\n");

    // A directory works too; -quiet prints nothing.
    let mut command = rostra();
    command.args(["validate", "-quiet"]).arg(dir.path());
    let out = run_bounded(command);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn validate_rejects_an_unknown_key_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    // The first check's `interval` misspelt: services[0].checks[0].
    let bad = WALKTHROUGH.replacen(r#""interval""#, r#""intervl""#, 1);
    assert_ne!(bad, WALKTHROUGH);
    let file = write(dir.path(), "consul.json", &bad);
    let mut command = rostra();
    command.arg("validate").arg(&file);
    let out = run_bounded(command);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim_end(),
        format!(
            "Config validation failed: {}: services[0].checks[0].intervl: unknown configuration key",
            file.display()
        )
    );
    assert_eq!(text(&out.stdout), "");

    let mut command = rostra();
    command.arg("validate");
    let out = run_bounded(command);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("Must specify at least one config file or directory"));
}

#[test]
fn agent_refuses_to_start_with_a_bad_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "bad.json",
        r#"{"node_name": "n", "services": [{"name": "web", "prot": 80}]}"#,
    );
    // -dev with free ports: were the file accepted, the agent would start and keep
    // running, and `run_bounded` would fail the test instead of hanging.
    let mut command = rostra();
    command
        .args(["agent", "-dev", "-config-file"])
        .arg(&file)
        .args([
            "-http-port",
            "0",
            "-grpc-port",
            "0",
            "-server-port",
            "0",
            "-dns-port",
            "0",
        ])
        .arg("-data-dir")
        .arg(dir.path().join("data"));
    let out = run_bounded(command);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}: services[0].prot: unknown configuration key",
            file.display()
        )),
        "stderr: {stderr}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "nothing may be created before the config is valid"
    );
}

#[test]
fn agent_runs_with_settings_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // log_json comes from the file: the ready line can only be read if it was applied
    // before logging started. The node name too comes from the file.
    let file = write(
        dir.path(),
        "consul.json",
        r#"{"node_name": "node-from-file", "log_json": true, "log_level": "info",
            "service": {"name": "example", "port": 3456}}"#,
    );
    let child = rostra()
        .args(["agent", "-dev", "-config-file"])
        .arg(&file)
        .args([
            "-http-port",
            "0",
            "-grpc-port",
            "0",
            "-server-port",
            "0",
            "-dns-port",
            "0",
        ])
        .arg("-data-dir")
        .arg(dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rostra");
    let mut agent = Running(child);
    let stderr = agent.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if v["fields"]["message"] == "agent ready" {
                    let _ = tx.send(v);
                    return;
                }
            }
        }
    });
    let ready = rx
        .recv_timeout(DEADLINE)
        .expect("a JSON \"agent ready\" log line");
    assert_eq!(ready["fields"]["node"], "node-from-file");
    drop(agent);
}
