//! Remote exec, the requester's half, built from the seam's own calls as Consul's
//! `consul exec` is (spec §12), so any `ControlPlane` serves it: a session (`Remote
//! Exec`, delete behaviour, renewed while the run lasts), the job at
//! `_rexec/<session>/job`, a `_rexec` user event carrying the node/service/tag filters,
//! and each agent's answers under `_rexec/<session>/<node>/` (`ack`, `out/<seq>`,
//! `exit`, or `declined` from an agent with exec off). Unlike Consul's CLI, which polls
//! the keys, the run follows them with a KV watch and knows which nodes it targeted (the
//! live members the filters match), so a node that never answers is named.
//!
//! Every agent writes with `?acquire=<session>`: once the run ends (or its caller goes
//! away) the session is destroyed and the agents' next write fails, which stops their
//! processes. The run's keys are deleted at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::event::{event_matches, FireArgs};
use super::follow::{self, Follower};
use super::kv::PutArgs;
use super::membership::MemberStatus;
use super::session::SessionArgs;
use super::{Api, QueryOptions, ServiceError};
use crate::state::event::Event;
use crate::state::kv::LockOp;
use crate::state::WatchTarget;

/// Consul's KV prefix and event name for exec jobs.
pub const PREFIX: &str = "_rexec";
pub const EVENT: &str = "_rexec";
/// Consul's `-wait` default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(2);
const SESSION_TTL: &str = "15s";
const RENEW_EVERY: Duration = Duration::from_secs(5);

/// Consul's job spec, as stored at `_rexec/<session>/job`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    #[serde(rename = "Command", default, skip_serializing_if = "String::is_empty")]
    pub command: String,
    #[serde(rename = "Args", default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// `-wait` in nanoseconds: how often a silent command sends a heartbeat chunk.
    #[serde(rename = "Wait", default)]
    pub wait_ns: u64,
}

/// The `_rexec` event's payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecEventPayload {
    #[serde(rename = "Prefix")]
    pub prefix: String,
    #[serde(rename = "Session")]
    pub session: String,
}

/// A run as a front end decoded it.
#[derive(Debug, Clone, Default)]
pub struct ExecArgs {
    pub job: JobSpec,
    pub node_filter: String,
    pub service_filter: String,
    pub tag_filter: String,
    pub wait: Duration,
}

/// What a run streams back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    Ack { node: String },
    Output { node: String, data: Vec<u8> },
    Exit { node: String, code: i32 },
    Declined { node: String, reason: String },
    NoAnswer { node: String },
    Done { completed: u32, acknowledged: u32 },
}

/// Where one node's answer stands.
#[derive(Default)]
struct NodeState {
    acked: bool,
    done: bool,
    /// Output chunks already passed on.
    seen: BTreeSet<String>,
}

/// Starts a run; its events arrive on the receiver, which the caller drops to cancel.
pub async fn run(api: &Api, args: ExecArgs) -> Result<mpsc::Receiver<ExecEvent>, ServiceError> {
    if args.job.command.trim().is_empty() && args.job.args.is_empty() {
        return Err(ServiceError::InvalidArgument(
            "Must specify a command to execute".into(),
        ));
    }
    let filters = Event {
        node_filter: args.node_filter.clone(),
        service_filter: args.service_filter.clone(),
        tag_filter: args.tag_filter.clone(),
        ..Event::default()
    };
    // The nodes the event will reach: live members whose node and services match.
    let mut targeted = BTreeSet::new();
    for m in api.members().await? {
        if m.status != MemberStatus::Alive {
            continue;
        }
        let (_, found) = api
            .catalog_node(&m.node.name, &QueryOptions::default())
            .await?;
        let services = found.map(|(_, s)| s).unwrap_or_default();
        let pairs = services.iter().map(|s| (s.name.as_str(), &s.tags[..]));
        if event_matches(&filters, &m.node.name, pairs) {
            targeted.insert(m.node.name.clone());
        }
    }
    let wait = if args.wait.is_zero() {
        DEFAULT_WAIT
    } else {
        args.wait
    };
    let (_, session) = api
        .session_create(SessionArgs {
            name: "Remote Exec".into(),
            behavior: Some("delete".into()),
            ttl: Some(SESSION_TTL.into()),
            ..Default::default()
        })
        .await?;
    let dir = format!("{PREFIX}/{session}/");
    let started = start(api, &args, &session, &dir, wait).await;
    let watch = match started {
        Ok(w) => w,
        Err(e) => {
            cleanup(api, &session, &dir).await;
            return Err(e);
        }
    };
    let (tx, rx) = mpsc::channel(64);
    let owner = api.clone();
    let api = api.clone();
    owner.spawn(Box::pin(async move {
        follow_run(&api, watch, &tx, &session, &dir, targeted, wait).await;
        cleanup(&api, &session, &dir).await;
    }));
    Ok(rx)
}

