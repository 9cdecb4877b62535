//! `rostractl kv ...`: Consul's `consul kv` commands, same flags, same messages.

use std::io::{Read, Write};

use anyhow::{anyhow, bail, Context};

use super::args::{KvCommand, KvDelete, KvExport, KvGet, KvImport, KvKeys, KvPut};
use super::consul_json::{b64, to_pretty_json, unb64, ExportEntry};
use crate::client::Client;
use crate::pb;

pub async fn run(
    client: &Client,
    cmd: KvCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    match cmd {
        KvCommand::Put(a) => put(client, a, out).await,
        KvCommand::Get(a) => get(client, a, out).await,
        KvCommand::Delete(a) => delete(client, a, out).await,
        KvCommand::Keys(a) => keys(client, a, out).await,
        KvCommand::Export(a) => export(client, a, out).await,
        KvCommand::Import(a) => import(client, a, out).await,
    }
}

/// Keys cannot start with '/'; like Consul's CLI, be nice and strip one.
fn clean_key(key: &str) -> &str {
    key.strip_prefix('/').unwrap_or(key)
}

/// `-` reads stdin, `@path` reads a file, anything else is the data itself.
fn read_data(arg: &str) -> anyhow::Result<Vec<u8>> {
    if arg == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("Failed to read stdin")?;
        Ok(buf)
    } else if let Some(path) = arg.strip_prefix('@') {
        std::fs::read(path).with_context(|| format!("Failed to read file {path}"))
    } else {
        Ok(arg.as_bytes().to_vec())
    }
}

fn cas_index(cas: bool, modify_index: Option<u64>) -> anyhow::Result<Option<u64>> {
    match (cas, modify_index) {
        (true, Some(i)) => Ok(Some(i)),
        (true, None) => bail!("Must specify -modify-index with -cas!"),
        (false, Some(_)) => bail!("Cannot specify -modify-index without -cas!"),
        (false, None) => Ok(None),
    }
}

async fn put(client: &Client, a: KvPut, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let key = clean_key(&a.key);
    if key.is_empty() {
        bail!("Missing KEY argument");
    }
    let mut value = match &a.value {
        Some(v) => read_data(v)?,
        None => Vec::new(),
    };
    if a.base64 {
        value = unb64(&String::from_utf8_lossy(&value))
            .map_err(|e| anyhow!("Failed to base64 decode value: {e}"))?;
    }
    let cas = cas_index(a.cas, a.modify_index)?;
    let resp = client
        .put(key, value, a.flags, cas)
        .await
        .map_err(|e| anyhow!("Error! Failed writing data: {e}"))?;
    if !resp.succeeded {
        bail!("Error! Did not write to {key}: CAS failed");
    }
    writeln!(out, "Success! Data written to: {key}")?;
    Ok(())
}

fn consistency(stale: bool) -> pb::Consistency {
    if stale {
        pb::Consistency::Stale
    } else {
        pb::Consistency::Default
    }
}

fn render_value(value: &[u8], base64: bool) -> String {
    if base64 {
        b64(value)
    } else {
        String::from_utf8_lossy(value).into_owned()
    }
}

async fn get(client: &Client, a: KvGet, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let key = clean_key(a.key.as_deref().unwrap_or(""));
    let query_err = |e| anyhow!("Error querying Rostra agent: {e}");
    if a.keys {
        let resp = client
            .list(pb::ListRequest {
                prefix: key.to_string(),
                separator: a.separator.clone(),
                keys_only: true,
                consistency: consistency(a.stale) as i32,
            })
            .await
            .map_err(query_err)?;
        for k in resp.keys {
            writeln!(out, "{k}")?;
        }
        return Ok(());
    }
    if a.recurse {
        let resp = client
            .list(pb::ListRequest {
                prefix: key.to_string(),
                consistency: consistency(a.stale) as i32,
                ..Default::default()
            })
            .await
            .map_err(query_err)?;
        for (i, kv) in resp.kvs.iter().enumerate() {
            if a.detailed {
                if i > 0 {
                    writeln!(out)?;
                }
                write_detailed(out, kv, a.base64)?;
            } else {
                writeln!(out, "{}:{}", kv.key, render_value(&kv.value, a.base64))?;
            }
        }
        return Ok(());
    }
    if key.is_empty() {
        bail!("Missing KEY argument");
    }
    let resp = client
        .get(key, consistency(a.stale))
        .await
        .map_err(query_err)?;
    let Some(kv) = resp.kv else {
        bail!("Error! No key exists at: {key}");
    };
    if a.detailed {
        write_detailed(out, &kv, a.base64)?;
    } else {
        out.write_all(render_value(&kv.value, a.base64).as_bytes())?;
        writeln!(out)?;
    }
    Ok(())
}

