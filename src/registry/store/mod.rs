//! The redb file behind the registry: the working registry (what the operator edits) and
//! its journal, the published registry as an overlay on it, the release catalogue, the
//! references to published documents (their bytes are files, see `documents`) and the
//! publication log. One file per concern:
//!
//! - `tables`: every table definition and the codecs of its rows;
//! - `transaction`: beginning and committing transactions, disk faults and re-opening;
//! - `error`: [`StoreError`] and the errors inside a transaction, classified by kind;
//! - `migrate`: one-time conversions of data directories from earlier versions;
//! - `edits`: working edits, their scopes and rules, and the journal;
//! - `read`: reading tables into a registry;
//! - `overlay`: the published registry as the rows that differ from the working one;
//! - `commit`: what a publication starts from, and its commit.
//!
//! Other modules keep their own tables through [`Store::read`] and [`Store::write`]:
//! `publish::cache` (what a publication learnt), `serve::clients` (who fetched what).
//!
//! redb lets one process open the file at a time. The server holds it while it runs; CLI
//! commands then go through the admin channel (see `admin`) instead of opening it.

mod commit;
mod edits;
mod error;
mod migrate;
mod overlay;
mod read;
mod tables;
mod transaction;

pub use commit::*;
pub use edits::*;
pub use error::*;
pub use overlay::*;
use read::*;
pub(crate) use tables::DOCUMENTS;
use tables::*;

use crate::digest::{hex, sha256_hex};
use crate::registry::catalogue::Catalogue;
use crate::registry::documents::{self, Files};
use crate::registry::model::{ListKind, Registry};
use crate::registry::publication::*;
use crate::registry::rules;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub struct Store {
    /// `None` only while it is re-opened after an I/O error (see [`Store::recover`]).
    db: std::sync::RwLock<Option<Database>>,
    path: PathBuf,
    /// Set by the first I/O error: redb refuses every later write until the database is
    /// closed and opened again, which the next operation does.
    poisoned: std::sync::atomic::AtomicBool,
    /// The I/O error that made the store unavailable, while it lasts (for `/health`).
    fault: std::sync::Mutex<Option<String>>,
    /// Serialises publications and catalogue changes (see [`Store::lock_publications`]).
    publications: std::sync::Mutex<()>,
    /// The published documents' bytes (redb holds references to them).
    files: Files,
}

/// redb's page cache defaults to 1 GiB, which a publication that reads 100,000 rows fills
/// and keeps: the process then holds the registry twice. Rows are read once per
/// publication and decoded into the registry, so a small cache costs little.
const CACHE_BYTES: usize = 64 << 20;

fn builder() -> redb::Builder {
    let mut b = Database::builder();
    b.set_cache_size(CACHE_BYTES);
    b
}

impl Store {
    /// Create a new registry file with the given catalogue. Refuses to overwrite.
    pub fn create(path: &Path, catalogue: &Catalogue) -> Result<Store, StoreError> {
        if path.exists() {
            return Err(StoreError::Refused(format!(
                "a registry already exists at {}",
                path.display()
            )));
        }
        let db = builder().create(path).map_err(|e| db_err(path)(e.into()))?;
        let store = Store::with(db, path);
        let e = db_err(path);
        let tx = store.write_tx()?;
        {
            for t in [
                WORKING.zorgaanbieders,
                WORKING.oauthclients,
                WORKING.gegevensdiensten,
                WORKING.livegangen,
            ]
            .into_iter()
            .chain(OVERLAY.all())
            {
                tx.open_table(t).map_err(|x| e(x.into()))?;
            }
            tx.open_table(WORKING.whitelist).map_err(|x| e(x.into()))?;
            tx.open_table(DOCUMENTS).map_err(|x| e(x.into()))?;
            tx.open_table(PUBLICATIONS).map_err(|x| e(x.into()))?;
            tx.open_table(JOURNAL).map_err(|x| e(x.into()))?;
            let mut meta = tx.open_table(META).map_err(|x| e(x.into()))?;
            meta.insert(META_CATALOGUE, to_json(catalogue)?.as_slice())
                .map_err(|x| e(x.into()))?;
            meta.insert(META_LAYOUT, b"1".as_slice())
                .map_err(|x| e(x.into()))?;
            meta.insert(META_DIRTY, to_json(&Dirty::new())?.as_slice())
                .map_err(|x| e(x.into()))?;
        }
        store.commit(tx)?;
        Ok(store)
    }

