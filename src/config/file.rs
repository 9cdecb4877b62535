//! Agent configuration files in Consul's JSON format (`rostra agent -config-file F
//! -config-dir D`, `rostra validate`), so that a Consul user's `consul.json` runs
//! unchanged or is refused with the reason.
//!
//! Loading mirrors Consul's config builder: each path is a file or a directory (its
//! `*.json` files in name order, other files skipped with a warning, subdirectories not
//! entered); files merge in order, later scalars overriding earlier ones and lists
//! (`services`, `checks`, `retry_join`, `recursors`) appending. Keys match the way
//! Consul's do (case and underscores do not matter, see `consul_json`). Unlike a config
//! decoder that skips what it does not know, every unknown or ill-typed key is an error
//! naming the file and the key path (`consul.json: services[0].checks[0].intervl:
//! unknown configuration key`): the agent refuses to start rather than run with a
//! setting silently dropped. Settings Rostra cannot honour yet (a disabled HTTP port,
//! per-interface addresses) are refused the same way. HCL is not read at all.
//!
//! Precedence is Consul's: defaults, then files ([`FileConfig::apply`]), then flags
//! (`cli::agent` applies those), then [`FileConfig::check`] on the result, since flags
//! can settle what a file alone cannot (`-enable-local-script-checks`, `-client`).

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::AgentConfig;
use crate::agent::definition::{CheckDefinition, CheckKind, ServiceDefinition};
use crate::agent::watches::WatchDefinition;

/// Consul's error text for a script check on an agent that does not allow them.
pub const SCRIPTS_DISABLED: &str = "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true";

/// A configuration problem; names the file when one is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: Option<PathBuf>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}: {}", file.display(), self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl ConfigError {
    fn in_file(file: &Path, message: impl Into<String>) -> Self {
        ConfigError {
            file: Some(file.to_path_buf()),
            message: message.into(),
        }
    }

    fn at(origin: &Origin, message: impl fmt::Display) -> Self {
        Self::in_file(&origin.file, format!("{}: {message}", origin.path))
    }
}

/// Where a definition came from, for errors found after merging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    /// Key path inside the file, such as `services[1]`.
    pub path: String,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.path)
    }
}

/// What the config files said. Every setting is optional so that a later file, and then
/// a flag, overrides only what it sets.
#[derive(Debug, Clone, Default)]
pub struct FileConfig {
    pub node_name: Option<String>,
    pub datacenter: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub server: Option<bool>,
    /// Consul's `bootstrap: true`, the same as `bootstrap_expect: 1`.
    pub bootstrap: Option<bool>,
    pub bootstrap_expect: Option<usize>,
    pub bind: Option<IpAddr>,
    pub advertise: Option<IpAddr>,
    pub client_addr: Option<IpAddr>,
    pub http_port: Option<u16>,
    pub grpc_port: Option<u16>,
    pub dns_port: Option<u16>,
    pub server_port: Option<u16>,
    /// `addresses.{http,grpc,dns}`: accepted only when equal to the final client address,
    /// since every client API binds that one address; checked after flags are applied.
    pub addresses: Vec<(Origin, IpAddr)>,
    pub retry_join: Vec<String>,
    pub recursors: Vec<String>,
    pub log_level: Option<String>,
    pub log_json: Option<bool>,
    pub enable_script_checks: Option<bool>,
    pub enable_local_script_checks: Option<bool>,
    /// `limits.http_max_in_flight` / `limits.grpc_max_in_flight` (Rostra's own keys).
    pub http_max_in_flight: Option<usize>,
    pub grpc_max_in_flight: Option<usize>,
    /// `limits.watch_history_bytes`.
    pub watch_history_bytes: Option<usize>,
    /// `limits.min_free_disk_bytes` (Rostra's): writes are refused below it.
    pub min_free_disk_bytes: Option<u64>,
    /// `limits.member_failed_after` (Rostra's): silence before a member is failed.
    pub member_failed_after: Option<std::time::Duration>,
    /// Consul's `reconnect_timeout`: failed and left members are reaped after it.
    pub reconnect_timeout: Option<std::time::Duration>,
    pub services: Vec<(Origin, ServiceDefinition)>,
    /// Node checks, and service checks that name their service with `service_id`.
    pub checks: Vec<(Origin, CheckDefinition)>,
    /// Consul's `watches`.
    pub watches: Vec<(Origin, WatchDefinition)>,
    /// Consul's `disable_remote_exec`.
    pub disable_remote_exec: Option<bool>,
    /// Consul's `performance.raft_multiplier` (1 to 10): scales raft's timing.
    pub raft_multiplier: Option<u32>,
    /// Consul's `node_meta`: the node's metadata in the catalog.
    pub node_meta: Option<std::collections::BTreeMap<String, String>>,
    /// Non-fatal findings (skipped files), to log once logging is set up.
    pub warnings: Vec<String>,
}

