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
#[cfg(test)]
mod tests;
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
        if !path.exists() {
            return Err(StoreError::Missing(path.display().to_string()));
        }
        match builder().open(path) {
            Ok(db) => {
                let store = Store::with(db, path);
                store.migrate()?;
                store.migrate_published()?;
                Ok(store)
            }
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                Err(StoreError::Locked(path.display().to_string()))
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
