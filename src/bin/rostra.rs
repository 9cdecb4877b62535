//! The Rostra daemon: `rostra agent -dev`, `rostra agent -server ...`, `rostra validate`.
//! Exit codes: 0 success, 1 failure (bad configuration, the agent could not start),
//! 2 usage error.

use std::process::ExitCode;

use rostra::cli::args::{DaemonArgs, DaemonCommand};

/// `-log-level` takes a level or a full tracing directive. A bare level keeps openraft's
/// and the HTTP/2 stack's chatter one level quieter, since at info they log every
/// election step.
fn log_filter(level: &str) -> String {
    match level.to_ascii_lowercase().as_str() {
        "trace" => "trace".into(),
        "debug" => "debug,openraft=info,h2=info,hyper=info,tower=info,hickory_server=info".into(),
        l @ ("info" | "warn" | "error") => format!("{l},openraft=warn,hickory_server=warn"),
        _ => level.to_string(),
    }
}

fn init_logging(level: &str, json: bool) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let filter = tracing_subscriber::EnvFilter::try_new(log_filter(level)).unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,openraft=warn,hickory_server=warn")
    });
    // Colours only on a terminal, so redirected logs stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let stderr = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let stderr = if json {
        stderr.json().with_filter(filter).boxed()
    } else {
        stderr.with_filter(filter).boxed()
    };
    // `/v1/agent/monitor` listens here, at whatever level it asks for.
    tracing_subscriber::registry()
        .with(stderr)
        .with(rostra::logs::layer())
        .init();
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: DaemonArgs = match rostra::cli::goflags::parse() {
        Ok(a) => a,
        Err(code) => return code,
    };
    let result = match args.command {
        DaemonCommand::Agent(a) => {
            // Config files can set the log level, so they are read (and any mistake in
            // them reported) before logging starts, and before any port is bound.
            match rostra::cli::agent::config_from_args(&a) {
                Ok(setup) => {
                    init_logging(&setup.log_level, setup.log_json);
                    rostra::cli::agent::run(setup).await
                }
                Err(e) => Err(e),
            }
        }
        DaemonCommand::Version => {
            print!("{}", rostra::version::describe());
            return ExitCode::SUCCESS;
        }
        DaemonCommand::Validate(v) => {
            // Consul's `validate` prints its message as is.
            let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
            return match rostra::cli::validate::run(&v, &mut out, &mut err) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e:#}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("==> {e:#}");
            ExitCode::FAILURE
        }
    }
}
