//! `rostra validate FILE_OR_DIRECTORY...`: Consul's `consul validate`. Loads the files
//! and directories exactly as `rostra agent -config-file` would (same decoder, same
//! merge, same checks against the defaults) without starting anything, so a config
//! change can be tested before a restart. Prints `Configuration is valid!`, or returns
//! the error for the binary to print (exit 1).
//!
//! Checks that depend on how the agent is launched (`-dev`, or `-server` with a data
//! directory) are left to `rostra agent`: the same file is often used both ways.

use std::io::Write;

use anyhow::bail;

use super::args::ValidateArgs;
use crate::config::file::FileConfig;
use crate::config::AgentConfig;

/// Validates; writes the success line to `out` and warnings (skipped files) to `err`.
pub fn run(args: &ValidateArgs, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<()> {
    if args.paths.is_empty() {
        bail!("Must specify at least one config file or directory");
    }
    let files = FileConfig::load(&args.paths)
        .and_then(|files| {
            let mut config = AgentConfig::dev();
            files.apply(&mut config);
            files.check(&config).map(|()| files)
        })
        .map_err(|e| anyhow::anyhow!("Config validation failed: {e}"))?;
    for warning in &files.warnings {
        writeln!(err, "{warning}")?;
    }
    if !args.quiet {
        writeln!(out, "Configuration is valid!")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(paths: &[&std::path::Path], quiet: bool) -> (anyhow::Result<()>, String, String) {
        let args = ValidateArgs {
            quiet,
            paths: paths.iter().map(|p| p.to_path_buf()).collect(),
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let result = run(&args, &mut out, &mut err);
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        (result, text(out), text(err))
    }

    #[test]
    fn reports_valid_and_invalid_configurations() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ok.json"), r#"{"node_name": "n"}"#).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let (result, out, err) = validate(&[dir.path()], false);
        result.unwrap();
        assert_eq!(out, "Configuration is valid!\n");
        assert!(err.contains("skipping file"), "{err}");
        let (result, out, _) = validate(&[dir.path()], true);
        result.unwrap();
        assert_eq!(out, "");

        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"addresses": {"http": "0.0.0.0"}}"#).unwrap();
        let (result, out, _) = validate(&[&bad], false);
        let e = result.unwrap_err().to_string();
        assert!(e.starts_with("Config validation failed: "), "{e}");
        assert!(
            e.contains("bad.json: addresses.http: 0.0.0.0 differs"),
            "{e}"
        );
        assert_eq!(out, "");

        let e = validate(&[], false).0.unwrap_err().to_string();
        assert_eq!(e, "Must specify at least one config file or directory");
    }
}
