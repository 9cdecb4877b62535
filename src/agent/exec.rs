//! Remote exec, the agent's half (spec §12): the agent takes the `_rexec` user events
//! aimed at its node (`agent::events`) that it has not answered yet (a retained job
//! whose run is over is skipped: its job key is gone), and for each runs the job under
//! `sh -c` (or its argument vector), writing `ack`, output chunks and `exit` under
//! `_rexec/<session>/<node>/` with the run's session. An agent with exec disabled (the default, Consul's `disable_remote_exec`)
//! writes `declined` instead of staying silent. When a write fails because the session
//! is gone (the run ended or its caller went away) the process is killed.
//!
//! Output is bounded: chunks of at most 4 KiB, flushed when full or after 500 ms of
//! quiet, an empty chunk every `Wait` while the command is silent (the requester's
//! heartbeat), and at most `OUTPUT_CAP` bytes per run, then a notice.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, Semaphore};

use super::Agent;
use crate::service::exec::{ExecEventPayload, JobSpec, EVENT};
use crate::service::kv::PutArgs;
use crate::service::QueryOptions;
use crate::state::kv::LockOp;

const CHUNK: usize = 4096;
const FLUSH_AFTER: Duration = Duration::from_millis(500);
/// Output kept per run and node.
pub const OUTPUT_CAP: usize = 256 * 1024;
/// Jobs run at once on one agent.
const CONCURRENT_JOBS: usize = 8;
/// Why an agent will not run a job.
pub const DISABLED: &str = "remote exec is disabled on this agent (disable_remote_exec is true)";

/// Runs the `_rexec` events aimed at this node that are fired while the agent runs.
pub(super) async fn run(agent: Arc<Agent>) {
    let slots = Arc::new(Semaphore::new(CONCURRENT_JOBS));
    let mut events = agent.node_events.subscribe();
    // Events up to this Lamport time were taken up by this process. The retained ones
    // seen at start are taken up too: a job still running when this agent (re)started
    // is answered, and one that is over (its job key gone) or that this node already
    // answered (`job` checks) costs a read. There is no first-view baseline to race
    // against a job fired as the agent starts.
    let mut handled: u64 = 0;
    loop {
        let view = events.borrow_and_update().clone();
        if let Some(view) = view {
            let newest = view.items.keys().filter_map(|k| match k {
                crate::service::ItemKey::Event(ltime) => Some(*ltime),
                _ => None,
            });
            let newest = newest.max().unwrap_or(0);
            {
                let after = handled;
                for e in view
                    .aimed_at(&agent)
                    .filter(|e| e.name == EVENT && e.ltime > after)
                {
                    let Ok(p) = serde_json::from_slice::<ExecEventPayload>(&e.payload) else {
                        tracing::warn!(event = %e.id, "an exec event without a valid payload");
                        continue;
                    };
                    let (agent, slots) = (agent.clone(), slots.clone());
                    let owner = agent.service.clone();
                    owner.spawn(Box::pin(async move {
                        let Ok(_slot) = slots.acquire_owned().await else {
                            return;
                        };
                        tokio::select! {
                            _ = agent.shutdown.cancelled() => {}
                            _ = job(&agent, p) => {}
                        }
                    }));
                }
            }
            handled = newest.max(handled);
        }
        tokio::select! {
            _ = agent.shutdown.cancelled() => return,
            changed = events.changed() => if changed.is_err() { return },
        }
    }
}

/// Writes one key of this node's answer with the run's session; false once the session
/// is gone.
async fn write(agent: &Agent, base: &str, what: &str, value: Vec<u8>, session: &str) -> bool {
    let put = PutArgs {
        key: format!("{base}{what}"),
        value,
        lock: Some((LockOp::Acquire, session.to_string())),
        ..Default::default()
    };
    match agent.service.kv_put(put).await {
        Ok((_, ok)) => ok,
        Err(e) => {
            tracing::warn!(error = %e, key = %format!("{base}{what}"), "writing an exec answer");
            false
        }
    }
}

