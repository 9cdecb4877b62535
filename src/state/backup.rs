//! The snapshot file (`rostractl snapshot save`, `GET /v1/snapshot`): every table at one
//! raft index, in a file that says what it holds and proves it is whole.
//!
//! Layout: the line `ROSTRA-SNAPSHOT 1`, one line of JSON (the [`BackupHeader`]: index,
//! term, payload size, the payload's SHA-256, records per table), then the payload (the
//! tables' records, postcard-encoded). Decoding checks all of it — format, size, checksum,
//! that every record belongs to a known table and the counts match — so a corrupt,
//! truncated or foreign file is refused before a restore replaces anything.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::store::TablesDump;

const MAGIC: &[u8] = b"ROSTRA-SNAPSHOT 1\n";
/// The header is a few hundred bytes; anything longer is not one.
const MAX_HEADER: usize = 64 * 1024;

/// What a snapshot file says about itself (`rostractl snapshot inspect`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BackupHeader {
    /// `<term>-<index>-<unix ms>`.
    #[serde(rename = "ID")]
    pub id: String,
    /// The raft index the state reflects.
    pub index: u64,
    /// The term of the entry at that index.
    pub term: u64,
    /// Payload bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of the payload.
    #[serde(rename = "SHA256")]
    pub sha256: String,
    /// Records per table (column family), and their bytes.
    pub tables: BTreeMap<String, TableStats>,
    /// The Rostra version that wrote the file.
    pub version: String,
    /// When it was taken, unix milliseconds.
    pub created_unix_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TableStats {
    pub count: u64,
    pub size: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BackupError {
    #[error("not a Rostra snapshot file (it does not start with \"ROSTRA-SNAPSHOT 1\")")]
    NotASnapshot,
    #[error("the snapshot header is unreadable: {0}")]
    BadHeader(String),
    #[error("the snapshot is truncated or has trailing bytes: its header says {expected} payload bytes, the file has {actual}")]
    WrongSize { expected: u64, actual: u64 },
    #[error(
        "the snapshot is corrupt: its payload's SHA-256 is {actual}, the header says {expected}"
    )]
    Checksum { expected: String, actual: String },
    #[error("the snapshot is corrupt: {0}")]
    BadPayload(String),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn stats(dump: &TablesDump) -> BTreeMap<String, TableStats> {
    let mut tables: BTreeMap<String, TableStats> = BTreeMap::new();
    for (table, k, v) in &dump.records {
        let t = tables.entry(table.clone()).or_default();
        t.count += 1;
        t.size += (k.len() + v.len()) as u64;
    }
    tables
}

/// Writes `dump`, taken at `index` (of `term`), as a snapshot file.
pub fn encode(dump: &TablesDump, index: u64, term: u64, created_unix_ms: u64) -> Vec<u8> {
    let payload = postcard::to_stdvec(dump).expect("tables always encode");
    let header = BackupHeader {
        id: format!("{term}-{index}-{created_unix_ms}"),
        index,
        term,
        size: payload.len() as u64,
        sha256: hex(&Sha256::digest(&payload)),
        tables: stats(dump),
        version: env!("CARGO_PKG_VERSION").to_string(),
        created_unix_ms,
    };
    let line = serde_json::to_vec(&header).expect("the header always encodes");
    let mut out = Vec::with_capacity(MAGIC.len() + line.len() + 1 + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&line);
    out.push(b'\n');
    out.extend_from_slice(&payload);
    out
}

/// Reads only the header, checking the format, size and checksum (`inspect`).
pub fn inspect(file: &[u8]) -> Result<BackupHeader, BackupError> {
    let (header, payload) = split(file)?;
    verify(&header, payload)?;
    Ok(header)
}

