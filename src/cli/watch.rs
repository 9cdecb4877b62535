//! `rostractl watch`: Consul's `consul watch` built on streaming watches instead of
//! blocking-query polling. The handler gets exactly what Consul would give it on stdin
//! (a KVPair object for `key`, arrays for `keyprefix`, `nodes`, `service`, `checks`, an
//! object for `services`; `CONSUL_INDEX` in its environment), once at start and once
//! per change; a change that leaves the result deep-equal to the last one delivered does
//! not fire it, as in Consul. A broken stream is reopened (KV watches resume from their
//! index, so nothing is missed or repeated).

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Stdio;

use anyhow::{anyhow, bail};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::args::WatchArgs;
use super::consul_json::{to_pretty_json, KvPairJson};
use crate::client::{
    Client, EventsWatch, HealthServiceWatch, KvWatch, NodesWatch, ServiceChecksWatch,
    ServicesWatch, StateChecksWatch, WatchSpec, Watcher,
};
use crate::grpc::catalog_convert as cc;
use crate::http::catalog_json as cj;
use crate::http::event::event_json;
use crate::pb;

/// What a validated `watch` command will follow.
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
    StateChecks(pb::HealthStatus),
    /// User events, optionally of one name.
    Event(String),
}

/// Validates the flags with Consul's messages.
pub fn plan(w: &WatchArgs) -> anyhow::Result<WatchPlan> {
    match w.watch_type.as_deref() {
        None | Some("") => bail!("Watch type must be specified"),
        Some("key") => match w.key.as_deref() {
            Some(k) if !k.is_empty() => Ok(WatchPlan::Key(k.trim_start_matches('/').to_string())),
            _ => bail!("Must specify a single key to watch"),
        },
        Some("keyprefix") => match w.prefix.as_deref() {
            Some(p) => Ok(WatchPlan::KeyPrefix(p.trim_start_matches('/').to_string())),
            None => bail!("Must specify a single prefix to watch"),
        },
        Some("services") => Ok(WatchPlan::Services),
        Some("nodes") => Ok(WatchPlan::Nodes),
        Some("service") => {
            let name = w
                .service
                .clone()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| anyhow!("Must specify a single service to watch"))?;
            let passing_only = match crate::config::consul_json::parse_go_bool(&w.passingonly) {
                Some(b) => b,
                None => bail!(
                    "Failed to parse passingonly flag: strconv.ParseBool: parsing {:?}: invalid syntax",
                    w.passingonly
                ),
            };
            Ok(WatchPlan::Service {
                name,
                tags: w.tag.clone(),
                passing_only,
            })
        }
        Some("checks") => match (&w.service, &w.state) {
            (Some(_), Some(_)) => bail!("Cannot specify service and state"),
            (Some(s), None) => Ok(WatchPlan::ServiceChecks(s.clone())),
            (None, state) => Ok(WatchPlan::StateChecks(
                match state.as_deref().unwrap_or("any") {
                    "any" => pb::HealthStatus::Unspecified,
                    "passing" => pb::HealthStatus::Passing,
                    "warning" => pb::HealthStatus::Warning,
                    "critical" => pb::HealthStatus::Critical,
                    other => bail!("Unsupported state: {other}"),
                },
            )),
        },
        Some("event") => Ok(WatchPlan::Event(w.name.clone().unwrap_or_default())),
        Some(t @ ("connect_roots" | "connect_leaf" | "agent_service")) => {
            bail!("Type {t} is not supported in the CLI tool")
        }
        Some(t) => bail!("Unsupported watch type: {t}"),
    }
}

/// The JSON Consul's watch produces for a KV watch's current state.
fn render_kv(plan: &WatchPlan, state: &BTreeMap<String, pb::KvPair>) -> Value {
    let to_value = |v: KvPairJson| serde_json::to_value(v).expect("JSON encoding of plain data");
    match plan {
        WatchPlan::Key(k) => state
            .get(k)
            .map(|kv| to_value(KvPairJson::from(kv)))
            .unwrap_or(Value::Null),
        _ => {
            let pairs: Vec<Value> = state
                .values()
                .map(|kv| to_value(KvPairJson::from(kv)))
                .collect();
            if pairs.is_empty() {
                Value::Null
            } else {
                Value::Array(pairs)
            }
        }
    }
}

/// Renders a watch's items as Consul's JSON.
type Render<K, V> = Box<dyn Fn(&BTreeMap<K, V>) -> Result<Value, tonic::Status> + Send>;

/// A followed watch and how its state renders as Consul's JSON.
struct Followed<S: WatchSpec> {
    watcher: Watcher<S>,
    render: Render<S::Key, S::Item>,
}

