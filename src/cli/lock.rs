//! `rostractl lock [options] <prefix> <child...>`: Consul's `consul lock`, on Consul's
//! key layout so Consul's own clients interoperate on the same keys (spec §10): a single
//! lock at `<prefix>/.lock` with `LOCK_FLAG`; a semaphore of `-n` slots with contender
//! keys `<prefix>/<session>` and the holders in `<prefix>/.lock` (`SEMAPHORE_FLAG`,
//! `{"Limit":N,"Holders":{...}}`, updated by CAS).
//!
//! Where Consul polls with blocking queries and signals the child only when its monitor
//! notices (hashicorp/consul#9788), this follows the key (or prefix) with a watch
//! stream: the moment the lock is lost (session invalidated, key taken or deleted) the
//! child gets SIGTERM, and SIGKILL after a grace period. The child's environment carries
//! `CONSUL_LOCK_HELD=true` and `ROSTRA_LOCK_TOKEN`, the fencing token: the raft index of
//! the write that acquired the lock, strictly increasing per lock, so a resource that
//! remembers the highest token it has seen can refuse a stale holder.

use std::collections::BTreeMap;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail};
use serde_json::{json, Value};
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use super::args::LockArgs;
use crate::client::{Client, KvWatch, Watcher};
use crate::pb;

/// Consul's `LockFlagValue`.
pub const LOCK_FLAG: u64 = 0x2ddc_cbc0_58a5_0c18;
/// Consul's `SemaphoreFlagValue`.
pub const SEMAPHORE_FLAG: u64 = 0xe0f6_9a2b_aa41_4de0;
/// Consul's `DefaultSemaphoreKey`: the coordination key under the prefix.
const LOCK_KEY: &str = ".lock";
/// The lock session's TTL (Consul's).
const SESSION_TTL: Duration = Duration::from_secs(15);
/// Renew (and give up on a renew) this often: a third of the TTL, so a renew that fails
/// leaves time for another before the TTL has passed.
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// SIGTERM, then SIGKILL after this long (Consul's grace).
const KILL_GRACE: Duration = Duration::from_secs(5);
/// After a refused acquire of an unheld key (its lock-delay), try again after this long.
const LOCK_DELAY_RETRY: Duration = Duration::from_secs(1);

/// How the command ended, for the binary's exit code.
#[derive(Debug, PartialEq, Eq)]
pub enum LockExit {
    /// 0.
    Done,
    /// 2: the child failed and `-child-exit-code` was given.
    ChildFailed,
}

/// A validated `lock` command.
#[derive(Debug)]
struct Plan {
    prefix: String,
    child: Vec<String>,
    limit: u64,
    name: String,
    timeout: Option<Duration>,
}

/// Checks the flags (with Consul's messages) before anything touches the network.
pub fn check(a: &LockArgs) -> anyhow::Result<()> {
    plan(a).map(|_| ())
}

fn plan(a: &LockArgs) -> anyhow::Result<Plan> {
    if a.n <= 0 {
        bail!("Lock holder limit must be positive");
    }
    if a.monitor_retry < 0 {
        bail!("Number for 'monitor-retry' must be >= 0");
    }
    let timeout_text = a.r#try.as_deref().unwrap_or(&a.timeout);
    let timeout = match crate::config::consul_json::parse_go_duration_ns(timeout_text) {
        Ok(ns) if ns < 0 => bail!("Timeout must be positive"),
        Ok(0) => None,
        Ok(ns) => Some(Duration::from_nanos(ns as u64)),
        Err(_) => bail!("Invalid timeout {timeout_text:?}: expected a duration such as 10s"),
    };
    if a.args.len() < 2 {
        bail!("Key prefix and child command must be specified");
    }
    let prefix = a.args[0]
        .trim_start_matches('/')
        .trim_end_matches('/')
        .to_string();
    if prefix.is_empty() {
        bail!("Key prefix and child command must be specified");
    }
    let child = a.args[1..].to_vec();
    let name = a
        .name
        .clone()
        .unwrap_or_else(|| format!("Rostra lock for '{}' at '{prefix}'", child.join(" ")));
    Ok(Plan {
        prefix,
        child,
        limit: a.n as u64,
        name,
        timeout,
    })
}

