//! Free space on the data directory's file system, checked before every proposal.
//!
//! openraft treats a failed log append as fatal (the node stops), and RocksDB goes
//! read-only when a write hits ENOSPC. So a leader refuses new writes while the file
//! system has less than a reserve free, long before the disk is actually full: the
//! reserve covers what the writes already taken still need: a flush of the memtables
//! (at most `db::MEMTABLES_BYTES`, also what a crashed server's reopening replays), a new
//! WAL file RocksDB preallocates (about 70 MiB), and some compaction. Refused writes are
//! never proposed; reads go on; once space is freed, writes are taken again without a
//! restart. As etcd's NOSPACE alarm, but self-clearing.

use std::path::{Path, PathBuf};

/// Default reserve: a memtable flush, a preallocated WAL and room for compaction.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct SpaceGuard {
    dir: PathBuf,
    min_free: u64,
}

impl SpaceGuard {
    pub fn new(dir: &Path, min_free: u64) -> Self {
        SpaceGuard {
            dir: dir.to_path_buf(),
            min_free,
        }
    }

    /// `Err` with the reason when the data directory's file system is below the reserve.
    /// A file system whose free space cannot be read is not refused (nothing to go on).
    pub fn check(&self) -> Result<(), String> {
        let Some(free) = free_bytes(&self.dir) else {
            return Ok(());
        };
        if free >= self.min_free {
            return Ok(());
        }
        Err(format!(
            "disk nearly full: {} free on the file system of the data directory {}, writes need {} (limits.min_free_disk_bytes); reads are still served",
            human(free),
            self.dir.display(),
            human(self.min_free)
        ))
    }
}

/// Bytes available to unprivileged writers on `dir`'s file system, as `df` reports them.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: a valid NUL-terminated path and a pointer to writable statvfs storage.
    let rc = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let st = unsafe { st.assume_init() };
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

fn human(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{} KiB", bytes / 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_above_the_disk_refuses_and_zero_accepts() {
        let dir = tempfile::tempdir().unwrap();
        assert!(SpaceGuard::new(dir.path(), 0).check().is_ok());
        let e = SpaceGuard::new(dir.path(), u64::MAX).check().unwrap_err();
        assert!(e.contains("disk nearly full"), "{e}");
        assert!(e.contains(&dir.path().display().to_string()), "{e}");
    }
}
