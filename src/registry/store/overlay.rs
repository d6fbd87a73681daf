//! The overlay: the published registry as the working one with, for each row written
//! since the last publication, its published bytes put back (see [`Overlay`]).

use super::*;

/// The rows in which one registry differs from another, per table.
#[derive(Clone, Default)]
pub struct Touched {
    pub zorgaanbieders: std::collections::BTreeSet<String>,
    pub oauthclients: std::collections::BTreeSet<String>,
    pub gegevensdiensten: std::collections::BTreeSet<String>,
    pub livegangen: std::collections::BTreeSet<String>,
    pub whitelist: std::collections::BTreeSet<String>,
}

impl Touched {
    pub fn between(old: &Registry, new: &Registry) -> Touched {
        fn keys<T: PartialEq>(
            a: &BTreeMap<String, T>,
            b: &BTreeMap<String, T>,
        ) -> std::collections::BTreeSet<String> {
            let changed = a
                .iter()
                .filter(|(k, v)| b.get(*k) != Some(*v))
                .map(|(k, _)| k);
            let added = b.keys().filter(|k| !a.contains_key(*k));
            changed.chain(added).cloned().collect()
        }
        Touched {
            zorgaanbieders: keys(&old.zorgaanbieders, &new.zorgaanbieders),
            oauthclients: keys(&old.oauthclients, &new.oauthclients),
            gegevensdiensten: keys(&old.gegevensdiensten, &new.gegevensdiensten),
            livegangen: keys(&old.livegangen, &new.livegangen),
            whitelist: old
                .whitelist
                .symmetric_difference(&new.whitelist)
                .cloned()
                .collect(),
        }
    }
}

