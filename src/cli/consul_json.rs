//! Consul's JSON shapes as `consul kv export` writes them (what `consul watch` hands its
//! handlers is `crate::watch::payload`'s).

use base64::Engine;
use serde::{Deserialize, Serialize};

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn unb64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    base64::engine::general_purpose::STANDARD.decode(text.trim())
}

/// One entry of `consul kv export` / `import`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportEntry {
    pub key: String,
    pub flags: u64,
    pub value: String,
}

pub use crate::json::to_pretty_json;
