//! Snapshot files for backup: save every table as of one raft index, restore a file on
//! any cluster. Both front ends (`/v1/snapshot`, gRPC `Snapshot`) and `rostractl
//! snapshot` come here; the file format is `state::backup`.

use super::{Consistency, ResponseMeta, Service, ServiceError};
use crate::state::backup;
use crate::state::{Command, StateStore};

/// Largest snapshot file a restore accepts: the file is held in memory while it is
/// verified and travels as one raft entry (and one forwarded write: the peer transport
/// takes messages up to 256 MiB, the agent transport up to 160 MiB).
pub const MAX_SNAPSHOT_BYTES: usize = 128 * 1024 * 1024;

/// Bytes per message when a snapshot file travels over gRPC (either way), well under any
/// message limit.
pub const CHUNK_BYTES: usize = 1024 * 1024;

impl Service {
    /// The state as a snapshot file. DEFAULT/CONSISTENT first pass a read-index barrier,
    /// so every write acknowledged before the call is in the file; the file is one
    /// consistent view, stamped with the index it reflects.
    pub async fn snapshot_save(
        &self,
        consistency: Consistency,
    ) -> Result<(ResponseMeta, Vec<u8>), ServiceError> {
        self.read_barrier(consistency).await?;
        let (index, term, tables) = self.raft.dump_tables().await?;
        let file = self
            .tasks
            .spawn_blocking(move || backup::encode(&tables, index, term, unix_ms()))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        tracing::info!(index, term, bytes = file.len(), "snapshot saved");
        Ok((self.meta(index), file))
    }

    /// Replaces every table with `file`'s, through raft (every server applies it at the
    /// same index). The whole file is verified first: a corrupt, truncated or foreign
    /// one is refused with the reason and nothing is touched. Returns the restore's
    /// header and the index the snapshot was taken at.
    pub async fn snapshot_restore(
        &self,
        file: Vec<u8>,
    ) -> Result<(ResponseMeta, u64), ServiceError> {
        if file.len() > MAX_SNAPSHOT_BYTES {
            return Err(ServiceError::TooLarge(format!(
                "snapshot of {} bytes exceeds the {MAX_SNAPSHOT_BYTES}-byte limit",
                file.len()
            )));
        }
        let decoded = self
            .tasks
            .spawn_blocking(move || backup::decode(&file, StateStore::is_state_record))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let (header, tables) = decoded.map_err(|e| ServiceError::InvalidArgument(e.to_string()))?;
        let (index, _) = self.raft.write(Command::Restore { tables }).await?;
        tracing::info!(index, snapshot_index = header.index, "snapshot restored");
        Ok((self.meta(index), header.index))
    }
}

fn unix_ms() -> u64 {
    crate::state::command::now_ns() / 1_000_000
}
