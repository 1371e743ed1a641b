//! The replicated key-value table (the cache's backing store).

use std::collections::BTreeMap;

use dsync_api::ErrorCode;
use serde::{Deserialize, Serialize};

use super::{CmdError, CmdOutput, CmdValue};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvEntry {
    /// JSON text.
    pub value: String,
    pub version: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KvTable {
    entries: BTreeMap<String, KvEntry>,
}

impl KvTable {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&KvEntry> {
        self.entries.get(key)
    }

    /// Keys starting with `prefix`, in order, at most `limit`; the flag says
    /// whether more were left.
    pub fn list(&self, prefix: &str, limit: usize) -> (Vec<(&String, &KvEntry)>, bool) {
        let mut it = self
            .entries
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix));
        let items: Vec<_> = it.by_ref().take(limit).collect();
        let more = it.next().is_some();
        (items, more)
    }

    fn check(&self, key: &str, if_version: Option<u64>) -> Result<(), CmdError> {
        let Some(want) = if_version else {
            return Ok(());
        };
        let current = self.entries.get(key).map_or(0, |e| e.version);
        if current == want {
            Ok(())
        } else {
            Err(CmdError::new(
                ErrorCode::Conflict,
                format!("key {key:?} is at version {current}, not {want}"),
            )
            .with_details(serde_json::json!({ "current_version": current })))
        }
    }

    pub fn put(
        &mut self,
        key: String,
        value: String,
        if_version: Option<u64>,
        revision: u64,
    ) -> CmdOutput {
        self.check(&key, if_version)?;
        self.entries.insert(
            key,
            KvEntry {
                value,
                version: revision,
            },
        );
        Ok(CmdValue::Version(revision))
    }

    pub fn delete(&mut self, key: &str, if_version: Option<u64>) -> CmdOutput {
        self.check(key, if_version)?;
        Ok(CmdValue::Deleted(self.entries.remove(key).is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_and_set_by_version() {
        let mut t = KvTable::default();
        assert_eq!(
            t.put("k".into(), "1".into(), Some(0), 10),
            Ok(CmdValue::Version(10))
        );
        let err = t.put("k".into(), "2".into(), Some(0), 11).unwrap_err();
        assert_eq!(err.code, ErrorCode::Conflict);
        assert!(err.details.unwrap().contains("10"));
        assert_eq!(
            t.put("k".into(), "2".into(), Some(10), 12),
            Ok(CmdValue::Version(12))
        );
        assert!(t.delete("k", Some(10)).is_err());
        assert_eq!(t.delete("k", Some(12)), Ok(CmdValue::Deleted(true)));
        assert_eq!(t.delete("k", None), Ok(CmdValue::Deleted(false)));
    }

    #[test]
    fn prefix_listing_is_ordered_and_bounded() {
        let mut t = KvTable::default();
        for (i, k) in ["a/2", "a/1", "b/1", "a/3"].iter().enumerate() {
            t.put(k.to_string(), "0".into(), None, i as u64 + 1)
                .unwrap();
        }
        let (items, more) = t.list("a/", 2);
        assert_eq!(
            items.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["a/1", "a/2"]
        );
        assert!(more);
        let (items, more) = t.list("a/", 10);
        assert_eq!(items.len(), 3);
        assert!(!more);
    }
}
