//! A process-local store for tests and single-process tools. Nothing survives
//! a restart and nothing is shared between instances.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{TokenRecord, TokenStore};
use crate::error::StoreError;

/// An in-memory [`TokenStore`].
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    records: Mutex<HashMap<String, TokenRecord>>,
}

impl MemoryTokenStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, TokenRecord>) -> R) -> R {
        // A poisoned lock only means another thread panicked mid-update of a
        // plain map; the map itself is still consistent.
        let mut guard = self
            .records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }
}

#[async_trait]
impl TokenStore for MemoryTokenStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn insert(&self, record: &TokenRecord) -> Result<(), StoreError> {
        self.with(|map| {
            if map.contains_key(&record.jti) {
                return Err(StoreError::new("insert", "duplicate jti"));
            }
            map.insert(record.jti.clone(), record.clone());
            Ok(())
        })
    }

    async fn get(&self, jti: &str) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self.with(|map| map.get(jti).cloned()))
    }

    async fn revoke(&self, jti: &str, at: i64) -> Result<bool, StoreError> {
        Ok(self.with(|map| match map.get_mut(jti) {
            Some(r) if r.revoked_at.is_none() => {
                r.revoked_at = Some(at);
                true
            }
            _ => false,
        }))
    }

    async fn revoke_family(&self, family_id: &str, at: i64) -> Result<u64, StoreError> {
        Ok(self.with(|map| {
            let mut n = 0;
            for r in map.values_mut() {
                if r.family_id.as_deref() == Some(family_id) && r.revoked_at.is_none() {
                    r.revoked_at = Some(at);
                    n += 1;
                }
            }
            n
        }))
    }

    async fn revoke_user(
        &self,
        user_id: &str,
        except_family: Option<&str>,
        at: i64,
    ) -> Result<u64, StoreError> {
        Ok(self.with(|map| {
            let mut n = 0;
            for r in map.values_mut() {
                let kept = except_family.is_some() && r.family_id.as_deref() == except_family;
                if r.user_id == user_id && r.revoked_at.is_none() && !kept {
                    r.revoked_at = Some(at);
                    n += 1;
                }
            }
            n
        }))
    }

    async fn list_live(&self, user_id: &str, now: i64) -> Result<Vec<TokenRecord>, StoreError> {
        Ok(self.with(|map| {
            let mut live: Vec<_> = map
                .values()
                .filter(|r| r.user_id == user_id && r.is_live(now))
                .cloned()
                .collect();
            live.sort_by(|a, b| (a.issued_at, &a.jti).cmp(&(b.issued_at, &b.jti)));
            live
        }))
    }

    async fn purge_expired(&self, before: i64, batch: u32) -> Result<u64, StoreError> {
        Ok(self.with(|map| {
            let doomed: Vec<String> = map
                .values()
                .filter(|r| r.expires_at < before)
                .take(batch as usize)
                .map(|r| r.jti.clone())
                .collect();
            for jti in &doomed {
                map.remove(jti);
            }
            doomed.len() as u64
        }))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