/// Consul's `-detailed` layout: sorted field names in a column.
fn write_detailed(
    out: &mut (dyn Write + Send),
    kv: &pb::KvPair,
    base64: bool,
) -> std::io::Result<()> {
    let session = if kv.session.is_empty() {
        "-"
    } else {
        &kv.session
    };
    let rows = [
        ("CreateIndex", kv.create_index.to_string()),
        ("Flags", kv.flags.to_string()),
        ("Key", kv.key.clone()),
        ("LockIndex", kv.lock_index.to_string()),
        ("ModifyIndex", kv.modify_index.to_string()),
        ("Session", session.to_string()),
        ("Value", render_value(&kv.value, base64)),
    ];
    for (name, value) in rows {
        writeln!(out, "{name:<17}{value}")?;
    }
    Ok(())
}

async fn delete(client: &Client, a: KvDelete, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let key = clean_key(a.key.as_deref().unwrap_or(""));
    if key.is_empty() && !a.recurse {
        bail!("Missing KEY argument");
    }
    if a.recurse && a.cas {
        bail!("Cannot specify both -cas and -recurse!");
    }
    let cas = cas_index(a.cas, a.modify_index)?;
    let resp = client
        .delete(key, a.recurse, cas)
        .await
        .map_err(|e| anyhow!("Error! Did not delete key {key}: {e}"))?;
    if !resp.succeeded {
        bail!("Error! Did not delete key {key}: CAS failed");
    }
    if a.recurse {
        writeln!(out, "Success! Deleted keys with prefix: {key}")?;
    } else {
        writeln!(out, "Success! Deleted key: {key}")?;
    }
    Ok(())
}

async fn keys(client: &Client, a: KvKeys, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    get(
        client,
        KvGet {
            key: a.prefix,
            recurse: false,
            keys: true,
            separator: a.separator,
            detailed: false,
            base64: false,
            stale: false,
        },
        out,
    )
    .await
}

async fn export(client: &Client, a: KvExport, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let prefix = clean_key(a.prefix.as_deref().unwrap_or(""));
    let resp = client
        .list(pb::ListRequest {
            prefix: prefix.to_string(),
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow!("Error querying Rostra agent: {e}"))?;
    let entries: Vec<ExportEntry> = resp
        .kvs
        .iter()
        .map(|kv| ExportEntry {
            key: kv.key.clone(),
            flags: kv.flags,
            value: b64(&kv.value),
        })
        .collect();
    writeln!(out, "{}", to_pretty_json(&entries, b"\t"))?;
    Ok(())
}

async fn import(client: &Client, a: KvImport, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let data = read_data(a.data.as_deref().unwrap_or("-"))?;
    let entries: Vec<ExportEntry> =
        serde_json::from_slice(&data).map_err(|e| anyhow!("Cannot unmarshal data: {e}"))?;
    for entry in entries {
        let value = unb64(&entry.value)
            .map_err(|e| anyhow!("Error base 64 decoding value for key {}: {e}", entry.key))?;
        let key = format!("{}{}", a.prefix, entry.key);
        client
            .put(&key, value, entry.flags, None)
            .await
            .map_err(|e| anyhow!("Error! Failed writing data for key {key}: {e}"))?;
        writeln!(out, "Imported: {key}")?;
    }
    Ok(())
}