impl FileConfig {
    /// Loads and merges `paths` (files or directories) in order.
    pub fn load(paths: &[PathBuf]) -> Result<FileConfig, ConfigError> {
        let mut merged = FileConfig::default();
        for path in paths {
            for file in config_files(path, &mut merged.warnings)? {
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| ConfigError::in_file(&file, format!("cannot read: {e}")))?;
                merged.merge(FileConfig::parse(&text, &file)?)?;
            }
        }
        if merged.bootstrap == Some(true) && merged.bootstrap_expect.is_some_and(|n| n > 0) {
            return Err(ConfigError {
                file: None,
                message: "'bootstrap_expect > 0' and 'bootstrap = true' are mutually exclusive"
                    .into(),
            });
        }
        Ok(merged)
    }

    /// Decodes one file's text; `file` names it in errors. An empty file sets nothing,
    /// as in Consul.
    pub fn parse(text: &str, file: &Path) -> Result<FileConfig, ConfigError> {
        if text.trim().is_empty() {
            return Ok(FileConfig::default());
        }
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ConfigError::in_file(file, format!("invalid JSON: {e}")))?;
        decode::decode(&value, file).map_err(|e| {
            let message = match e.path.is_empty() {
                true => e.message,
                false => e.to_string(),
            };
            ConfigError::in_file(file, message)
        })
    }

    /// Folds a later file into this one: its scalars win, its lists are appended.
    fn merge(&mut self, later: FileConfig) -> Result<(), ConfigError> {
        fn over<T>(slot: &mut Option<T>, later: Option<T>) {
            if later.is_some() {
                *slot = later;
            }
        }
        over(&mut self.node_name, later.node_name);
        over(&mut self.datacenter, later.datacenter);
        over(&mut self.data_dir, later.data_dir);
        over(&mut self.server, later.server);
        over(&mut self.bootstrap, later.bootstrap);
        over(&mut self.bootstrap_expect, later.bootstrap_expect);
        over(&mut self.bind, later.bind);
        over(&mut self.advertise, later.advertise);
        over(&mut self.client_addr, later.client_addr);
        over(&mut self.http_port, later.http_port);
        over(&mut self.grpc_port, later.grpc_port);
        over(&mut self.dns_port, later.dns_port);
        over(&mut self.server_port, later.server_port);
        over(&mut self.log_level, later.log_level);
        over(&mut self.log_json, later.log_json);
        over(&mut self.enable_script_checks, later.enable_script_checks);
        over(&mut self.http_max_in_flight, later.http_max_in_flight);
        over(&mut self.grpc_max_in_flight, later.grpc_max_in_flight);
        over(&mut self.watch_history_bytes, later.watch_history_bytes);
        over(&mut self.min_free_disk_bytes, later.min_free_disk_bytes);
        over(&mut self.member_failed_after, later.member_failed_after);
        over(&mut self.reconnect_timeout, later.reconnect_timeout);
        over(&mut self.disable_remote_exec, later.disable_remote_exec);
        over(&mut self.raft_multiplier, later.raft_multiplier);
        over(&mut self.node_meta, later.node_meta);
        over(
            &mut self.enable_local_script_checks,
            later.enable_local_script_checks,
        );
        // A later file's address for an interface replaces an earlier one's.
        for (origin, ip) in later.addresses {
            let key = origin.path.clone();
            self.addresses.retain(|(o, _)| o.path != key);
            self.addresses.push((origin, ip));
        }
        self.retry_join.extend(later.retry_join);
        self.recursors.extend(later.recursors);
        for (origin, service) in later.services {
            if let Some((first, _)) = self.services.iter().find(|(_, s)| s.id == service.id) {
                return Err(ConfigError::at(
                    &origin,
                    format!(
                        "duplicate service ID {:?} (already defined in {first})",
                        service.id
                    ),
                ));
            }
            self.services.push((origin, service));
        }
        self.checks.extend(later.checks);
        self.watches.extend(later.watches);
        self.warnings.extend(later.warnings);
        Ok(())
    }

    /// The servers to expect, if the files say (`bootstrap: true` means one).
    pub fn bootstrap_expect(&self) -> Option<usize> {
        self.bootstrap_expect
            .or((self.bootstrap == Some(true)).then_some(1))
    }

    /// Writes what the files set over `config` (which holds the defaults). `server`,
    /// `log_level` and `log_json` are not agent settings; the caller reads them.
    pub fn apply(&self, config: &mut AgentConfig) {
        fn set<T: Clone>(slot: &mut T, value: &Option<T>) {
            if let Some(v) = value {
                *slot = v.clone();
            }
        }
        set(&mut config.node_name, &self.node_name);
        set(&mut config.datacenter, &self.datacenter);
        if self.data_dir.is_some() {
            config.data_dir = self.data_dir.clone();
        }
        set(&mut config.bootstrap_expect, &self.bootstrap_expect());
        set(&mut config.bind, &self.bind);
        if self.advertise.is_some() {
            config.advertise = self.advertise;
        }
        set(&mut config.client_addr, &self.client_addr);
        set(&mut config.http_port, &self.http_port);
        set(&mut config.grpc_port, &self.grpc_port);
        set(&mut config.dns_port, &self.dns_port);
        set(&mut config.server_port, &self.server_port);
        set(&mut config.enable_script_checks, &self.enable_script_checks);
        set(
            &mut config.limits.http_max_in_flight,
            &self.http_max_in_flight,
        );
        set(
            &mut config.limits.grpc_max_in_flight,
            &self.grpc_max_in_flight,
        );
        set(
            &mut config.limits.watch_history_bytes,
            &self.watch_history_bytes,
        );
        set(
            &mut config.limits.min_free_disk_bytes,
            &self.min_free_disk_bytes,
        );
        set(
            &mut config.limits.member_failed_after,
            &self.member_failed_after,
        );
        set(
            &mut config.limits.reconnect_timeout,
            &self.reconnect_timeout,
        );
        set(&mut config.raft.multiplier, &self.raft_multiplier);
        set(&mut config.node_meta, &self.node_meta);
        if let Some(disabled) = self.disable_remote_exec {
            config.enable_remote_exec = !disabled;
        }
        set(
            &mut config.enable_local_script_checks,
            &self.enable_local_script_checks,
        );
        config.retry_join.extend(self.retry_join.iter().cloned());
        config.recursors.extend(self.recursors.iter().cloned());
        config
            .services
            .extend(self.services.iter().map(|(_, s)| s.clone()));
        config
            .checks
            .extend(self.checks.iter().map(|(_, c)| c.clone()));
        config
            .watches
            .extend(self.watches.iter().map(|(_, w)| w.clone()));
    }

    /// Checks the files' definitions against the final configuration (defaults, files
    /// and flags): per-interface addresses, script checks, check-to-service references.
    pub fn check(&self, config: &AgentConfig) -> Result<(), ConfigError> {
        for (origin, ip) in &self.addresses {
            if *ip != config.client_addr {
                return Err(ConfigError::at(
                    origin,
                    format!(
                        "{ip} differs from client_addr {}; Rostra serves HTTP, gRPC and DNS \
                         on the one client address, so set client_addr (or -client) instead",
                        config.client_addr
                    ),
                ));
            }
        }
        if !(config.enable_script_checks || config.enable_local_script_checks) {
            let embedded = self
                .services
                .iter()
                .flat_map(|(o, s)| s.checks.iter().map(move |c| (o, c)));
            let node = self.checks.iter().map(|(o, c)| (o, c));
            if let Some((origin, check)) = embedded
                .chain(node)
                .find(|(_, c)| matches!(c.kind, CheckKind::Script { .. }))
            {
                return Err(ConfigError::in_file(
                    &origin.file,
                    format!("{} (check {:?}): {SCRIPTS_DISABLED}", origin.path, check.id),
                ));
            }
        }
        for (origin, watch) in &self.watches {
            if let Some(dc) = watch.datacenter.as_deref() {
                if !dc.is_empty() && dc != config.datacenter {
                    return Err(ConfigError::at(
                        origin,
                        format!(
                            "datacenter {dc:?} is not this agent's ({:?}); Rostra has no WAN federation",
                            config.datacenter
                        ),
                    ));
                }
            }
        }
        for (origin, check) in &self.checks {
            let service = &check.service_id;
            if !service.is_empty() && !self.services.iter().any(|(_, s)| &s.id == service) {
                return Err(ConfigError::at(
                    origin,
                    format!("ServiceID {service:?} does not exist"),
                ));
            }
        }
        Ok(())
    }
}