/// Reads and verifies a whole snapshot file; `known_table` says which tables a record
/// may name.
pub fn decode(
    file: &[u8],
    known_table: impl Fn(&str, &[u8]) -> bool,
) -> Result<(BackupHeader, TablesDump), BackupError> {
    let (header, payload) = split(file)?;
    verify(&header, payload)?;
    let (dump, rest): (TablesDump, &[u8]) =
        postcard::take_from_bytes(payload).map_err(|e| BackupError::BadPayload(e.to_string()))?;
    if !rest.is_empty() {
        return Err(BackupError::BadPayload(format!(
            "{} bytes after the tables",
            rest.len()
        )));
    }
    if let Some((table, k, _)) = dump.records.iter().find(|(t, k, _)| !known_table(t, k)) {
        return Err(BackupError::BadPayload(format!(
            "a record of unknown table {table:?} (key {} bytes)",
            k.len()
        )));
    }
    if stats(&dump) != header.tables {
        return Err(BackupError::BadPayload(
            "the tables do not match the header's counts".into(),
        ));
    }
    Ok((header, dump))
}

fn split(file: &[u8]) -> Result<(BackupHeader, &[u8]), BackupError> {
    let rest = file.strip_prefix(MAGIC).ok_or(BackupError::NotASnapshot)?;
    let end = rest
        .iter()
        .take(MAX_HEADER)
        .position(|b| *b == b'\n')
        .ok_or_else(|| BackupError::BadHeader("no end of header line".into()))?;
    let header: BackupHeader =
        serde_json::from_slice(&rest[..end]).map_err(|e| BackupError::BadHeader(e.to_string()))?;
    Ok((header, &rest[end + 1..]))
}

fn verify(header: &BackupHeader, payload: &[u8]) -> Result<(), BackupError> {
    if payload.len() as u64 != header.size {
        return Err(BackupError::WrongSize {
            expected: header.size,
            actual: payload.len() as u64,
        });
    }
    let actual = hex(&Sha256::digest(payload));
    if actual != header.sha256 {
        return Err(BackupError::Checksum {
            expected: header.sha256.clone(),
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TablesDump {
        TablesDump {
            records: vec![
                ("kv".into(), b"a".to_vec(), b"1".to_vec()),
                ("kv".into(), b"b".to_vec(), b"22".to_vec()),
                ("nodes".into(), b"n1".to_vec(), vec![0; 40]),
            ],
        }
    }

    fn known(t: &str, _: &[u8]) -> bool {
        t == "kv" || t == "nodes"
    }

    #[test]
    fn round_trip_with_header() {
        let file = encode(&sample(), 42, 3, 1_700_000_000_000);
        let (h, dump) = decode(&file, known).unwrap();
        assert_eq!((h.index, h.term), (42, 3));
        assert_eq!(h.id, "3-42-1700000000000");
        assert_eq!(h.tables["kv"], TableStats { count: 2, size: 5 });
        assert_eq!(dump.records, sample().records);
        assert_eq!(inspect(&file).unwrap(), h);
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_refused() {
        let file = encode(&sample(), 42, 3, 1);
        for len in 0..file.len() {
            assert!(decode(&file[..len], known).is_err(), "truncated to {len}");
        }
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x20;
            // A flip inside the header JSON may still parse (say, a digit of the
            // creation time); it must never yield different tables.
            match decode(&bad, known) {
                Err(_) => {}
                Ok((_, dump)) => assert_eq!(dump.records, sample().records, "byte {i}"),
            }
        }
        let mut longer = file.clone();
        longer.push(0);
        assert!(matches!(
            decode(&longer, known),
            Err(BackupError::WrongSize { .. })
        ));
    }

    #[test]
    fn unknown_tables_and_foreign_files_are_refused() {
        let mut dump = sample();
        dump.records
            .push(("raft_log".into(), b"x".to_vec(), b"y".to_vec()));
        let file = encode(&dump, 1, 1, 1);
        assert!(matches!(
            decode(&file, known),
            Err(BackupError::BadPayload(_))
        ));
        assert_eq!(
            decode(b"\x1f\x8b\x08 a Consul snapshot", known).unwrap_err(),
            BackupError::NotASnapshot
        );
    }
}