async fn job(agent: &Agent, p: ExecEventPayload) {
    let base = format!("{}/{}/{}/", p.prefix, p.session, agent.node.name);
    // Answered already (by this agent before a restart): never run a job twice.
    match agent.service.kv_list(&base, &QueryOptions::default()).await {
        Ok((_, answered)) if !answered.is_empty() => return,
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "reading this node's exec answer");
            return;
        }
    }
    if !agent.enable_remote_exec {
        write(agent, &base, "declined", DISABLED.into(), &p.session).await;
        return;
    }
    let key = format!("{}/{}/job", p.prefix, p.session);
    let spec: JobSpec = match agent.service.kv_get(&key, &QueryOptions::default()).await {
        Ok((_, Some(kv))) => match serde_json::from_slice(&kv.value) {
            Ok(spec) => spec,
            Err(e) => {
                tracing::warn!(error = %e, "an exec job that does not decode");
                return;
            }
        },
        Ok((_, None)) => return, // the run is already over
        Err(e) => {
            tracing::warn!(error = %e, "reading an exec job");
            return;
        }
    };
    if !write(agent, &base, "ack", Vec::new(), &p.session).await {
        return;
    }
    tracing::info!(session = %p.session, command = %spec.command, "running remote exec job");
    let code = execute(agent, &base, &p.session, &spec).await;
    write(
        agent,
        &base,
        "exit",
        code.to_string().into_bytes(),
        &p.session,
    )
    .await;
}

/// Runs the command, streaming its output; returns its exit code (255 when it could not
/// start, or was killed because the run ended).
async fn execute(agent: &Agent, base: &str, session: &str, spec: &JobSpec) -> i32 {
    let mut cmd = if spec.args.is_empty() {
        let mut c = tokio::process::Command::new("sh");
        c.arg("-c").arg(&spec.command);
        c
    } else {
        let mut c = tokio::process::Command::new(&spec.args[0]);
        c.args(&spec.args[1..]);
        c
    };
    if let Some((grpc, http)) = agent.api_addrs {
        cmd.env("ROSTRA_ADDR", grpc.to_string())
            .env("CONSUL_HTTP_ADDR", http.to_string());
    }
    cmd.env("ROSTRA_NODE", &agent.node.name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("failed to start the command: {e}\n");
            write(agent, base, "out/00000", msg.into_bytes(), session).await;
            return 255;
        }
    };
    // Both pipes feed one channel of output pieces.
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        agent.service.spawn(Box::pin(async move {
            let mut pipe = pipe;
            let mut buf = vec![0u8; CHUNK];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 || tx.send(buf[..n].to_vec()).await.is_err() {
                    return;
                }
            }
        }));
    }
    drop(tx);
    let heartbeat = Duration::from_nanos(spec.wait_ns).max(Duration::from_millis(500));
    let (mut seq, mut sent, mut pending) = (0u32, 0usize, Vec::new());
    let mut truncated = false;
    let mut last_write = tokio::time::Instant::now();
    let mut open = true;
    loop {
        let flush_at = if pending.is_empty() {
            last_write + heartbeat
        } else {
            last_write.min(tokio::time::Instant::now()) + FLUSH_AFTER
        };
        tokio::select! {
            piece = rx.recv(), if open => match piece {
                Some(bytes) => {
                    let room = OUTPUT_CAP.saturating_sub(sent + pending.len());
                    if bytes.len() > room && !truncated {
                        pending.extend_from_slice(&bytes[..room]);
                        pending.extend_from_slice(
                            format!("\n[output truncated after {OUTPUT_CAP} bytes]\n").as_bytes(),
                        );
                        truncated = true;
                    } else if !truncated {
                        pending.extend_from_slice(&bytes);
                    }
                    if pending.len() < CHUNK {
                        continue;
                    }
                }
                None => open = false,
            },
            _ = tokio::time::sleep_until(flush_at) => {}
        }
        // Flush what is pending (or a heartbeat); stop when the session is gone.
        while !pending.is_empty() || tokio::time::Instant::now() >= last_write + heartbeat {
            let take = pending.len().min(CHUNK);
            let chunk: Vec<u8> = pending.drain(..take).collect();
            sent += chunk.len();
            if !write(agent, base, &format!("out/{seq:05x}"), chunk, session).await {
                let _ = child.kill().await;
                return 255;
            }
            seq += 1;
            last_write = tokio::time::Instant::now();
            if pending.is_empty() {
                break;
            }
        }
        if !open {
            break;
        }
    }
    match child.wait().await {
        Ok(status) => status.code().unwrap_or(255),
        Err(_) => 255,
    }
}
