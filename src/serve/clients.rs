//! Who fetched what, for the operator's view of a migration (`status --clients`): per
//! client the releases it used and the Volgnummer it last received per list. Kept in
//! memory, bounded, and written to the store every few seconds (and on demand), so it
//! survives restarts.

use crate::registry::model::ListKind;
use crate::registry::store::{ClientUse, LastFetch, Store};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// At most this many client identities are kept; the longest unseen goes first.
pub const MAX_CLIENTS: usize = 10_000;

#[derive(Default)]
struct Inner {
    clients: HashMap<String, ClientUse>,
    dirty: HashSet<String>,
    evicted: Vec<String>,
}

#[derive(Default)]
pub struct Tracker {
    inner: Mutex<Inner>,
}

impl Tracker {
    /// Start from what the store kept.
    pub fn load(store: &Store) -> Tracker {
        let clients = match store.clients() {
            Ok(c) => c.into_iter().collect(),
            Err(e) => {
                tracing::warn!("client records could not be read; starting empty: {e}");
                HashMap::new()
            }
        };
        Tracker {
            inner: Mutex::new(Inner {
                clients,
                ..Inner::default()
            }),
        }
    }

    /// A list document (200 or 304) answered to `client`.
    pub fn record(&self, client: &str, release: &str, list: ListKind, volgnummer: u64, at: i64) {
        let mut i = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if !i.clients.contains_key(client) && i.clients.len() >= MAX_CLIENTS {
            if let Some(oldest) = i
                .clients
                .iter()
                .min_by_key(|(_, c)| c.last_seen())
                .map(|(k, _)| k.clone())
            {
                i.clients.remove(&oldest);
                i.dirty.remove(&oldest);
                i.evicted.push(oldest);
            }
        }
        // Called for every request: a known client and release cost no allocation.
        if !i.clients.contains_key(client) {
            // Back after being evicted: its record is saved again, not forgotten.
            i.evicted.retain(|k| k != client);
            i.clients.insert(client.to_string(), ClientUse::default());
        }
        let Some(c) = i.clients.get_mut(client) else {
            return;
        };
        match c.releases.get_mut(release) {
            Some(t) => *t = at,
            None => {
                c.releases.insert(release.to_string(), at);
            }
        }
        match c.lists.get_mut(&list) {
            Some(f) if f.release == release => {
                f.volgnummer = volgnummer;
                f.at = at;
            }
            _ => {
                c.lists.insert(
                    list,
                    LastFetch {
                        volgnummer,
                        release: release.to_string(),
                        at,
                    },
                );
            }
        }
        if !i.dirty.contains(client) {
            i.dirty.insert(client.to_string());
        }
    }

    /// Write what changed since the last flush.
    pub fn flush(&self, store: &Store) {
        let (rows, evicted) = {
            let mut i = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let dirty: Vec<String> = i.dirty.drain().collect();
            let rows: Vec<(String, ClientUse)> = dirty
                .into_iter()
                .filter_map(|k| i.clients.get(&k).cloned().map(|c| (k, c)))
                .collect();
            (rows, std::mem::take(&mut i.evicted))
        };
        if let Err(e) = store
            .save_clients(&rows)
            .and_then(|()| store.forget_clients(&evicted))
        {
            tracing::warn!("client records not saved (kept in memory, retried): {e}");
            let mut i = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            i.dirty.extend(rows.into_iter().map(|(k, _)| k));
            i.evicted.extend(evicted);
        }
    }
}
