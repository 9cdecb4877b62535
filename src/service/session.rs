//! Sessions and KV locks (Consul's `/v1/session`, `?acquire=` / `?release=`): the rules
//! for what a session may be (defaults, TTL range, behaviors, lock-delay cap) live here,
//! whichever front end asked. Apply decides what depends on state (the node and checks
//! exist, the lock is free, the lock-delay has passed).

use std::time::Duration;

use super::query::{QueryMeta, QueryOptions};
use super::{ResponseMeta, Service, ServiceError};
use crate::state::kv::LockOp;
use crate::state::session::{node_sessions_topic, Behavior, Session, SESSIONS_TOPIC};
use crate::state::store::KvQuery;
use crate::state::{Command, CommandResult, WatchTarget};

/// Consul's default lock-delay.
pub const DEFAULT_LOCK_DELAY: Duration = Duration::from_secs(15);
/// Consul's `MaxLockDelay`: longer requests are capped.
pub const MAX_LOCK_DELAY: Duration = Duration::from_secs(60);
/// Consul's `session_ttl_min` default (`Limits::session_ttl_min`).
pub const MIN_TTL: Duration = Duration::from_secs(10);
/// Consul's maximum session TTL.
pub const MAX_TTL: Duration = Duration::from_secs(86_400);
/// Consul arms a session's timer for this many TTLs (`SessionTTLMultiplier`).
pub const TTL_MULTIPLIER: u32 = 2;
/// The check every session watches unless told otherwise.
pub const DEFAULT_NODE_CHECK: &str = "serfHealth";

/// A session as a front end decoded it; `None` means "Consul's default".
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SessionArgs {
    pub name: String,
    pub node: Option<String>,
    pub lock_delay: Option<Duration>,
    /// `release` or `delete`.
    pub behavior: Option<String>,
    /// Consul's TTL string (e.g. `30s`); empty or `0s` for none.
    pub ttl: Option<String>,
    pub node_checks: Option<Vec<String>>,
    pub service_checks: Vec<String>,
}

/// A random (version 4) UUID, as Consul's session IDs are.
pub fn random_uuid() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Go's `time.ParseDuration`, as Consul parses a TTL.
fn parse_go_duration(text: &str) -> Result<Duration, String> {
    crate::config::consul_json::parse_go_duration(text)
}

impl Service {
    async fn session_write(
        &self,
        command: Command,
    ) -> Result<(u64, Option<Session>), ServiceError> {
        let (index, result) = self.raft.write(command).await?;
        match result {
            CommandResult::Session(Ok(s)) => Ok((index, s)),
            CommandResult::Session(Err(text)) => Err(ServiceError::Rejected(text)),
            other => Err(ServiceError::Internal(format!(
                "session write applied as {other:?}"
            ))),
        }
    }

    /// Consul's `PUT /v1/session/create`: returns the new session's id.
    pub async fn session_create(&self, args: SessionArgs) -> Result<(u64, String), ServiceError> {
        let invalid = |m: String| Err(ServiceError::InvalidArgument(m));
        let behavior = match args.behavior.as_deref() {
            None | Some("") | Some("release") => Behavior::Release,
            Some("delete") => Behavior::Delete,
            Some(other) => return invalid(format!("Invalid Behavior setting '{other}'")),
        };
        let ttl = args.ttl.unwrap_or_default();
        let ttl_ns = if ttl.is_empty() {
            0
        } else {
            let d = match parse_go_duration(&ttl) {
                Ok(d) => d,
                Err(e) => return invalid(format!("Session TTL '{ttl}' invalid: {e}")),
            };
            let min = self.limits.session_ttl_min;
            if !d.is_zero() && !(min..=MAX_TTL).contains(&d) {
                return invalid(format!(
                    "Invalid Session TTL '{}', must be between [{:?}={}h0m0s]",
                    d.as_nanos(),
                    min,
                    MAX_TTL.as_secs() / 3600
                ));
            }
            d.as_nanos() as u64
        };
        let lock_delay = args
            .lock_delay
            .unwrap_or(DEFAULT_LOCK_DELAY)
            .min(MAX_LOCK_DELAY);
        let node = args
            .node
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| self.node_name.clone());
        let session = Session {
            id: random_uuid(),
            name: args.name,
            node,
            lock_delay_ns: lock_delay.as_nanos() as u64,
            behavior,
            ttl: if ttl_ns == 0 { String::new() } else { ttl },
            ttl_ns,
            node_checks: args
                .node_checks
                .unwrap_or_else(|| vec![DEFAULT_NODE_CHECK.to_string()]),
            service_checks: args.service_checks,
            create_index: 0,
            modify_index: 0,
            renewed_index: 0,
        };
        let id = session.id.clone();
        let (index, _) = self.session_write(Command::SessionCreate(session)).await?;
        Ok((index, id))
    }

    /// Consul's `PUT /v1/session/destroy/<id>`: idempotent.
    pub async fn session_destroy(&self, id: &str) -> Result<u64, ServiceError> {
        let id = id.to_string();
        Ok(self.session_write(Command::SessionDestroy { id }).await?.0)
    }

    /// Consul's `PUT /v1/session/renew/<id>`: the session, or NotFound.
    pub async fn session_renew(&self, id: &str) -> Result<(u64, Session), ServiceError> {
        let command = Command::SessionRenew { id: id.to_string() };
        match self.session_write(command).await? {
            (index, Some(s)) => Ok((index, s)),
            (_, None) => Err(ServiceError::NotFound(format!(
                "Session id '{id}' not found"
            ))),
        }
    }

    /// Sessions: one by id, those of a node, or all; blocking per `opts`.
    pub async fn session_list(
        &self,
        filter: SessionFilter,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<Session>), ServiceError> {
        let target = match &filter {
            SessionFilter::Node(n) => WatchTarget::Topic(node_sessions_topic(n)),
            _ => WatchTarget::Topic(SESSIONS_TOPIC.into()),
        };
        self.query(target, opts, move |s| {
            let view = s.view();
            let sessions = view.sessions();
            let value = match &filter {
                SessionFilter::All => sessions.list()?,
                SessionFilter::Id(id) => sessions.get(id)?.into_iter().collect(),
                SessionFilter::Node(n) => sessions.node(n)?,
            };
            Ok(KvQuery {
                applied: view.applied_index()?,
                index: view.sessions_index()?.max(1),
                value,
            })
        })
        .await
    }

    /// Consul's `?acquire=<session>` / `?release=<session>` on a key, reached through
    /// `kv_put` (which has checked the key and the value): whether it took effect
    /// (false: held by another session, inside a lock-delay, or not ours to release); an
    /// unknown session is an error, as in Consul.
    pub(super) async fn kv_lock(
        &self,
        op: LockOp,
        key: String,
        value: Vec<u8>,
        flags: u64,
        session: String,
    ) -> Result<(ResponseMeta, bool), ServiceError> {
        if session.is_empty() {
            return Err(ServiceError::InvalidArgument("Missing session".into()));
        }
        let command = Command::KvLock {
            op,
            key,
            value,
            flags,
            session,
        };
        let (index, result) = self.raft.write(command).await?;
        match result {
            CommandResult::Lock(Ok(ok)) => Ok((self.meta(index), ok)),
            CommandResult::Lock(Err(text)) => Err(ServiceError::Rejected(text)),
            other => Err(ServiceError::Internal(format!(
                "lock write applied as {other:?}"
            ))),
        }
    }
}

/// Which sessions a read returns.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum SessionFilter {
    All,
    Id(String),
    Node(String),
}
