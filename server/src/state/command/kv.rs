//! KV commands.

use dsync_api::ErrorCode;
use serde::{Deserialize, Serialize};

use super::Command;
use crate::state::kv::KvTable;
use crate::state::locks::LockTable;
use crate::state::proposal::{version, Proposal};
use crate::state::{CmdError, CmdOutput, CmdValue};

/// `value` is JSON text, kept as text so the log stays compact binary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvPut {
    pub key: String,
    pub value: String,
    pub if_version: Option<u64>,
    /// `(lock, token)`: apply only if `token` is a current grant of `lock`.
    pub fence: Option<(String, u64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvDelete {
    pub key: String,
    pub if_version: Option<u64>,
}

impl KvPut {
    /// At revision `rev`, if its fence (if any) is a current grant.
    pub(in crate::state) fn apply(
        self,
        kv: &mut KvTable,
        locks: &LockTable,
        rev: u64,
    ) -> CmdOutput {
        if let Some((lock, token)) = &self.fence {
            if !locks.is_current_grant(lock, *token) {
                return Err(CmdError::new(
                    ErrorCode::StaleToken,
                    format!("fencing token {token} is not the current grant of lock {lock:?}"),
                ));
            }
        }
        kv.put(self.key, self.value, self.if_version, rev)
    }
}

impl KvDelete {
    pub(in crate::state) fn apply(self, kv: &mut KvTable) -> CmdOutput {
        kv.delete(&self.key, self.if_version)
    }
}

/// Answers the key's new version.
pub fn put(
    key: String,
    value: String,
    if_version: Option<u64>,
    fence: Option<(String, u64)>,
) -> Proposal<u64> {
    let cmd = Command::KvPut(KvPut {
        key,
        value,
        if_version,
        fence,
    });
    Proposal::new(cmd, version)
}

/// Answers whether a value was removed.
pub fn delete(key: String, if_version: Option<u64>) -> Proposal<bool> {
    Proposal::new(
        Command::KvDelete(KvDelete { key, if_version }),
        |v| match v {
            CmdValue::Deleted(d) => Ok(d),
            other => Err(other),
        },
    )
}
