//! The agent's own view of its node: services and checks it was given (config files or
//! `/v1/agent/*`), each check's latest result, and the file that keeps API registrations
//! across restarts (Consul persists them in its data directory too).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::definition::{CheckDefinition, CheckKind, CheckStatus, ServiceDefinition};

/// Where a definition came from; only API registrations are persisted, config files are
/// read again at every start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    Config,
    Api,
}

#[derive(Debug, Clone)]
pub struct LocalCheck {
    pub def: CheckDefinition,
    pub source: Source,
    pub status: CheckStatus,
    pub output: String,
}

#[derive(Debug, Clone)]
pub struct LocalService {
    pub def: ServiceDefinition,
    pub source: Source,
}

#[derive(Debug, Default)]
pub struct LocalState {
    pub services: BTreeMap<String, LocalService>,
    pub checks: BTreeMap<String, LocalCheck>,
    /// Consul's `node_meta`, from the configuration (so a reload changes it).
    pub node_meta: BTreeMap<String, String>,
}

/// What survives a restart: API-registered services (with their checks) and checks,
/// and the last result of every TTL check (Consul restores those too; a restart must not
/// turn a healthy TTL check critical).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Persisted {
    services: Vec<ServiceDefinition>,
    checks: Vec<CheckDefinition>,
    #[serde(default)]
    ttl_results: BTreeMap<String, (CheckStatus, String)>,
}

impl LocalState {
    pub fn add_service(&mut self, def: ServiceDefinition, source: Source) {
        for check in &def.checks {
            self.add_check(check.clone(), source);
        }
        let mut stored = def;
        stored.checks.clear();
        self.services.insert(
            stored.id.clone(),
            LocalService {
                def: stored,
                source,
            },
        );
    }

    pub fn add_check(&mut self, def: CheckDefinition, source: Source) {
        // A re-registered check keeps its last result until it runs again.
        let (status, output) = match self.checks.get(&def.id) {
            Some(old) if old.def.kind == def.kind => (old.status, old.output.clone()),
            _ => (def.status, String::new()),
        };
        self.checks.insert(
            def.id.clone(),
            LocalCheck {
                def,
                source,
                status,
                output,
            },
        );
    }

    /// Removes a service and its checks; returns the removed check IDs.
    pub fn remove_service(&mut self, id: &str) -> Option<Vec<String>> {
        self.services.remove(id)?;
        let ids: Vec<String> = self
            .checks
            .values()
            .filter(|c| c.def.service_id == id)
            .map(|c| c.def.id.clone())
            .collect();
        for c in &ids {
            self.checks.remove(c);
        }
        Some(ids)
    }

    /// An API check of an API service is saved inside that service's definition; any
    /// other API check (a node check, or maintenance mode on a config-file service) on
    /// its own.
    fn saved_with_service(&self, c: &LocalCheck) -> bool {
        self.services
            .get(&c.def.service_id)
            .is_some_and(|s| s.source == Source::Api)
    }

    fn persisted(&self) -> Persisted {
        Persisted {
            services: self
                .services
                .values()
                .filter(|s| s.source == Source::Api)
                .map(|s| {
                    let mut def = s.def.clone();
                    def.checks = self
                        .checks
                        .values()
                        .filter(|c| c.def.service_id == def.id && c.source == Source::Api)
                        .map(|c| c.def.clone())
                        .collect();
                    def
                })
                .collect(),
            checks: self
                .checks
                .values()
                .filter(|c| c.source == Source::Api && !self.saved_with_service(c))
                .map(|c| c.def.clone())
                .collect(),
            ttl_results: self
                .checks
                .values()
                .filter(|c| matches!(c.def.kind, CheckKind::Ttl { .. }))
                .map(|c| (c.def.id.clone(), (c.status, c.output.clone())))
                .collect(),
        }
    }

    /// Writes API registrations to `path` atomically.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let data = serde_json::to_vec_pretty(&self.persisted()).map_err(std::io::Error::other)?;
        super::persist::write_atomic(path, &data)
    }

    /// Loads API registrations saved by `save` (none if the file does not exist).
    pub fn load(&mut self, path: &Path) -> std::io::Result<()> {
        let Some(data) = super::persist::read(path)? else {
            return Ok(());
        };
        let p: Persisted = serde_json::from_slice(&data).map_err(std::io::Error::other)?;
        for s in p.services {
            self.add_service(s, Source::Api);
        }
        for c in p.checks {
            self.add_check(c, Source::Api);
        }
        for (id, (status, output)) in p.ttl_results {
            if let Some(c) = self.checks.get_mut(&id) {
                if matches!(c.def.kind, CheckKind::Ttl { .. }) {
                    c.status = status;
                    c.output = output;
                }
            }
        }
        Ok(())
    }
}