/// Progress lines with `-verbose`, on stderr (the child owns stdout).
struct Log(bool);

impl Log {
    fn say(&self, line: &str) {
        if self.0 {
            eprintln!("{line}");
        }
    }
}

pub async fn run(client: &Client, args: LockArgs) -> anyhow::Result<LockExit> {
    let plan = plan(&args)?;
    let log = Log(args.verbose);
    let semaphore = plan.limit > 1;
    let lock_key = format!("{}/{LOCK_KEY}", plan.prefix);
    log.say(&format!("Setting up lock at path: {lock_key}"));

    let mut sessions = pb::session_client::SessionClient::new(client.channel());
    let behavior = if semaphore {
        pb::SessionBehavior::Delete
    } else {
        pb::SessionBehavior::Release
    };
    let created = sessions
        .create(pb::SessionCreateRequest {
            name: plan.name.clone(),
            ttl: format!("{}s", SESSION_TTL.as_secs()),
            behavior: behavior as i32,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow!("Lock acquisition failed: {}", e.message()))?;
    let session = created.into_inner().id;
    let (lost_tx, lost_rx) = watch::channel(false);
    let renewer = tokio::spawn(renew(sessions.clone(), session.clone(), lost_tx));

    let outcome = hold_and_run(client, &plan, &args, &log, &session, lost_rx).await;
    renewer.abort();
    let _ = renewer.await;
    // Whatever happened, give the lock up and end the session.
    let released = release(client, &plan, &session, semaphore).await;
    let _ = sessions
        .destroy(pb::SessionDestroyRequest {
            id: session.clone(),
        })
        .await;
    let cleaned = cleanup(client, &plan, semaphore).await;
    let exit = outcome?;
    released.map_err(|e| anyhow!("Lock release failed: {e}"))?;
    match cleaned {
        Ok(true) => log.say("Cleanup succeeded"),
        Ok(false) => log.say("Cleanup aborted, lock in use"),
        Err(e) => bail!("Lock cleanup failed: {e}"),
    }
    Ok(exit)
}

/// Renews the session every `RENEW_EVERY`; reports loss when the server says it is gone
/// or no renew has succeeded for a whole TTL.
async fn renew(
    mut sessions: pb::session_client::SessionClient<tonic::transport::Channel>,
    id: String,
    lost: watch::Sender<bool>,
) {
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        // A renew that hangs (a server cut off from the cluster) must not outlive the
        // TTL: past it the leader may already have handed the lock on.
        let renew = sessions.renew(pb::SessionRenewRequest { id: id.clone() });
        match tokio::time::timeout(RENEW_EVERY, renew).await {
            Ok(Ok(_)) => last_ok = tokio::time::Instant::now(),
            Ok(Err(s)) if s.code() == tonic::Code::NotFound => {
                let _ = lost.send(true);
                return;
            }
            Ok(Err(_)) | Err(_) => {}
        }
        if last_ok.elapsed() >= SESSION_TTL {
            let _ = lost.send(true);
            return;
        }
    }
}

/// What the watched keys say about our hold.
fn held(plan: &Plan, state: &BTreeMap<String, pb::KvPair>, session: &str, semaphore: bool) -> bool {
    if semaphore {
        let contender = format!("{}/{session}", plan.prefix);
        let ours = state
            .get(&contender)
            .is_some_and(|kv| kv.session == session);
        ours && holders(plan, state)
            .map(|(_, h)| h.contains_key(session))
            .unwrap_or(false)
    } else {
        state
            .get(&format!("{}/{LOCK_KEY}", plan.prefix))
            .is_some_and(|kv| kv.session == session)
    }
}

