//! Config-file loading: the walkthrough's file, strict errors with file and key path,
//! merging, directories, and the checks made after flags.

use std::path::{Path, PathBuf};

use super::*;

fn parse(text: &str) -> Result<FileConfig, ConfigError> {
    FileConfig::parse(text, Path::new("consul.json"))
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Defaults, then the files, then `check`: what `rostra validate` does.
fn resolve(files: &FileConfig) -> Result<AgentConfig, ConfigError> {
    let mut config = AgentConfig::dev();
    files.apply(&mut config);
    files.check(&config)?;
    Ok(config)
}

const WALKTHROUGH: &str = r#"{
  "node_name": "walkthrough-node",
  "enable_local_script_checks": true,
  "service": {"name": "example", "tags": ["special"], "address": "127.0.0.1", "port": 3456},
  "services": [
    {"name": "example_green", "port": 1,
     "checks": [{"args": ["./check_green.sh"], "interval": "15s"}]},
    {"name": "example_failed", "port": 2,
     "checks": [{"args": ["./check_failed.sh"], "interval": "15s"}]}
  ]
}"#;

#[test]
fn walkthrough_config_loads() {
    let config = resolve(&parse(WALKTHROUGH).unwrap()).unwrap();
    assert_eq!(config.node_name, "walkthrough-node");
    assert!(config.enable_local_script_checks && !config.enable_script_checks);
    // Consul appends the single `service` after the `services` list.
    let ids: Vec<_> = config.services.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["example_green", "example_failed", "example"]);
    let example = &config.services[2];
    assert_eq!(
        (example.address.as_str(), example.port),
        ("127.0.0.1", 3456)
    );
    assert_eq!(example.tags, ["special"]);
    let green = &config.services[0].checks[0];
    assert_eq!(green.id, "service:example_green");
    assert!(matches!(&green.kind, CheckKind::Script { args } if args == &["./check_green.sh"]));
    // Untouched settings keep their defaults.
    assert_eq!(config.http_port, crate::config::DEFAULT_HTTP_PORT);
    assert_eq!(config.datacenter, "dc1");
}

