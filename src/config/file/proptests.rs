//! Properties of config-file decoding: any file text (hostile JSON, bad UTF-8 read
//! lossily, Consul-shaped JSON with wrong types) loads or is refused with an error that
//! names the file; none panics.

use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::config::arbitrary;

const KEYS: &[&str] = &[
    "node_name",
    "datacenter",
    "data_dir",
    "server",
    "bootstrap",
    "bootstrap_expect",
    "bind_addr",
    "advertise_addr",
    "client_addr",
    "retry_join",
    "recursors",
    "log_level",
    "log_json",
    "enable_script_checks",
    "enable_local_script_checks",
    "reconnect_timeout",
    "disable_remote_exec",
    "ui",
    "ports",
    "http",
    "grpc",
    "dns",
    "server",
    "limits",
    "http_max_in_flight",
    "grpc_max_in_flight",
    "watch_history_bytes",
    "member_failed_after",
    "addresses",
    "services",
    "service",
    "checks",
    "check",
    "watches",
    "type",
    "key",
    "prefix",
    "handler_type",
    "args",
    "name",
    "port",
    "id",
    "interval",
    "ttl",
    "tags",
    "meta",
];

fn file() -> &'static Path {
    Path::new("consul.json")
}

/// Loading then checking against the defaults, as `rostra validate` does.
fn load(text: &str) -> Result<(), ConfigError> {
    let files = FileConfig::parse(text, file())?;
    let mut config = AgentConfig::dev();
    files.apply(&mut config);
    files.check(&config)
}

proptest! {
    #![proptest_config(arbitrary::config())]

    #[test]
    fn any_text_loads_or_names_the_file(bytes in arbitrary::hostile_bytes()) {
        // `FileConfig::load` reads files as UTF-8 and refuses others before parsing;
        // lossy decoding stands in for what a file's bytes might become.
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = load(&text) {
            prop_assert_eq!(e.file.as_deref(), Some(file()));
            prop_assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn consul_shaped_json_loads_or_names_the_key(v in arbitrary::object(KEYS)) {
        if let Err(e) = load(&v.to_string()) {
            prop_assert!(e.file.is_some() || !e.message.is_empty());
            prop_assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn ports_load_or_are_refused(port in any::<i64>(), which in prop::sample::select(
        vec!["http", "grpc", "dns", "server"])) {
        let text = serde_json::json!({"ports": {which: port}}).to_string();
        match FileConfig::parse(&text, file()) {
            Ok(c) => {
                let got = match which {
                    "http" => c.http_port,
                    "grpc" => c.grpc_port,
                    "dns" => c.dns_port,
                    _ => c.server_port,
                };
                prop_assert_eq!(got.map(i64::from), Some(port));
            }
            Err(e) => {
                prop_assert!(!(1..=65_535).contains(&port), "{port}: {e}");
                prop_assert!(e.message.contains(&format!("ports.{which}")), "{e}");
            }
        }
    }

    #[test]
    fn unknown_top_level_keys_are_named(key in "[a-z][a-z0-9]{0,12}_x", value in arbitrary::json(&[])) {
        let mut obj = serde_json::Map::new();
        obj.insert(key.clone(), value);
        let e = FileConfig::parse(&Value::Object(obj).to_string(), file()).unwrap_err();
        prop_assert_eq!(e.message, format!("{key}: unknown configuration key"));
    }
}