/// The semaphore's limit and its live holders (those whose contender key still has its
/// session), from the watched prefix.
fn holders(
    plan: &Plan,
    state: &BTreeMap<String, pb::KvPair>,
) -> anyhow::Result<(u64, BTreeMap<String, bool>)> {
    let Some(kv) = state.get(&format!("{}/{LOCK_KEY}", plan.prefix)) else {
        return Ok((plan.limit, BTreeMap::new()));
    };
    if kv.flags != SEMAPHORE_FLAG {
        bail!("Existing key does not match semaphore use");
    }
    let doc: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| anyhow!("Failed to decode semaphore lock: {e}"))?;
    let limit = doc["Limit"].as_u64().unwrap_or(0);
    let mut live = BTreeMap::new();
    if let Some(h) = doc["Holders"].as_object() {
        for holder in h.keys() {
            let contender = format!("{}/{holder}", plan.prefix);
            if state
                .get(&contender)
                .is_some_and(|kv| kv.session == *holder)
            {
                live.insert(holder.clone(), true);
            }
        }
    }
    Ok((limit, live))
}

async fn put(client: &Client, req: pb::PutRequest) -> anyhow::Result<pb::PutResponse> {
    Ok(client
        .kv()
        .put(req)
        .await
        .map_err(|e| anyhow!("{}", e.message()))?
        .into_inner())
}

/// Waits until this session holds the lock (or a slot), then returns the fencing token
/// and the watcher that keeps following the keys.
async fn acquire(
    client: &Client,
    plan: &Plan,
    session: &str,
) -> anyhow::Result<(u64, Watcher<KvWatch>)> {
    let semaphore = plan.limit > 1;
    let lock_key = format!("{}/{LOCK_KEY}", plan.prefix);
    let spec = if semaphore {
        let contender = format!("{}/{session}", plan.prefix);
        let made = put(
            client,
            pb::PutRequest {
                key: contender,
                flags: SEMAPHORE_FLAG,
                lock: Some(pb::put_request::Lock::Acquire(session.to_string())),
                ..Default::default()
            },
        )
        .await?;
        if !made.succeeded {
            bail!("failed to make contender entry");
        }
        KvWatch {
            key: format!("{}/", plan.prefix),
            prefix: true,
        }
    } else {
        KvWatch {
            key: lock_key.clone(),
            prefix: false,
        }
    };
    let mut watcher = client.follow(spec).await.map_err(|e| anyhow!("{e}"))?;
    loop {
        watcher.next().await.map_err(|e| anyhow!("{e}"))?;
        let state = watcher.state().clone();
        let current = state.get(&lock_key);
        let attempt = if semaphore {
            let (limit, mut live) = holders(plan, &state)?;
            if current.is_some() && limit != plan.limit {
                bail!(
                    "semaphore limit conflict (lock: {limit}, local: {})",
                    plan.limit
                );
            }
            if (live.len() as u64) >= plan.limit {
                continue; // full: wait for the next change
            }
            live.insert(session.to_string(), true);
            let doc = json!({"Limit": plan.limit, "Holders": live});
            pb::PutRequest {
                key: lock_key.clone(),
                value: serde_json::to_vec(&doc).expect("JSON encoding of plain data"),
                flags: SEMAPHORE_FLAG,
                cas: Some(current.map_or(0, |kv| kv.modify_index)),
                lock: None,
            }
        } else {
            if let Some(kv) = current {
                if kv.flags != LOCK_FLAG {
                    bail!("Existing key does not match lock use");
                }
                if kv.session == session {
                    return Ok((kv.modify_index, watcher));
                }
                if !kv.session.is_empty() {
                    continue; // held by another: wait for the next change
                }
            }
            pb::PutRequest {
                key: lock_key.clone(),
                flags: LOCK_FLAG,
                lock: Some(pb::put_request::Lock::Acquire(session.to_string())),
                ..Default::default()
            }
        };
        let reply = put(client, attempt).await?;
        if reply.succeeded {
            let token = reply.header.map_or(0, |h| h.index);
            return Ok((token, watcher));
        }
        if !semaphore && current.is_none_or(|kv| kv.session.is_empty()) {
            // Refused while unheld: the key is in its lock-delay. Nothing will change to
            // wake the watch, so retry after a pause.
            tokio::time::sleep(LOCK_DELAY_RETRY).await;
            watcher = client
                .follow(KvWatch {
                    key: lock_key.clone(),
                    prefix: false,
                })
                .await
                .map_err(|e| anyhow!("{e}"))?;
        }
    }
}

