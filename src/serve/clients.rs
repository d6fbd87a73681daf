//! Who fetched what, for the operator's view of a migration (`status --clients`): per
//! client the releases it used and the Volgnummer it last received per list. Kept in
//! memory, bounded, and written to the store every few seconds (and on demand), so it
//! survives restarts.

use crate::registry::model::ListKind;
use crate::registry::store::Store;
use crate::serve::client_records::{self, ClientUse, LastFetch};
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
        let clients = match client_records::load(store) {
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
        // Called for every request: a known client (already due to be written) and release
        // cost two lookups and no allocation.
        let inner = &mut *i;
        if let Some(c) = inner.clients.get_mut(client) {
            Self::update(c, release, list, volgnummer, at);
            if !inner.dirty.contains(client) {
                inner.dirty.insert(client.to_string());
            }
            return;
        }
        if i.clients.len() >= MAX_CLIENTS {
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
        // Back after being evicted: its record is saved again, not forgotten.
        i.evicted.retain(|k| k != client);
        let mut c = ClientUse::default();
        Self::update(&mut c, release, list, volgnummer, at);
        i.clients.insert(client.to_string(), c);
        i.dirty.insert(client.to_string());
    }

    fn update(c: &mut ClientUse, release: &str, list: ListKind, volgnummer: u64, at: i64) {
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
        if let Err(e) = client_records::save(store, &rows, &evicted) {
            tracing::warn!("client records not saved (kept in memory, retried): {e}");
            let mut i = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            i.dirty.extend(rows.into_iter().map(|(k, _)| k));
            i.evicted.extend(evicted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(t: &Tracker) -> std::sync::MutexGuard<'_, Inner> {
        t.inner.lock().unwrap()
    }

    #[test]
    fn a_fetch_is_recorded_per_client_release_and_list_and_marked_for_writing() {
        let t = Tracker::default();
        t.record("10.0.0.1", "1.1.2", ListKind::Zorgaanbiederslijst, 7, 100);
        t.record("10.0.0.1", "1.1.2", ListKind::Zorgaanbiederslijst, 8, 110);
        t.record("10.0.0.1", "1.1.1", ListKind::Whitelist, 3, 120);
        let i = state(&t);
        let c = &i.clients["10.0.0.1"];
        assert_eq!(c.releases["1.1.2"], 110);
        assert_eq!(c.releases["1.1.1"], 120);
        assert_eq!(
            c.lists[&ListKind::Zorgaanbiederslijst],
            LastFetch {
                volgnummer: 8,
                release: "1.1.2".into(),
                at: 110
            }
        );
        assert_eq!(c.lists[&ListKind::Whitelist].volgnummer, 3);
        assert!(i.dirty.contains("10.0.0.1"));
    }

    #[test]
    fn a_known_client_fetching_after_a_flush_is_marked_for_writing_again() {
        let t = Tracker::default();
        t.record("a", "1.1.2", ListKind::Zorgaanbiederslijst, 1, 100);
        state(&t).dirty.clear();
        t.record("a", "1.1.2", ListKind::Zorgaanbiederslijst, 2, 101);
        assert!(state(&t).dirty.contains("a"));
        assert_eq!(
            state(&t).clients["a"].lists[&ListKind::Zorgaanbiederslijst].volgnummer,
            2
        );
    }

    #[test]
    fn when_full_the_longest_unseen_client_goes_and_comes_back_when_it_returns() {
        let t = Tracker::default();
        for n in 0..MAX_CLIENTS {
            // Client 0 is seen last of all, client 1 first.
            let at = if n == 0 { 1_000_000 } else { n as i64 };
            t.record(
                &format!("c{n}"),
                "1.1.2",
                ListKind::Zorgaanbiederslijst,
                1,
                at,
            );
        }
        t.record("new", "1.1.2", ListKind::Zorgaanbiederslijst, 1, 2_000_000);
        {
            let i = state(&t);
            assert_eq!(i.clients.len(), MAX_CLIENTS);
            assert!(!i.clients.contains_key("c1"), "c1 was seen longest ago");
            assert!(i.clients.contains_key("c0") && i.clients.contains_key("new"));
            assert_eq!(i.evicted, vec!["c1".to_string()]);
            assert!(!i.dirty.contains("c1"));
        }
        t.record("c1", "1.1.2", ListKind::Zorgaanbiederslijst, 2, 3_000_000);
        let i = state(&t);
        // Back: saved again, not forgotten; c2 (now seen longest ago) made room for it.
        assert_eq!(i.evicted, vec!["c2".to_string()]);
        assert!(i.dirty.contains("c1"));
        assert!(!i.clients.contains_key("c2"));
    }
}
