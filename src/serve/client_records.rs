//! Client records as the store keeps them: one row per client identity in the `clients`
//! table and one per release in `release_use`, tables this module defines and owns (the
//! store knows nothing of them).

use crate::registry::model::ListKind;
use crate::registry::store::{RowError, Store, StoreError};
use redb::TableDefinition;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Who fetched what: one row per client identity (see [`ClientUse`]).
const CLIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("clients");

/// How each release was used, by anyone: one row per release id (see [`ReleaseUse`]).
const RELEASE_USE: TableDefinition<&str, &[u8]> = TableDefinition::new("release_use");

/// What one client (a certificate's organisation and serial, else an address) fetched:
/// when it last used each release, and per list the Volgnummer it last received. Kept
/// by the server, persisted in the store, read by `status --clients`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientUse {
    /// Release id → Unix time of the last request answered for it.
    pub releases: BTreeMap<String, i64>,
    /// List → the last document it received.
    pub lists: BTreeMap<ListKind, LastFetch>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastFetch {
    pub volgnummer: u64,
    pub release: String,
    /// Unix time.
    pub at: i64,
}

/// How one release was used in all, by every client, kept or evicted: what an operator
/// needs before withdrawing it, which no flood of other clients can erase.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseUse {
    /// Unix time of the first and the last list document answered for it.
    pub first_used: i64,
    pub last_used: i64,
    /// Unix time of the last one answered to a client known by its certificate (0: none).
    pub last_used_identified: i64,
    /// List documents answered for it (200 and 304).
    pub requests: u64,
}

impl ReleaseUse {
    pub fn count(&mut self, identified: bool, at: i64) {
        if self.requests == 0 {
            self.first_used = at;
        }
        self.requests += 1;
        self.last_used = self.last_used.max(at);
        if identified {
            self.last_used_identified = self.last_used_identified.max(at);
        }
    }
}

impl ClientUse {
    pub fn last_seen(&self) -> i64 {
        self.releases.values().copied().max().unwrap_or(0)
    }
}

/// Persist client records (replacing those rows), remove the evicted ones, and replace
/// the per-release rows given.
pub fn save(
    store: &Store,
    rows: &[(String, ClientUse)],
    evicted: &[String],
    releases: &[(String, ReleaseUse)],
) -> Result<(), StoreError> {
    if rows.is_empty() && evicted.is_empty() && releases.is_empty() {
        return Ok(());
    }
    store.write(|tx| {
        let mut t = tx.open_table(CLIENTS)?;
        // Removals first: a key both evicted and written again is kept.
        for k in evicted {
            t.remove(k.as_str())?;
        }
        for (k, v) in rows {
            t.insert(k.as_str(), json(v)?.as_slice())?;
        }
        let mut t = tx.open_table(RELEASE_USE)?;
        for (k, v) in releases {
            t.insert(k.as_str(), json(v)?.as_slice())?;
        }
        Ok(())
    })
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>, RowError> {
    serde_json::to_vec(v).map_err(|e| RowError::Encode(e.to_string()))
}

/// Every persisted client record (none in a registry made before they existed).
pub fn load(store: &Store) -> Result<BTreeMap<String, ClientUse>, StoreError> {
    store.records(CLIENTS)
}

/// How each release was used (none in a registry made before this was kept).
pub fn load_releases(store: &Store) -> Result<BTreeMap<String, ReleaseUse>, StoreError> {
    store.records(RELEASE_USE)
}
