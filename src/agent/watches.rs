//! The agent's `watches` config: Consul's watch definitions, each followed over the
//! service layer's resumable watch protocol and handed to its script or HTTP handler
//! by the shared firing rules (`crate::watch`).
//!
//! Two promises go beyond Consul's. Each watch's cursor (what its handler last got) is
//! saved in the data dir before the handler runs, so a restarted agent does not re-run
//! handlers for changes they already saw (Consul's #571) and a delivery is made at most
//! once. And an event watch delivers, after the agent was down, the matching events
//! fired meanwhile that are still retained: events are raft entries, not gossip, and
//! the cursor is their Lamport time. Event watches see only the events aimed at this
//! agent's node and services (`agent::events`), as Consul's do.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::Agent;
use crate::config::consul_json::{DecodeError, Obj};
use crate::service::follow::{self, Followed, Follower};
use crate::service::{Api, CatalogItem, CatalogWatch, ServiceError, WatchReceiver};
use crate::watch::handler::DEFAULT_HTTP_TIMEOUT;
use crate::watch::{
    catalog_payload, kv_payload, Cursor, Firing, Handler, HttpHandler, Output, Source, WatchParams,
    WatchPlan,
};

/// One entry of `watches`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchDefinition {
    pub plan: WatchPlan,
    pub handler: Handler,
    /// Checked against the agent's own when the config is complete.
    pub datacenter: Option<String>,
}

/// Consul's "Expecting <p> to be a <type>" for a parameter of the wrong JSON type.
fn expecting(obj: &Obj<'_>, key: &str, what: &str) -> DecodeError {
    obj.err(key, format!("Expecting {key} to be a {what}"))
}

fn string(obj: &mut Obj<'_>, key: &str) -> Result<Option<String>, DecodeError> {
    match obj.get(&[key]) {
        None => Ok(None),
        Some((_, Value::String(s))) => Ok(Some(s.clone())),
        Some((k, _)) => Err(expecting(obj, k, "string")),
    }
}

fn boolean(obj: &mut Obj<'_>, key: &str) -> Result<Option<bool>, DecodeError> {
    match obj.get(&[key]) {
        None => Ok(None),
        Some((_, Value::Bool(b))) => Ok(Some(*b)),
        Some((k, _)) => Err(expecting(obj, k, "boolean")),
    }
}

/// A string, or a list of strings (Consul's `tag`).
fn strings(obj: &mut Obj<'_>, key: &str) -> Result<Vec<String>, DecodeError> {
    match obj.get(&[key]) {
        None => Ok(Vec::new()),
        Some((_, Value::String(s))) => Ok(vec![s.clone()]),
        Some((k, Value::Array(items))) => items
            .iter()
            .map(|v| v.as_str().map(String::from))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| expecting(obj, k, "string or a list of strings")),
        Some((k, _)) => Err(expecting(obj, k, "string or a list of strings")),
    }
}

