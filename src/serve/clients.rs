//! Who fetched what, for the operator's view of a migration (`status --clients`): per
//! client the releases it used and the Volgnummer it last received per list, and per
//! release how it was used in all. Kept in memory, bounded, and written to the store every
//! few seconds (and on demand), so it survives restarts.
//!
//! Clients known by a certificate and clients known only by an address are kept apart,
//! each pool bounded on its own: a flood of one-shot addresses cannot push out the PGO
//! servers whose use of a release the operator must know before withdrawing it. The
//! per-release aggregates are never evicted. A full pool makes room with a bounded
//! second-chance sweep (CLOCK), not a scan of every entry under the lock.

use crate::registry::model::ListKind;
use crate::registry::store::Store;
use crate::serve::client_records::{self, ClientUse, LastFetch, ReleaseUse};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;

/// At most this many client identities are kept per pool (certificates, addresses).
pub const MAX_CLIENTS: usize = 10_000;

/// A full pool looks at most this many entries seen since they were queued (each goes to
/// the back) before it evicts the front one regardless.
const SECOND_CHANCES: usize = 16;

/// One bounded pool of clients, with the order in which they were queued for eviction.
#[derive(Default)]
struct Pool {
    clients: HashMap<String, ClientUse>,
    /// Every key in `clients` once, with the time it was (re)queued.
    order: VecDeque<(String, i64)>,
}

impl Pool {
    fn insert(&mut self, key: String, c: ClientUse, now: i64) {
        self.order.push_back((key.clone(), now));
        self.clients.insert(key, c);
    }

    /// Make room for one: the front of the queue goes, unless it was seen since it was
    /// queued (then it is queued again), for at most `SECOND_CHANCES` entries. Returns the
    /// evicted key and how many entries were looked at.
    fn evict(&mut self, now: i64) -> (Option<String>, usize) {
        let mut looked = 0;
        while let Some((key, queued)) = self.order.pop_front() {
            looked += 1;
            let Some(c) = self.clients.get(&key) else {
                continue;
            };
            if c.last_seen() > queued && looked <= SECOND_CHANCES {
                self.order.push_back((key, now));
                continue;
            }
            self.clients.remove(&key);
            return (Some(key), looked);
        }
        (None, looked)
    }
}

#[derive(Default)]
struct Inner {
    identified: Pool,
    anonymous: Pool,
    releases: BTreeMap<String, ReleaseUse>,
    releases_dirty: bool,
    dirty: HashSet<String>,
    /// Keys whose stored rows are to be deleted at the next flush; bounded (a row not
    /// deleted is pruned when the records are next loaded).
    evicted: HashSet<String>,
}

/// How many evicted keys wait for a flush at most (while the store cannot be written).
const MAX_EVICTED: usize = 4 * MAX_CLIENTS;

/// Mark `key`'s stored row for deletion, unless too many already wait.
fn mark_evicted(evicted: &mut HashSet<String>, key: String) {
    if evicted.len() < MAX_EVICTED {
        evicted.insert(key);
    }
}

impl Inner {
    fn kept(&self, key: &str) -> bool {
        self.identified.clients.contains_key(key) || self.anonymous.clients.contains_key(key)
    }
}

#[derive(Default)]
pub struct Tracker {
    inner: Mutex<Inner>,
}

/// A record's key is an address for a client without a certificate, else its
/// certificate's organisation and serial (which never parses as an address).
fn is_address(key: &str) -> bool {
    key.parse::<std::net::IpAddr>().is_ok()
}