/// Acquires, runs the child while the lock is held, and stops it when the lock is lost
/// or this command is told to stop.
async fn hold_and_run(
    client: &Client,
    plan: &Plan,
    args: &LockArgs,
    log: &Log,
    session: &str,
    mut session_lost: watch::Receiver<bool>,
) -> anyhow::Result<LockExit> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    log.say("Attempting lock acquisition");
    let acquiring = acquire(client, plan, session);
    let deadline = async {
        match plan.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let (token, mut watcher) = tokio::select! {
        got = acquiring => got.map_err(|e| anyhow!("Lock acquisition failed: {e}"))?,
        _ = deadline => bail!("Shutdown triggered or timeout during lock acquisition"),
        _ = term.recv() => bail!("Shutdown triggered or timeout during lock acquisition"),
        _ = int.recv() => bail!("Shutdown triggered or timeout during lock acquisition"),
    };
    log.say("Starting handler");
    let mut child = spawn_child(plan, args, token)?;
    let semaphore = plan.limit > 1;
    let status = loop {
        tokio::select! {
            status = child.wait() => break Some(status?),
            view = watcher.next() => {
                // Views before the acquiring write are older than the lock (the watch
                // may still be catching up to it): they say nothing about losing it.
                let still = match view {
                    Ok(index) if index < token => true,
                    Ok(_) => held(plan, watcher.state(), session, semaphore),
                    Err(_) => false,
                };
                if !still {
                    log.say("Lock lost, killing child");
                    break None;
                }
            }
            _ = session_lost.changed() => {
                log.say("Lock lost (session gone), killing child");
                break None;
            }
            _ = term.recv() => break None,
            _ = int.recv() => break None,
        }
    };
    let status = match status {
        Some(s) => s,
        None => stop_child(&mut child, log).await?,
    };
    log.say("Child terminated, releasing lock");
    Ok(if !status.success() && args.child_exit_code {
        LockExit::ChildFailed
    } else {
        LockExit::Done
    })
}

fn spawn_child(plan: &Plan, args: &LockArgs, token: u64) -> anyhow::Result<Child> {
    let mut cmd = if args.shell {
        let shell = std::env::var("SHELL")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/bin/sh".into());
        let mut c = Command::new(shell);
        c.arg("-c").arg(plan.child.join(" "));
        c
    } else {
        let mut c = Command::new(&plan.child[0]);
        c.args(&plan.child[1..]);
        c
    };
    cmd.env("CONSUL_LOCK_HELD", "true")
        .env("ROSTRA_LOCK_TOKEN", token.to_string());
    if !args.pass_stdin {
        cmd.stdin(Stdio::null());
    }
    cmd.spawn()
        .map_err(|e| anyhow!("Error executing handler: {e}"))
}

