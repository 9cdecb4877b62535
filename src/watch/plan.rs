//! What a watch asks for, validated once with Consul's messages (`api/watch/funcs.go`),
//! whether it came from `rostractl watch` flags or an agent's `watches` config.

use crate::service::CatalogWatch;
use crate::state::catalog::CheckStatus;
use crate::state::WatchTarget;

/// A watch's parameters as typed by the user, before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchParams {
    pub watch_type: Option<String>,
    pub key: Option<String>,
    pub prefix: Option<String>,
    pub service: Option<String>,
    pub tags: Vec<String>,
    pub passing_only: bool,
    pub state: Option<String>,
    pub name: Option<String>,
}

/// What a validated watch follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchPlan {
    Key(String),
    KeyPrefix(String),
    Services,
    Nodes,
    Service {
        name: String,
        tags: Vec<String>,
        passing_only: bool,
    },
    ServiceChecks(String),
    /// Checks in one state (`None`: any).
    StateChecks(Option<CheckStatus>),
    /// User events, optionally of one name (empty: every name).
    Event(String),
}

/// Validates `p` with Consul's messages.
pub fn plan(p: &WatchParams) -> Result<WatchPlan, String> {
    let err = |m: &str| Err(m.to_string());
    match p.watch_type.as_deref() {
        None | Some("") => err("Watch type must be specified"),
        Some("key") => match p.key.as_deref() {
            Some(k) if !k.is_empty() => Ok(WatchPlan::Key(k.trim_start_matches('/').to_string())),
            _ => err("Must specify a single key to watch"),
        },
        Some("keyprefix") => match p.prefix.as_deref() {
            Some(prefix) => Ok(WatchPlan::KeyPrefix(
                prefix.trim_start_matches('/').to_string(),
            )),
            None => err("Must specify a single prefix to watch"),
        },
        Some("services") => Ok(WatchPlan::Services),
        Some("nodes") => Ok(WatchPlan::Nodes),
        Some("service") => match p.service.as_deref() {
            Some(s) if !s.is_empty() => Ok(WatchPlan::Service {
                name: s.to_string(),
                tags: p.tags.clone(),
                passing_only: p.passing_only,
            }),
            _ => err("Must specify a single service to watch"),
        },
        Some("checks") => match (&p.service, &p.state) {
            (Some(_), Some(_)) => err("Cannot specify service and state"),
            (Some(s), None) => Ok(WatchPlan::ServiceChecks(s.clone())),
            (None, state) => Ok(WatchPlan::StateChecks(
                match state.as_deref().unwrap_or("any") {
                    "any" => None,
                    "passing" => Some(CheckStatus::Passing),
                    "warning" => Some(CheckStatus::Warning),
                    "critical" => Some(CheckStatus::Critical),
                    other => return Err(format!("Unsupported state: {other}")),
                },
            )),
        },
        Some("event") => Ok(WatchPlan::Event(p.name.clone().unwrap_or_default())),
        Some(t @ ("connect_roots" | "connect_leaf" | "agent_service")) => Err(format!(
            "Type {t} is not supported: Rostra has no Connect service mesh"
        )),
        Some(t) => Err(format!("Unsupported watch type: {t}")),
    }
}

/// The service-layer watch a plan follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Kv(WatchTarget),
    Catalog(CatalogWatch),
}

impl WatchPlan {
    pub fn source(&self) -> Source {
        match self.clone() {
            WatchPlan::Key(k) => Source::Kv(WatchTarget::Key(k)),
            WatchPlan::KeyPrefix(p) => Source::Kv(WatchTarget::Prefix(p)),
            WatchPlan::Services => Source::Catalog(CatalogWatch::Services),
            WatchPlan::Nodes => Source::Catalog(CatalogWatch::Nodes),
            WatchPlan::Service {
                name,
                tags,
                passing_only,
            } => Source::Catalog(CatalogWatch::Health {
                service: name,
                tags,
                passing_only,
            }),
            WatchPlan::ServiceChecks(service) => {
                Source::Catalog(CatalogWatch::ServiceChecks { service })
            }
            WatchPlan::StateChecks(state) => Source::Catalog(CatalogWatch::ChecksInState { state }),
            WatchPlan::Event(name) => Source::Catalog(CatalogWatch::Events {
                name: (!name.is_empty()).then_some(name),
            }),
        }
    }

    pub fn is_event(&self) -> bool {
        matches!(self, WatchPlan::Event(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(t: &str) -> WatchParams {
        WatchParams {
            watch_type: Some(t.into()),
            ..Default::default()
        }
    }

    #[test]
    fn consul_messages_for_missing_parameters() {
        let msg = |p: WatchParams| plan(&p).unwrap_err();
        assert_eq!(msg(WatchParams::default()), "Watch type must be specified");
        assert_eq!(msg(params("key")), "Must specify a single key to watch");
        assert_eq!(
            msg(params("keyprefix")),
            "Must specify a single prefix to watch"
        );
        assert_eq!(
            msg(params("service")),
            "Must specify a single service to watch"
        );
        assert_eq!(msg(params("bogus")), "Unsupported watch type: bogus");
        let both = WatchParams {
            service: Some("web".into()),
            state: Some("passing".into()),
            ..params("checks")
        };
        assert_eq!(msg(both), "Cannot specify service and state");
        let bad_state = WatchParams {
            state: Some("sad".into()),
            ..params("checks")
        };
        assert_eq!(msg(bad_state), "Unsupported state: sad");
    }

    #[test]
    fn plans_and_their_sources() {
        let key = WatchParams {
            key: Some("/a/b".into()),
            ..params("key")
        };
        assert_eq!(plan(&key).unwrap(), WatchPlan::Key("a/b".into()));
        let prefix = WatchParams {
            prefix: Some("".into()),
            ..params("keyprefix")
        };
        assert_eq!(
            plan(&prefix).unwrap().source(),
            Source::Kv(WatchTarget::Prefix("".into()))
        );
        assert_eq!(
            plan(&params("checks")).unwrap(),
            WatchPlan::StateChecks(None)
        );
        assert_eq!(
            plan(&params("event")).unwrap().source(),
            Source::Catalog(CatalogWatch::Events { name: None })
        );
        let svc = WatchParams {
            service: Some("web".into()),
            tags: vec!["v1".into()],
            passing_only: true,
            ..params("service")
        };
        assert_eq!(
            plan(&svc).unwrap().source(),
            Source::Catalog(CatalogWatch::Health {
                service: "web".into(),
                tags: vec!["v1".into()],
                passing_only: true
            })
        );
    }
}