impl Tracker {
    /// Start from what the store kept.
    pub fn load(store: &Store) -> Tracker {
        let (clients, releases) = match client_records::load(store)
            .and_then(|c| Ok((c, client_records::load_releases(store)?)))
        {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("client records could not be read; starting empty: {e}");
                Default::default()
            }
        };
        let mut inner = Inner {
            releases,
            ..Inner::default()
        };
        // Queued oldest first, so the longest unseen goes first.
        let mut clients: Vec<(String, ClientUse)> = clients.into_iter().collect();
        clients.sort_by_key(|(_, c)| c.last_seen());
        for (k, c) in clients {
            let seen = c.last_seen();
            let pool = if is_address(&k) {
                &mut inner.anonymous
            } else {
                &mut inner.identified
            };
            pool.insert(k, c, seen);
        }
        // More rows than a pool holds (left by evictions a failing store never deleted):
        // the longest unseen go now.
        for anonymous in [false, true] {
            loop {
                let pool = match anonymous {
                    true => &mut inner.anonymous,
                    false => &mut inner.identified,
                };
                if pool.clients.len() <= MAX_CLIENTS {
                    break;
                }
                match pool.evict(i64::MAX) {
                    (Some(gone), _) => mark_evicted(&mut inner.evicted, gone),
                    (None, _) => break,
                }
            }
        }
        Tracker {
            inner: Mutex::new(inner),
        }
    }

    /// A list document (200 or 304) answered to `client`; `identified`: known by its
    /// certificate.
    pub fn record(
        &self,
        client: &str,
        identified: bool,
        release: &str,
        list: ListKind,
        volgnummer: u64,
        at: i64,
    ) {
        let mut i = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let inner = &mut *i;
        match inner.releases.get_mut(release) {
            Some(u) => u.count(identified, at),
            None => {
                let mut u = ReleaseUse::default();
                u.count(identified, at);
                inner.releases.insert(release.to_string(), u);
            }
        }
        inner.releases_dirty = true;
        let pool = if identified {
            &mut inner.identified
        } else {
            &mut inner.anonymous
        };
        // Called for every request: a known client (already due to be written) and release
        // cost two lookups and no allocation.
        if let Some(c) = pool.clients.get_mut(client) {
            Self::update(c, release, list, volgnummer, at);
            if !inner.dirty.contains(client) {
                inner.dirty.insert(client.to_string());
            }
            return;
        }
        if pool.clients.len() >= MAX_CLIENTS {
            if let (Some(gone), _) = pool.evict(at) {
                inner.dirty.remove(&gone);
                mark_evicted(&mut inner.evicted, gone);
            }
        }
        // Back after being evicted: its record is saved again, not forgotten.
        inner.evicted.remove(client);
        let mut c = ClientUse::default();
        Self::update(&mut c, release, list, volgnummer, at);
        pool.insert(client.to_string(), c, at);
        inner.dirty.insert(client.to_string());
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
        let (rows, evicted, releases) = {
            let mut i = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let inner = &mut *i;
            let dirty: Vec<String> = inner.dirty.drain().collect();
            let rows: Vec<(String, ClientUse)> = dirty
                .into_iter()
                .filter_map(|k| {
                    let c = inner
                        .identified
                        .clients
                        .get(&k)
                        .or_else(|| inner.anonymous.clients.get(&k));
                    c.cloned().map(|c| (k, c))
                })
                .collect();
            let releases: Vec<(String, ReleaseUse)> = if inner.releases_dirty {
                inner.releases_dirty = false;
                inner
                    .releases
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            } else {
                Vec::new()
            };
            let evicted: Vec<String> = inner.evicted.drain().collect();
            (rows, evicted, releases)
        };
        if let Err(e) = client_records::save(store, &rows, &evicted, &releases) {
            tracing::warn!("client records not saved (kept in memory, retried): {e}");
            let mut i = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            i.dirty.extend(rows.into_iter().map(|(k, _)| k));
            // Not one that came back meanwhile: its row is to be written, not deleted.
            for k in evicted {
                if !i.kept(&k) {
                    mark_evicted(&mut i.evicted, k);
                }
            }
            i.releases_dirty |= !releases.is_empty();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(t: &Tracker) -> std::sync::MutexGuard<'_, Inner> {
        t.inner.lock().unwrap()
    }

    const ZAL: ListKind = ListKind::Zorgaanbiederslijst;

    #[test]
    fn a_fetch_is_recorded_per_client_release_and_list_and_marked_for_writing() {
        let t = Tracker::default();
        t.record("10.0.0.1", false, "1.1.2", ZAL, 7, 100);
        t.record("10.0.0.1", false, "1.1.2", ZAL, 8, 110);
        t.record("10.0.0.1", false, "1.1.1", ListKind::Whitelist, 3, 120);
        let i = state(&t);
        let c = &i.anonymous.clients["10.0.0.1"];
        assert_eq!(c.releases["1.1.2"], 110);
        assert_eq!(c.releases["1.1.1"], 120);
        assert_eq!(
            c.lists[&ZAL],
            LastFetch {
                volgnummer: 8,
                release: "1.1.2".into(),
                at: 110
            }
        );
        assert_eq!(c.lists[&ListKind::Whitelist].volgnummer, 3);
        assert!(i.dirty.contains("10.0.0.1"));
        assert_eq!(i.releases["1.1.2"].requests, 2);
        assert_eq!(i.releases["1.1.2"].first_used, 100);
        assert_eq!(i.releases["1.1.2"].last_used, 110);
        assert_eq!(i.releases["1.1.2"].last_used_identified, 0);
    }

    #[test]
    fn a_known_client_fetching_after_a_flush_is_marked_for_writing_again() {
        let t = Tracker::default();
        t.record("a #1", true, "1.1.2", ZAL, 1, 100);
        state(&t).dirty.clear();
        t.record("a #1", true, "1.1.2", ZAL, 2, 101);
        assert!(state(&t).dirty.contains("a #1"));
        assert_eq!(
            state(&t).identified.clients["a #1"].lists[&ZAL].volgnummer,
            2
        );
    }

    #[test]
    fn when_full_the_longest_unseen_client_goes_and_comes_back_when_it_returns() {
        let t = Tracker::default();
        for n in 0..MAX_CLIENTS {
            t.record(
                &format!("10.1.{}.{}", n / 256, n % 256),
                false,
                "1.1.2",
                ZAL,
                1,
                n as i64,
            );
        }
        // The first one is seen again: it gets a second chance, the second one goes.
        t.record("10.1.0.0", false, "1.1.2", ZAL, 1, 1_000_000);
        t.record("10.9.9.9", false, "1.1.2", ZAL, 1, 2_000_000);
        {
            let i = state(&t);
            assert_eq!(i.anonymous.clients.len(), MAX_CLIENTS);
            assert!(
                !i.anonymous.clients.contains_key("10.1.0.1"),
                "seen longest ago"
            );
            assert!(i.anonymous.clients.contains_key("10.1.0.0"));
            assert!(i.anonymous.clients.contains_key("10.9.9.9"));
            assert_eq!(i.evicted, HashSet::from(["10.1.0.1".to_string()]));
            assert!(!i.dirty.contains("10.1.0.1"));
        }
        t.record("10.1.0.1", false, "1.1.2", ZAL, 2, 3_000_000);
        let i = state(&t);
        // Back: saved again, not forgotten; the next longest unseen made room for it.
        assert_eq!(i.evicted, HashSet::from(["10.1.0.2".to_string()]));
        assert!(i.dirty.contains("10.1.0.1"));
        assert!(!i.anonymous.clients.contains_key("10.1.0.2"));
    }

    /// The flood of the hardening review: 10,050 one-shot addresses after a PGO known by
    /// its certificate used three releases. The PGO and the fact that 1.1.2 and 2.0.0 were
    /// used both survive.
    #[test]
    fn an_anonymous_flood_evicts_neither_identified_clients_nor_release_use() {
        let t = Tracker::default();
        let pgo = "PGO Alfa #0a1b";
        for (n, r) in ["1.1.1", "1.1.2", "2.0.0"].into_iter().enumerate() {
            t.record(pgo, true, r, ZAL, 1, 10 + n as i64);
        }
        for n in 0..10_050u32 {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + n).to_string();
            t.record(&ip, false, "1.1.1", ZAL, 1, 100 + i64::from(n));
        }
        let i = state(&t);
        assert_eq!(i.anonymous.clients.len(), MAX_CLIENTS);
        assert_eq!(i.evicted.len(), 50);
        let kept = &i.identified.clients[pgo];
        assert_eq!(kept.releases.len(), 3);
        for r in ["1.1.2", "2.0.0"] {
            assert_eq!(i.releases[r].requests, 1, "{r}");
            assert!(i.releases[r].last_used_identified > 0, "{r}");
        }
        assert_eq!(i.releases["1.1.1"].requests, 10_051);
    }

    /// Making room looks at a bounded number of entries even when every one of them was
    /// seen since it was queued: no scan of the whole pool under the lock.
    #[test]
    fn making_room_looks_at_a_bounded_number_of_entries() {
        let mut p = Pool::default();
        for n in 0..MAX_CLIENTS {
            let mut c = ClientUse::default();
            c.releases.insert("1.1.2".into(), 5);
            p.insert(n.to_string(), c, 1);
        }
        let (gone, looked) = p.evict(10);
        assert_eq!(gone.as_deref(), Some(SECOND_CHANCES.to_string().as_str()));
        assert_eq!(looked, SECOND_CHANCES + 1);
        assert_eq!(p.clients.len(), MAX_CLIENTS - 1);
        assert_eq!(p.order.len(), MAX_CLIENTS - 1);
    }

    #[test]
    fn records_and_release_use_survive_a_flush_and_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let cat = crate::registry::catalogue::Catalogue::parse(
            crate::registry::catalogue::DEFAULT_CATALOGUE,
        )
        .unwrap();
        let store = Store::create(&dir.path().join("r.redb"), &cat).unwrap();
        let t = Tracker::default();
        t.record("PGO #1", true, "2.0.0", ZAL, 4, 50);
        for n in 0..3 {
            t.record(&format!("10.0.0.{n}"), false, "1.1.2", ZAL, 4, 60 + n);
        }
        t.flush(&store);
        let back = Tracker::load(&store);
        let i = state(&back);
        assert!(i.identified.clients.contains_key("PGO #1"));
        assert_eq!(i.anonymous.clients.len(), 3);
        assert_eq!(
            i.anonymous.order.front().map(|(k, _)| k.as_str()),
            Some("10.0.0.0")
        );
        assert_eq!(i.releases["1.1.2"].requests, 3);
        assert_eq!(i.releases["2.0.0"].last_used_identified, 50);
    }

    /// Rows left over a pool's size (evictions a failing store never deleted) are pruned
    /// when the records are loaded, the longest unseen first.
    #[test]
    fn rows_over_a_pool_are_pruned_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let cat = crate::registry::catalogue::Catalogue::parse(
            crate::registry::catalogue::DEFAULT_CATALOGUE,
        )
        .unwrap();
        let store = Store::create(&dir.path().join("r.redb"), &cat).unwrap();
        let rows: Vec<(String, ClientUse)> = (0..MAX_CLIENTS + 5)
            .map(|n| {
                let mut c = ClientUse::default();
                c.releases.insert("1.1.2".into(), 1000 + n as i64);
                (std::net::Ipv4Addr::from(n as u32).to_string(), c)
            })
            .collect();
        client_records::save(&store, &rows, &[], &[]).unwrap();
        let t = Tracker::load(&store);
        {
            let i = state(&t);
            assert_eq!(i.anonymous.clients.len(), MAX_CLIENTS);
            assert_eq!(i.evicted.len(), 5);
            assert!(i.evicted.contains("0.0.0.0") && !i.kept("0.0.0.0"));
        }
        t.flush(&store);
        assert_eq!(client_records::load(&store).unwrap().len(), MAX_CLIENTS);
    }
}