    pub fn open(path: &Path) -> Result<Store, StoreError> {
        // `exists()` is false for a file this user may not see: say which it is.
        let shown = || path.display().to_string();
        match std::fs::metadata(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(StoreError::Denied(shown()))
            }
            Err(_) => return Err(StoreError::Missing(shown())),
        }
        match builder().open(path) {
            Ok(db) => {
                let store = Store::with(db, path);
                store.migrate()?;
                store.migrate_published()?;
                Ok(store)
            }
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => Err(StoreError::Locked(shown())),
            Err(redb::DatabaseError::Storage(redb::StorageError::Io(e)))
                if e.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                Err(StoreError::Denied(shown()))
            }
            Err(e) => Err(db_err(path)(e.into())),
        }
    }

    /// The files that hold the published documents' bytes (see `documents::stored`).
    pub(crate) fn files(&self) -> &Files {
        &self.files
    }

    fn with(db: Database, path: &Path) -> Store {
        Store {
            db: std::sync::RwLock::new(Some(db)),
            path: path.to_path_buf(),
            poisoned: std::sync::atomic::AtomicBool::new(false),
            fault: std::sync::Mutex::new(None),
            publications: std::sync::Mutex::new(()),
            files: Files::beside(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::catalogue::{Status, DEFAULT_CATALOGUE};

    pub(super) fn demo_store(dir: &Path) -> Store {
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        let store = Store::create(&dir.join("r.redb"), &cat).unwrap();
        let demo = crate::consume::read::demo_registry();
        store
            .update(&who(), |reg| {
                *reg = demo;
                Ok(String::new())
            })
            .unwrap();
        store
    }

    /// The names of the tables in the registry file.
    pub(super) fn table_names(store: &Store) -> Vec<String> {
        let tx = store.read_tx().unwrap();
        let names = tx.list_tables().unwrap().map(|t| t.name().to_string());
        names.collect()
    }

    pub(super) fn who() -> Who {
        Who {
            operator: "test".into(),
            reason: None,
        }
    }

    #[test]
    fn an_edit_of_named_rows_equals_the_same_edit_of_the_whole_registry() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (whole, rows) = (demo_store(a.path()), demo_store(b.path()));
        let reg = whole.registry().unwrap();
        let za = reg.zorgaanbieders.keys().next().unwrap().clone();
        let oc = reg.oauthclients.keys().next().unwrap().clone();
        let host = reg.whitelist.iter().next().unwrap().clone();
        type Edit = Box<dyn Fn(&mut Registry) -> Result<String, String>>;
        let (za2, oc2, host2) = (za.clone(), oc.clone(), host.clone());
        let edits: Vec<(Scope, Edit)> = vec![
            (
                Scope::zorgaanbieder(&za),
                Box::new(move |r: &mut Registry| {
                    let z = r.zorgaanbieders.get_mut(&za2).ok_or("missing")?;
                    z.interfaceversies[0].gegevensdiensten[0].token_endpointuri =
                        "https://nieuw.voorbeeld.nl/token".into();
                    Ok("za".into())
                }),
            ),
            (
                Scope::oauthclient(&oc),
                Box::new(move |r: &mut Registry| {
                    r.oauthclients.remove(&oc2).ok_or("missing")?;
                    Ok("oc".into())
                }),
            ),
            (
                Scope::whitelist(&[host.clone(), "nieuw.voorbeeld.nl".into()]),
                Box::new(move |r: &mut Registry| {
                    assert!(r.whitelist.remove(&host2), "the named host was read");
                    r.whitelist.insert("nieuw.voorbeeld.nl".into());
                    Ok("wl".into())
                }),
            ),
        ];
        for (scope, edit) in &edits {
            whole.update(&who(), edit).unwrap();
            rows.update_rows(&who(), scope, edit).unwrap();
        }
        assert_eq!(whole.registry().unwrap(), rows.registry().unwrap());
        assert_eq!(rows.journal().unwrap().len(), 4, "import + 3 edits");
        assert_ne!(rows.registry().unwrap(), reg, "the edits changed something");
    }

    #[test]
    fn every_write_marks_the_lists_it_changed_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = demo_store(dir.path());
        let all: Vec<ListKind> = ListKind::ALL.to_vec();
        let dirty = store
            .dirty()
            .unwrap()
            .expect("a new store records dirty lists");
        assert_eq!(dirty.keys().copied().collect::<Vec<_>>(), all);
        let scope = Scope::whitelist(&["nieuw.voorbeeld.nl".to_string()]);
        store
            .update_rows(&who(), &scope, |r| {
                r.whitelist.insert("nieuw.voorbeeld.nl".into());
                Ok(String::new())
            })
            .unwrap();
        let after = store.dirty().unwrap().unwrap();
        assert!(after[&ListKind::Whitelist] > dirty[&ListKind::Whitelist]);
        assert_eq!(
            after[&ListKind::Zorgaanbiederslijst],
            dirty[&ListKind::Zorgaanbiederslijst]
        );
        // A registry written before dirty lists were recorded has every list marked when
        // opened: none of its changes can be taken for published.
        let old = tempfile::tempdir().unwrap();
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/datadir-v1/registry.redb");
        std::fs::copy(fixture, old.path().join("registry.redb")).unwrap();
        let store = Store::open(&old.path().join("registry.redb")).unwrap();
        let dirty = store.dirty().unwrap().expect("recorded on open");
        assert_eq!(dirty.keys().copied().collect::<Vec<_>>(), all);
        // Its meta table moved to the new name: an older binary refuses the registry.
        let names = table_names(&store);
        assert!(names.contains(&META.name().to_string()), "{names:?}");
        assert!(!names.contains(&OLD_META.name().to_string()), "{names:?}");
        assert!(store.catalogue().is_ok() && store.published().unwrap().is_some());
    }

    #[test]
    fn rows_read_on_every_core_are_every_row_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = demo_store(dir.path());
        const T: Rows = TableDefinition::new("test_rows");
        // Keys in every range, at their edges and outside the two-letter ones.
        let mut keys: Vec<String> = ["", "0", "Z@medmij", "a", "aa", "az", "b", "ba", "zz"]
            .iter()
            .map(|k| k.to_string())
            .chain(
                ["zzz@medmij", "{", "é@medmij"]
                    .iter()
                    .map(|k| k.to_string()),
            )
            .chain((0..3000).map(|i| {
                format!(
                    "{}{}x{i}",
                    (b'a' + (i % 26) as u8) as char,
                    (b'a' + (i / 26 % 26) as u8) as char
                )
            }))
            .collect();
        keys.sort();
        keys.dedup();
        let tx = store.write_tx().unwrap();
        {
            let mut t = tx.open_table(T).unwrap();
            for (i, k) in keys.iter().enumerate() {
                t.insert(k.as_str(), to_json(&i).unwrap().as_slice())
                    .unwrap();
            }
        }
        store.commit(tx).unwrap();
        let tx = store.read_tx().unwrap();
        let spread: BTreeMap<String, usize> = all_rows_spread(&tx, T).unwrap();
        let one: BTreeMap<String, usize> = all_rows(&tx, T).unwrap();
        assert_eq!(spread.len(), keys.len());
        assert_eq!(spread, one);
        assert!(spread
            .iter()
            .enumerate()
            .all(|(i, (k, v))| *v == i && *k == keys[i]));
    }

    #[test]
    fn a_scoped_edit_is_checked_and_cannot_write_rows_it_did_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = demo_store(dir.path());
        let before = store.registry().unwrap();
        let za = before.zorgaanbieders.keys().next().unwrap().clone();
        // A rule between entities: the Gegevensdienst must exist in the GNL.
        let e = store
            .update_rows(&who(), &Scope::zorgaanbieder(&za), |r| {
                let z = r.zorgaanbieders.get_mut(&za).ok_or("missing")?;
                z.interfaceversies[0].gegevensdiensten[0].gegevensdienst_id = "999".into();
                Ok(String::new())
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains("referential integrity"), "{e}");
        // Writing a row outside the scope is refused, not silently done.
        let other = before.zorgaanbieders.values().nth(1).unwrap().clone();
        let e = store
            .update_rows(&who(), &Scope::zorgaanbieder(&za), |r| {
                r.zorgaanbieders
                    .insert(other.zorgaanbiedernaam.clone(), other.clone());
                Ok(String::new())
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains("had not read"), "{e}");
        assert_eq!(store.registry().unwrap(), before, "nothing was written");
        // What a scoped read returns: the named row and the small tables, nothing else.
        let part = store.rows(&Scope::zorgaanbieder(&za)).unwrap();
        assert_eq!(part.zorgaanbieders.len(), 1);
        assert!(part.oauthclients.is_empty() && part.whitelist.is_empty());
        assert_eq!(part.gegevensdiensten, before.gegevensdiensten);
    }

    #[test]
    fn the_store_enforces_catalogue_lifecycle_rules_on_write() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        let store = Store::create(&dir.path().join("r.redb"), &cat).unwrap();
        let guard = store.lock_publications();
        // Written around the catalogue's own methods: a status moved back is still refused.
        let mut back = cat.clone();
        back.releases[1].status = Status::Optioneel;
        let e = store.set_catalogue(&guard, &back).unwrap_err().to_string();
        assert!(e.contains("only moves forward"), "{e}");
        let mut removed = cat.clone();
        removed.releases.remove(2);
        assert!(store.set_catalogue(&guard, &removed).is_err());
        assert_eq!(store.catalogue().unwrap(), cat, "nothing was written");
        let mut forward = cat.clone();
        forward.releases[2].status = Status::Verplicht;
        assert!(
            store.set_catalogue(&guard, &forward).is_err(),
            "two verplicht"
        );
        forward.releases[1].status = Status::Verouderd;
        forward.releases[1].sunset = Some("2027-12-31".into());
        forward.releases[1].deprecated_since = Some("2026-12-01".into());
        store.set_catalogue(&guard, &forward).unwrap();
        assert_eq!(
            store.publication_base(&guard, false).unwrap().catalogue,
            forward
        );
    }

    #[test]
    fn operator_and_reason_are_checked_by_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        let store = Store::create(&dir.path().join("r.redb"), &cat).unwrap();
        let who = Who {
            operator: "eve".into(),
            reason: Some("line\nforged line".into()),
        };
        let e = store
            .update(&who, |reg| {
                reg.whitelist.insert("a.voorbeeld.nl".into());
                Ok("added".into())
            })
            .unwrap_err();
        assert!(e.to_string().contains("control character"), "{e}");
        assert!(store.journal().unwrap().is_empty());
        assert!(store.registry().unwrap().whitelist.is_empty());
    }

    #[test]
    fn an_undecodable_row_is_a_data_error_not_a_disk_fault() {
        let dir = tempfile::tempdir().unwrap();
        let store = demo_store(dir.path());
        store
            .write(|tx| {
                tx.open_table(ZORGAANBIEDERS)?
                    .insert("kapot@medmij", b"not json".as_slice())?;
                Ok(())
            })
            .unwrap();
        let err = store.registry().unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        assert!(!err.is_disk_fault());
        let msg = err.to_string();
        assert!(
            msg.contains("zorgaanbieders") && msg.contains("kapot@medmij"),
            "{msg}"
        );
        // Not poisoned: no fault for /health, no re-open, and other reads still work.
        assert_eq!(store.fault(), None);
        assert!(!store.poisoned.load(std::sync::atomic::Ordering::SeqCst));
        assert!(store.catalogue().is_ok());
    }
}
