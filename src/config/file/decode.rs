//! One config file's JSON to a [`FileConfig`], strictly: every key is read or
//! explicitly ignored, and `Obj::finish(true)` turns anything else into an error with
//! its key path. Values Rostra cannot honour (templates, several addresses, a disabled
//! interface) are refused here with the reason, rather than approximated.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{FileConfig, Origin};
use crate::agent::definition::{CheckDefinition, ServiceDefinition};
use crate::agent::watches::WatchDefinition;
use crate::config::consul_json::{DecodeError, Obj};

/// One file's JSON, strictly.
pub(super) fn decode(value: &Value, file: &Path) -> Result<FileConfig, DecodeError> {
    let mut root = Obj::new(value, "")?;
    let mut c = FileConfig {
        node_name: non_empty(&mut root, "node_name")?,
        datacenter: non_empty(&mut root, "datacenter")?,
        data_dir: non_empty(&mut root, "data_dir")?.map(PathBuf::from),
        server: root.bool(&["server"])?,
        bootstrap: root.bool(&["bootstrap"])?,
        bootstrap_expect: root.u64(&["bootstrap_expect"])?.map(|n| n as usize),
        bind: ip(&mut root, "bind_addr")?,
        advertise: ip(&mut root, "advertise_addr")?,
        client_addr: ip(&mut root, "client_addr")?,
        retry_join: root.string_list(&["retry_join"])?.unwrap_or_default(),
        recursors: root.string_list(&["recursors"])?.unwrap_or_default(),
        log_level: non_empty(&mut root, "log_level")?,
        log_json: root.bool(&["log_json"])?,
        enable_script_checks: root.bool(&["enable_script_checks"])?,
        enable_local_script_checks: root.bool(&["enable_local_script_checks"])?,
        ..FileConfig::default()
    };
    c.reconnect_timeout = nonzero(&mut root, "reconnect_timeout")?;
    if let Some(meta) = root.string_map(&["node_meta"])? {
        if let Err(e) = validate_node_meta(&meta) {
            return Err(root.err("node_meta", e));
        }
        c.node_meta = Some(meta);
    }
    c.disable_remote_exec = root.bool(&["disable_remote_exec"])?;
    if let Some(mut performance) = root.object(&["performance"])? {
        c.raft_multiplier = match performance.get(&["raft_multiplier"]) {
            None => None,
            Some((k, v)) => match v.as_u64() {
                // Consul's range; 0 means its default.
                Some(0) => None,
                Some(n @ 1..=10) => Some(n as u32),
                _ => return Err(performance.err(k, "must be a whole number from 0 to 10")),
            },
        };
        without_effect(
            &mut performance,
            "performance",
            &["leave_drain_time", "rpc_hold_timeout"],
            &mut c.warnings,
            file,
        );
        performance.finish(true)?;
    }
    without_effect(&mut root, "", CONSUL_TOP_LEVEL, &mut c.warnings, file);
    if let Some(mut ports) = root.object(&["ports"])? {
        c.http_port = client_port(&mut ports, "http", "HTTP")?;
        c.grpc_port = client_port(&mut ports, "grpc", "gRPC")?;
        c.dns_port = client_port(&mut ports, "dns", "DNS")?;
        c.server_port = match port(&mut ports, "server")? {
            Some((k, n)) if n <= 0 => {
                return Err(ports.err(k, "the server port must be greater than zero"))
            }
            other => other.map(|(_, n)| n as u16),
        };
        without_effect(&mut ports, "ports", CONSUL_PORTS, &mut c.warnings, file);
        ports.finish(true)?;
    }
    if let Some(mut limits) = root.object(&["limits"])? {
        c.http_max_in_flight = positive(&mut limits, "http_max_in_flight")?;
        c.grpc_max_in_flight = positive(&mut limits, "grpc_max_in_flight")?;
        c.watch_history_bytes = positive(&mut limits, "watch_history_bytes")?;
        // Zero is allowed: no reserve (writes go on until the disk refuses them).
        c.min_free_disk_bytes = limits.u64(&["min_free_disk_bytes"])?;
        c.member_failed_after = nonzero(&mut limits, "member_failed_after")?;
        without_effect(&mut limits, "limits", CONSUL_LIMITS, &mut c.warnings, file);
        limits.finish(true)?;
    }
    if let Some(mut addresses) = root.object(&["addresses"])? {
        for key in ["http", "grpc", "dns"] {
            if let Some(addr) = ip(&mut addresses, key)? {
                let origin = Origin {
                    file: file.to_path_buf(),
                    path: format!("addresses.{key}"),
                };
                c.addresses.push((origin, addr));
            }
        }
        without_effect(
            &mut addresses,
            "addresses",
            &["https", "grpc_tls"],
            &mut c.warnings,
            file,
        );
        addresses.finish(true)?;
    }
    // Consul appends the single `service`/`check` after the lists.
    for (path, obj) in objects(&mut root, &["services", "service"])? {
        let service = ServiceDefinition::decode(obj, true).map_err(|e| located(e, &path))?;
        let origin = Origin {
            file: file.to_path_buf(),
            path,
        };
        c.services.push((origin, service));
    }
    for (path, obj) in objects(&mut root, &["checks", "check"])? {
        let check = CheckDefinition::decode(obj, true, None).map_err(|e| located(e, &path))?;
        let origin = Origin {
            file: file.to_path_buf(),
            path,
        };
        c.checks.push((origin, check));
    }
    for (path, obj) in objects(&mut root, &["watches"])? {
        let watch = WatchDefinition::decode(obj)?;
        let origin = Origin {
            file: file.to_path_buf(),
            path,
        };
        c.watches.push((origin, watch));
    }
    root.finish(true)?;
    Ok(c)
}

