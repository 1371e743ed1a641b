//! Lock commands.

use dsync_api::locks::LockMode;
use serde::{Deserialize, Serialize};

use super::Command;
use crate::state::locks::{Acquired, Ctx, LockTable};
use crate::state::proposal::{done, Proposal};
use crate::state::{CmdOutput, CmdValue};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockAcquire {
    pub name: String,
    pub owner: String,
    pub mode: LockMode,
    pub ttl_ms: u64,
    pub wait_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockRelease {
    pub name: String,
    pub owner: String,
    pub token: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockKeepalive {
    pub name: String,
    pub owner: String,
    pub token: u64,
    pub ttl_ms: Option<u64>,
}

/// The client of a queued request went away (or gave up).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockCancel {
    pub name: String,
    pub owner: String,
    pub since_seq: u64,
}

/// A new leader's grace: extend every lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockExtendLeases {
    pub by_ms: u64,
}

/// Admin override: drop every holder of the lock, whatever its token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockForceRelease {
    pub name: String,
}

impl LockAcquire {
    pub(in crate::state) fn apply(self, l: &mut LockTable, ctx: &mut Ctx) -> CmdOutput {
        let acquired = l.acquire(
            &self.name,
            &self.owner,
            self.mode,
            self.ttl_ms,
            self.wait_ms,
            ctx,
        )?;
        Ok(match acquired {
            Acquired::Granted(h) => CmdValue::Granted(h),
            Acquired::Queued { seq } => CmdValue::Queued { seq },
        })
    }
}

impl LockRelease {
    pub(in crate::state) fn apply(self, l: &mut LockTable, ctx: &mut Ctx) -> CmdOutput {
        l.release(&self.name, &self.owner, self.token, ctx)?;
        Ok(CmdValue::Done)
    }
}

impl LockKeepalive {
    pub(in crate::state) fn apply(self, l: &mut LockTable, ctx: &mut Ctx) -> CmdOutput {
        let h = l.keepalive(&self.name, &self.owner, self.token, self.ttl_ms, ctx)?;
        Ok(CmdValue::Granted(h))
    }
}

impl LockCancel {
    pub(in crate::state) fn apply(self, l: &mut LockTable, ctx: &mut Ctx) -> CmdOutput {
        l.cancel(&self.name, &self.owner, self.since_seq, ctx);
        Ok(CmdValue::Done)
    }
}

impl LockExtendLeases {
    pub(in crate::state) fn apply(self, l: &mut LockTable) -> CmdOutput {
        l.extend_leases(self.by_ms);
        Ok(CmdValue::Done)
    }
}

impl LockForceRelease {
    pub(in crate::state) fn apply(self, l: &mut LockTable, ctx: &mut Ctx) -> CmdOutput {
        Ok(CmdValue::Released(l.force_release(&self.name, ctx)))
    }
}

/// Answers the grant, or the place in the queue of waiters.
pub fn acquire(
    name: String,
    owner: String,
    mode: LockMode,
    ttl_ms: u64,
    wait_ms: u64,
) -> Proposal<Acquired> {
    let cmd = Command::LockAcquire(LockAcquire {
        name,
        owner,
        mode,
        ttl_ms,
        wait_ms,
    });
    Proposal::new(cmd, |v| match v {
        CmdValue::Granted(h) => Ok(Acquired::Granted(h)),
        CmdValue::Queued { seq } => Ok(Acquired::Queued { seq }),
        other => Err(other),
    })
}

pub fn release(name: String, owner: String, token: u64) -> Proposal<()> {
    Proposal::new(
        Command::LockRelease(LockRelease { name, owner, token }),
        done,
    )
}

/// Answers the renewed grant.
pub fn keepalive(
    name: String,
    owner: String,
    token: u64,
    ttl_ms: Option<u64>,
) -> Proposal<crate::state::locks::Holder> {
    let cmd = Command::LockKeepalive(LockKeepalive {
        name,
        owner,
        token,
        ttl_ms,
    });
    Proposal::new(cmd, |v| match v {
        CmdValue::Granted(h) => Ok(h),
        other => Err(other),
    })
}

/// Answers the owners evicted.
pub fn force_release(name: String) -> Proposal<Vec<String>> {
    Proposal::new(
        Command::LockForceRelease(LockForceRelease { name }),
        |v| match v {
            CmdValue::Released(owners) => Ok(owners),
            other => Err(other),
        },
    )
}
