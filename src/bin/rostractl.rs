//! The Rostra CLI. Exit codes: 0 success, 1 failure, 2 usage error.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use rostra::cli::args::CtlArgs;

#[tokio::main]
async fn main() -> ExitCode {
    let command = CtlArgs::command();
    let argv = rostra::cli::goflags::normalize(&command, std::env::args_os());
    let args = match command
        .try_get_matches_from(argv)
        .and_then(|m| CtlArgs::from_arg_matches(&m))
    {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let mut stdout = std::io::stdout();
    match rostra::cli::run_ctl(args, &mut stdout).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed pipe (`| head`) is not a failure worth a message.
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