#[test]
fn script_checks_need_enabling() {
    let text = WALKTHROUGH.replace(r#""enable_local_script_checks": true,"#, "");
    let files = parse(&text).unwrap();
    let e = resolve(&files).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("consul.json: services[0] (check \"service:example_green\"): {SCRIPTS_DISABLED}")
    );
    // Either setting allows them, from the file or (as here) from a flag.
    let mut config = AgentConfig::dev();
    files.apply(&mut config);
    config.enable_script_checks = true;
    files.check(&config).unwrap();
    // Node checks are gated too.
    let e = resolve(
        &parse(r#"{"check": {"name": "disk", "args": ["df"], "interval": "10s"}}"#).unwrap(),
    )
    .unwrap_err();
    assert!(e
        .to_string()
        .starts_with("consul.json: check (check \"disk\"): Scripts are disabled"));
}

#[test]
fn unknown_and_invalid_keys_name_file_and_path() {
    assert_eq!(
        err(r#"{"services": [{"name": "a", "checks": [{"args": ["x"], "intervl": "1s"}]}]}"#),
        "consul.json: services[0].checks[0].intervl: unknown configuration key"
    );
    assert_eq!(
        err(r#"{"uii": true}"#),
        "consul.json: uii: unknown configuration key"
    );
    assert_eq!(
        err(r#"{"ports": {"http": 8500, "htpp": 1}}"#),
        "consul.json: ports.htpp: unknown configuration key"
    );
    assert_eq!(
        err(r#"{"server": "yes"}"#),
        "consul.json: server: expected true or false, found a string"
    );
    assert_eq!(
        err(r#"{"service": {"name": "a", "check": {"args": ["x"]}}}"#),
        "consul.json: service: Invalid check: Interval is required for script, HTTP and TCP checks"
    );
    assert!(err(r#"{"bind_addr": "{{ GetPrivateIP }}"}"#)
        .contains("bind_addr: expected an IP address, found \"{{ GetPrivateIP }}\" (go-sockaddr"));
    assert!(err(r#"{"client_addr": "127.0.0.1 ::1"}"#).contains("only one address"));
    assert!(err("{\"node_name\": \"a\",}").starts_with("consul.json: invalid JSON: "));
    assert!(err("[1]").starts_with("consul.json: expected an object"));
}

#[test]
fn keys_match_as_consul_does() {
    let c = parse(
        r#"{"NodeName": "n", "Bind_Addr": "10.0.0.1", "ENABLE_SCRIPT_CHECKS": true,
            "Ports": {"HTTP": 18500, "serf_lan": 8301, "grpc_tls": -1}, "retryJoin": ["a:8300"]}"#,
    )
    .unwrap();
    assert_eq!(c.node_name.as_deref(), Some("n"));
    assert_eq!(c.bind, Some("10.0.0.1".parse().unwrap()));
    assert_eq!(c.enable_script_checks, Some(true));
    assert_eq!(c.http_port, Some(18500));
    assert_eq!(c.retry_join, ["a:8300"]);
    assert!(parse("  \n").unwrap().services.is_empty());
}

#[test]
fn ports_that_would_disable_an_interface_are_refused() {
    assert_eq!(
        err(r#"{"ports": {"http": -1}}"#),
        "consul.json: ports.http: disabling the HTTP interface is not supported yet (port -1)"
    );
    assert!(err(r#"{"ports": {"dns": 0}}"#)
        .contains("ports.dns: disabling the DNS interface is not supported yet"));
    assert!(err(r#"{"ports": {"grpc": -1}}"#).contains("disabling the gRPC interface"));
    assert!(err(r#"{"ports": {"server": -1}}"#).contains("server port must be greater than zero"));
    assert!(err(r#"{"ports": {"dns": 70000}}"#).contains("ports.dns: invalid port: 70000"));
    let c = parse(r#"{"ports": {"dns": 8653, "server": 18300, "grpc": 18502}}"#).unwrap();
    assert_eq!(
        (c.dns_port, c.server_port, c.grpc_port),
        (Some(8653), Some(18300), Some(18502))
    );
}

#[test]
fn per_interface_addresses_must_be_the_client_address() {
    let same = parse(
        r#"{"client_addr": "0.0.0.0", "addresses": {"http": "0.0.0.0", "https": "1.2.3.4"}}"#,
    )
    .unwrap();
    assert_eq!(
        resolve(&same).unwrap().client_addr,
        "0.0.0.0".parse::<IpAddr>().unwrap()
    );
    let other = parse(r#"{"addresses": {"dns": "0.0.0.0"}}"#).unwrap();
    let e = resolve(&other).unwrap_err().to_string();
    assert!(
        e.starts_with("consul.json: addresses.dns: 0.0.0.0 differs from client_addr 127.0.0.1"),
        "{e}"
    );
}

#[test]
fn files_merge_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        dir.path(),
        "a.json",
        r#"{"node_name": "a", "datacenter": "east", "retry_join": ["a:8300"], "recursors": ["1.1.1.1"],
            "service": {"name": "web", "port": 80}}"#,
    );
    let b = write(
        dir.path(),
        "b.json",
        r#"{"node_name": "b", "retry_join": ["b:8300"], "services": [{"name": "db"}],
            "checks": [{"name": "web-ttl", "service_id": "web", "ttl": "30s"}]}"#,
    );
    let files = FileConfig::load(&[a.clone(), b.clone()]).unwrap();
    let config = resolve(&files).unwrap();
    assert_eq!(config.node_name, "b");
    assert_eq!(config.datacenter, "east");
    assert_eq!(config.retry_join, ["a:8300", "b:8300"]);
    assert_eq!(config.recursors, ["1.1.1.1"]);
    let ids: Vec<_> = config.services.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["web", "db"]);
    assert_eq!(config.checks[0].service_id, "web");

    // The other order: the other file's scalars win.
    let config = resolve(&FileConfig::load(&[b.clone(), a.clone()]).unwrap()).unwrap();
    assert_eq!(config.node_name, "a");

    let dup = write(
        dir.path(),
        "dup.json",
        r#"{"services": [{"id": "web", "name": "other"}]}"#,
    );
    let e = FileConfig::load(&[a.clone(), dup.clone()])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "{}: services[0]: duplicate service ID \"web\" (already defined in {}: service)",
            dup.display(),
            a.display()
        )
    );
    // A check naming a service that no file defines.
    let e = resolve(&FileConfig::load(&[b]).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with("b.json: checks[0]: ServiceID \"web\" does not exist"),
        "{e}"
    );
}

#[test]
fn directories_load_json_files_by_name() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "20-late.json", r#"{"node_name": "late"}"#);
    write(
        dir.path(),
        "10-early.json",
        r#"{"node_name": "early", "datacenter": "x"}"#,
    );
    write(dir.path(), "README.md", "not config");
    std::fs::create_dir(dir.path().join("sub.json")).unwrap();
    write(
        &dir.path().join("sub.json"),
        "ignored.json",
        "{\"bogus\": 1}",
    );
    let files = FileConfig::load(&[dir.path().to_path_buf()]).unwrap();
    assert_eq!(files.node_name.as_deref(), Some("late"));
    assert_eq!(files.datacenter.as_deref(), Some("x"));
    assert_eq!(files.warnings.len(), 1);
    assert!(files.warnings[0].contains("README.md, extension must be .json"));

    write(dir.path(), "30-old.hcl", "node_name = \"x\"");
    let e = FileConfig::load(&[dir.path().to_path_buf()])
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with("30-old.hcl: HCL config files are not supported; use JSON"),
        "{e}"
    );
}

#[test]
fn named_files_must_exist_and_be_json() {
    let dir = tempfile::tempdir().unwrap();
    let txt = write(dir.path(), "consul.conf", "{}");
    let e = FileConfig::load(&[txt]).unwrap_err().to_string();
    assert!(e.ends_with("consul.conf: unknown extension; config files must end in .json"));
    let e = FileConfig::load(&[dir.path().join("missing.json")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.json: cannot read: "), "{e}");
}

#[test]
fn bootstrap_means_one_server() {
    assert_eq!(
        parse(r#"{"bootstrap": true}"#).unwrap().bootstrap_expect(),
        Some(1)
    );
    assert_eq!(
        parse(r#"{"bootstrap": false}"#).unwrap().bootstrap_expect(),
        None
    );
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "c.json",
        r#"{"bootstrap": true, "bootstrap_expect": 3}"#,
    );
    let e = FileConfig::load(&[f]).unwrap_err().to_string();
    assert!(e.contains("mutually exclusive"), "{e}");
}

#[test]
fn in_flight_limits_come_from_the_limits_block() {
    let files = parse(
        r#"{"limits": {"http_max_in_flight": 10, "grpc_max_in_flight": 20, "watch_history_bytes": 30}}"#,
    )
    .unwrap();
    let config = resolve(&files).unwrap();
    assert_eq!(
        (
            config.limits.http_max_in_flight,
            config.limits.grpc_max_in_flight,
            config.limits.watch_history_bytes
        ),
        (10, 20, 30)
    );
    let defaults = resolve(&parse("{}").unwrap()).unwrap();
    assert_eq!(
        defaults.limits.http_max_in_flight,
        crate::service::DEFAULT_MAX_IN_FLIGHT
    );
    assert_eq!(
        err(r#"{"limits": {"http_max_in_flight": 0}}"#),
        "consul.json: limits.http_max_in_flight: must be at least 1"
    );
    assert_eq!(
        err(r#"{"limits": {"rpc_rat": 1}}"#),
        "consul.json: limits.rpc_rat: unknown configuration key"
    );
    // Consul's own limits that Rostra does not apply are accepted with a warning.
    assert_eq!(
        parse(r#"{"limits": {"rpc_rate": 1}}"#)
            .unwrap()
            .warnings
            .len(),
        1
    );
}

/// Keys a Consul user's file has that mean nothing here start the agent with one warning
/// each; a key Consul does not know either is still refused.
#[test]
fn consul_keys_without_effect_warn_and_unknown_ones_are_refused() {
    let c = parse(
        r#"{"node_name": "n", "ui_config": {"enabled": true}, "telemetry": {"prometheus_retention_time": "30s"},
            "acl": {"enabled": false}, "connect": {"enabled": true}, "node_meta": {"rack": "r1"},
            "ports": {"grpc_tls": 8503, "serf_lan": 8301}, "limits": {"http_max_conns_per_client": 200},
            "performance": {"raft_multiplier": 1, "leave_drain_time": "5s"}}"#,
    )
    .unwrap();
    let mut warned: Vec<&str> = c
        .warnings
        .iter()
        .map(|w| {
            let rest = w.strip_prefix("consul.json: ").expect("names the file");
            assert!(
                rest.ends_with(": a Consul setting that has no effect in Rostra; ignored"),
                "{w}"
            );
            rest.split(':').next().unwrap()
        })
        .collect();
    warned.sort();
    assert_eq!(
        warned,
        [
            "acl",
            "connect",
            "limits.http_max_conns_per_client",
            "performance.leave_drain_time",
            "ports.grpc_tls",
            "ports.serf_lan",
            "telemetry",
            "ui_config",
        ]
    );
    // node_meta and raft_multiplier have a meaning here.
    assert_eq!(
        c.node_meta
            .as_ref()
            .and_then(|m| m.get("rack"))
            .map(String::as_str),
        Some("r1")
    );
    for (meta, why) in [
        (r#"{"consul-x": "1"}"#, "reserved"),
        (r#"{"a b": "1"}"#, "invalid characters"),
        (r#"{"": "1"}"#, "blank"),
    ] {
        let e = err(&format!(r#"{{"node_meta": {meta}}}"#));
        assert!(
            e.starts_with("consul.json: node_meta: ") && e.contains(why),
            "{e}"
        );
    }
    // raft's timing scales with raft_multiplier.
    assert_eq!(c.raft_multiplier, Some(1));
    assert_eq!(resolve(&c).unwrap().raft.multiplier, 1);
    assert_eq!(resolve(&parse("{}").unwrap()).unwrap().raft.multiplier, 5);
    assert!(err(r#"{"performance": {"raft_multiplier": 11}}"#)
        .contains("performance.raft_multiplier: must be a whole number from 0 to 10"));
    assert_eq!(
        err(r#"{"performance": {"raft_multiplyer": 2}}"#),
        "consul.json: performance.raft_multiplyer: unknown configuration key"
    );
    assert_eq!(
        err(r#"{"telemetri": {}}"#),
        "consul.json: telemetri: unknown configuration key"
    );
}
