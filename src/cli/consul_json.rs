//! Consul's JSON shapes as `consul watch` hands them to handlers (Go `api.KVPair` field
//! order, `Value` base64 or null) and as `consul kv export` writes them.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::pb;

/// Go's `api.KVPair`, in its field order.
#[derive(Debug, Serialize)]
pub struct KvPairJson<'a> {
    #[serde(rename = "Key")]
    pub key: &'a str,
    #[serde(rename = "CreateIndex")]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex")]
    pub modify_index: u64,
    #[serde(rename = "LockIndex")]
    pub lock_index: u64,
    #[serde(rename = "Flags")]
    pub flags: u64,
    #[serde(rename = "Value")]
    pub value: Option<String>,
    #[serde(rename = "Session")]
    pub session: &'a str,
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn unb64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    base64::engine::general_purpose::STANDARD.decode(text.trim())
}

impl<'a> From<&'a pb::KvPair> for KvPairJson<'a> {
    fn from(kv: &'a pb::KvPair) -> Self {
        KvPairJson {
            key: &kv.key,
            create_index: kv.create_index,
            modify_index: kv.modify_index,
            lock_index: kv.lock_index,
            flags: kv.flags,
            value: (!kv.value.is_empty()).then(|| b64(&kv.value)),
            session: &kv.session,
        }
    }
}

/// One entry of `consul kv export` / `import`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportEntry {
    pub key: String,
    pub flags: u64,
    pub value: String,
}

pub use crate::json::to_pretty_json;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvpair_matches_consul_field_order_and_null_value() {
        let kv = pb::KvPair {
            key: "application/online".into(),
            value: b"false".to_vec(),
            create_index: 1149,
            modify_index: 1182,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&KvPairJson::from(&kv)).unwrap(),
            r#"{"Key":"application/online","CreateIndex":1149,"ModifyIndex":1182,"LockIndex":0,"Flags":0,"Value":"ZmFsc2U=","Session":""}"#
        );
        let empty = pb::KvPair::default();
        assert!(serde_json::to_string(&KvPairJson::from(&empty))
            .unwrap()
            .contains(r#""Value":null"#));
    }
}