/// Consul's own top-level configuration keys that mean nothing to Rostra (yet): a
/// Consul user's file that sets them starts, with one warning per key, instead of being
/// refused. A key Consul does not know either is still an error.
const CONSUL_TOP_LEVEL: &[&str] = &[
    "acl",
    "advertise_addr_ipv4",
    "advertise_addr_ipv6",
    "advertise_addr_wan",
    "advertise_addr_wan_ipv4",
    "advertise_addr_wan_ipv6",
    "advertise_reconnect_timeout",
    "alt_domain",
    "audit",
    "auto_config",
    "auto_encrypt",
    "auto_reload_config",
    "autopilot",
    "bind_addr_wan",
    "ca_file",
    "ca_path",
    "cache",
    "cert_file",
    "check_output_max_size",
    "check_update_interval",
    "cloud",
    "config_entries",
    "connect",
    "default_query_time",
    "disable_anonymous_signature",
    "disable_coordinates",
    "disable_host_node_id",
    "disable_http_unprintable_char_filter",
    "disable_keyring_file",
    "disable_update_check",
    "discard_check_output",
    "discovery_max_stale",
    "dns_config",
    "domain",
    "enable_acl_replication",
    "enable_agent_tls_for_checks",
    "enable_central_service_config",
    "enable_debug",
    "enable_syslog",
    "encrypt",
    "encrypt_verify_incoming",
    "encrypt_verify_outgoing",
    "experiments",
    "http_config",
    "key_file",
    "leave_on_terminate",
    "license_path",
    "locality",
    "log_file",
    "log_rotate_bytes",
    "log_rotate_duration",
    "log_rotate_max_files",
    "max_query_time",
    "node_id",
    "peering",
    "pid_file",
    "primary_datacenter",
    "primary_gateways",
    "primary_gateways_retry_interval",
    "protocol",
    "raft_boltdb",
    "raft_logstore",
    "raft_protocol",
    "raft_snapshot_interval",
    "raft_snapshot_threshold",
    "raft_trailing_logs",
    "read_replica",
    "reconnect_timeout_wan",
    "rejoin_after_leave",
    "reporting",
    "retry_interval",
    "retry_interval_wan",
    "retry_join_wan",
    "retry_max",
    "retry_max_wan",
    "rpc",
    "segment",
    "segments",
    "serf_lan",
    "serf_wan",
    "server_name",
    "session_ttl_min",
    "skip_leave_on_interrupt",
    "start_join",
    "start_join_wan",
    "syslog_facility",
    "telemetry",
    "tls",
    "translate_wan_addrs",
    "ui",
    "ui_config",
    "ui_content_path",
    "ui_dir",
    "unix_sockets",
    "verify_incoming",
    "verify_incoming_https",
    "verify_incoming_rpc",
    "verify_outgoing",
    "verify_server_hostname",
    "xds",
];

/// Consul's `ports` that Rostra has no listener for.
const CONSUL_PORTS: &[&str] = &[
    "serf_lan",
    "serf_wan",
    "https",
    "grpc_tls",
    "proxy_min_port",
    "proxy_max_port",
    "sidecar_min_port",
    "sidecar_max_port",
    "expose_min_port",
    "expose_max_port",
];

/// Consul's `limits` that Rostra does not apply.
const CONSUL_LIMITS: &[&str] = &[
    "http_max_conns_per_client",
    "https_handshake_timeout",
    "rpc_handshake_timeout",
    "rpc_client_timeout",
    "rpc_max_burst",
    "rpc_max_conns_per_client",
    "rpc_rate",
    "kv_max_value_size",
    "txn_max_req_len",
    "request_limits",
];