/// The files `path` stands for: itself, or a directory's `*.json` files in name order.
fn config_files(path: &Path, warnings: &mut Vec<String>) -> Result<Vec<PathBuf>, ConfigError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| ConfigError::in_file(path, format!("cannot read: {e}")))?;
    if !meta.is_dir() {
        return match Format::of(path) {
            Format::Json => Ok(vec![path.to_path_buf()]),
            Format::Hcl => Err(hcl_error(path)),
            Format::Other => Err(ConfigError::in_file(
                path,
                "unknown extension; config files must end in .json",
            )),
        };
    }
    let mut entries = std::fs::read_dir(path)
        .and_then(|dir| dir.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ConfigError::in_file(path, format!("cannot read directory: {e}")))?;
    entries.sort_by_key(|e| e.file_name());
    let mut files = Vec::new();
    for entry in entries {
        let file = entry.path();
        // Follows symlinks, as Consul does; subdirectories are not entered.
        let meta = std::fs::metadata(&file)
            .map_err(|e| ConfigError::in_file(&file, format!("cannot read: {e}")))?;
        if meta.is_dir() {
            continue;
        }
        match Format::of(&file) {
            Format::Json => files.push(file),
            Format::Hcl => return Err(hcl_error(&file)),
            Format::Other => warnings.push(format!(
                "skipping file {}, extension must be .json",
                file.display()
            )),
        }
    }
    Ok(files)
}

enum Format {
    Json,
    Hcl,
    Other,
}

impl Format {
    fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Format::Json,
            Some("hcl") => Format::Hcl,
            _ => Format::Other,
        }
    }
}

fn hcl_error(path: &Path) -> ConfigError {
    ConfigError::in_file(path, "HCL config files are not supported; use JSON")
}

mod decode;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