/// Whether anything was published (before, the published registry is empty and no
/// overlay rows are kept), from the meta table of a read or write transaction.
pub(super) fn is_published(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<bool, RowError> {
    Ok(meta.get(META_PUBLISHED)?.is_some())
}

/// The keys of every overlay: the rows that differ from what is published.
pub(super) fn pending_rows(tx: &redb::ReadTransaction) -> Result<Touched, RowError> {
    let keys = |t: Rows| -> Result<std::collections::BTreeSet<String>, RowError> {
        let mut out = std::collections::BTreeSet::new();
        for row in tx.open_table(t)?.iter()? {
            out.insert(row?.0.value().to_string());
        }
        Ok(out)
    };
    Ok(Touched {
        zorgaanbieders: keys(OVERLAY.zorgaanbieders)?,
        oauthclients: keys(OVERLAY.oauthclients)?,
        gegevensdiensten: keys(OVERLAY.gegevensdiensten)?,
        livegangen: keys(OVERLAY.livegangen)?,
        whitelist: keys(OVERLAY.whitelist)?,
    })
}

/// The registry as last published: the working tables with the overlay put back.
pub(super) fn read_published(tx: &redb::ReadTransaction) -> Result<Registry, RowError> {
    if !is_published(&tx.open_table(META)?)? {
        return Ok(Registry::default());
    }
    let mut reg = read_registry(tx, WORKING)?;
    put_back_all(tx, &mut reg)?;
    Ok(reg)
}

/// Every overlay's published rows put back into `reg` (working rows): what was published,
/// for the rows `reg` holds and the ones the overlays name.
pub(super) fn put_back_all(tx: &redb::ReadTransaction, reg: &mut Registry) -> Result<(), RowError> {
    put_back(tx, OVERLAY.zorgaanbieders, &mut reg.zorgaanbieders)?;
    put_back(tx, OVERLAY.oauthclients, &mut reg.oauthclients)?;
    put_back(tx, OVERLAY.gegevensdiensten, &mut reg.gegevensdiensten)?;
    put_back(tx, OVERLAY.livegangen, &mut reg.livegangen)?;
    for row in tx.open_table(OVERLAY.whitelist)?.iter()? {
        let (k, v) = row?;
        match v.value() == HOST_PUBLISHED {
            true => reg.whitelist.insert(k.value().to_string()),
            false => reg.whitelist.remove(k.value()),
        };
    }
    reg.canonicalize();
    Ok(())
}

/// Put the published rows that `overlay` holds back into `rows` (working rows).
pub(super) fn put_back<T: for<'a> Deserialize<'a>>(
    tx: &redb::ReadTransaction,
    overlay: Rows,
    rows: &mut BTreeMap<String, T>,
) -> Result<(), RowError> {
    for row in tx.open_table(overlay)?.iter()? {
        let (k, v) = row?;
        match v.value() {
            NOT_PUBLISHED => rows.remove(k.value()),
            bytes => rows.insert(k.value().to_string(), decode(overlay, k.value(), bytes)?),
        };
    }
    Ok(())
}

/// One ordered pass over `old` beside `new`, both in key order (redb orders `&str` keys as
/// Rust orders strings; at 100k rows, one B-tree lookup per row cost more): the keys only
/// in `old` go to `stale`, and `differs` gets each row of `new` that `old` lacks or holds
/// with other bytes.
pub(super) fn merge<K: AsRef<str>, V: AsRef<[u8]>>(
    old: &impl ReadableTable<&'static str, &'static [u8]>,
    new: impl Iterator<Item = Result<(K, V), RowError>>,
    stale: &mut Vec<String>,
    mut differs: impl FnMut(K, V),
) -> Result<(), RowError> {
    let mut old = old.iter()?;
    let mut cur = old.next().transpose()?;
    for row in new {
        let (k, v) = row?;
        while let Some((ok, _)) = &cur {
            if ok.value() >= k.as_ref() {
                break;
            }
            stale.push(ok.value().to_string());
            cur = old.next().transpose()?;
        }
        let same = match &cur {
            Some((ok, ov)) if ok.value() == k.as_ref() => Some(ov.value() == v.as_ref()),
            _ => None,
        };
        if same.is_some() {
            cur = old.next().transpose()?;
        }
        if same != Some(true) {
            differs(k, v);
        }
    }
    while let Some((ok, _)) = &cur {
        stale.push(ok.value().to_string());
        cur = old.next().transpose()?;
    }
    Ok(())
}

/// Which rows a commit compares to make the overlay say what is published: of the
/// registry (`Compare<&Touched>`), and so of each table (`Compare<&BTreeSet<String>>`).
#[derive(Clone, Copy)]
pub(super) enum Compare<K> {
    /// None: the working tables hold exactly what is published (nothing was written
    /// since the snapshot it was read in); every overlay is emptied.
    Nothing,
    /// The rows the overlays name (the rows that differ from what is published) and these
    /// (see [`Snapshot::touched`]): only there can the registry differ from the working
    /// one.
    Rows(K),
    /// Every row: before the first publication no overlay names the rows written.
    All,
}

impl<K: Copy> Compare<K> {
    fn map<L>(self, f: impl FnOnce(K) -> L) -> Compare<L> {
        match self {
            Compare::Nothing => Compare::Nothing,
            Compare::Rows(k) => Compare::Rows(f(k)),
            Compare::All => Compare::All,
        }
    }
}

/// [`Compare`] for one table.
pub(super) type Mode<'a> = Compare<&'a std::collections::BTreeSet<String>>;

/// Make the overlay say that `reg` is what is published. `reg` holds the tables of the
/// lists in `partial` and the small tables (all when `None`); the others stay published as
/// they are.
pub(super) fn set_published(
    tx: &redb::WriteTransaction,
    reg: &Registry,
    partial: Option<&std::collections::BTreeSet<ListKind>>,
    compare: Compare<&Touched>,
) -> Result<(), RowError> {
    let wanted = |l: ListKind| partial.is_none_or(|s| s.contains(&l));
    let touched = |f: fn(&Touched) -> &std::collections::BTreeSet<String>| compare.map(f);
    publish_rows(
        tx,
        (GEGEVENSDIENSTEN, OVERLAY.gegevensdiensten),
        &reg.gegevensdiensten,
        touched(|t| &t.gegevensdiensten),
    )?;
    publish_rows(
        tx,
        (LIVEGANGEN, OVERLAY.livegangen),
        &reg.livegangen,
        touched(|t| &t.livegangen),
    )?;
    if wanted(ListKind::Zorgaanbiederslijst) {
        publish_rows(
            tx,
            (ZORGAANBIEDERS, OVERLAY.zorgaanbieders),
            &reg.zorgaanbieders,
            touched(|t| &t.zorgaanbieders),
        )?;
    }
    if wanted(ListKind::OAuthclientlist) {
        publish_rows(
            tx,
            (OAUTHCLIENTS, OVERLAY.oauthclients),
            &reg.oauthclients,
            touched(|t| &t.oauthclients),
        )?;
    }
    if wanted(ListKind::Whitelist) {
        publish_hosts(tx, &reg.whitelist, touched(|t| &t.whitelist))?;
    }
    Ok(())
}

/// The keys a [`Compare::Rows`] compares: those the overlay holds and `touched`.
pub(super) fn candidates(
    tx: &redb::WriteTransaction,
    overlay: Rows,
    mode: Mode,
) -> Result<std::collections::BTreeSet<String>, RowError> {
    let mut keys = std::collections::BTreeSet::new();
    if let Compare::Rows(touched) = mode {
        for row in tx.open_table(overlay)?.iter()? {
            keys.insert(row?.0.value().to_string());
        }
        keys.extend(touched.iter().cloned());
    }
    Ok(keys)
}

/// An overlay table emptied (at once, not row by row: after a re-import it may hold
/// 100,000 rows).
pub(super) fn emptied<'t>(
    tx: &'t redb::WriteTransaction,
    overlay: Rows,
) -> Result<redb::Table<'t, &'static str, &'static [u8]>, RowError> {
    tx.delete_table(overlay)?;
    Ok(tx.open_table(overlay)?)
}

