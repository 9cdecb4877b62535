//! `rostractl watch`: Consul's `consul watch` for the KV types, built on a streaming watch
//! instead of blocking-query polling. The handler gets exactly what Consul would give it
//! (a KVPair object, or an array for keyprefix, on stdin, `CONSUL_INDEX` in its
//! environment), once at start and once per change; a change that leaves the result
//! deep-equal to the last one delivered does not fire it, as in Consul.

use std::io::Write;
use std::process::Stdio;

use anyhow::{anyhow, bail};
use tokio::io::AsyncWriteExt;

use super::args::WatchArgs;
use super::consul_json::{to_pretty_json, KvPairJson};
use crate::client::Client;

/// What a validated `watch` command will follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchPlan {
    Key(String),
    KeyPrefix(String),
}

/// Validates the flags with Consul's messages.
pub fn plan(w: &WatchArgs) -> anyhow::Result<WatchPlan> {
    match w.watch_type.as_deref() {
        None | Some("") => bail!("Watch type must be specified"),
        Some("key") => match w.key.as_deref() {
            Some(k) if !k.is_empty() => Ok(WatchPlan::Key(k.trim_start_matches('/').to_string())),
            _ => bail!("Must specify a single key to watch"),
        },
        Some("keyprefix") => match w.prefix.as_deref() {
            Some(p) => Ok(WatchPlan::KeyPrefix(p.trim_start_matches('/').to_string())),
            None => bail!("Must specify a single prefix to watch"),
        },
        Some(t @ ("services" | "nodes" | "service" | "checks" | "event")) => {
            bail!("Watch type {t} is not available yet: this Rostra version watches key and keyprefix")
        }
        Some(t @ ("connect_roots" | "connect_leaf" | "agent_service")) => {
            bail!("Type {t} is not supported in the CLI tool")
        }
        Some(t) => bail!("Unsupported watch type: {t}"),
    }
}

/// The JSON Consul's watch produces for the current state.
fn render(
    plan: &WatchPlan,
    state: &std::collections::BTreeMap<String, crate::pb::KvPair>,
    pretty: bool,
) -> String {
    let encode = |v: &dyn erased::Json| if pretty { v.pretty() } else { v.compact() };
    match plan {
        WatchPlan::Key(k) => encode(&state.get(k).map(KvPairJson::from)),
        WatchPlan::KeyPrefix(_) => {
            let pairs: Vec<KvPairJson> = state.values().map(KvPairJson::from).collect();
            if pairs.is_empty() {
                encode(&Option::<()>::None)
            } else {
                encode(&pairs)
            }
        }
    }
}

/// Lets `render` pick compact or pretty output for differently typed values.
mod erased {
    pub trait Json {
        fn compact(&self) -> String;
        fn pretty(&self) -> String;
    }

    impl<T: serde::Serialize> Json for T {
        fn compact(&self) -> String {
            serde_json::to_string(self).expect("JSON encoding of plain data")
        }

        fn pretty(&self) -> String {
            super::to_pretty_json(self, b"    ")
        }
    }
}

pub async fn run(
    client: &Client,
    plan: WatchPlan,
    w: WatchArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let (key, prefix) = match &plan {
        WatchPlan::Key(k) => (k.clone(), false),
        WatchPlan::KeyPrefix(p) => (p.clone(), true),
    };
    let mut watcher = client
        .watch(&key, prefix)
        .await
        .map_err(|e| anyhow!("Error querying Rostra agent: {e}"))?;
    let mut last_delivered: Option<String> = None;
    loop {
        let index = watcher
            .next()
            .await
            .map_err(|e| anyhow!("Error querying Rostra agent: {e}"))?;
        if w.handler.is_empty() {
            writeln!(out, "{}", render(&plan, watcher.state(), true))?;
            return Ok(());
        }
        let payload = render(&plan, watcher.state(), false);
        if last_delivered.as_ref() == Some(&payload) {
            continue;
        }
        run_handler(&w.handler, w.shell, &payload, index).await?;
        last_delivered = Some(payload);
    }
}

/// Runs the handler with the payload (plus a newline) on stdin; its output is ours.
async fn run_handler(
    handler: &[String],
    shell: bool,
    payload: &str,
    index: u64,
) -> anyhow::Result<()> {
    let mut cmd = if shell {
        let mut c = tokio::process::Command::new("sh");
        c.arg("-c").arg(handler.join(" "));
        c
    } else {
        let mut c = tokio::process::Command::new(&handler[0]);
        c.args(&handler[1..]);
        c
    };
    cmd.env("CONSUL_INDEX", index.to_string())
        .env("ROSTRA_INDEX", index.to_string())
        .stdin(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| anyhow!("Error executing handler: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let mut data = payload.as_bytes().to_vec();
        data.push(b'\n');
        // A handler that ignores stdin may close it early; that is not an error.
        match stdin.write_all(&data).await {
            Ok(()) | Err(_) => {}
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|e| anyhow!("Error executing handler: {e}"))?;
    if !status.success() {
        bail!("Error executing handler: {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(t: Option<&str>, key: Option<&str>, prefix: Option<&str>) -> WatchArgs {
        WatchArgs {
            watch_type: t.map(String::from),
            key: key.map(String::from),
            prefix: prefix.map(String::from),
            shell: true,
            stale: false,
            handler: vec![],
        }
    }

    #[test]
    fn consul_messages_for_bad_flags() {
        let msg = |a| plan(&a).unwrap_err().to_string();
        assert_eq!(msg(args(None, None, None)), "Watch type must be specified");
        assert_eq!(
            msg(args(Some("key"), None, None)),
            "Must specify a single key to watch"
        );
        assert_eq!(
            msg(args(Some("keyprefix"), None, None)),
            "Must specify a single prefix to watch"
        );
        assert_eq!(
            msg(args(Some("bogus"), None, None)),
            "Unsupported watch type: bogus"
        );
        assert_eq!(
            plan(&args(Some("keyprefix"), None, Some("a/"))).unwrap(),
            WatchPlan::KeyPrefix("a/".into())
        );
    }

    #[test]
    fn renders_null_object_and_array() {
        let mut state = std::collections::BTreeMap::new();
        assert_eq!(render(&WatchPlan::Key("k".into()), &state, false), "null");
        assert_eq!(
            render(&WatchPlan::KeyPrefix("".into()), &state, false),
            "null"
        );
        state.insert(
            "k".to_string(),
            crate::pb::KvPair {
                key: "k".into(),
                value: b"foo".to_vec(),
                ..Default::default()
            },
        );
        assert!(render(&WatchPlan::Key("k".into()), &state, false).starts_with(r#"{"Key":"k""#));
        assert!(
            render(&WatchPlan::KeyPrefix("".into()), &state, false).starts_with(r#"[{"Key":"k""#)
        );
    }
}