impl WatchDefinition {
    /// Decodes one `watches` entry with Consul's rules (`api/watch.Parse` and the
    /// agent's handler checks); errors carry the entry's path.
    pub fn decode(mut obj: Obj<'_>) -> Result<Self, DecodeError> {
        let here = |obj: &Obj<'_>, message: String| DecodeError {
            path: obj.path().to_string(),
            message,
        };
        let watch_type = string(&mut obj, "type")?;
        let datacenter = string(&mut obj, "datacenter")?;
        // No ACLs yet (every request is allowed), so a token changes nothing.
        string(&mut obj, "token")?;
        // Every watch reads the local server's state; `stale` changes nothing.
        boolean(&mut obj, "stale")?;
        let mut params = WatchParams {
            watch_type: watch_type.clone(),
            ..WatchParams::default()
        };
        match watch_type.as_deref() {
            Some("key") => params.key = string(&mut obj, "key")?,
            Some("keyprefix") => params.prefix = string(&mut obj, "prefix")?,
            Some("service") => {
                params.service = string(&mut obj, "service")?;
                params.tags = strings(&mut obj, "tag")?;
                params.passing_only = boolean(&mut obj, "passingonly")?.unwrap_or(false);
            }
            Some("checks") => {
                params.service = string(&mut obj, "service")?;
                params.state = string(&mut obj, "state")?;
            }
            Some("event") => params.name = string(&mut obj, "name")?,
            _ => {}
        }
        let plan = crate::watch::plan(&params).map_err(|m| here(&obj, m))?;
        let handler = Self::handler(&mut obj).map_err(|e| match e.path.is_empty() {
            true => here(&obj, e.message),
            false => e,
        })?;
        let unused = obj.unused();
        if !unused.is_empty() {
            return Err(here(
                &obj,
                format!("Invalid parameters: [{}]", unused.join(" ")),
            ));
        }
        Ok(WatchDefinition {
            plan,
            handler,
            datacenter,
        })
    }

    fn handler(obj: &mut Obj<'_>) -> Result<Handler, DecodeError> {
        let bare = |m: &str| DecodeError {
            path: String::new(),
            message: m.to_string(),
        };
        let handler_type = string(obj, "handler_type")?;
        let line = string(obj, "handler")?;
        let args = match obj.get(&["args"]) {
            None => None,
            Some((k, Value::Array(items))) => Some(
                items
                    .iter()
                    .map(|v| v.as_str().map(String::from))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| expecting(obj, k, "list of strings"))?,
            ),
            Some((k, _)) => return Err(expecting(obj, k, "list of strings")),
        };
        let http = obj.object(&["http_handler_config"])?;
        match handler_type.as_deref().unwrap_or("script") {
            "script" => match (line, args) {
                (Some(_), Some(_)) => Err(bare("Only one watch handler allowed")),
                (Some(line), None) if !line.trim().is_empty() => Ok(Handler::Script {
                    args: vec![line],
                    shell: true,
                }),
                (None, Some(args)) if !args.is_empty() => {
                    Ok(Handler::Script { args, shell: false })
                }
                _ if http.is_some() => {
                    Err(bare("http_handler_config needs \"handler_type\": \"http\""))
                }
                _ => Err(bare("Must define a watch handler")),
            },
            "http" => {
                if line.is_some() || args.is_some() {
                    return Err(bare("Only one watch handler allowed"));
                }
                let Some(config) = http else {
                    return Err(bare("Must define a watch handler"));
                };
                http_handler(config).map(Handler::Http)
            }
            other => Err(bare(&format!("Handler type '{other}' not recognized"))),
        }
    }
}

/// Consul's `http_handler_config`.
fn http_handler(mut obj: Obj<'_>) -> Result<HttpHandler, DecodeError> {
    let Some(path) = string(&mut obj, "path")?.filter(|p| !p.is_empty()) else {
        return Err(obj.err("path", "Requires 'path' to be set"));
    };
    let url = reqwest::Url::parse(&path)
        .map_err(|e| obj.err("path", format!("invalid URL {path:?}: {e}")))?;
    match url.scheme() {
        "http" => {}
        "https" => {
            return Err(obj.err(
                "path",
                format!("{path:?}: https handlers are not supported yet (no TLS client)"),
            ))
        }
        s => return Err(obj.err("path", format!("{path:?}: unsupported scheme {s:?}"))),
    }
    let method = match string(&mut obj, "method")? {
        None => http::Method::POST,
        Some(m) => http::Method::from_bytes(m.to_uppercase().as_bytes())
            .map_err(|_| obj.err("method", format!("invalid HTTP method {m:?}")))?,
    };
    let mut headers = Vec::new();
    if let Some(h) = obj.object(&["header"])? {
        for (name, values) in h.into_entries() {
            let invalid = |what: &str| DecodeError {
                path: format!("{}.header.{name}", obj.path()),
                message: format!("invalid header {what}"),
            };
            let values: Vec<&str> = match values {
                Value::String(s) => vec![s.as_str()],
                Value::Array(items) => items
                    .iter()
                    .map(|v| v.as_str())
                    .collect::<Option<_>>()
                    .ok_or_else(|| invalid("values: expected a list of strings"))?,
                _ => return Err(invalid("values: expected a list of strings")),
            };
            let header =
                http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid("name"))?;
            let values = values
                .into_iter()
                .map(http::HeaderValue::from_str)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| invalid("value"))?;
            headers.push((header, values));
        }
    }
    let timeout = obj.duration(&["timeout"])?.unwrap_or(DEFAULT_HTTP_TIMEOUT);
    if timeout.is_zero() {
        return Err(obj.err("timeout", "must be greater than zero"));
    }
    if boolean(&mut obj, "tls_skip_verify")? == Some(true) {
        return Err(obj.err("tls_skip_verify", "https handlers are not supported yet"));
    }
    obj.finish(true)?;
    Ok(HttpHandler {
        url,
        method,
        headers,
        timeout,
    })
}

/// Where each watch's deliveries stand, saved in the data dir (`agent/watches.json`).
/// A watch is known by its definition, so an edited definition starts afresh.
struct Cursors {
    path: PathBuf,
    saved: Mutex<BTreeMap<String, Cursor>>,
}