/// [`set_published`] for one table of records: its overlay gets the rows of `rows` whose
/// bytes the working table does not hold, and the working rows `rows` lacks.
pub(super) fn publish_rows<T: Serialize>(
    tx: &redb::WriteTransaction,
    (working, overlay): (Rows, Rows),
    rows: &BTreeMap<String, T>,
    mode: Mode,
) -> Result<(), RowError> {
    let keys = candidates(tx, overlay, mode)?;
    let mut o = emptied(tx, overlay)?;
    match mode {
        Compare::Nothing => {}
        Compare::Rows(_) => {
            let w = tx.open_table(working)?;
            for k in &keys {
                let published = rows.get(k).map(encode).transpose()?;
                let published = published.as_deref().unwrap_or(NOT_PUBLISHED);
                let held = w.get(k.as_str())?;
                if held.as_ref().map_or(NOT_PUBLISHED, |v| v.value()) != published {
                    o.insert(k.as_str(), published)?;
                }
            }
        }
        Compare::All => {
            drop(o);
            let encoded = rows.iter().map(|(k, v)| Ok((k.as_str(), encode(v)?)));
            overlay_all(tx, (working, overlay), encoded)?;
        }
    }
    Ok(())
}

/// The overlay of a table of records compared row by row with every published row
/// (`rows`, in key order, as stored or encoded); the overlay is empty when called.
pub(super) fn overlay_all<K: AsRef<str>, V: AsRef<[u8]>>(
    tx: &redb::WriteTransaction,
    (working, overlay): (Rows, Rows),
    rows: impl Iterator<Item = Result<(K, V), RowError>>,
) -> Result<(), RowError> {
    let w = tx.open_table(working)?;
    let mut o = tx.open_table(overlay)?;
    let mut unpublished = Vec::new();
    let mut published = Vec::new();
    merge(&w, rows, &mut unpublished, |k, bytes| {
        published.push((k, bytes))
    })?;
    for k in unpublished {
        o.insert(k.as_str(), NOT_PUBLISHED)?;
    }
    for (k, bytes) in published {
        o.insert(k.as_ref(), bytes.as_ref())?;
    }
    Ok(())
}

