//! Binding lock owners and queue receipts to the principal that made them.
//!
//! Lock owners are stored as `principal:owner`, so no principal can name
//! another's owner: the state machine itself refuses a release or keepalive
//! whose qualified owner does not hold the grant. Queue receipts carry an
//! HMAC of (principal, receipt) under the cluster secret, checked on every
//! node before ack, nack or extend, so they need no state to verify.

use dsync_api::{ApiError, ErrorCode};

use super::{Auth, Principal};

/// The owner as stored: prefixed with the principal when auth is on.
/// Idempotent, so a client may send back the owner a response showed it.
pub fn qualify_owner(p: &Principal, owner: &str) -> String {
    if !p.bound || owner.starts_with(&owner_prefix(p)) {
        owner.to_string()
    } else {
        format!("{}{owner}", owner_prefix(p))
    }
}

fn owner_prefix(p: &Principal) -> String {
    format!("{}:", p.name)
}

/// Whether a stored owner belongs to `p` (always true without auth).
pub fn owned_by(p: &Principal, stored_owner: &str) -> bool {
    !p.bound || stored_owner.starts_with(&owner_prefix(p))
}

pub fn not_yours(what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::PermissionDenied,
        format!("{what} belongs to another principal"),
    )
}

impl Auth {
    /// The receipt handed to `p`: bound to it when auth is on.
    pub fn seal_receipt(&self, p: &Principal, receipt: String) -> String {
        if !p.bound {
            return receipt;
        }
        let tag = self.receipt_tag(&p.name, &receipt);
        format!("{receipt}.{tag}")
    }

    /// The state machine's receipt inside a sealed one, if `p` may use it:
    /// 403 when it was delivered to another principal.
    pub fn open_receipt(&self, p: &Principal, sealed: &str) -> Result<String, ApiError> {
        if !p.bound {
            return Ok(sealed.to_string());
        }
        let (receipt, tag) = sealed.rsplit_once('.').ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidArgument,
                format!("{sealed:?} is not a receipt"),
            )
        })?;
        let want = self.receipt_tag(&p.name, receipt);
        let ok = subtle::ConstantTimeEq::ct_eq(want.as_bytes(), tag.as_bytes());
        if bool::from(ok) {
            Ok(receipt.to_string())
        } else {
            Err(not_yours(&format!("receipt {sealed:?}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsync_api::auth::Role;

    fn user(name: &str) -> Principal {
        Principal {
            name: name.into(),
            role: Role::Write,
            scopes: vec![],
            expires_at: None,
            bound: true,
        }
    }

    #[test]
    fn owners_are_prefixed_once_and_only_when_bound() {
        let a = user("alice");
        assert_eq!(qualify_owner(&a, "w1"), "alice:w1");
        assert_eq!(qualify_owner(&a, "alice:w1"), "alice:w1");
        assert_eq!(qualify_owner(&a, "bob:w1"), "alice:bob:w1");
        assert!(owned_by(&a, "alice:w1"));
        assert!(!owned_by(&a, "bob:w1"));
        let anon = Principal::anonymous();
        assert_eq!(qualify_owner(&anon, "w1"), "w1");
        assert!(owned_by(&anon, "bob:w1"));
    }

    #[test]
    fn receipts_open_only_for_their_principal() {
        let auth = Auth::disabled();
        let (a, b) = (user("alice"), user("bob"));
        let sealed = auth.seal_receipt(&a, "7-2".into());
        assert_eq!(auth.open_receipt(&a, &sealed).unwrap(), "7-2");
        let err = auth.open_receipt(&b, &sealed).unwrap_err();
        assert_eq!(err.code, ErrorCode::PermissionDenied);
        assert_eq!(
            auth.open_receipt(&a, "7-2").unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        let forged = format!("7-3.{}", sealed.rsplit_once('.').unwrap().1);
        assert!(auth.open_receipt(&a, &forged).is_err());
        let anon = Principal::anonymous();
        assert_eq!(auth.seal_receipt(&anon, "1-1".into()), "1-1");
    }
}
