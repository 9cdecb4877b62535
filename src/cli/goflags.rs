//! Consul's commands use Go's flag syntax: `-flag value`, `-flag=value`, single dash for
//! long names, and flag parsing stops at the first positional argument (so a watch
//! handler like `cat -n` is passed through untouched). clap wants `--flag`; this rewrites
//! the Go forms into clap's before parsing, using clap's own definition to know which
//! flags take a value.

use std::ffi::OsString;

use clap::Command;

/// Parses this process's arguments Go-style into `T`. On a usage error (or `--help`),
/// prints clap's message and returns the exit code to use: 2 for errors, 0 for help.
pub fn parse<T: clap::Parser>() -> Result<T, std::process::ExitCode> {
    let command = T::command();
    let argv = normalize(&command, std::env::args_os());
    command
        .try_get_matches_from(argv)
        .and_then(|m| T::from_arg_matches(&m))
        .map_err(|e| {
            let _ = e.print();
            std::process::ExitCode::from(if e.use_stderr() { 2 } else { 0 })
        })
}

/// Rewrites `args` (including the program name) for `command`.
pub fn normalize(command: &Command, args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args = args.into_iter();
    let mut out: Vec<OsString> = args.next().into_iter().collect();
    // Innermost subcommand last; a flag may belong to any enclosing command (globals).
    let mut scopes = vec![command.clone()];
    let rest: Vec<OsString> = args.collect();
    let mut i = 0;
    while i < rest.len() {
        let raw = &rest[i];
        let Some(arg) = raw.to_str() else {
            out.extend(rest[i..].iter().cloned());
            break;
        };
        if arg == "--" {
            out.extend(rest[i..].iter().cloned());
            break;
        }
        let dashes = if arg.starts_with("--") {
            2
        } else if arg.starts_with('-') {
            1
        } else {
            0
        };
        if dashes > 0
            && arg.len() > dashes
            && arg[dashes..].starts_with(|c: char| c.is_ascii_alphabetic())
        {
            let body = &arg[dashes..];
            let name = body.split('=').next().unwrap_or(body);
            let known = scopes.iter().rev().find_map(|c| {
                c.get_arguments()
                    .find(|a| {
                        a.get_long() == Some(name)
                            || a.get_all_aliases().is_some_and(|al| al.contains(&name))
                    })
                    .cloned()
            });
            match known {
                Some(def) => {
                    out.push(format!("--{body}").into());
                    let takes_value = def.get_action().takes_values()
                        && def.get_num_args().is_none_or(|n| n.min_values() > 0);
                    if takes_value && !body.contains('=') && i + 1 < rest.len() {
                        i += 1;
                        out.push(rest[i].clone());
                    }
                }
                // `-h` and friends, or an unknown flag clap will report.
                None if name == "help" => out.push("--help".into()),
                // Unknown: pass it as a long flag so clap names it (and suggests the
                // right one) instead of reading `-devv` as `-d -e -v -v`.
                None if dashes == 1 && name.len() > 1 => out.push(format!("--{body}").into()),
                None => out.push(raw.clone()),
            }
            i += 1;
            continue;
        }
        let sub = scopes.last().and_then(|c| c.find_subcommand(arg)).cloned();
        if let Some(sub) = sub {
            out.push(raw.clone());
            scopes.push(sub);
            i += 1;
            continue;
        }
        // First positional argument: Go stops parsing flags here.
        out.extend(rest[i..].iter().cloned());
        break;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction};

    fn cmd() -> Command {
        Command::new("t").subcommand(
            Command::new("watch")
                .arg(Arg::new("type").long("type"))
                .arg(
                    Arg::new("shell")
                        .long("shell")
                        .num_args(0..=1)
                        .require_equals(true)
                        .default_missing_value("true"),
                )
                .arg(
                    Arg::new("recurse")
                        .long("recurse")
                        .action(ArgAction::SetTrue),
                )
                .arg(
                    Arg::new("handler")
                        .num_args(0..)
                        .trailing_var_arg(true)
                        .allow_hyphen_values(true),
                ),
        )
    }

    fn norm(args: &[&str]) -> Vec<String> {
        normalize(&cmd(), args.iter().map(OsString::from))
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect()
    }

    #[test]
    fn go_style_flags_become_clap_style() {
        assert_eq!(
            norm(&["t", "watch", "-type", "key", "cat", "-n"]),
            vec!["t", "watch", "--type", "key", "cat", "-n"]
        );
        assert_eq!(
            norm(&["t", "watch", "-type=key", "-recurse", "x"]),
            vec!["t", "watch", "--type=key", "--recurse", "x"]
        );
        assert_eq!(
            norm(&["t", "watch", "-shell", "x"]),
            vec!["t", "watch", "--shell", "x"]
        );
        assert_eq!(
            norm(&["t", "watch", "-", "x"]),
            vec!["t", "watch", "-", "x"]
        );
        assert_eq!(norm(&["t", "watch", "-h"]), vec!["t", "watch", "-h"]);
    }
}