/// SIGTERM at once, SIGKILL after the grace period.
async fn stop_child(child: &mut Child, log: &Log) -> anyhow::Result<ExitStatus> {
    if let Some(pid) = child.id() {
        log.say(&format!("Terminating child pid {pid}"));
        // SAFETY: kill(2) on our own child's pid; it has not been reaped (we hold it).
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
    match tokio::time::timeout(KILL_GRACE, child.wait()).await {
        Ok(status) => Ok(status?),
        Err(_) => {
            child.start_kill()?;
            Ok(child.wait().await?)
        }
    }
}

/// Gives up what this session holds (idempotent: nothing held is fine).
async fn release(
    client: &Client,
    plan: &Plan,
    session: &str,
    semaphore: bool,
) -> anyhow::Result<()> {
    let lock_key = format!("{}/{LOCK_KEY}", plan.prefix);
    if !semaphore {
        // A session already invalidated holds nothing: the release is a plain no-op.
        put(
            client,
            pb::PutRequest {
                key: lock_key,
                flags: LOCK_FLAG,
                lock: Some(pb::put_request::Lock::Release(session.to_string())),
                ..Default::default()
            },
        )
        .await?;
        return Ok(());
    }
    // Remove ourselves from the holders by CAS, re-reading on conflict.
    for _ in 0..16 {
        let got = client
            .get(&lock_key, pb::Consistency::Default)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let Some(kv) = got.kv else { break };
        let mut doc: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
        let Some(holders) = doc.get_mut("Holders").and_then(Value::as_object_mut) else {
            break;
        };
        if holders.remove(session).is_none() {
            break;
        }
        let reply = put(
            client,
            pb::PutRequest {
                key: lock_key.clone(),
                value: serde_json::to_vec(&doc).expect("JSON encoding of plain data"),
                flags: SEMAPHORE_FLAG,
                cas: Some(kv.modify_index),
                lock: None,
            },
        )
        .await?;
        if reply.succeeded {
            break;
        }
    }
    client
        .delete(&format!("{}/{session}", plan.prefix), false, None)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// Deletes the coordination key if nobody uses it (by CAS); false when it is in use.
async fn cleanup(client: &Client, plan: &Plan, semaphore: bool) -> anyhow::Result<bool> {
    let lock_key = format!("{}/{LOCK_KEY}", plan.prefix);
    let got = client
        .get(&lock_key, pb::Consistency::Default)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let Some(kv) = got.kv else { return Ok(true) };
    let in_use = if semaphore {
        let prefix = client
            .list(pb::ListRequest {
                prefix: format!("{}/", plan.prefix),
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let state: BTreeMap<String, pb::KvPair> = prefix
            .kvs
            .into_iter()
            .map(|kv| (kv.key.clone(), kv))
            .collect();
        kv.flags != SEMAPHORE_FLAG || !holders(plan, &state)?.1.is_empty()
    } else {
        kv.flags != LOCK_FLAG || !kv.session.is_empty()
    };
    if in_use {
        return Ok(false);
    }
    let deleted = client
        .delete(&lock_key, false, Some(kv.modify_index))
        .await
        .map_err(|e| anyhow!("{e}"))?;
    Ok(deleted.succeeded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(n: i64, rest: &[&str]) -> LockArgs {
        LockArgs {
            n,
            name: None,
            shell: true,
            timeout: "0s".into(),
            r#try: None,
            monitor_retry: 3,
            child_exit_code: false,
            pass_stdin: false,
            verbose: false,
            args: rest.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn consul_messages_for_bad_flags() {
        let msg = |a: LockArgs| plan(&a).unwrap_err().to_string();
        assert_eq!(
            msg(args(0, &["p", "true"])),
            "Lock holder limit must be positive"
        );
        assert_eq!(
            msg(args(1, &["p"])),
            "Key prefix and child command must be specified"
        );
        let mut a = args(1, &["p", "true"]);
        a.timeout = "-1s".into();
        assert_eq!(msg(a), "Timeout must be positive");
        let mut a = args(1, &["p", "true"]);
        a.monitor_retry = -1;
        assert_eq!(msg(a), "Number for 'monitor-retry' must be >= 0");
        let p = plan(&args(2, &["/workshop/lock/", "echo", "hi"])).unwrap();
        assert_eq!((p.prefix.as_str(), p.limit), ("workshop/lock", 2));
        assert_eq!(p.child, vec!["echo", "hi"]);
    }

    #[test]
    fn flags_are_consuls() {
        assert_eq!(LOCK_FLAG, 3304740253564472344);
        assert_eq!(SEMAPHORE_FLAG, 16210313421097356768);
    }
}
