//! `rostra agent`: defaults, config files and flags to an [`AgentConfig`], then run until
//! SIGINT or SIGTERM.
//!
//! Precedence is Consul's: built-in defaults (dev defaults with `-dev`), then the config
//! files in the order given, then flags. A flag overrides a file only when typed; list
//! flags (`-retry-join`, `-recursor`) add to the files' lists. Every config problem is
//! found here, before any port is bound, so a bad file stops the agent at once.

use anyhow::{bail, Context};

use super::args::AgentArgs;
use crate::client_agent::ClientAgent;
use crate::config::file::FileConfig;
use crate::config::AgentConfig;
use crate::server::Server;

/// What `rostra agent` runs.
enum Running {
    Server(Server),
    Client(ClientAgent),
}

/// Everything `rostra agent` needs before it starts: the agent's configuration and the
/// logging settings, which `src/bin/rostra.rs` applies before anything logs.
#[derive(Debug, Clone)]
pub struct AgentSetup {
    pub config: AgentConfig,
    pub log_level: String,
    pub log_json: bool,
    /// Non-fatal config findings (skipped files), logged once logging is up.
    pub warnings: Vec<String>,
}

/// Resolves defaults, config files and flags into a configuration.
pub fn config_from_args(a: &AgentArgs) -> anyhow::Result<AgentSetup> {
    let files = FileConfig::load(&a.config.paths)?;
    // The dev defaults are every agent's defaults (loopback addresses, Consul's ports,
    // the host name); only the bootstrap count differs.
    let mut config = AgentConfig::dev();
    config.dev = a.dev;
    config.bootstrap_expect = if a.dev { 1 } else { 0 };
    files.apply(&mut config);

    if let Some(v) = &a.node {
        config.node_name = v.clone();
    }
    if let Some(v) = &a.datacenter {
        config.datacenter = v.clone();
    }
    if let Some(v) = &a.data_dir {
        config.data_dir = Some(v.clone());
    }
    if let Some(n) = a.bootstrap_expect {
        config.bootstrap_expect = n;
    }
    if let Some(v) = a.bind {
        config.bind = v;
    }
    if let Some(v) = a.advertise {
        config.advertise = Some(v);
    }
    if let Some(v) = a.client_addr {
        config.client_addr = v;
    }
    let ports = [
        (a.server_port, &mut config.server_port),
        (a.grpc_port, &mut config.grpc_port),
        (a.http_port, &mut config.http_port),
        (a.dns_port, &mut config.dns_port),
    ];
    for (flag, slot) in ports {
        if let Some(p) = flag {
            *slot = p;
        }
    }
    config.retry_join.extend(a.retry_join.iter().cloned());
    config.recursors.extend(a.recursors.iter().cloned());
    // Consul drops repeated recursors, keeping the first.
    let mut seen = std::collections::BTreeSet::new();
    config.recursors.retain(|r| seen.insert(r.clone()));
    if let Some(v) = a.enable_script_checks {
        config.enable_script_checks = v;
    }
    if let Some(v) = a.enable_local_script_checks {
        config.enable_local_script_checks = v;
    }
    if let Some(n) = a.raft_snapshot_threshold {
        config.raft.snapshot_threshold = n;
    }
    if let Some(n) = a.raft_logs_to_keep {
        config.raft.logs_to_keep = n;
    }
    files.check(&config)?;

    if !a.dev {
        config.server = a.server.or(files.server).unwrap_or(false);
        if config.data_dir.is_none() {
            bail!("Must specify -data-dir (or use -dev)");
        }
        if !config.server && config.retry_join.is_empty() {
            bail!("a client agent needs servers to join: give -join or -retry-join (or run it with -server)");
        }
        if !config.server && config.bootstrap_expect > 0 {
            bail!("-bootstrap-expect is for servers; a client agent has nothing to bootstrap");
        }
    }
    // `/v1/agent/reload` and SIGHUP read the same files and flags again.
    let again = a.clone();
    config.reloader = Some(crate::config::Reloader(std::sync::Arc::new(move || {
        let mut setup = config_from_args(&again).map_err(|e| format!("{e:#}"))?;
        setup.config.reloader = None;
        Ok(setup.config)
    })));
    Ok(AgentSetup {
        config,
        log_level: (a.log_level.clone())
            .or_else(|| files.log_level.clone())
            .unwrap_or_else(|| "info".into()),
        log_json: a.log_json.or(files.log_json).unwrap_or(false),
        warnings: files.warnings,
    })
}

