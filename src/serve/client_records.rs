//! Client records as the store keeps them: one row per client identity in the `clients`
//! table, which this module defines and owns (the store knows nothing of it).

use crate::registry::model::ListKind;
use crate::registry::store::{RowError, Store, StoreError};
use redb::{ReadableTable, TableDefinition, TableHandle};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Who fetched what: one row per client identity (see [`ClientUse`]).
const CLIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("clients");

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

impl ClientUse {
    pub fn last_seen(&self) -> i64 {
        self.releases.values().copied().max().unwrap_or(0)
    }
}

/// Persist client records (replacing those rows) and remove the evicted ones.
pub fn save(
    store: &Store,
    rows: &[(String, ClientUse)],
    evicted: &[String],
) -> Result<(), StoreError> {
    if rows.is_empty() && evicted.is_empty() {
        return Ok(());
    }
    store.write(|tx| {
        let mut t = tx.open_table(CLIENTS)?;
        for (k, v) in rows {
            let json = serde_json::to_vec(v).map_err(|e| RowError::Encode(e.to_string()))?;
            t.insert(k.as_str(), json.as_slice())?;
        }
        for k in evicted {
            t.remove(k.as_str())?;
        }
        Ok(())
    })
}

/// Every persisted client record (none in a registry made before they existed).
pub fn load(store: &Store) -> Result<BTreeMap<String, ClientUse>, StoreError> {
    store.read(|tx| {
        let t = match tx.open_table(CLIENTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(BTreeMap::new()),
            Err(x) => return Err(x.into()),
        };
        let mut out = BTreeMap::new();
        for row in t.iter()? {
            let (k, v) = row?;
            let c = serde_json::from_slice(v.value())
                .map_err(|e| RowError::decode(CLIENTS.name(), k.value(), &e))?;
            out.insert(k.value().to_string(), c);
        }
        Ok(out)
    })
}
