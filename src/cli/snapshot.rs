//! `rostractl snapshot save|restore|inspect FILE` (Consul's `consul snapshot`).

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, Context};

use super::args::SnapshotCommand;
use crate::client::Client;
use crate::pb;
use crate::pb::snapshot_client::SnapshotClient;
use crate::state::backup;

pub async fn run(
    connect: impl std::future::Future<Output = anyhow::Result<Client>>,
    cmd: SnapshotCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    match cmd {
        SnapshotCommand::Save(a) => {
            let client = connect.await?;
            let consistency = if a.stale {
                pb::Consistency::Stale
            } else {
                pb::Consistency::Default
            };
            let mut stream = snapshot_client(&client)
                .save(pb::SnapshotSaveRequest {
                    consistency: consistency as i32,
                })
                .await
                .map_err(|e| anyhow!("Error saving snapshot: {}", e.message()))?
                .into_inner();
            let mut file = Vec::new();
            while let Some(chunk) = stream
                .message()
                .await
                .map_err(|e| anyhow!("Error saving snapshot: {}", e.message()))?
            {
                file.extend_from_slice(&chunk.data);
            }
            // Checked before it replaces anything on disk, as Consul verifies its own.
            let header =
                backup::inspect(&file).map_err(|e| anyhow!("Error verifying snapshot: {e}"))?;
            write_atomically(&a.file, &file)?;
            writeln!(out, "Saved and verified snapshot to index {}", header.index)?;
            Ok(())
        }
        SnapshotCommand::Restore(a) => {
            let file = std::fs::read(&a.file)
                .with_context(|| format!("Error opening snapshot file {}", a.file.display()))?;
            // Refuse a bad file here with the reason; the server checks it again.
            backup::inspect(&file).map_err(|e| anyhow!("Error restoring snapshot: {e}"))?;
            let client = connect.await?;
            let chunks: Vec<pb::SnapshotRestoreRequest> = file
                .chunks(crate::service::snapshot::CHUNK_BYTES)
                .map(|c| pb::SnapshotRestoreRequest { data: c.to_vec() })
                .collect();
            snapshot_client(&client)
                .restore(futures::stream::iter(chunks))
                .await
                .map_err(|e| anyhow!("Error restoring snapshot: {}", e.message()))?;
            writeln!(out, "Restored snapshot")?;
            Ok(())
        }
        SnapshotCommand::Inspect(a) => {
            let file = std::fs::read(&a.file)
                .with_context(|| format!("Error opening snapshot file {}", a.file.display()))?;
            let h =
                backup::inspect(&file).map_err(|e| anyhow!("Error inspecting snapshot: {e}"))?;
            write!(out, "{}", inspect_text(&h))?;
            Ok(())
        }
    }
}

fn snapshot_client(c: &Client) -> SnapshotClient<tonic::transport::Channel> {
    SnapshotClient::new(c.channel())
}

/// Consul's `snapshot inspect` layout: the header, then records per table.
pub fn inspect_text(h: &backup::BackupHeader) -> String {
    let mut s = String::new();
    let row = |s: &mut String, k: &str, v: &dyn std::fmt::Display| {
        s.push_str(&format!(" {k:<12} {v}\n"));
    };
    row(&mut s, "ID", &h.id);
    row(&mut s, "Size", &h.size);
    row(&mut s, "Index", &h.index);
    row(&mut s, "Term", &h.term);
    row(&mut s, "Version", &1);
    row(&mut s, "SHA256", &h.sha256);
    s.push('\n');
    s.push_str(&format!(" {:<20} {:>8} {:>12}\n", "Type", "Count", "Size"));
    s.push_str(&format!(" {:<20} {:>8} {:>12}\n", "----", "-----", "----"));
    let (mut count, mut size) = (0, 0);
    for (name, t) in &h.tables {
        s.push_str(&format!(" {name:<20} {:>8} {:>12}\n", t.count, t.size));
        count += t.count;
        size += t.size;
    }
    s.push_str(&format!(" {:<20} {:>8} {:>12}\n", "Total", count, size));
    s
}

/// Writes `bytes` to `path` through a temporary file in the same directory, fsynced and
/// renamed, so a crash leaves the old file or the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("Error creating a file in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .map_err(|e| anyhow!("Error writing snapshot to {}: {}", path.display(), e.error))?;
    Ok(())
}
