//! The Rostra daemon: `rostra agent -dev`, `rostra agent -server ...`.

use std::process::ExitCode;

use rostra::cli::args::{DaemonArgs, DaemonCommand};

/// `-log-level` takes a level or a full tracing directive. A bare level keeps openraft's
/// and the HTTP/2 stack's chatter one level quieter, since at info they log every
/// election step.
fn log_filter(level: &str) -> String {
    match level.to_ascii_lowercase().as_str() {
        "trace" => "trace".into(),
        "debug" => "debug,openraft=info,h2=info,hyper=info,tower=info".into(),
        l @ ("info" | "warn" | "error") => format!("{l},openraft=warn"),
        _ => level.to_string(),
    }
}

fn init_logging(level: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(log_filter(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: DaemonArgs = match rostra::cli::goflags::parse() {
        Ok(a) => a,
        Err(code) => return code,
    };
    match args.command {
        DaemonCommand::Agent(a) => {
            init_logging(&a.log_level, a.log_json);
            match rostra::cli::agent::run(a).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("==> {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
