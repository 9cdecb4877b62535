//! KV transactions (Consul's `PUT /v1/txn`, gRPC `KV.Txn`): validated here, applied
//! atomically as one raft entry by `state::txn`. A transaction of only reads does not go
//! through raft; it runs against one consistent view after the read barrier.

use super::{Consistency, ResponseMeta, Service, ServiceError};
use crate::state::txn::{self, KvTxnOp, KvTxnVerb, TxnOutcome};
use crate::state::{Command, CommandResult};

/// A transaction's outcome and how it was served.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TxnReply {
    pub meta: ResponseMeta,
    /// True when no operation wrote: served without raft (no index to report).
    pub read_only: bool,
    pub outcome: TxnOutcome,
}

impl Service {
    pub async fn kv_txn(
        &self,
        ops: Vec<KvTxnOp>,
        consistency: Consistency,
    ) -> Result<TxnReply, ServiceError> {
        if ops.len() > self.limits.max_txn_ops {
            return Err(ServiceError::TooLarge(format!(
                "Transaction contains too many operations ({} > {})",
                ops.len(),
                self.limits.max_txn_ops
            )));
        }
        for op in &ops {
            match op.verb {
                // Prefix operations may name the whole store.
                KvTxnVerb::GetTree | KvTxnVerb::DeleteTree => self.validate_prefix(&op.key)?,
                _ => self.validate_key(&op.key)?,
            }
            if op.value.len() > self.limits.max_value_size {
                return Err(ServiceError::TooLarge(format!(
                    "Value for key {:?} is too large ({} > {} bytes)",
                    op.key,
                    op.value.len(),
                    self.limits.max_value_size
                )));
            }
        }
        if ops.iter().all(|op| op.verb.is_read()) {
            self.read_barrier(consistency).await?;
            let (applied, outcome) = self
                .blocking_read(move |s| {
                    let view = s.view();
                    Ok((view.applied_index()?, txn::read_only(&view, &ops)?))
                })
                .await?;
            return Ok(TxnReply {
                meta: self.meta(applied),
                read_only: true,
                outcome,
            });
        }
        let (index, result) = self.raft.write(Command::KvTxn { ops }).await?;
        match result {
            CommandResult::Txn(outcome) => Ok(TxnReply {
                meta: self.meta(index),
                read_only: false,
                outcome,
            }),
            other => Err(ServiceError::Internal(format!(
                "transaction applied as {other:?}"
            ))),
        }
    }
}