impl Cursors {
    /// Loads the cursors of the watches still defined (`keys`); the others are dropped.
    fn load(path: PathBuf, keys: &[String]) -> std::io::Result<Cursors> {
        let mut saved: BTreeMap<String, Cursor> = match super::persist::read(&path)? {
            Some(data) => serde_json::from_slice(&data)
                .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?,
            None => BTreeMap::new(),
        };
        saved.retain(|k, _| keys.contains(k));
        Ok(Cursors {
            path,
            saved: Mutex::new(saved),
        })
    }

    fn get(&self, key: &str) -> Option<Cursor> {
        super::lock(&self.saved).get(key).copied()
    }

    /// Records `cursor` durably (the whole file is small: one cursor per watch).
    async fn save(self: &Arc<Self>, key: &str, cursor: Cursor) -> std::io::Result<()> {
        let data = {
            let mut saved = super::lock(&self.saved);
            saved.insert(key.to_string(), cursor);
            serde_json::to_vec_pretty(&*saved).map_err(std::io::Error::other)?
        };
        let me = self.clone();
        // One writer at a time keeps the file's last write the newest map.
        tokio::task::spawn_blocking(move || {
            let _one = super::lock(&me.saved);
            super::persist::write_atomic(&me.path, &data)
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// How long to wait before reopening a watch whose stream ended while the agent runs.
const REOPEN_BACKOFF: Duration = Duration::from_secs(1);

/// Starts every watch; each runs until the agent shuts down, owned by the control plane.
pub(super) fn start(
    agent: &Arc<Agent>,
    defs: Vec<WatchDefinition>,
    data_dir: &std::path::Path,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    if defs.is_empty() {
        return Ok(());
    }
    // Identical definitions are told apart by their order among themselves.
    let mut keys: Vec<String> = Vec::new();
    for def in &defs {
        let base = format!("{:?} {:?}", def.plan, def.handler);
        let twins = keys.iter().filter(|k| k.starts_with(&base)).count();
        keys.push(match twins {
            0 => base,
            n => format!("{base} #{}", n + 1),
        });
    }
    let cursors = Arc::new(Cursors::load(
        data_dir.join("agent").join("watches.json"),
        &keys,
    )?);
    for (key, def) in keys.into_iter().zip(defs) {
        let run = Run {
            firing: Firing::new(&def.plan, cursors.get(&key)),
            agent: agent.clone(),
            cursors: cursors.clone(),
            key,
            def,
        };
        let shutdown = stop.clone();
        agent.service.spawn(Box::pin(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = run.run() => {}
            }
        }));
    }
    Ok(())
}

/// One running watch.
struct Run {
    agent: Arc<Agent>,
    cursors: Arc<Cursors>,
    key: String,
    def: WatchDefinition,
    firing: Firing,
}

impl Run {
    async fn run(mut self) {
        let api = self.agent.service.clone();
        match self.def.plan.source() {
            Source::Kv(target) => {
                let plan = self.def.plan.clone();
                self.follow::<follow::Kv>(
                    |start| api.watch_kv(target.clone(), start),
                    |state| kv_payload(&plan, state.values()),
                )
                .await
            }
            // Events come from the node's own event view (`agent::events`): only those
            // aimed at this node, as Consul's agent sees them.
            Source::Catalog(CatalogWatch::Events { name }) => self.follow_events(name).await,
            Source::Catalog(watch) => {
                let plan = self.def.plan.clone();
                self.follow::<follow::Catalog>(
                    |start| api.watch_catalog(watch.clone(), start),
                    |state| catalog_payload(&plan, state.values()),
                )
                .await
            }
        }
    }

    /// Delivers each view of the node's events named `name` (all events without one).
    async fn follow_events(&mut self, name: Option<String>) {
        let mut events = self.agent.node_events.subscribe();
        loop {
            let view = events.borrow_and_update().clone();
            if let Some(view) = view {
                let named: Vec<CatalogItem> = view
                    .aimed_at(&self.agent)
                    .filter(|e| name.as_ref().is_none_or(|n| &e.name == n))
                    .map(|e| CatalogItem::Event(e.clone()))
                    .collect();
                let payload = catalog_payload(&self.def.plan, named.iter());
                self.deliver(view.index, payload).await;
            }
            tokio::select! {
                _ = self.agent.shutdown.cancelled() => return,
                changed = events.changed() => if changed.is_err() { return },
            }
        }
    }

    /// Follows the watch, reopening it from the last index if its stream ends while the
    /// agent still runs, and delivers each view the firing rules let through.
    async fn follow<F: Followed>(
        &mut self,
        open: impl Fn(u64) -> Result<WatchReceiver<F::Item, F::Delta>, ServiceError>,
        render: impl Fn(&BTreeMap<F::Key, F::Item>) -> Value,
    ) {
        let api: Api = self.agent.service.clone();
        let mut follower: Option<Follower<F>> = None;
        loop {
            let start = follower.as_ref().map_or(0, |f| f.resume_index());
            match open(start) {
                Ok(rx) => match follower.as_mut() {
                    Some(f) => f.reattach(rx),
                    None => follower = Some(Follower::new(rx)),
                },
                Err(e) => tracing::warn!(watch = %self.key, error = %e, "opening a watch"),
            }
            if let Some(f) = follower.as_mut() {
                while let Some(index) = f.next().await {
                    let view = render(f.state());
                    self.deliver(index, view).await;
                }
            }
            if api.is_shutting_down() {
                return;
            }
            tokio::time::sleep(REOPEN_BACKOFF).await;
        }
    }

    async fn deliver(&mut self, index: u64, view: Value) {
        let Some(payload) = self.firing.offer(index, view) else {
            return;
        };
        if let Some(cursor) = self.firing.cursor() {
            // Saved first: a crash mid-handler skips this delivery rather than repeat it.
            if let Err(e) = self.cursors.save(&self.key, cursor).await {
                tracing::error!(watch = %self.key, error = %e, "saving a watch cursor");
            }
        }
        match self.def.handler.run(&payload, index, Output::Capture).await {
            Ok(output) => tracing::info!(watch = %self.key, index, %output, "watch handler ran"),
            Err(e) => tracing::warn!(watch = %self.key, index, error = %e, "watch handler failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn decode(v: Value) -> Result<WatchDefinition, String> {
        WatchDefinition::decode(Obj::new(&v, "watches[0]").unwrap()).map_err(|e| e.to_string())
    }

    #[test]
    fn consul_watch_definitions() {
        let d = decode(json!({"type": "key", "key": "app/cfg", "args": ["/bin/true"]})).unwrap();
        assert_eq!(d.plan, WatchPlan::Key("app/cfg".into()));
        assert_eq!(
            d.handler,
            Handler::Script {
                args: vec!["/bin/true".into()],
                shell: false
            }
        );
        let d = decode(json!({"type": "service", "service": "web", "tag": "v1",
            "passingonly": true, "handler": "cat >> out"}))
        .unwrap();
        assert!(
            matches!(d.plan, WatchPlan::Service { passing_only: true, ref tags, .. } if tags == &["v1"])
        );
        assert!(matches!(d.handler, Handler::Script { shell: true, .. }));
        let d = decode(
            json!({"type": "event", "name": "deploy", "handler_type": "http",
            "http_handler_config": {"path": "http://127.0.0.1:9/hook", "method": "put",
                "header": {"x-a": ["1", "2"]}, "timeout": "3s"}}),
        )
        .unwrap();
        let Handler::Http(h) = d.handler else {
            panic!()
        };
        assert_eq!(h.method, http::Method::PUT);
        assert_eq!(h.timeout, Duration::from_secs(3));
        assert_eq!(h.headers[0].1.len(), 2);
    }

    #[test]
    fn consul_messages_for_bad_definitions() {
        let err = |v| decode(v).unwrap_err();
        assert_eq!(
            err(json!({"args": ["x"]})),
            "watches[0]: Watch type must be specified"
        );
        assert_eq!(
            err(json!({"type": "key", "args": ["x"]})),
            "watches[0]: Must specify a single key to watch"
        );
        assert_eq!(
            err(json!({"type": "key", "key": 3, "args": ["x"]})),
            "watches[0].key: Expecting key to be a string"
        );
        assert_eq!(
            err(json!({"type": "nodes", "key": "k", "args": ["x"]})),
            "watches[0]: Invalid parameters: [key]"
        );
        assert_eq!(
            err(json!({"type": "nodes"})),
            "watches[0]: Must define a watch handler"
        );
        assert_eq!(
            err(json!({"type": "nodes", "args": ["x"], "handler": "y"})),
            "watches[0]: Only one watch handler allowed"
        );
        assert_eq!(
            err(json!({"type": "nodes", "handler_type": "http", "http_handler_config": {}})),
            "watches[0].http_handler_config.path: Requires 'path' to be set"
        );
        assert!(err(json!({"type": "nodes", "handler_type": "http",
            "http_handler_config": {"path": "not a url"}}))
        .starts_with("watches[0].http_handler_config.path: invalid URL"));
        assert_eq!(
            err(json!({"type": "nodes", "handler_type": "pager", "args": ["x"]})),
            "watches[0]: Handler type 'pager' not recognized"
        );
    }
}
