//! A process-local store for tests and single-process tools. Nothing survives
//! a restart and nothing is shared between instances.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{Rotation, TokenRecord, TokenStore};
use crate::error::StoreError;
use crate::tokens::feed::{Revocation, RevocationBatch, RevocationFeed, expiring_after};

/// Revocations the memory store's change log keeps for readers to catch
/// up; a reader further behind reloads a snapshot.
const LOG_CAPACITY: usize = 10_000;

/// An in-memory [`TokenStore`]. Its [revocation feed](TokenStore::revocation_feed)
/// is its own change log, so [`Security`](crate::Security) handles sharing
/// one store (one process) see each other's revocations in synced mode.
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// Each record with the user's cut-off generation it was issued under.
    records: HashMap<String, (TokenRecord, u64)>,
    /// Per user: the current cut-off generation and when it was last raised.
    cutoffs: HashMap<String, (u64, i64)>,
    /// The change sequence: the latest number and the recent entries.
    seq: u64,
    log: VecDeque<(u64, Revocation)>,
    /// Wake-up channels of the feed's subscribers.
    subscribers: Vec<mpsc::Sender<()>>,
}

impl State {
    /// Appends revocations to the change log under one new number and
    /// wakes the subscribers.
    fn publish(&mut self, revocations: Vec<Revocation>) {
        if revocations.is_empty() {
            return;
        }
        self.seq += 1;
        for revocation in revocations {
            self.log.push_back((self.seq, revocation));
        }
        // Trim whole numbers only: a reader must get all of a number's
        // entries or learn (by the gap) that it has to reload.
        while self.log.len() > LOG_CAPACITY {
            let Some((trimmed, _)) = self.log.pop_front() else {
                break;
            };
            while self.log.front().is_some_and(|(n, _)| *n == trimmed) {
                self.log.pop_front();
            }
        }
        // A full channel already holds a wake-up; a closed one is gone.
        self.subscribers.retain(|tx| !tx.is_closed());
        for tx in &self.subscribers {
            let _ = tx.try_send(());
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // A poisoned lock only means another thread panicked mid-update of
    // plain maps; they are still consistent.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The memory store's feed: reads the shared state directly.
#[derive(Debug)]
struct MemoryFeed {
    state: Arc<Mutex<State>>,
}

#[async_trait]
impl RevocationFeed for MemoryFeed {
    async fn snapshot(&self, expiring_after: i64) -> Result<RevocationBatch, StoreError> {
        let state = lock(&self.state);
        let mut revocations: Vec<Revocation> = state
            .records
            .values()
            .filter(|(r, _)| r.revoked_at.is_some() && r.expires_at > expiring_after)
            .map(|(r, _)| Revocation::Token {
                jti: r.jti.clone(),
                expires_at: r.expires_at,
            })
            .collect();
        revocations.extend(
            state
                .cutoffs
                .iter()
                .map(|(user_id, (_, at))| Revocation::UserCutOff {
                    user_id: user_id.clone(),
                    at: *at,
                }),
        );
        Ok(RevocationBatch {
            cursor: state.seq,
            revocations,
        })
    }

    async fn changes_since(&self, cursor: u64) -> Result<Option<RevocationBatch>, StoreError> {
        let state = lock(&self.state);
        let trimmed = state.seq > cursor && state.log.front().is_none_or(|(n, _)| *n > cursor + 1);
        if trimmed || cursor > state.seq {
            return Ok(None);
        }
        let expiring = expiring_after();
        Ok(Some(RevocationBatch {
            cursor: state.seq,
            revocations: state
                .log
                .iter()
                .filter(|(n, r)| {
                    *n > cursor
                        && match r {
                            Revocation::Token { expires_at, .. } => *expires_at > expiring,
                            Revocation::UserCutOff { .. } => true,
                        }
                })
                .map(|(_, r)| r.clone())
                .collect(),
        }))
    }

    async fn subscribe(&self) -> Result<Option<mpsc::Receiver<()>>, StoreError> {
        let (tx, rx) = mpsc::channel(1);
        lock(&self.state).subscribers.push(tx);
        Ok(Some(rx))
    }
}

/// Whether a cut-off revoked a record issued under `generation`.
fn cut_off(cutoffs: &HashMap<String, (u64, i64)>, record: &TokenRecord, generation: u64) -> bool {
    cutoffs
        .get(&record.user_id)
        .is_some_and(|(current, _)| generation < *current)
}

impl State {
    fn generation(&self, user_id: &str) -> u64 {
        self.cutoffs.get(user_id).map_or(0, |(g, _)| *g)
    }

    /// The record as readers see it: a record issued before the user's
    /// latest cut-off counts as revoked at the cut-off.
    fn effective(&self, record: &TokenRecord, generation: u64) -> TokenRecord {
        let mut r = record.clone();
        if r.revoked_at.is_none()
            && let Some((current, at)) = self.cutoffs.get(&r.user_id)
            && generation < *current
        {
            r.revoked_at = Some(*at);
        }
        r
    }
}

impl MemoryTokenStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut lock(&self.state))
    }
}