/// Stores the job, watches its directory, then fires the event.
async fn start(
    api: &Api,
    args: &ExecArgs,
    session: &str,
    dir: &str,
    wait: Duration,
) -> Result<super::KvWatchReceiver, ServiceError> {
    let job = JobSpec {
        wait_ns: wait.as_nanos() as u64,
        ..args.job.clone()
    };
    let (_, stored) = api
        .kv_put(PutArgs {
            key: format!("{dir}job"),
            value: serde_json::to_vec(&job).expect("JSON encoding of plain data"),
            lock: Some((LockOp::Acquire, session.to_string())),
            ..Default::default()
        })
        .await?;
    if !stored {
        return Err(ServiceError::Internal(
            "could not store the exec job".into(),
        ));
    }
    // Watch before firing, so no answer falls between.
    let watch = api.watch_kv(WatchTarget::Prefix(dir.to_string()), 0)?;
    let payload = ExecEventPayload {
        prefix: PREFIX.into(),
        session: session.to_string(),
    };
    api.event_fire(FireArgs {
        name: EVENT.into(),
        payload: serde_json::to_vec(&payload).expect("JSON encoding of plain data"),
        node_filter: args.node_filter.clone(),
        service_filter: args.service_filter.clone(),
        tag_filter: args.tag_filter.clone(),
    })
    .await?;
    Ok(watch)
}

/// Passes each node's answers on until every targeted node has finished or declined, or
/// until `wait` of silence (doubled while a node that acknowledged is still running).
async fn follow_run(
    api: &Api,
    watch: super::KvWatchReceiver,
    tx: &mpsc::Sender<ExecEvent>,
    session: &str,
    dir: &str,
    targeted: BTreeSet<String>,
    wait: Duration,
) {
    let mut keys = Follower::<follow::Kv>::new(watch);
    let mut nodes: BTreeMap<String, NodeState> = BTreeMap::new();
    let mut renew =
        tokio::time::interval_at(tokio::time::Instant::now() + RENEW_EVERY, RENEW_EVERY);
    let mut heard = tokio::time::Instant::now();
    loop {
        let running = nodes.values().any(|n| n.acked && !n.done);
        let all_done = !targeted.is_empty()
            && targeted
                .iter()
                .all(|t| nodes.get(t).is_some_and(|n| n.done));
        if all_done {
            break;
        }
        // Consul's rule: stop after `wait` of silence, twice that while a node runs.
        let quiet_until = heard + if running { wait * 2 } else { wait };
        tokio::select! {
            _ = tx.closed() => return,
            _ = renew.tick() => {
                if let Err(e) = api.session_renew(session).await {
                    tracing::debug!(error = %e, "renewing the exec session");
                }
            }
            _ = tokio::time::sleep_until(quiet_until) => break,
            synced = keys.next() => {
                if synced.is_none() { return } // the server is stopping
                let mut events = Vec::new();
                let mut news = false;
                for (key, entry) in keys.state() {
                    let Some(rest) = key.strip_prefix(dir) else { continue };
                    let Some((node, what)) = rest.split_once('/') else { continue };
                    let state = nodes.entry(node.to_string()).or_default();
                    if what == "ack" && !state.acked {
                        state.acked = true;
                        news = true;
                        events.push(ExecEvent::Ack { node: node.into() });
                    } else if let Some(seq) = what.strip_prefix("out/") {
                        // An empty chunk is a running command's heartbeat.
                        if state.seen.insert(seq.to_string()) {
                            news = true;
                            if !entry.value.is_empty() {
                                events.push(ExecEvent::Output { node: node.into(), data: entry.value.clone() });
                            }
                        }
                    } else if what == "exit" && !state.done {
                        state.done = true;
                        news = true;
                        let code = String::from_utf8_lossy(&entry.value).trim().parse().unwrap_or(255);
                        events.push(ExecEvent::Exit { node: node.into(), code });
                    } else if what == "declined" && !state.done {
                        state.done = true;
                        news = true;
                        let reason = String::from_utf8_lossy(&entry.value).into_owned();
                        events.push(ExecEvent::Declined { node: node.into(), reason });
                    }
                }
                // Keys come in key order: put each node's exit after its output.
                events.sort_by_key(|e| matches!(e, ExecEvent::Exit { .. }));
                if news {
                    heard = tokio::time::Instant::now();
                }
                for e in events {
                    if tx.send(e).await.is_err() { return }
                }
            }
        }
    }
    for t in &targeted {
        if !nodes.get(t).is_some_and(|n| n.acked || n.done) {
            let _ = tx.send(ExecEvent::NoAnswer { node: t.clone() }).await;
        }
    }
    let acked = nodes.values().filter(|n| n.acked).count() as u32;
    let completed = nodes.values().filter(|n| n.acked && n.done).count() as u32;
    let _ = tx
        .send(ExecEvent::Done {
            completed,
            acknowledged: acked,
        })
        .await;
}

/// Ends the session (the agents' next writes fail, stopping their processes) and
/// deletes the run's keys.
async fn cleanup(api: &Api, session: &str, dir: &str) {
    if let Err(e) = api.session_destroy(session).await {
        tracing::debug!(error = %e, "destroying the exec session");
    }
    if let Err(e) = api.kv_delete(dir, true, None).await {
        tracing::debug!(error = %e, "deleting the exec keys");
    }
}