/// Consistent views of any watch, as (index, Consul JSON).
#[async_trait::async_trait]
trait Views: Send {
    async fn next(&mut self) -> anyhow::Result<(u64, Value)>;
}

#[async_trait::async_trait]
impl<S: WatchSpec> Views for Followed<S> {
    async fn next(&mut self) -> anyhow::Result<(u64, Value)> {
        let index = self
            .watcher
            .next()
            .await
            .map_err(|e| anyhow!("Error querying Rostra agent: {e}"))?;
        let view = (self.render)(self.watcher.state())
            .map_err(|e| anyhow!("Error querying Rostra agent: {}", e.message()))?;
        Ok((index, view))
    }
}

async fn follow<S: WatchSpec>(
    client: &Client,
    spec: S,
    render: impl Fn(&BTreeMap<S::Key, S::Item>) -> Result<Value, tonic::Status> + Send + 'static,
) -> anyhow::Result<Box<dyn Views>> {
    let watcher = client
        .follow(spec)
        .await
        .map_err(|e| anyhow!("Error querying Rostra agent: {e}"))?;
    Ok(Box::new(Followed {
        watcher,
        render: Box::new(render),
    }))
}

/// An array of the items, each rendered by `one`.
fn array<K, T>(
    state: &BTreeMap<K, T>,
    one: impl Fn(&T) -> Result<Value, tonic::Status>,
) -> Result<Value, tonic::Status> {
    Ok(Value::Array(
        state.values().map(one).collect::<Result<_, _>>()?,
    ))
}

/// Opens the watch a plan follows.
async fn open(client: &Client, plan: &WatchPlan) -> anyhow::Result<Box<dyn Views>> {
    let checks = |c: &pb::HealthCheck| cc::check_view_in(c.clone()).map(|c| cj::check_view(&c));
    match plan.clone() {
        WatchPlan::Key(key) | WatchPlan::KeyPrefix(key) => {
            let prefix = matches!(plan, WatchPlan::KeyPrefix(_));
            let plan = plan.clone();
            follow(client, KvWatch { key, prefix }, move |s| {
                Ok(render_kv(&plan, s))
            })
            .await
        }
        WatchPlan::Services => {
            follow(client, ServicesWatch, |s| {
                // Sorted by name, as Consul's JSON object is.
                let map: serde_json::Map<String, Value> = s
                    .values()
                    .map(|v| (v.name.clone(), Value::from(v.tags.clone())))
                    .collect();
                Ok(Value::Object(map))
            })
            .await
        }
        WatchPlan::Nodes => {
            follow(client, NodesWatch, |s| {
                array(s, |n| Ok(cj::node(&cc::node_in(n.clone()))))
            })
            .await
        }
        WatchPlan::Service {
            name,
            tags,
            passing_only,
        } => {
            let spec = HealthServiceWatch {
                service: name,
                tags,
                passing_only,
            };
            follow(client, spec, |s| {
                array(s, |e| {
                    cc::entry_in(e.clone()).map(|e| cj::service_entry(&e))
                })
            })
            .await
        }
        WatchPlan::ServiceChecks(service) => {
            follow(client, ServiceChecksWatch { service }, move |s| {
                array(s, checks)
            })
            .await
        }
        WatchPlan::StateChecks(state) => {
            follow(client, StateChecksWatch { state }, move |s| {
                array(s, checks)
            })
            .await
        }
        WatchPlan::Event(name) => {
            // Consul's event watch: every retained event at first, then only the events
            // newer than the last delivered (by Lamport time, which only grows).
            let delivered = std::sync::Mutex::new(0u64);
            follow(client, EventsWatch { name }, move |s| {
                let mut last = delivered.lock().unwrap_or_else(|p| p.into_inner());
                let fresh: Vec<Value> = s
                    .range(*last + 1..)
                    .map(|(_, e)| event_json(&crate::grpc::event::event_in(e.clone())))
                    .collect();
                *last = s.keys().next_back().copied().unwrap_or(0).max(*last);
                Ok(Value::Array(fresh))
            })
            .await
        }
    }
}

/// Runs the watch: prints the view once without a handler, else feeds the handler every
/// view that differs from the last one it got. Every watch reads the state of the server
/// it is connected to (so `-stale` changes nothing); a broken stream resumes from the
/// last index, with nothing missed or repeated.
pub async fn run(
    client: &Client,
    plan: WatchPlan,
    w: WatchArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let mut views = open(client, &plan).await?;
    let mut last_delivered: Option<Value> = None;
    loop {
        let (index, view) = views.next().await?;
        if w.handler.is_empty() {
            writeln!(out, "{}", to_pretty_json(&view, b"    "))?;
            return Ok(());
        }
        if last_delivered.as_ref() == Some(&view) {
            continue;
        }
        // An event watch hands over only new events: a change with none (retention
        // trimming old ones) is nothing to deliver.
        if matches!(plan, WatchPlan::Event(_))
            && last_delivered.is_some()
            && view == Value::Array(vec![])
        {
            continue;
        }
        let payload = serde_json::to_string(&view).expect("JSON encoding of plain data");
        run_handler(&w.handler, w.shell, &payload, index).await?;
        last_delivered = Some(view);
    }
}