#[async_trait]
impl TokenStore for MemoryTokenStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn insert(&self, record: &TokenRecord) -> Result<(), StoreError> {
        self.with(|state| {
            if state.records.contains_key(&record.jti) {
                return Err(StoreError::new("insert", "duplicate jti"));
            }
            let generation = state.generation(&record.user_id);
            state
                .records
                .insert(record.jti.clone(), (record.clone(), generation));
            Ok(())
        })
    }

    async fn get(&self, jti: &str) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self.with(|state| {
            state
                .records
                .get(jti)
                .map(|(r, generation)| state.effective(r, *generation))
        }))
    }

    async fn revoke(&self, jti: &str, at: i64) -> Result<bool, StoreError> {
        Ok(self.with(|state| match state.records.get_mut(jti) {
            Some((r, g)) if r.revoked_at.is_none() && !cut_off(&state.cutoffs, r, *g) => {
                r.revoked_at = Some(at);
                let revoked = Revocation::Token {
                    jti: r.jti.clone(),
                    expires_at: r.expires_at,
                };
                state.publish(vec![revoked]);
                true
            }
            _ => false,
        }))
    }

    async fn rotate(
        &self,
        parent_jti: &str,
        child: &TokenRecord,
        at: i64,
    ) -> Result<Rotation, StoreError> {
        self.with(|state| {
            let Some((parent, generation)) = state.records.get(parent_jti) else {
                return Ok(Rotation::NotLive);
            };
            let generation = *generation;
            let parent = state.effective(parent, generation);
            if parent.token_type != super::TokenType::Refresh
                || parent.revoked_at.is_some()
                || parent.expires_at <= at
            {
                return Ok(Rotation::NotLive);
            }
            if let Some(consumed_at) = parent.consumed_at {
                return Ok(Rotation::AlreadyConsumed {
                    consumed_at,
                    replaced_by: parent.replaced_by,
                });
            }
            if state.records.contains_key(&child.jti) {
                return Err(StoreError::new("rotate", "duplicate jti"));
            }
            if let Some((p, _)) = state.records.get_mut(parent_jti) {
                p.consumed_at = Some(at);
                p.replaced_by = Some(child.jti.clone());
            }
            state
                .records
                .insert(child.jti.clone(), (child.clone(), generation));
            Ok(Rotation::Rotated)
        })
    }

    async fn cut_off_user(&self, user_id: &str, at: i64) -> Result<(), StoreError> {
        self.with(|state| {
            let entry = state.cutoffs.entry(user_id.to_owned()).or_insert((0, at));
            entry.0 += 1;
            entry.1 = at;
            state.publish(vec![Revocation::UserCutOff {
                user_id: user_id.to_owned(),
                at,
            }]);
        });
        Ok(())
    }

    async fn revoke_family(&self, family_id: &str, at: i64) -> Result<u64, StoreError> {
        Ok(self.with(|state| {
            let mut revoked = Vec::new();
            for (r, g) in state.records.values_mut() {
                if r.family_id.as_deref() == Some(family_id)
                    && r.revoked_at.is_none()
                    && !cut_off(&state.cutoffs, r, *g)
                {
                    r.revoked_at = Some(at);
                    revoked.push(Revocation::Token {
                        jti: r.jti.clone(),
                        expires_at: r.expires_at,
                    });
                }
            }
            let n = revoked.len() as u64;
            state.publish(revoked);
            n
        }))
    }

    async fn revoke_user(
        &self,
        user_id: &str,
        except_family: Option<&str>,
        at: i64,
    ) -> Result<u64, StoreError> {
        Ok(self.with(|state| {
            let mut revoked = Vec::new();
            for (r, g) in state.records.values_mut() {
                let kept = except_family.is_some() && r.family_id.as_deref() == except_family;
                if r.user_id == user_id
                    && r.revoked_at.is_none()
                    && !kept
                    && !cut_off(&state.cutoffs, r, *g)
                {
                    r.revoked_at = Some(at);
                    revoked.push(Revocation::Token {
                        jti: r.jti.clone(),
                        expires_at: r.expires_at,
                    });
                }
            }
            let n = revoked.len() as u64;
            state.publish(revoked);
            n
        }))
    }

    async fn list_live(&self, user_id: &str, now: i64) -> Result<Vec<TokenRecord>, StoreError> {
        Ok(self.with(|state| {
            let mut live: Vec<_> = state
                .records
                .values()
                .filter(|(r, _)| r.user_id == user_id)
                .map(|(r, generation)| state.effective(r, *generation))
                .filter(|r| r.is_live(now))
                .collect();
            live.sort_by(|a, b| (a.issued_at, &a.jti).cmp(&(b.issued_at, &b.jti)));
            live
        }))
    }

    async fn purge_expired(&self, before: i64, batch: u32) -> Result<u64, StoreError> {
        Ok(self.with(|state| {
            let doomed: Vec<String> = state
                .records
                .values()
                .filter(|(r, _)| r.expires_at < before)
                .take(batch as usize)
                .map(|(r, _)| r.jti.clone())
                .collect();
            for jti in &doomed {
                state.records.remove(jti);
            }
            doomed.len() as u64
        }))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn revocation_feed(&self) -> Option<Arc<dyn RevocationFeed>> {
        Some(Arc::new(MemoryFeed {
            state: Arc::clone(&self.state),
        }))
    }
}