/// [`set_published`] for the Whitelist.
pub(super) fn publish_hosts(
    tx: &redb::WriteTransaction,
    hosts: &std::collections::BTreeSet<String>,
    mode: Mode,
) -> Result<(), RowError> {
    let keys = candidates(tx, OVERLAY.whitelist, mode)?;
    let mut o = emptied(tx, OVERLAY.whitelist)?;
    let w = tx.open_table(WHITELIST)?;
    let mut differs = |h: &str, held: bool| -> Result<(), RowError> {
        let published = hosts.contains(h);
        if held != published {
            let value = if published {
                HOST_PUBLISHED
            } else {
                NOT_PUBLISHED
            };
            o.insert(h, value)?;
        }
        Ok(())
    };
    match mode {
        Compare::Nothing => {}
        Compare::Rows(_) => {
            for h in &keys {
                differs(h, w.get(h.as_str())?.is_some())?;
            }
        }
        Compare::All => {
            let mut held = std::collections::BTreeSet::new();
            for row in w.iter()? {
                held.insert(row?.0.value().to_string());
            }
            for h in held.union(hosts) {
                differs(h, held.contains(h))?;
            }
        }
    }
    Ok(())
}

/// Before a working row changes from `old` to `new` (empty: absent), keep its published
/// bytes in `overlay`: the first change since the publication keeps `old`; a change back
/// to what is published drops the row, so the overlay holds exactly the rows that differ.
pub(super) fn keep_published(
    overlay: &mut redb::Table<&str, &[u8]>,
    k: &str,
    old: &[u8],
    new: &[u8],
) -> Result<(), redb::StorageError> {
    let published = overlay.get(k)?.map(|v| v.value() == new);
    match published {
        None => {
            overlay.insert(k, old)?;
        }
        Some(true) => {
            overlay.remove(k)?;
        }
        Some(false) => {}
    }
    Ok(())
}