/// Runs the handler with the payload (plus a newline) on stdin; its output is ours.
async fn run_handler(
    handler: &[String],
    shell: bool,
    payload: &str,
    index: u64,
) -> anyhow::Result<()> {
    let mut cmd = if shell {
        let mut c = tokio::process::Command::new("sh");
        c.arg("-c").arg(handler.join(" "));
        c
    } else {
        let mut c = tokio::process::Command::new(&handler[0]);
        c.args(&handler[1..]);
        c
    };
    cmd.env("CONSUL_INDEX", index.to_string())
        .env("ROSTRA_INDEX", index.to_string())
        .stdin(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| anyhow!("Error executing handler: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let mut data = payload.as_bytes().to_vec();
        data.push(b'\n');
        // A handler that ignores stdin may close it early; that is not an error.
        let _ = stdin.write_all(&data).await;
    }
    let status = child
        .wait()
        .await
        .map_err(|e| anyhow!("Error executing handler: {e}"))?;
    if !status.success() {
        bail!("Error executing handler: {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(t: Option<&str>, key: Option<&str>, prefix: Option<&str>) -> WatchArgs {
        WatchArgs {
            watch_type: t.map(String::from),
            key: key.map(String::from),
            prefix: prefix.map(String::from),
            service: None,
            tag: Vec::new(),
            passingonly: "false".into(),
            state: None,
            name: None,
            shell: true,
            stale: false,
            handler: vec![],
        }
    }

    #[test]
    fn consul_messages_for_bad_flags() {
        let msg = |a| plan(&a).unwrap_err().to_string();
        assert_eq!(msg(args(None, None, None)), "Watch type must be specified");
        assert_eq!(
            msg(args(Some("key"), None, None)),
            "Must specify a single key to watch"
        );
        assert_eq!(
            msg(args(Some("keyprefix"), None, None)),
            "Must specify a single prefix to watch"
        );
        assert_eq!(
            msg(args(Some("bogus"), None, None)),
            "Unsupported watch type: bogus"
        );
        assert_eq!(
            plan(&args(Some("keyprefix"), None, Some("a/"))).unwrap(),
            WatchPlan::KeyPrefix("a/".into())
        );
    }

    #[test]
    fn renders_null_object_and_array() {
        let render = |plan: &WatchPlan, state: &std::collections::BTreeMap<String, pb::KvPair>| {
            serde_json::to_string(&render_kv(plan, state)).unwrap()
        };
        let mut state = std::collections::BTreeMap::new();
        assert_eq!(render(&WatchPlan::Key("k".into()), &state), "null");
        assert_eq!(render(&WatchPlan::KeyPrefix("".into()), &state), "null");
        state.insert(
            "k".to_string(),
            pb::KvPair {
                key: "k".into(),
                value: b"foo".to_vec(),
                ..Default::default()
            },
        );
        assert!(render(&WatchPlan::Key("k".into()), &state).starts_with(r#"{"Key":"k""#));
        assert!(render(&WatchPlan::KeyPrefix("".into()), &state).starts_with(r#"[{"Key":"k""#));
    }

    #[test]
    fn catalog_watch_types_and_messages() {
        let mut a = args(Some("service"), None, None);
        assert_eq!(
            plan(&a).unwrap_err().to_string(),
            "Must specify a single service to watch"
        );
        a.service = Some("web".into());
        a.passingonly = "maybe".into();
        assert!(plan(&a)
            .unwrap_err()
            .to_string()
            .starts_with("Failed to parse passingonly flag"));
        a.passingonly = "true".into();
        assert!(matches!(
            plan(&a).unwrap(),
            WatchPlan::Service {
                passing_only: true,
                ..
            }
        ));
        let mut c = args(Some("checks"), None, None);
        assert_eq!(
            plan(&c).unwrap(),
            WatchPlan::StateChecks(pb::HealthStatus::Unspecified)
        );
        c.service = Some("web".into());
        c.state = Some("critical".into());
        assert_eq!(
            plan(&c).unwrap_err().to_string(),
            "Cannot specify service and state"
        );
        assert_eq!(
            plan(&args(Some("nodes"), None, None)).unwrap(),
            WatchPlan::Nodes
        );
        assert_eq!(
            plan(&args(Some("services"), None, None)).unwrap(),
            WatchPlan::Services
        );
    }
}
