//! KV requests: Consul's `/v1/kv` semantics, shared by `KV` over gRPC and the HTTP shim.

use super::query::{QueryMeta, QueryOptions};
use super::{ResponseMeta, Service, ServiceError};
use crate::state::kv::{keys_with_separator, LockOp};
use crate::state::{Command, KvEntry, WatchTarget};

/// A put as the front ends decode it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct PutArgs {
    pub key: String,
    pub value: Vec<u8>,
    pub flags: u64,
    pub cas: Option<u64>,
    /// Consul's `?acquire=<session>` / `?release=<session>`; not with `cas`.
    pub lock: Option<(LockOp, String)>,
}

impl Service {
    /// A key must be non-empty, not start with '/', and fit the key limit.
    pub fn validate_key(&self, key: &str) -> Result<(), ServiceError> {
        if key.is_empty() {
            return Err(ServiceError::InvalidArgument("Missing key name".into()));
        }
        self.validate_prefix(key)
    }

    /// A prefix may be empty (the whole store) but must otherwise follow the key rules.
    pub fn validate_prefix(&self, prefix: &str) -> Result<(), ServiceError> {
        if prefix.starts_with('/') {
            return Err(ServiceError::InvalidArgument(
                "Invalid key. Key must not begin with a '/'".into(),
            ));
        }
        if prefix.len() > self.limits.max_key_size {
            return Err(ServiceError::InvalidArgument(format!(
                "Key is too long ({} bytes, max {} bytes)",
                prefix.len(),
                self.limits.max_key_size
            )));
        }
        Ok(())
    }

    /// One key (Consul's `GET /v1/kv/<key>`), blocking per `opts`.
    pub async fn kv_get(
        &self,
        key: &str,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Option<KvEntry>), ServiceError> {
        self.validate_key(key)?;
        let k = key.to_string();
        self.query(WatchTarget::Key(k.clone()), opts, move |s| s.kv_get(&k))
            .await
    }

    /// Every pair under `prefix` (`?recurse`), blocking per `opts`.
    pub async fn kv_list(
        &self,
        prefix: &str,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<KvEntry>), ServiceError> {
        self.validate_prefix(prefix)?;
        let p = prefix.to_string();
        self.query(WatchTarget::Prefix(p.clone()), opts, move |s| s.kv_list(&p))
            .await
    }

    /// Key names under `prefix`, cut at `separator` (Consul's `?keys&separator=`).
    pub async fn kv_keys(
        &self,
        prefix: &str,
        separator: &str,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<String>), ServiceError> {
        let (meta, entries) = self.kv_list(prefix, opts).await?;
        let keys = keys_with_separator(entries.into_iter().map(|e| e.key), prefix, separator);
        Ok((meta, keys))
    }

    /// Returns whether the CAS condition (if any) held; the meta carries the write's index.
    pub async fn kv_put(&self, args: PutArgs) -> Result<(ResponseMeta, bool), ServiceError> {
        self.validate_key(&args.key)?;
        if args.value.len() > self.limits.max_value_size {
            return Err(ServiceError::TooLarge(format!(
                "Value is too large ({} bytes, max {} bytes)",
                args.value.len(),
                self.limits.max_value_size
            )));
        }
        if let Some((op, session)) = args.lock {
            if args.cas.is_some() {
                return Err(ServiceError::InvalidArgument(
                    "Conflicting flags: cas cannot be combined with acquire or release".into(),
                ));
            }
            return self
                .kv_lock(op, args.key, args.value, args.flags, session)
                .await;
        }
        let (index, result) = self
            .raft
            .write(Command::KvPut {
                key: args.key,
                value: args.value,
                flags: args.flags,
                cas: args.cas,
            })
            .await?;
        Ok((self.meta(index), result.succeeded()))
    }

    /// Deletes one key (optionally CAS) or, with `recurse`, a prefix.
    pub async fn kv_delete(
        &self,
        key: &str,
        recurse: bool,
        cas: Option<u64>,
    ) -> Result<(ResponseMeta, bool), ServiceError> {
        let command = if recurse {
            if cas.is_some() {
                return Err(ServiceError::InvalidArgument(
                    "Conflicting flags: cas cannot be combined with recurse".into(),
                ));
            }
            self.validate_prefix(key)?;
            Command::KvDeleteTree {
                prefix: key.to_string(),
            }
        } else {
            self.validate_key(key)?;
            Command::KvDelete {
                key: key.to_string(),
                cas,
            }
        };
        let (index, result) = self.raft.write(command).await?;
        Ok((self.meta(index), result.succeeded()))
    }
}
