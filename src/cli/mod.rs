//! `rostractl` and `rostra agent` argument handling and commands. Commands convert flags
//! into requests, call [`crate::client`], and print; they return errors instead of
//! exiting so the binaries own the exit codes:
//! 0 success, 1 failure (unreachable server, missing key, CAS conflict, handler error),
//! 2 usage error (from clap).

pub mod agent;
pub mod agent_http;
pub mod args;
pub mod bench;
pub mod bench_catalog;
pub mod compare;
pub mod consul_json;
pub mod event;
pub mod exec;
pub mod goflags;
pub mod kv;
pub mod lock;
pub mod members;
pub mod snapshot;
pub mod validate;
pub mod watch;

use std::io::Write;

use self::args::{CtlArgs, CtlCommand};
use crate::client::Client;

/// A command that ended without an error but with a non-zero exit code of its own
/// (`lock -child-exit-code` when the child failed: 2, as Consul).
#[derive(Debug, thiserror::Error)]
#[error("exit status {0}")]
pub struct ExitStatus(pub u8);

/// Writes rows as Consul's CLI prints tables: columns padded to their widest cell, two
/// spaces apart, trailing blanks trimmed.
pub fn table<R: AsRef<[String]>>(rows: &[R], out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let n = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .map(|r| r.as_ref().get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .as_ref()
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    Ok(())
}

/// Runs one `rostractl` command, writing its output to `out`.
pub async fn run_ctl(args: CtlArgs, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let connect = || async {
        Client::connect(&args.addr)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
    };
    match args.command {
        CtlCommand::Kv(cmd) => kv::run(&connect().await?, cmd, out).await,
        CtlCommand::Watch(w) => {
            // Validate flags before touching the network, as Consul does.
            let plan = watch::plan(&w)?;
            watch::run(&connect().await?, plan, w, out).await
        }
        CtlCommand::Event(e) => {
            event::check(&e)?;
            event::run(&connect().await?, e, out).await
        }
        CtlCommand::Members(m) => members::run(&connect().await?, m, out).await,
        CtlCommand::Leave => {
            crate::pb::status_client::StatusClient::new(connect().await?.channel())
                .leave(crate::pb::LeaveRequest {})
                .await
                .map_err(|e| anyhow::anyhow!("Error leaving: {}", e.message()))?;
            writeln!(out, "Graceful leave complete")?;
            Ok(())
        }
        CtlCommand::ForceLeave(f) => {
            // Consul's messages.
            let node = f
                .node
                .ok_or_else(|| anyhow::anyhow!("A node name must be specified to force leave."))?;
            crate::pb::status_client::StatusClient::new(connect().await?.channel())
                .force_leave(crate::pb::ForceLeaveRequest {
                    node,
                    prune: f.prune,
                })
                .await
                .map_err(|e| anyhow::anyhow!("Error force leaving: {}", e.message()))?;
            Ok(())
        }
        CtlCommand::Operator(args::OperatorCommand::Raft(r)) => {
            members::raft(&connect().await?, r, out).await
        }
        CtlCommand::Exec(e) => {
            let plan = exec::plan(&e)?;
            match exec::run(&connect().await?, plan, e.verbose, out).await? {
                exec::ExecExit::AllOk => Ok(()),
                exec::ExecExit::SomeFailed => Err(ExitStatus(2).into()),
            }
        }
        CtlCommand::Lock(l) => {
            lock::check(&l)?;
            let ended = lock::run(&connect().await?, l).await?;
            match ended {
                lock::LockExit::Done => Ok(()),
                lock::LockExit::ChildFailed => Err(ExitStatus(2).into()),
            }
        }
        CtlCommand::Bench(b) => bench::run(&args.addr, b, out).await,
        CtlCommand::Snapshot(s) => snapshot::run(connect(), s, out).await,
        CtlCommand::Version => Ok(write!(out, "{}", crate::version::describe())?),
        CtlCommand::Catalog(c) => agent_http::catalog(c, out).await,
        CtlCommand::Services(c) => agent_http::services(c, out).await,
        CtlCommand::Maint(m) => agent_http::maint(m, out).await,
        CtlCommand::Reload(a) => agent_http::reload(a, out).await,
        CtlCommand::Monitor(m) => agent_http::monitor(m, out).await,
        CtlCommand::Info(i) => agent_http::info(i, out).await,
    }
}
