//! The Rostra CLI. Exit codes: 0 success, 1 failure, 2 usage error.

use std::process::ExitCode;

use rostra::cli::args::CtlArgs;

#[tokio::main]
async fn main() -> ExitCode {
    let args: CtlArgs = match rostra::cli::goflags::parse() {
        Ok(a) => a,
        Err(code) => return code,
    };
    let mut stdout = std::io::stdout();
    match rostra::cli::run_ctl(args, &mut stdout).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(rostra::cli::ExitStatus(code)) = e.downcast_ref() {
                return ExitCode::from(*code);
            }
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