impl Store {
    /// The published Zorgaanbieders, decoded, with the publication they are of: what a
    /// server keeps for its next publication (see [`Warm`]), read in one transaction.
    /// `None` before the first publication.
    pub fn warm(&self) -> Result<Option<Warm>, StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        let meta = tx.open_table(META).map_err(|x| e(x.into()))?;
        let Some(index) = meta.get(META_PUBLISHED).map_err(|x| e(x.into()))? else {
            return Ok(None);
        };
        let index: PublishedIndex = from_json("published index", index.value())?;
        let mut reg = Registry {
            zorgaanbieders: all_rows_spread(&tx, WORKING.zorgaanbieders).map_err(&e)?,
            ..Registry::default()
        };
        put_back(&tx, OVERLAY.zorgaanbieders, &mut reg.zorgaanbieders).map_err(&e)?;
        reg.canonicalize();
        Ok(Some(Warm {
            seq: index.seq,
            zorgaanbieders: reg.zorgaanbieders,
        }))
    }

    /// The published and the working registry, both holding only the rows that differ
    /// (the overlay's keys) and the small tables, in one read transaction: all an entry
    /// diff of the pending change set needs, since every other row is the same on both
    /// sides (at 100k Zorgaanbieders, a few rows instead of two registries). Before the
    /// first publication everything is pending: nothing and the whole working registry.
    pub fn pending_registries(&self) -> Result<(Registry, Registry), StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        if !is_published(&tx.open_table(META).map_err(|x| e(x.into()))?).map_err(&e)? {
            return Ok((
                Registry::default(),
                read_registry(&tx, WORKING).map_err(&e)?,
            ));
        }
        let pending = pending_rows(&tx).map_err(&e)?;
        let scope = Scope::Rows {
            zorgaanbieders: pending.zorgaanbieders.into_iter().collect(),
            oauthclients: pending.oauthclients.into_iter().collect(),
            whitelist: pending.whitelist.into_iter().collect(),
        };
        let working = read_rows(
            |d| tx.open_table(d),
            || tx.open_table(WORKING.whitelist),
            &scope,
            &e,
        )?;
        let mut published = working.clone();
        put_back_all(&tx, &mut published).map_err(e)?;
        Ok((published, working))
    }

    /// The registry as last published (empty before the first publication).
    pub fn published_registry(&self) -> Result<Registry, StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        read_published(&tx).map_err(e)
    }

    /// The livegangen as published.
    pub fn published_livegangen(
        &self,
    ) -> Result<BTreeMap<String, crate::registry::model::Livegang>, StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        let read = || -> Result<_, RowError> {
            if !is_published(&tx.open_table(META)?)? {
                return Ok(BTreeMap::new());
            }
            let mut out = all_rows(&tx, LIVEGANGEN)?;
            put_back(&tx, OVERLAY.livegangen, &mut out)?;
            Ok(out)
        };
        read().map_err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::store::tests::{demo_store, table_names, who};

    #[test]
    fn a_whole_published_copy_becomes_overlay_rows_when_opened() {
        let old = tempfile::tempdir().unwrap();
        let path = old.path().join("registry.redb");
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/datadir-v1/registry.redb");
        std::fs::copy(fixture, &path).unwrap();
        // What the copy says is published; then a working row changes (as an edit would
        // have), so the two differ.
        let (published, gone) = {
            let db = builder().open(&path).unwrap();
            let tx = db.begin_read().unwrap();
            let published = read_registry(&tx, OLD_PUBLISHED).unwrap();
            drop(tx);
            let gone = published.zorgaanbieders.keys().next().unwrap().clone();
            let tx = db.begin_write().unwrap();
            tx.open_table(ZORGAANBIEDERS)
                .unwrap()
                .remove(gone.as_str())
                .unwrap();
            tx.commit().unwrap();
            (published, gone)
        };
        assert!(!published.zorgaanbieders.is_empty());
        let store = Store::open(&path).unwrap();
        assert_eq!(store.published_registry().unwrap(), published);
        let working = store.registry().unwrap();
        assert!(!working.zorgaanbieders.contains_key(&gone));
        assert_eq!(working.whitelist, published.whitelist);
        let names = table_names(&store);
        assert!(
            !names.contains(&OLD_PUBLISHED.zorgaanbieders.name().to_string()),
            "{names:?}"
        );
        assert_eq!(
            overlay_rows(&store),
            1,
            "the row changed, compared as stored"
        );
        // Opened again: nothing left to migrate, the same published registry.
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.published_registry().unwrap(), published);
    }

    /// The rows of every overlay table.
    fn overlay_rows(store: &Store) -> u64 {
        let tx = store.read_tx().unwrap();
        OVERLAY
            .all()
            .iter()
            .map(|t| tx.open_table(*t).unwrap().iter().unwrap().count() as u64)
            .sum()
    }

    /// What a publication's commit does to the registry tables: `reg` published.
    fn mark_published(store: &Store, reg: &Registry, compare: Compare<&Touched>) {
        let tx = store.write_tx().unwrap();
        set_published(&tx, reg, None, compare).unwrap();
        let index = PublishedIndex {
            seq: 1,
            lists: BTreeMap::new(),
            catalogue: store.catalogue().unwrap(),
            renditions: Vec::new(),
            floors: BTreeMap::new(),
        };
        tx.open_table(META)
            .unwrap()
            .insert(META_PUBLISHED, to_json(&index).unwrap().as_slice())
            .unwrap();
        store.commit(tx).unwrap();
    }

    #[test]
    fn a_whole_registry_is_written_only_if_nothing_was_written_since_its_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = demo_store(dir.path());
        let (before, _, generation) = store.snapshot_at().unwrap();
        mark_published(&store, &before, Compare::Nothing);
        let mut after = before.clone();
        after.zorgaanbieders.pop_first();
        let z = after.zorgaanbieders.values_mut().next().unwrap();
        z.interfaceversies[0].gegevensdiensten[0].token_endpointuri =
            "https://ander.voorbeeld.nl/token".into();
        after.whitelist.insert("nieuw.medmij.nl".into());
        // An edit arrives in between: refused, and nothing is written.
        store
            .update(&who(), |r| {
                r.whitelist.insert("tussendoor.medmij.nl".into());
                Ok(String::new())
            })
            .unwrap();
        let journal = store.journal().unwrap().len();
        let err = store
            .replace(&who(), &BTreeMap::new(), generation, &after, "import")
            .unwrap_err();
        assert!(err.to_string().contains("run the import again"), "{err}");
        assert!(store
            .registry()
            .unwrap()
            .whitelist
            .contains("tussendoor.medmij.nl"));
        assert_eq!(store.journal().unwrap().len(), journal);
        // Against the latest state it is written and journalled; what is published stays.
        let (_, _, now) = store.snapshot_at().unwrap();
        assert!(store
            .replace(&who(), &BTreeMap::new(), now, &after, "import")
            .unwrap());
        assert_eq!(store.registry().unwrap(), after);
        assert_eq!(store.journal().unwrap().len(), journal + 1);
        assert_eq!(store.published_registry().unwrap(), before);
        // Two Zorgaanbieders and the new host: the host added in between is gone again,
        // as it is in what is published.
        assert_eq!(overlay_rows(&store), 3);
        let dirty = store.dirty().unwrap().unwrap();
        assert!(dirty[&ListKind::Zorgaanbiederslijst] > generation);
        // The same again writes nothing.
        let (_, _, now) = store.snapshot_at().unwrap();
        assert!(!store
            .replace(&who(), &BTreeMap::new(), now, &after, "import")
            .unwrap());
        assert_eq!(store.journal().unwrap().len(), journal + 1);
    }

    #[test]
    fn a_row_changed_back_after_the_snapshot_is_still_compared_at_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = demo_store(dir.path());
        let published = store.registry().unwrap();
        mark_published(&store, &published, Compare::Nothing);
        let name = published.zorgaanbieders.keys().next().unwrap().clone();
        let set = |uri: String| {
            store
                .update(&who(), |reg| {
                    let z = reg.zorgaanbieders.get_mut(&name).unwrap();
                    z.interfaceversies[0].gegevensdiensten[0].token_endpointuri = uri;
                    Ok(String::new())
                })
                .unwrap();
        };
        // Edited, then a publication's snapshot, then the edit undone while it renders:
        // the overlay no longer names the row, but the snapshot publishes the edit.
        set("https://ander.voorbeeld.nl/token".into());
        let base = store
            .publication_base(&store.lock_publications(), false)
            .unwrap();
        let snapshot = base.registry.clone();
        assert_eq!(base.pending.zorgaanbieders.len(), 1);
        set(
            published.zorgaanbieders[&name].interfaceversies[0].gegevensdiensten[0]
                .token_endpointuri
                .clone(),
        );
        assert_eq!(overlay_rows(&store), 0);
        // Comparing only the rows the overlay names now would miss it.
        mark_published(&store, &snapshot, Compare::Rows(&Touched::default()));
        assert_ne!(store.published_registry().unwrap(), snapshot);
        mark_published(&store, &snapshot, Compare::Rows(&base.pending));
        assert_eq!(store.published_registry().unwrap(), snapshot);
        assert_eq!(store.registry().unwrap(), published);
        assert_eq!(overlay_rows(&store), 1, "the undo is pending");
    }

    #[test]
    fn the_published_registry_is_the_working_one_with_the_overlay_put_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = demo_store(dir.path());
        // Nothing published: the published registry is empty and edits keep nothing.
        assert_eq!(store.published_registry().unwrap(), Registry::default());
        assert_eq!(overlay_rows(&store), 0);
        let publish =
            |reg: &Registry, compare: Compare<&Touched>| mark_published(&store, reg, compare);
        let before = store.registry().unwrap();
        publish(&before, Compare::Nothing);
        assert_eq!(store.published_registry().unwrap(), before);
        // One Zorgaanbieder gone, one changed, one new; a host gone, one new.
        let names: Vec<String> = before.zorgaanbieders.keys().cloned().collect();
        let host = before.whitelist.iter().next().unwrap().clone();
        let edit = |f: &dyn Fn(&mut Registry)| {
            store
                .update(&who(), |reg| {
                    f(reg);
                    Ok(String::new())
                })
                .unwrap();
        };
        edit(&|reg| {
            let mut new = reg.zorgaanbieders.remove(&names[0]).unwrap();
            new.zorgaanbiedernaam = "nieuw@medmij".into();
            reg.zorgaanbieders
                .insert(new.zorgaanbiedernaam.clone(), new);
            let z = reg.zorgaanbieders.get_mut(&names[1]).unwrap();
            z.interfaceversies[0].gegevensdiensten[0].token_endpointuri =
                "https://ander.voorbeeld.nl/token".into();
            reg.whitelist.remove(&host);
            reg.whitelist.insert("nieuw.medmij.nl".into());
        });
        assert_ne!(store.registry().unwrap(), before);
        assert_eq!(store.published_registry().unwrap(), before);
        assert_eq!(overlay_rows(&store), 5);
        // Changed back: the row leaves the overlay.
        edit(&|reg| {
            let z = before.zorgaanbieders[&names[1]].clone();
            reg.zorgaanbieders.insert(names[1].clone(), z);
        });
        assert_eq!(overlay_rows(&store), 4);
        assert_eq!(store.published_registry().unwrap(), before);
        // Published from a snapshot after which an edit arrived: that edit stays pending.
        let snapshot = store.registry().unwrap();
        edit(&|reg| {
            reg.zorgaanbieders.remove(&names[2]);
        });
        let pending = store
            .publication_base(&store.lock_publications(), false)
            .unwrap()
            .pending;
        publish(&snapshot, Compare::Rows(&pending));
        assert_eq!(store.published_registry().unwrap(), snapshot);
        assert_eq!(overlay_rows(&store), 1);
        // Comparing every row finds the same.
        publish(&snapshot, Compare::All);
        assert_eq!(store.published_registry().unwrap(), snapshot);
        assert_eq!(overlay_rows(&store), 1);
        // A change published on top of what is published.
        let mut on_top = snapshot.clone();
        on_top.whitelist.insert("erbovenop.medmij.nl".into());
        let touched = Touched::between(&snapshot, &on_top);
        assert_eq!(touched.whitelist.len(), 1);
        publish(&on_top, Compare::Rows(&touched));
        assert_eq!(store.published_registry().unwrap(), on_top);
        assert_eq!(
            store.published_livegangen().unwrap(),
            on_top.livegangen,
            "read through the same overlay"
        );
        // Discarded: the working registry is what is published, with nothing kept.
        assert_eq!(store.discard().unwrap(), 4, "the edits in the journal");
        assert_eq!(store.registry().unwrap(), on_top);
        assert_eq!(overlay_rows(&store), 0);
        // Published as stored after an edit: nothing kept either.
        edit(&|reg| {
            reg.zorgaanbieders.remove(&names[3]);
        });
        assert_eq!(overlay_rows(&store), 1);
        let working = store.registry().unwrap();
        publish(&working, Compare::Nothing);
        assert_eq!(store.published_registry().unwrap(), working);
        assert_eq!(overlay_rows(&store), 0);
    }
}