/// Runs the agent until a shutdown signal. Logging must already be set up.
pub async fn run(setup: AgentSetup) -> anyhow::Result<()> {
    for warning in &setup.warnings {
        tracing::warn!("{warning}");
    }
    let config = setup.config;
    // Handlers go in before anything is announced: a SIGTERM that arrives right after
    // "agent ready" must stop the agent cleanly, not kill it with the default action.
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let running = if config.server {
        Running::Server(Server::start(&config).await.context("starting the agent")?)
    } else {
        Running::Client(
            ClientAgent::start(&config)
                .await
                .context("starting the agent")?,
        )
    };
    let leave = match &running {
        Running::Server(s) => s.agent.leave_requested(),
        Running::Client(c) => c.agent.leave_requested(),
    };
    let (http, grpc, dns, server_port, data) = match &running {
        Running::Server(s) => (
            s.http_addr,
            s.grpc_addr,
            s.dns_addr,
            s.raft_addr.to_string(),
            s.data_dir.clone(),
        ),
        Running::Client(c) => (
            c.http_addr,
            c.grpc_addr,
            c.dns_addr,
            "none (client agent)".to_string(),
            c.data_dir.clone(),
        ),
    };
    eprintln!(
        "==> Rostra agent running: node {:?}, HTTP {http}, gRPC {grpc}, DNS {dns}, server {server_port}, data {}",
        config.node_name,
        data.display()
    );
    let local = match &running {
        Running::Server(s) => s.agent.clone(),
        Running::Client(c) => c.agent.clone(),
    };
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    loop {
        tokio::select! {
            _ = term.recv() => tracing::info!("shutdown signal received"),
            _ = interrupt.recv() => tracing::info!("shutdown signal received"),
            _ = leave.cancelled() => tracing::info!("left the cluster; stopping"),
            // SIGHUP reloads the configuration, as Consul's agent does.
            _ = hangup.recv() => {
                if let Err(e) = local.reload() {
                    tracing::error!(error = %e, "reload refused; the running configuration is kept");
                }
                continue;
            }
        }
        break;
    }
    // The agent holds the service layer, and with it the database that shutdown closes.
    drop(local);
    // Shutdown is bounded stage by stage (HTTP grace, storage close deadline); this outer
    // bound only guards against a bug there keeping the process alive forever
    // (everything acknowledged is already durable).
    let stopped = async {
        match running {
            Running::Server(s) => s.shutdown().await.map_err(anyhow::Error::from),
            Running::Client(c) => {
                c.shutdown().await;
                Ok(())
            }
        }
    };
    match tokio::time::timeout(std::time::Duration::from_secs(60), stopped).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => anyhow::bail!("shutting down: {e}"),
        Err(_) => anyhow::bail!("shutting down: still not done after 60s"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::path::Path;

    use clap::{CommandFactory, FromArgMatches};

    use super::*;
    use crate::cli::args::{DaemonArgs, DaemonCommand};

    /// Parses `rostra agent ARGS` as the binary does (Go-style flags).
    fn setup(args: &[&str]) -> anyhow::Result<AgentSetup> {
        let command = DaemonArgs::command();
        let argv = ["rostra", "agent"].iter().chain(args).map(OsString::from);
        let argv = crate::cli::goflags::normalize(&command, argv);
        let matches = command.try_get_matches_from(argv).unwrap();
        let DaemonCommand::Agent(a) = DaemonArgs::from_arg_matches(&matches).unwrap().command
        else {
            panic!("not an agent command")
        };
        config_from_args(&a)
    }

    fn write(dir: &Path, name: &str, text: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    #[test]
    fn flags_override_files_and_lists_append() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "consul.json",
            r#"{"node_name": "from-file", "datacenter": "east", "retry_join": ["a:8300"],
                "recursors": ["1.1.1.1"], "ports": {"http": 18500, "dns": 18600},
                "client_addr": "0.0.0.0", "log_level": "debug", "log_json": true}"#,
        );
        let s = setup(&["-dev", "-config-file", &f]).unwrap();
        let c = &s.config;
        assert_eq!(
            (c.node_name.as_str(), c.datacenter.as_str()),
            ("from-file", "east")
        );
        assert_eq!((c.http_port, c.dns_port), (18500, 18600));
        assert_eq!(c.client_addr.to_string(), "0.0.0.0");
        assert_eq!((s.log_level.as_str(), s.log_json), ("debug", true));

        let s = setup(&[
            "-dev",
            "-config-file",
            &f,
            "-node",
            "from-flag",
            "-http-port",
            "0",
            "-retry-join",
            "b:8300",
            "-recursor",
            "1.1.1.1",
            "-recursor",
            "9.9.9.9",
            "-log-level=warn",
            "-log-json=false",
            "-client",
            "127.0.0.2",
        ])
        .unwrap();
        let c = &s.config;
        assert_eq!(
            (c.node_name.as_str(), c.datacenter.as_str()),
            ("from-flag", "east")
        );
        assert_eq!((c.http_port, c.dns_port), (0, 18600));
        assert_eq!(c.retry_join, ["a:8300", "b:8300"]);
        assert_eq!(c.recursors, ["1.1.1.1", "9.9.9.9"]);
        assert_eq!(c.client_addr.to_string(), "127.0.0.2");
        assert_eq!((s.log_level.as_str(), s.log_json), ("warn", false));

        // Without files or flags: Consul's defaults.
        let s = setup(&["-dev"]).unwrap();
        assert_eq!(s.config.http_port, crate::config::DEFAULT_HTTP_PORT);
        assert_eq!(s.config.dns_port, crate::config::DEFAULT_DNS_PORT);
        assert_eq!(s.config.bootstrap_expect, 1);
        assert_eq!((s.log_level.as_str(), s.log_json), ("info", false));
    }

    #[test]
    fn config_files_and_dirs_load_in_command_line_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("consul.d");
        std::fs::create_dir(&d).unwrap();
        write(&d, "node.json", r#"{"node_name": "from-dir"}"#);
        let d = d.display().to_string();
        let f = write(dir.path(), "f.json", r#"{"node_name": "from-file"}"#);
        let s = setup(&["-dev", "-config-dir", &d, "-config-file", &f]).unwrap();
        assert_eq!(s.config.node_name, "from-file");
        let s = setup(&["-dev", "-config-file", &f, "-config-dir", &d]).unwrap();
        assert_eq!(s.config.node_name, "from-dir");
    }

    #[test]
    fn server_in_a_file_counts_like_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let server = write(dir.path(), "server.json", r#"{"server": true}"#);
        let e = setup(&["-config-file", &server]).unwrap_err().to_string();
        assert_eq!(e, "Must specify -data-dir (or use -dev)");
        let data = dir.path().join("data").display().to_string();
        let with_dir = write(
            dir.path(),
            "dir.json",
            &format!(r#"{{"server": true, "data_dir": {data:?}, "bootstrap": true}}"#),
        );
        let s = setup(&["-config-file", &with_dir]).unwrap();
        assert_eq!(s.config.data_dir.as_deref(), Some(Path::new(&data)));
        assert_eq!((s.config.dev, s.config.bootstrap_expect), (false, 1));
        // A typed flag beats the file, even to switch something off.
        let e = setup(&["-config-file", &with_dir, "-server=false"]).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("a client agent needs servers to join"));
        // And without any file, the flags alone behave as before.
        let e = setup(&["-server"]).unwrap_err().to_string();
        assert_eq!(e, "Must specify -data-dir (or use -dev)");
        let s = setup(&["-server", "-data-dir", &data]).unwrap();
        assert_eq!(s.config.bootstrap_expect, 0);
    }

    #[test]
    fn file_errors_come_first_and_script_checks_follow_the_flags() {
        let dir = tempfile::tempdir().unwrap();
        let bad = write(
            dir.path(),
            "bad.json",
            r#"{"node_name": "x", "nodename2": 1}"#,
        );
        let e = setup(&["-config-file", &bad]).unwrap_err().to_string();
        assert!(
            e.ends_with("bad.json: nodename2: unknown configuration key"),
            "{e}"
        );

        let script = write(
            dir.path(),
            "script.json",
            r#"{"service": {"name": "web", "check": {"args": ["true"], "interval": "10s"}}}"#,
        );
        let e = setup(&["-dev", "-config-file", &script])
            .unwrap_err()
            .to_string();
        assert!(e.ends_with(crate::config::file::SCRIPTS_DISABLED), "{e}");
        let s = setup(&[
            "-dev",
            "-config-file",
            &script,
            "-enable-local-script-checks",
        ])
        .unwrap();
        assert!(s.config.enable_local_script_checks);
        assert_eq!(s.config.services[0].checks.len(), 1);
        setup(&["-dev", "-config-file", &script, "-enable-script-checks"]).unwrap();
    }
}