/// Consul's rules for node metadata (`structs.ValidateNodeMetadata`), with its texts.
fn validate_node_meta(meta: &std::collections::BTreeMap<String, String>) -> Result<(), String> {
    if meta.len() > 64 {
        return Err("Node metadata cannot contain more than 64 key/value pairs".into());
    }
    for (k, v) in meta {
        if k.is_empty() {
            return Err("Key cannot be blank".into());
        }
        if !k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!("Key contains invalid characters: {k:?}"));
        }
        if k.len() > 128 {
            return Err(format!("Key is too long (limit: 128 characters): {k:?}"));
        }
        if k.starts_with("consul-") {
            return Err(format!(
                "Key prefix 'consul-' is reserved for internal use: {k:?}"
            ));
        }
        if v.len() > 512 {
            return Err(format!(
                "Value is too long (limit: 512 characters) for key {k:?}"
            ));
        }
    }
    Ok(())
}

/// Accepts each of `keys` that `obj` has, with a warning that it changes nothing.
fn without_effect(
    obj: &mut Obj<'_>,
    prefix: &str,
    keys: &[&str],
    warnings: &mut Vec<String>,
    file: &Path,
) {
    for key in keys {
        if let Some((k, _)) = obj.get(&[key]) {
            let path = if prefix.is_empty() {
                k.to_string()
            } else {
                format!("{prefix}.{k}")
            };
            warnings.push(format!(
                "{}: {path}: a Consul setting that has no effect in Rostra; ignored",
                file.display()
            ));
        }
    }
}

/// Definition errors about the whole object carry no path; give them the object's.
fn located(mut e: DecodeError, path: &str) -> DecodeError {
    if e.path.is_empty() {
        e.path = path.to_string();
    }
    e
}

/// The objects under each of `keys` (a list, or one object), with their key paths.
fn objects<'a>(root: &mut Obj<'a>, keys: &[&str]) -> Result<Vec<(String, Obj<'a>)>, DecodeError> {
    let mut out = Vec::new();
    for key in keys {
        match root.get(&[key]) {
            None => {}
            Some((k, Value::Array(items))) => {
                for (i, item) in items.iter().enumerate() {
                    let path = format!("{k}[{i}]");
                    out.push((path.clone(), Obj::new(item, &path)?));
                }
            }
            Some((k, v @ Value::Object(_))) => out.push((k.to_string(), Obj::new(v, k)?)),
            Some((k, _)) => return Err(root.err(k, "expected an object or a list of objects")),
        }
    }
    Ok(out)
}

/// A duration that must be more than zero.
fn nonzero(obj: &mut Obj<'_>, key: &str) -> Result<Option<std::time::Duration>, DecodeError> {
    match obj.duration(&[key])? {
        Some(d) if d.is_zero() => Err(obj.err(key, "must be greater than zero")),
        other => Ok(other),
    }
}

/// A count that must be at least 1.
fn positive(obj: &mut Obj<'_>, key: &str) -> Result<Option<usize>, DecodeError> {
    match obj.u64(&[key])? {
        Some(0) => Err(obj.err(key, "must be at least 1")),
        other => Ok(other.map(|n| n.min(usize::MAX as u64) as usize)),
    }
}

fn non_empty(obj: &mut Obj<'_>, key: &str) -> Result<Option<String>, DecodeError> {
    match obj.string(&[key])? {
        Some(s) if s.is_empty() => Err(obj.err(key, "must not be empty")),
        other => Ok(other),
    }
}

/// One IP address. Consul also takes go-sockaddr templates and several addresses;
/// Rostra binds one literal address per interface.
fn ip(obj: &mut Obj<'_>, key: &str) -> Result<Option<IpAddr>, DecodeError> {
    let Some(text) = obj.string(&[key])? else {
        return Ok(None);
    };
    let trimmed = text.trim();
    trimmed.parse().map(Some).map_err(|_| {
        let why = if trimmed.contains("{{") {
            "go-sockaddr templates are not supported"
        } else if trimmed.split_whitespace().count() > 1 {
            "only one address is supported"
        } else {
            "host names are not supported"
        };
        obj.err(
            key,
            format!("expected an IP address, found {text:?} ({why})"),
        )
    })
}

/// A port number as Consul writes it (negative means disabled), range-checked.
fn port<'a>(obj: &mut Obj<'a>, key: &str) -> Result<Option<(&'a str, i64)>, DecodeError> {
    match obj.get(&[key]) {
        None => Ok(None),
        Some((k, v)) => match v.as_i64() {
            Some(n) if n > u16::MAX as i64 => Err(obj.err(k, format!("invalid port: {n}"))),
            Some(n) => Ok(Some((k, n))),
            None => Err(obj.err(k, format!("expected a port number, found {v}"))),
        },
    }
}

/// An HTTP, gRPC or DNS port. Consul disables the interface for a port of 0 or less;
/// Rostra always serves all three.
fn client_port(obj: &mut Obj<'_>, key: &str, what: &str) -> Result<Option<u16>, DecodeError> {
    match port(obj, key)? {
        None => Ok(None),
        Some((k, n)) if n <= 0 => Err(obj.err(
            k,
            format!("disabling the {what} interface is not supported yet (port {n})"),
        )),
        Some((_, n)) => Ok(Some(n as u16)),
    }
}
