//! The redb file behind the registry: the working registry (what the operator edits), the
//! release catalogue, every published document with its signature, and the publication log.
//!
//! redb lets one process open the file at a time. The server holds it while it runs; CLI
//! commands then go through the admin channel (see `admin`) instead of opening it.

use crate::registry::catalogue::{Catalogue, Rendition};
use crate::registry::documents::{self, Files, Mapped};
use crate::registry::model::{ListKind, Registry};
use crate::registry::rules;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const ZORGAANBIEDERS: TableDefinition<&str, &[u8]> = TableDefinition::new("zorgaanbieders");
const OAUTHCLIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("oauthclients");
const WHITELIST: TableDefinition<&str, ()> = TableDefinition::new("whitelist");
const GEGEVENSDIENSTEN: TableDefinition<&str, &[u8]> = TableDefinition::new("gegevensdiensten");
/// Catalogue, published index, floors and flags. Named `meta_v2` since documents became
/// files: a binary from before that reads `meta`, so it refuses a migrated registry
/// instead of serving references as documents or editing without the dirty-list record.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta_v2");
/// Where registries written before documents became files keep META (see [`Store::migrate`]).
const OLD_META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Published bytes, keyed `<rendition id>#<Volgnummer>` and `…#<Volgnummer>.sig`.
const DOCUMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("documents");
const PUBLICATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("publications");
const LIVEGANGEN: TableDefinition<&str, &[u8]> = TableDefinition::new("livegangen");
/// What a publication learnt that lets the next one skip work, replacing earlier records
/// (see `publish::pipeline`); facts about bytes, true whether or not it commits.
#[derive(Default)]
pub struct Caches {
    /// Per XSD file.
    pub validated: BTreeMap<&'static str, ValidatedRecord>,
    /// Per rendition: its document's SHA-256 and its encoded gzip block entries.
    pub gzip_blocks: Vec<(String, String, Vec<u8>)>,
}

/// The Zorgaanbieder elements (SHA-256s of their bytes) a validator (named by the SHA-256
/// of the XSD text and libxml2 version) validated.
pub struct ValidatedRecord {
    pub validator: [u8; 32],
    pub elements: Vec<[u8; 32]>,
}

/// Per XSD file: the SHA-256 of the XSD, then the SHA-256s of the Zorgaanbieder elements
/// the last publication validated against it (see `publish::pipeline::render_in_parts`).
const VALIDATED: TableDefinition<&str, &[u8]> = TableDefinition::new("validated_elements");
/// Per rendition: the SHA-256 (hex) of its last large document, then where that document's
/// `.gz` file holds each group's compressed block (see `publish::compress`).
const GZIP_BLOCKS: TableDefinition<&str, &[u8]> = TableDefinition::new("gzip_blocks");
/// One set of registry tables: the working registry (what the operator edits) or, in data
/// directories written before [`OVERLAY`], a whole copy of the registry as last published.
#[derive(Clone, Copy)]
struct RegistryTables {
    zorgaanbieders: TableDefinition<'static, &'static str, &'static [u8]>,
    oauthclients: TableDefinition<'static, &'static str, &'static [u8]>,
    gegevensdiensten: TableDefinition<'static, &'static str, &'static [u8]>,
    livegangen: TableDefinition<'static, &'static str, &'static [u8]>,
    whitelist: TableDefinition<'static, &'static str, ()>,
}

const WORKING: RegistryTables = RegistryTables {
    zorgaanbieders: ZORGAANBIEDERS,
    oauthclients: OAUTHCLIENTS,
    gegevensdiensten: GEGEVENSDIENSTEN,
    livegangen: LIVEGANGEN,
    whitelist: WHITELIST,
};

/// The whole published copy that [`Store::open`] turns into [`OVERLAY`] rows, once.
const OLD_PUBLISHED: RegistryTables = RegistryTables {
    zorgaanbieders: TableDefinition::new("published_zorgaanbieders"),
    oauthclients: TableDefinition::new("published_oauthclients"),
    gegevensdiensten: TableDefinition::new("published_gegevensdiensten"),
    livegangen: TableDefinition::new("published_livegangen"),
    whitelist: TableDefinition::new("published_whitelist"),
};

type Rows = TableDefinition<'static, &'static str, &'static [u8]>;

/// The registry as last published (for `diff`, `discard`, catalogue changes and expiry)
/// is the working registry with, for each row written since that publication, its
/// published bytes put back: one overlay table per working table, holding those bytes
/// (empty: the row was not published; a Whitelist host published: `1`). Kept once
/// something is published; before, the published registry is empty and no edit keeps
/// anything. Publishing what the working tables hold then only empties these tables: at
/// 100k, copying every row into a whole published copy was most of the first
/// publication's commit.
struct Overlay {
    zorgaanbieders: Rows,
    oauthclients: Rows,
    gegevensdiensten: Rows,
    livegangen: Rows,
    whitelist: Rows,
}

impl Overlay {
    fn all(&self) -> [Rows; 5] {
        [
            self.zorgaanbieders,
            self.oauthclients,
            self.gegevensdiensten,
            self.livegangen,
            self.whitelist,
        ]
    }
}

const OVERLAY: Overlay = Overlay {
    zorgaanbieders: TableDefinition::new("published_overlay_zorgaanbieders"),
    oauthclients: TableDefinition::new("published_overlay_oauthclients"),
    gegevensdiensten: TableDefinition::new("published_overlay_gegevensdiensten"),
    livegangen: TableDefinition::new("published_overlay_livegangen"),
    whitelist: TableDefinition::new("published_overlay_whitelist"),
};

/// A Whitelist host's overlay row: published, or not.
const HOST_PUBLISHED: &[u8] = b"1";
const NOT_PUBLISHED: &[u8] = b"";

/// Edits since the last publication of the working registry: the pending change set.
const JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("journal");
/// Who fetched what: one row per client identity (see [`ClientUse`]).
const CLIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("clients");

const META_CATALOGUE: &str = "catalogue";
const META_PUBLISHED: &str = "published";
/// Set once the published documents live in files (see `documents`); absent in data
/// directories written before, which [`Store::open`] migrates.
const META_LAYOUT: &str = "documents_in_files";
/// Counts writes to the working registry.
const META_GENERATION: &str = "generation";
/// The lists whose tables changed since the last publication of the working registry
/// (see [`Dirty`]); absent until the first publication that writes it (all lists are then
/// taken as changed).
const META_DIRTY: &str = "dirty";

/// List → generation of the last write that changed its table. A publication clears what
/// its snapshot included; a write after the snapshot stays. A publication in which only
/// the Gegevensdienstnamenlijst is dirty reads, checks and hashes only the small tables.
pub type Dirty = BTreeMap<ListKind, u64>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("registry database {path}: {msg}")]
    Db { path: String, msg: String },
    #[error("registry database {0} is in use by another process (a running `stelselnode serve` on this data directory, or another command)")]
    Locked(String),
    #[error("no registry at {0}: run `stelselnode init` (or `stelselnode serve --demo`) first")]
    Missing(String),
    #[error(transparent)]
    Invalid(#[from] rules::Violations),
    #[error("{0}")]
    Refused(String),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
}

fn db_err(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> StoreError + '_ {
    move |e| StoreError::Db {
        path: path.display().to_string(),
        msg: e.to_string(),
    }
}

/// The state of one list as last published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListVersion {
    pub volgnummer: u64,
    pub tijdstempel: String,
    /// SHA-256 of the registry content the list shows; equal content keeps the Volgnummer.
    pub content_sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedRendition {
    pub rendition: Rendition,
    pub volgnummer: u64,
    pub sha256: String,
}

/// What the server serves: written in the same transaction as the documents it names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedIndex {
    pub seq: u64,
    pub lists: BTreeMap<ListKind, ListVersion>,
    pub catalogue: Catalogue,
    pub renditions: Vec<PublishedRendition>,
    /// Volgnummer floors from imported lists, so a migrated list continues its numbering.
    #[serde(default)]
    pub floors: BTreeMap<ListKind, u64>,
}

/// One entry of the publication log (a hash chain: `prev_sha256` is the SHA-256 of the
/// previous entry's stored JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub seq: u64,
    /// The edits this publication made public, each with its operator and reason.
    #[serde(default)]
    pub changes: Vec<Change>,
    pub time: String,
    pub operator: String,
    pub reason: String,
    pub changed: Vec<ListKind>,
    pub lists: BTreeMap<ListKind, ListVersion>,
    pub documents: Vec<PublishedRendition>,
    pub prev_sha256: String,
}

/// One edit in the pending change set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub time: String,
    pub operator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub summary: String,
}

impl Change {
    /// One line for `diff` and `history show`.
    pub fn describe(&self) -> String {
        format!(
            "edit {} by {}: {}{}",
            self.time,
            self.operator,
            self.summary,
            self.reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )
    }
}

pub fn rendition_id(r: &Rendition) -> String {
    match &r.interfaceversie {
        Some(iv) => format!("{}/{}@{}", r.list.key(), r.version, iv),
        None => format!("{}/{}", r.list.key(), r.version),
    }
}

pub fn document_key(r: &Rendition, volgnummer: u64) -> String {
    format!("{}#{}", rendition_id(r), volgnummer)
}

/// The part of the registry an edit reads, checks and may change.
///
/// Every field rule is local to one entity, and every rule between entities points into
/// the Gegevensdienstnamenlijst or the livegangen, which are small and always read whole.
/// So checking the rows an edit read, after the edit, checks everything the edit can
/// break, and an edit of one Zorgaanbieder costs milliseconds instead of a pass over
/// 100,000 of them. An edit that can break a reference into it (removing a Gegevensdienst)
/// or that touches many rows (imports, livegangen) uses [`Scope::Whole`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Whole,
    Rows {
        zorgaanbieders: Vec<String>,
        oauthclients: Vec<String>,
        whitelist: Vec<String>,
    },
}

impl Scope {
    /// An edit wrote only rows it read: a row it did not read could exist already and be
    /// overwritten unseen.
    fn contains(&self, reg: &Registry) -> Result<(), StoreError> {
        let Scope::Rows {
            zorgaanbieders,
            oauthclients,
            whitelist,
        } = self
        else {
            return Ok(());
        };
        let outside = reg
            .zorgaanbieders
            .keys()
            .find(|k| !zorgaanbieders.contains(k))
            .or_else(|| reg.oauthclients.keys().find(|k| !oauthclients.contains(k)))
            .or_else(|| reg.whitelist.iter().find(|k| !whitelist.contains(k)));
        match outside {
            Some(k) => Err(StoreError::Refused(format!(
                "internal error: an edit wrote '{}', which it had not read; nothing was written",
                crate::clip::clip(k)
            ))),
            None => Ok(()),
        }
    }

    /// Only the Gegevensdienstnamenlijst and the livegangen.
    pub fn small_tables() -> Scope {
        Scope::Rows {
            zorgaanbieders: Vec::new(),
            oauthclients: Vec::new(),
            whitelist: Vec::new(),
        }
    }

    pub fn zorgaanbieder(naam: &str) -> Scope {
        Scope::Rows {
            zorgaanbieders: vec![naam.to_string()],
            oauthclients: Vec::new(),
            whitelist: Vec::new(),
        }
    }

    pub fn oauthclient(hostname: &str) -> Scope {
        Scope::Rows {
            zorgaanbieders: Vec::new(),
            oauthclients: vec![hostname.to_string()],
            whitelist: Vec::new(),
        }
    }

    pub fn whitelist(hostnames: &[String]) -> Scope {
        Scope::Rows {
            zorgaanbieders: Vec::new(),
            oauthclients: Vec::new(),
            whitelist: hostnames.to_vec(),
        }
    }
}

/// What a publication was made from, as its commit needs to know.
pub struct Snapshot {
    /// The last journalled edit it publishes (`None`: a change published on top of the
    /// published registry; pending edits stay pending). `Some` means the registry is the
    /// working registry as the snapshot read it: with no write since, the commit publishes
    /// the working tables as they are (see `set_published`).
    pub journal_head: Option<u64>,
    /// The working registry's write generation at the snapshot.
    pub generation: u64,
    /// The registry held only these lists' tables (see [`PublicationBase::partial`]).
    pub partial: Option<std::collections::BTreeSet<ListKind>>,
    /// Besides the rows the overlay names at the commit, the only rows in which the
    /// registry can differ from the working one then: of a snapshot of the working
    /// registry, the rows the overlay named at the snapshot ([`PublicationBase::pending`];
    /// a row edited after it and changed back has left the overlay since); of a registry
    /// published on top of the published one, where it differs from that. `None`: the
    /// commit compares every row.
    pub touched: Option<Touched>,
}

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

/// A document a publication made, with its gzip variant and SHA-256.
pub struct NewDocument {
    /// Storage key: `<rendition id>#<Volgnummer>`, `….sig` for its detached signature.
    pub key: String,
    pub bytes: bytes::Bytes,
    pub gzip: bytes::Bytes,
    pub sha256: String,
}

impl NewDocument {
    /// Detached signatures (a few kB) stay in redb; lists go to files.
    fn inline(&self) -> bool {
        self.key.ends_with(".sig")
    }
}

/// What `status` reads (see [`Store::status_view`]).
pub struct StatusView {
    /// Rows of the working registry: Zorgaanbieders, OAuth clients, Whitelist nodes,
    /// Gegevensdiensten.
    pub counts: [u64; 4],
    pub catalogue: Catalogue,
    pub published: Option<PublishedIndex>,
    /// The lists whose tables were written since the last publication or whose overlay
    /// holds rows (none before the first publication): only these can differ from what is
    /// published.
    pub compare: std::collections::BTreeSet<ListKind>,
    /// The working registry with the tables of `compare` and the small tables.
    pub registry: Registry,
}

/// A historic document's bytes for one answer (see [`Store::historic_body`]).
pub enum HistoricBody {
    /// The document itself (mapped, or a small one stored inline).
    Plain(bytes::Bytes),
    /// Its gzip file, named by `sha256`, the document's own SHA-256.
    Gzip { file: bytes::Bytes, sha256: String },
}

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

/// Proof that the caller holds the publication lock: functions that read the published
/// state and then commit a publication take it, so nothing can publish in between.
pub struct PublicationGuard<'a>(#[allow(dead_code)] std::sync::MutexGuard<'a, ()>);

/// Everything a publication starts from, read in one transaction.
pub struct PublicationBase {
    pub registry: Registry,
    /// Read only when asked for (changes published on top of what is published): reading
    /// 100,000 rows costs most of a second.
    pub published_registry: Option<Registry>,
    pub catalogue: Catalogue,
    /// Key of the last journalled edit in `registry`.
    pub journal_head: u64,
    pub published: Option<PublishedIndex>,
    pub floors: BTreeMap<ListKind, u64>,
    /// The working registry's write generation at the snapshot.
    pub generation: u64,
    /// `Some(lists)` when `registry` holds only the tables of `lists` and the small tables
    /// (GNL, livegangen), because only those changed since the last publication: only
    /// `lists` are rendered again; all others keep their published Volgnummer and bytes.
    pub partial: Option<std::collections::BTreeSet<ListKind>>,
    /// The rows that differ from what is published (the overlay's keys), at the snapshot
    /// (empty when the published registry was read instead).
    pub pending: Touched,
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

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Corrupt(format!("cannot encode a record: {e}")))
}

/// The number of the last committed publication (0 before the first).
fn published_seq(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    e: impl Fn(&dyn std::fmt::Display) -> StoreError,
) -> Result<u64, StoreError> {
    let current: Option<PublishedIndex> = meta
        .get(META_PUBLISHED)
        .map_err(|x| e(&x))?
        .map(|v| from_json("published index", v.value()))
        .transpose()?;
    Ok(current.map(|c| c.seq).unwrap_or(0))
}

/// `to_json` inside functions that speak redb's error type.
fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, redb::StorageError> {
    serde_json::to_vec(v).map_err(|e| redb::StorageError::Backend(Box::new(e)))
}

fn from_json<T: for<'a> Deserialize<'a>>(what: &str, b: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
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
        let db = builder().create(path).map_err(|e| db_err(path)(&e))?;
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
                tx.open_table(t).map_err(|x| e(&x))?;
            }
            tx.open_table(WORKING.whitelist).map_err(|x| e(&x))?;
            tx.open_table(DOCUMENTS).map_err(|x| e(&x))?;
            tx.open_table(PUBLICATIONS).map_err(|x| e(&x))?;
            tx.open_table(JOURNAL).map_err(|x| e(&x))?;
            let mut meta = tx.open_table(META).map_err(|x| e(&x))?;
            meta.insert(META_CATALOGUE, to_json(catalogue)?.as_slice())
                .map_err(|x| e(&x))?;
            meta.insert(META_LAYOUT, b"1".as_slice())
                .map_err(|x| e(&x))?;
            meta.insert(META_DIRTY, to_json(&Dirty::new())?.as_slice())
                .map_err(|x| e(&x))?;
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
            Err(e) => Err(db_err(path)(&e)),
        }
    }

    /// Move documents stored whole in redb (data directories written before documents
    /// became files) into files, once: each is hashed, compressed and written, and its
    /// row becomes a reference, in one transaction; then the redb file is compacted.
    /// One document is in memory at a time.
    ///
    /// A registry without the dirty-list record (written before it existed) gets one that
    /// marks every list, so its next publication reads everything.
    fn migrate(&self) -> Result<(), StoreError> {
        let e = self.e();
        let tx = self.write_tx()?;
        let renamed = {
            let old = tx
                .list_tables()
                .map_err(|x| e(&x))?
                .any(|t| t.name() == OLD_META.name());
            if old {
                let rows: Vec<(String, Vec<u8>)> = {
                    let t = tx.open_table(OLD_META).map_err(|x| e(&x))?;
                    let mut rows = Vec::new();
                    for row in t.iter().map_err(|x| e(&x))? {
                        let (k, v) = row.map_err(|x| e(&x))?;
                        rows.push((k.value().to_string(), v.value().to_vec()));
                    }
                    rows
                };
                let mut t = tx.open_table(META).map_err(|x| e(&x))?;
                for (k, v) in &rows {
                    t.insert(k.as_str(), v.as_slice()).map_err(|x| e(&x))?;
                }
                drop(t);
                tx.delete_table(OLD_META).map_err(|x| e(&x))?;
            }
            old
        };
        let (done, has_dirty) = {
            let meta = tx.open_table(META).map_err(|x| e(&x))?;
            let has = |k: &str| -> Result<bool, StoreError> {
                Ok(meta.get(k).map_err(|x| e(&x))?.is_some())
            };
            (has(META_LAYOUT)?, has(META_DIRTY)?)
        };
        if done && has_dirty {
            return match renamed {
                true => self.commit(tx),
                false => Ok(()), // dropped without commit: nothing written
            };
        }
        if !has_dirty {
            let mut meta = tx.open_table(META).map_err(|x| e(&x))?;
            let generation = generation(&meta).map_err(|x| e(&x))?;
            let all: Dirty = ListKind::ALL.iter().map(|l| (*l, generation)).collect();
            meta.insert(META_DIRTY, to_json(&all)?.as_slice())
                .map_err(|x| e(&x))?;
        }
        if done {
            return self.commit(tx);
        }
        let keys: Vec<String> = {
            let t = tx.open_table(DOCUMENTS).map_err(|x| e(&x))?;
            let mut keys = Vec::new();
            for row in t.iter().map_err(|x| e(&x))? {
                let (k, _) = row.map_err(|x| e(&x))?;
                if !k.value().ends_with(".sig") {
                    keys.push(k.value().to_string());
                }
            }
            keys
        };
        let mut moved = 0;
        {
            let mut t = tx.open_table(DOCUMENTS).map_err(|x| e(&x))?;
            for k in &keys {
                let bytes = match t.get(k.as_str()).map_err(|x| e(&x))? {
                    Some(v) if documents::referenced(v.value()).is_none() => v.value().to_vec(),
                    _ => continue,
                };
                let sha = sha256_hex(&bytes);
                let gz = documents::gzip(&bytes).map_err(|x| self.file_err(&sha, &x))?;
                self.files
                    .put(&sha, &bytes, &gz)
                    .map_err(|x| self.file_err(&sha, &x))?;
                t.insert(k.as_str(), documents::reference(&sha).as_slice())
                    .map_err(|x| e(&x))?;
                moved += 1;
            }
            tx.open_table(META)
                .map_err(|x| e(&x))?
                .insert(META_LAYOUT, b"1".as_slice())
                .map_err(|x| e(&x))?;
        }
        self.commit(tx)?;
        if moved == 0 {
            return Ok(());
        }
        let current: Vec<String> = self
            .published()?
            .map(|p| p.renditions.into_iter().map(|r| r.sha256).collect())
            .unwrap_or_default();
        self.prune_files(&current);
        // Give the space the documents took back to the file system.
        let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
        if let Some(db) = slot.as_mut() {
            db.compact().map_err(|x| e(&x))?;
        }
        eprintln!(
            "stelselnode: moved {moved} published document(s) out of {} into {}/ (one-time migration)",
            self.path.display(),
            self.files.dir().display()
        );
        Ok(())
    }

    /// Turn a whole published copy of the registry (data directories written before the
    /// overlay) into overlay rows, once: the copy's rows are compared, as stored, with the
    /// working tables, the copy's tables go and the file is compacted. A registry made
    /// before the overlay existed gets its (empty) tables here too.
    fn migrate_published(&self) -> Result<(), StoreError> {
        let e = self.e();
        type Stored = Vec<(String, Vec<u8>)>;
        let (old, published) = {
            let tx = self.read_tx()?;
            let names: Vec<String> = tx
                .list_tables()
                .map_err(|x| e(&x))?
                .map(|t| t.name().to_string())
                .collect();
            let has = |t: Rows| names.iter().any(|n| n == t.name());
            let old = has(OLD_PUBLISHED.zorgaanbieders);
            if !old && has(OVERLAY.whitelist) {
                return Ok(());
            }
            let stored = |t: Rows| -> Result<Stored, redb::Error> {
                let mut out = Vec::new();
                for row in tx.open_table(t)?.iter()? {
                    let (k, v) = row?;
                    out.push((k.value().to_string(), v.value().to_vec()));
                }
                Ok(out)
            };
            let read = || -> Result<_, redb::Error> {
                if !old || !is_published(&tx.open_table(META)?)? {
                    return Ok(None);
                }
                let mut hosts = std::collections::BTreeSet::new();
                for row in tx.open_table(OLD_PUBLISHED.whitelist)?.iter()? {
                    hosts.insert(row?.0.value().to_string());
                }
                let tables = [
                    (
                        ZORGAANBIEDERS,
                        OVERLAY.zorgaanbieders,
                        OLD_PUBLISHED.zorgaanbieders,
                    ),
                    (
                        OAUTHCLIENTS,
                        OVERLAY.oauthclients,
                        OLD_PUBLISHED.oauthclients,
                    ),
                    (
                        GEGEVENSDIENSTEN,
                        OVERLAY.gegevensdiensten,
                        OLD_PUBLISHED.gegevensdiensten,
                    ),
                    (LIVEGANGEN, OVERLAY.livegangen, OLD_PUBLISHED.livegangen),
                ];
                let mut rows = Vec::new();
                for (working, overlay, copy) in tables {
                    rows.push((working, overlay, stored(copy)?));
                }
                Ok(Some((rows, hosts)))
            };
            (old, read().map_err(|x| e(&x))?)
        };
        let copied = published.is_some();
        let tx = self.write_tx()?;
        let go = || -> Result<(), redb::Error> {
            for t in OVERLAY.all() {
                tx.open_table(t)?;
            }
            if let Some((tables, hosts)) = published {
                for (working, overlay, rows) in tables {
                    overlay_all(&tx, (working, overlay), rows.into_iter().map(Ok))?;
                }
                publish_hosts(&tx, &hosts, Compare::All)?;
            }
            if old {
                for t in [
                    OLD_PUBLISHED.zorgaanbieders,
                    OLD_PUBLISHED.oauthclients,
                    OLD_PUBLISHED.gegevensdiensten,
                    OLD_PUBLISHED.livegangen,
                ] {
                    tx.delete_table(t)?;
                }
                tx.delete_table(OLD_PUBLISHED.whitelist)?;
            }
            Ok(())
        };
        go().map_err(|x| e(&x))?;
        self.commit(tx)?;
        if copied {
            // Give the space the copy took back to the file system (the conversion is
            // committed: a compaction that fails only leaves the file larger).
            let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
            if let Some(Err(x)) = slot.as_mut().map(|db| db.compact()) {
                tracing::warn!("compacting the registry after converting it: {x}");
            }
        }
        Ok(())
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

    /// Map a redb error; an I/O error (a full disk) marks the database for re-opening.
    fn e(&self) -> impl Fn(&dyn std::fmt::Display) -> StoreError + '_ {
        move |x| {
            let err = db_err(&self.path)(x);
            let msg = x.to_string();
            if msg.contains("I/O error") {
                if !self
                    .poisoned
                    .swap(true, std::sync::atomic::Ordering::SeqCst)
                {
                    tracing::error!("registry database: {msg}; it is re-opened before the next operation, the last published set keeps being served");
                }
                self.set_fault(Some(msg));
            }
            err
        }
    }

    fn set_fault(&self, f: Option<String>) {
        *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = f;
    }

    /// The I/O error that keeps the registry unavailable, if any.
    pub fn fault(&self) -> Option<String> {
        self.fault.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// After an I/O error redb answers every write with "Previous I/O error … close and
    /// re-open the database": do exactly that, without restarting the process. Serving is
    /// not affected (the published set is in memory); if re-opening fails, the next
    /// operation tries again.
    fn recover(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        if !self.poisoned.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
        if !self.poisoned.load(Ordering::SeqCst) {
            return Ok(()); // another thread re-opened it meanwhile
        }
        *slot = None; // closes the file once no transaction holds it
        let mut last = String::new();
        for _ in 0..40 {
            match builder().open(&self.path) {
                Ok(db) => {
                    *slot = Some(db);
                    self.poisoned.store(false, Ordering::SeqCst);
                    // The fault stays reported until a write succeeds again.
                    tracing::info!("registry database re-opened after an I/O error");
                    return Ok(());
                }
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                    last = "still in use by a running transaction".into();
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => {
                    last = e.to_string();
                    break;
                }
            }
        }
        let msg = format!("re-opening after an I/O error failed: {last}");
        self.set_fault(Some(msg.clone()));
        Err(StoreError::Db {
            path: self.path.display().to_string(),
            msg,
        })
    }

    /// Commit; a successful write ends a reported fault.
    fn commit(&self, tx: redb::WriteTransaction) -> Result<(), StoreError> {
        tx.commit().map_err(|x| self.e()(&x))?;
        if self.fault().is_some() {
            tracing::info!("registry database writes succeed again");
            self.set_fault(None);
        }
        Ok(())
    }

    /// Begin a transaction on the open database, re-opening it first after an I/O error.
    fn begin<T, E: std::fmt::Display>(
        &self,
        begin: impl FnOnce(&Database) -> Result<T, E>,
    ) -> Result<T, StoreError> {
        self.recover()?;
        let slot = self.db.read().unwrap_or_else(|p| p.into_inner());
        let db = slot.as_ref().ok_or_else(|| StoreError::Db {
            path: self.path.display().to_string(),
            msg: "the database is being re-opened".into(),
        })?;
        begin(db).map_err(|x| self.e()(&x))
    }

    fn read_tx(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.begin(|db| db.begin_read())
    }

    fn write_tx(&self) -> Result<redb::WriteTransaction, StoreError> {
        self.begin(|db| db.begin_write())
    }

    /// Take the publication lock: publications and catalogue changes run one at a time
    /// (others wait), from their snapshot to their commit.
    pub fn lock_publications(&self) -> PublicationGuard<'_> {
        // A panic while holding it cannot leave redb half-written (transactions), so a
        // poisoned lock is still a valid lock.
        PublicationGuard(
            self.publications
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// The state a publication starts from, all in one read transaction: working and
    /// published registry, catalogue, journal head, published index and Volgnummer floors.
    pub fn publication_base(
        &self,
        _guard: &PublicationGuard,
        with_published_registry: bool,
    ) -> Result<PublicationBase, StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        let journal_head = tx
            .open_table(JOURNAL)
            .map_err(|x| e(&x))?
            .last()
            .map_err(|x| e(&x))?
            .map(|(k, _)| k.value())
            .unwrap_or(0);
        let meta = tx.open_table(META).map_err(|x| e(&x))?;
        let get = |k: &str| -> Result<Option<Vec<u8>>, StoreError> {
            Ok(meta.get(k).map_err(|x| e(&x))?.map(|v| v.value().to_vec()))
        };
        let catalogue = self.read_catalogue(&meta)?;
        let published: Option<PublishedIndex> = get(META_PUBLISHED)?
            .map(|v| from_json("published index", &v))
            .transpose()?;
        let floors: BTreeMap<ListKind, u64> = get("floors")?
            .map(|v| from_json("floors", &v))
            .transpose()?
            .unwrap_or_default();
        let generation = generation(&meta).map_err(|x| e(&x))?;
        let dirty = read_json::<Dirty>(&meta, META_DIRTY).map_err(|x| e(&x))?;
        // Only some lists changed (and nothing else about the publication did): the
        // tables of the others (100,000 rows for a ZAL) need not be read at all.
        let large = [
            ListKind::Zorgaanbiederslijst,
            ListKind::OAuthclientlist,
            ListKind::Whitelist,
        ];
        let partial: Option<std::collections::BTreeSet<ListKind>> = match (&published, &dirty) {
            (Some(p), Some(d))
                if !with_published_registry
                    && p.catalogue == catalogue
                    && p.floors == floors
                    && !large.iter().all(|l| d.contains_key(l)) =>
            {
                Some(d.keys().copied().collect())
            }
            _ => None,
        };
        let registry = read_tables(&tx, WORKING, partial.as_ref()).map_err(|x| e(&x))?;
        let published_registry = if with_published_registry {
            Some(read_published(&tx).map_err(|x| e(&x))?)
        } else {
            None
        };
        // (A publication on top of the published registry compares what it touched.)
        let pending = match with_published_registry {
            true => Touched::default(),
            false => pending_rows(&tx).map_err(|x| e(&x))?,
        };
        Ok(PublicationBase {
            registry,
            published_registry,
            catalogue,
            journal_head,
            published,
            floors,
            generation,
            partial,
            pending,
        })
    }

    /// What `status` shows, in one read transaction, without reading the large tables of
    /// lists that neither were written since the last publication nor hold overlay rows
    /// (they are what was published): the working registry's row counts, the catalogue,
    /// the published index, and the working registry holding the tables of the lists in
    /// `compare` (and the small tables).
    pub fn status_view(&self) -> Result<StatusView, StoreError> {
        use redb::ReadableTableMetadata;
        let e = self.e();
        let tx = self.read_tx()?;
        let meta = tx.open_table(META).map_err(|x| e(&x))?;
        let catalogue = self.read_catalogue(&meta)?;
        let published: Option<PublishedIndex> = meta
            .get(META_PUBLISHED)
            .map_err(|x| e(&x))?
            .map(|v| from_json("published index", v.value()))
            .transpose()?;
        let dirty = read_json::<Dirty>(&meta, META_DIRTY).map_err(|x| e(&x))?;
        let len = |t: Rows| -> Result<u64, StoreError> {
            tx.open_table(t)
                .map_err(|x| e(&x))?
                .len()
                .map_err(|x| e(&x))
        };
        // Written since the publication, or holding rows that differ from it (a
        // publication on top of what is published, such as a livegang's end, changes
        // the overlay before the working tables): every list that can differ.
        let overlaid = [
            (ListKind::Zorgaanbiederslijst, len(OVERLAY.zorgaanbieders)?),
            (ListKind::OAuthclientlist, len(OVERLAY.oauthclients)?),
            (
                ListKind::Whitelist,
                tx.open_table(OVERLAY.whitelist)
                    .map_err(|x| e(&x))?
                    .len()
                    .map_err(|x| e(&x))?,
            ),
            (
                ListKind::Gegevensdienstnamenlijst,
                len(OVERLAY.gegevensdiensten)?,
            ),
        ];
        let compare: std::collections::BTreeSet<ListKind> = match (&published, dirty) {
            (None, _) => Default::default(),
            (Some(_), Some(d)) => d
                .into_keys()
                .chain(overlaid.iter().filter(|(_, n)| *n > 0).map(|(l, _)| *l))
                .collect(),
            (Some(_), None) => ListKind::ALL.into_iter().collect(),
        };
        let counts = [
            len(WORKING.zorgaanbieders)?,
            len(WORKING.oauthclients)?,
            tx.open_table(WORKING.whitelist)
                .map_err(|x| e(&x))?
                .len()
                .map_err(|x| e(&x))?,
            len(WORKING.gegevensdiensten)?,
        ];
        let registry = read_tables(&tx, WORKING, Some(&compare)).map_err(|x| e(&x))?;
        Ok(StatusView {
            counts,
            catalogue,
            published,
            compare,
            registry,
        })
    }

    /// The published and the working registry, both holding only the rows that differ
    /// (the overlay's keys) and the small tables, in one read transaction: all an entry
    /// diff of the pending change set needs, since every other row is the same on both
    /// sides (at 100k Zorgaanbieders, a few rows instead of two registries). Before the
    /// first publication everything is pending: nothing and the whole working registry.
    pub fn pending_registries(&self) -> Result<(Registry, Registry), StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        if !is_published(&tx.open_table(META).map_err(|x| e(&x))?).map_err(|x| e(&x))? {
            return Ok((
                Registry::default(),
                read_registry(&tx, WORKING).map_err(|x| e(&x))?,
            ));
        }
        let pending = pending_rows(&tx).map_err(|x| e(&x))?;
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
        put_back_all(&tx, &mut published).map_err(|x| e(&x))?;
        Ok((published, working))
    }

    /// The stored release catalogue, read in the caller's transaction.
    fn read_catalogue(
        &self,
        meta: &impl ReadableTable<&'static str, &'static [u8]>,
    ) -> Result<Catalogue, StoreError> {
        let v = meta
            .get(META_CATALOGUE)
            .map_err(|x| self.e()(&x))?
            .ok_or_else(|| StoreError::Corrupt("release catalogue missing".into()))?;
        from_json("catalogue", v.value())
    }

    /// A consistent snapshot of the working registry and catalogue.
    pub fn snapshot(&self) -> Result<(Registry, Catalogue), StoreError> {
        let (reg, catalogue, _) = self.snapshot_at()?;
        Ok((reg, catalogue))
    }

    /// `snapshot`, with the working registry's write generation (see [`Store::replace`]).
    pub fn snapshot_at(&self) -> Result<(Registry, Catalogue, u64), StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        let reg = read_registry(&tx, WORKING).map_err(|x| e(&x))?;
        let meta = tx.open_table(META).map_err(|x| e(&x))?;
        let generation = generation(&meta).map_err(|x| e(&x))?;
        Ok((reg, self.read_catalogue(&meta)?, generation))
    }

    pub fn registry(&self) -> Result<Registry, StoreError> {
        Ok(self.snapshot()?.0)
    }

    /// Apply `edit` to the registry inside one write transaction: the edit sees the latest
    /// state (concurrent edits serialise, none is lost), the complete result must pass every
    /// rule, and only then are the changed rows written. Returns the edit's message.
    pub fn update<F>(&self, who: &Who, edit: F) -> Result<String, StoreError>
    where
        F: FnOnce(&mut Registry) -> Result<String, String>,
    {
        self.update_scoped(Some(who), &Scope::Whole, &BTreeMap::new(), edit)
    }

    /// `update` on the rows `scope` names (see [`Scope`]): `edit` sees a registry that
    /// holds only those rows (those that exist) and the small tables; rows it adds or
    /// removes there are added or removed in the store, all others stay as they are.
    pub fn update_rows<F>(&self, who: &Who, scope: &Scope, edit: F) -> Result<String, StoreError>
    where
        F: FnOnce(&mut Registry) -> Result<String, String>,
    {
        self.update_scoped(Some(who), scope, &BTreeMap::new(), edit)
    }

    /// The rows `scope` names, as they are now (for `show`).
    pub fn rows(&self, scope: &Scope) -> Result<Registry, StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        match scope {
            Scope::Whole => read_registry(&tx, WORKING).map_err(|x| e(&x)),
            Scope::Rows { .. } => {
                read_rows(|d| tx.open_table(d), || tx.open_table(WHITELIST), scope, &e)
            }
        }
    }

    /// `update` for a change that is published by its own logged publication (an expired
    /// gecontroleerde livegang): not recorded as a pending edit.
    pub fn update_unjournalled<F>(&self, edit: F) -> Result<String, StoreError>
    where
        F: FnOnce(&mut Registry) -> Result<String, String>,
    {
        self.update_scoped(None, &Scope::Whole, &BTreeMap::new(), edit)
    }

    /// Make the working registry `reg` (an import), raising Volgnummer floors in the same
    /// transaction, if nothing was written to it since generation `since` (see
    /// [`Store::snapshot_at`]); otherwise refused, with nothing written. `reg` must pass
    /// every rule. Its rows are compared, table by table, with the rows as stored: neither
    /// the registry before nor a copy of it is held (at 100k, an import held three
    /// registries and peaked above 1 GiB). Returns whether anything was written.
    pub fn replace(
        &self,
        who: &Who,
        floors: &BTreeMap<ListKind, u64>,
        since: u64,
        reg: &Registry,
        msg: &str,
    ) -> Result<bool, StoreError> {
        let e = self.e();
        who.check().map_err(StoreError::Refused)?;
        let tx = self.write_tx()?;
        let (now, catalogue) = {
            let meta = tx.open_table(META).map_err(|x| e(&x))?;
            let now = generation(&meta).map_err(|x| e(&x))?;
            (now, self.read_catalogue(&meta)?)
        };
        if now != since {
            return Err(StoreError::Refused(
                "the registry was edited while the import was being checked; nothing was imported; run the import again".into(),
            ));
        }
        rules::ensure_valid(reg, &catalogue)?;
        let changed = write_whole(&tx, reg).map_err(|x| e(&x))?;
        if !changed && floors.is_empty() {
            return Ok(false);
        }
        self.record_edit(&tx, Some(who), floors, msg)?;
        self.commit(tx)?;
        Ok(true)
    }

    fn update_scoped<F>(
        &self,
        who: Option<&Who>,
        scope: &Scope,
        floors: &BTreeMap<ListKind, u64>,
        edit: F,
    ) -> Result<String, StoreError>
    where
        F: FnOnce(&mut Registry) -> Result<String, String>,
    {
        let e = self.e();
        if let Some(who) = who {
            who.check().map_err(StoreError::Refused)?;
        }
        // Holding the write transaction while reading makes read-modify-write atomic:
        // writers are serialised, so what is read below is the latest committed state.
        let tx = self.write_tx()?;
        let (before, catalogue) = match scope {
            Scope::Whole => self.snapshot()?,
            Scope::Rows { .. } => {
                let before =
                    read_rows(|d| tx.open_table(d), || tx.open_table(WHITELIST), scope, &e)?;
                let meta = tx.open_table(META).map_err(|x| e(&x))?;
                (before, self.read_catalogue(&meta)?)
            }
        };
        let mut after = before.clone();
        let msg = edit(&mut after).map_err(StoreError::Refused)?;
        scope.contains(&after)?;
        after.canonicalize();
        rules::ensure_valid(&after, &catalogue)?;
        let changed = before != after;
        // An import of unchanged content may still raise a Volgnummer floor.
        if !changed && floors.is_empty() {
            return Ok(msg);
        }
        if changed {
            write_registry(&tx, &before, &after).map_err(|x| e(&x))?;
        }
        self.record_edit(&tx, who, floors, &msg)?;
        self.commit(tx)?;
        Ok(msg)
    }

    /// The bookkeeping of an edit, in its transaction: Volgnummer floors raised, and the
    /// edit journalled when someone made it.
    fn record_edit(
        &self,
        tx: &redb::WriteTransaction,
        who: Option<&Who>,
        floors: &BTreeMap<ListKind, u64>,
        msg: &str,
    ) -> Result<(), StoreError> {
        let e = self.e();
        if !floors.is_empty() {
            let mut meta = tx.open_table(META).map_err(|x| e(&x))?;
            let mut cur: BTreeMap<ListKind, u64> = match meta.get("floors").map_err(|x| e(&x))? {
                Some(v) => from_json("floors", v.value())?,
                None => BTreeMap::new(),
            };
            for (l, v) in floors {
                let f = cur.entry(*l).or_insert(0);
                *f = (*f).max(*v);
            }
            meta.insert("floors", to_json(&cur)?.as_slice())
                .map_err(|x| e(&x))?;
        }
        if let Some(who) = who {
            let mut j = tx.open_table(JOURNAL).map_err(|x| e(&x))?;
            let next = j
                .last()
                .map_err(|x| e(&x))?
                .map(|(k, _)| k.value() + 1)
                .unwrap_or(1);
            let change = Change {
                time: crate::registry::model::tijdstempel(time::OffsetDateTime::now_utc()),
                operator: who.operator.clone(),
                reason: who.reason.clone(),
                summary: msg.to_string(),
            };
            j.insert(next, to_json(&change)?.as_slice())
                .map_err(|x| e(&x))?;
        }
        Ok(())
    }

    /// Make the working registry what is published and empty the change journal
    /// (discard); returns how many edits went. Both are read while this holds the write
    /// transaction, so no publication can commit in between.
    pub fn discard(&self) -> Result<usize, StoreError> {
        let e = self.e();
        let tx = self.write_tx()?;
        let (before, published, edits) = {
            let read = self.read_tx()?;
            let edits = read
                .open_table(JOURNAL)
                .map_err(|x| e(&x))?
                .iter()
                .map_err(|x| e(&x))?
                .count();
            let before = read_registry(&read, WORKING).map_err(|x| e(&x))?;
            (before, read_published(&read).map_err(|x| e(&x))?, edits)
        };
        write_registry(&tx, &before, &published).map_err(|x| e(&x))?;
        clear_journal(&tx).map_err(|x| e(&x))?;
        // Floors raised by discarded imports go too.
        let floors = self.published()?.map(|p| p.floors).unwrap_or_default();
        tx.open_table(META)
            .map_err(|x| e(&x))?
            .insert("floors", to_json(&floors)?.as_slice())
            .map_err(|x| e(&x))?;
        self.commit(tx)?;
        Ok(edits)
    }

    /// The pending change set's edits, oldest first.
    pub fn journal(&self) -> Result<Vec<Change>, StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        let t = tx.open_table(JOURNAL).map_err(|x| e(&x))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(|x| e(&x))? {
            let (_, v) = row.map_err(|x| e(&x))?;
            out.push(from_json("journal", v.value())?);
        }
        Ok(out)
    }

    /// The registry as last published (empty before the first publication).
    pub fn published_registry(&self) -> Result<Registry, StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        read_published(&tx).map_err(|x| e(&x))
    }

    /// The livegangen as published.
    pub fn published_livegangen(
        &self,
    ) -> Result<BTreeMap<String, crate::registry::model::Livegang>, StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        let read = || -> Result<_, redb::Error> {
            if !is_published(&tx.open_table(META)?)? {
                return Ok(BTreeMap::new());
            }
            let mut out = all_rows(&tx, LIVEGANGEN)?;
            put_back(&tx, OVERLAY.livegangen, &mut out)?;
            Ok(out)
        };
        read().map_err(|x| e(&x))
    }

    fn read_map<T: for<'a> Deserialize<'a>>(
        &self,
        table: TableDefinition<'static, &'static str, &'static [u8]>,
    ) -> Result<BTreeMap<String, T>, StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        let t = tx.open_table(table).map_err(|x| e(&x))?;
        let mut out = BTreeMap::new();
        for row in t.iter().map_err(|x| e(&x))? {
            let (k, v) = row.map_err(|x| e(&x))?;
            out.insert(k.value().to_string(), from_json(table.name(), v.value())?);
        }
        Ok(out)
    }

    /// Only the livegang records: cheap enough for a once-a-second expiry check.
    pub fn livegangen(
        &self,
    ) -> Result<BTreeMap<String, crate::registry::model::Livegang>, StoreError> {
        self.read_map(LIVEGANGEN)
    }

    /// Replace the release catalogue (before the first publication; afterwards a catalogue
    /// takes effect with the publication that uses it). The lifecycle rules are checked
    /// against the stored catalogue here, whoever calls.
    pub fn set_catalogue(
        &self,
        _guard: &PublicationGuard,
        catalogue: &Catalogue,
    ) -> Result<(), StoreError> {
        let e = self.e();
        let tx = self.write_tx()?;
        {
            let mut meta = tx.open_table(META).map_err(|x| e(&x))?;
            self.read_catalogue(&meta)?
                .check_transition(catalogue)
                .map_err(StoreError::Refused)?;
            meta.insert(META_CATALOGUE, to_json(catalogue)?.as_slice())
                .map_err(|x| e(&x))?;
        }
        self.commit(tx)?;
        Ok(())
    }

    /// The catalogue alone (not the whole registry, as `snapshot` reads).
    pub fn catalogue(&self) -> Result<Catalogue, StoreError> {
        let tx = self.read_tx()?;
        let meta = tx.open_table(META).map_err(|x| self.e()(&x))?;
        self.read_catalogue(&meta)
    }

    pub fn published(&self) -> Result<Option<PublishedIndex>, StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        let meta = tx.open_table(META).map_err(|x| e(&x))?;
        let v = meta.get(META_PUBLISHED).map_err(|x| e(&x))?;
        v.map(|v| from_json("published index", v.value()))
            .transpose()
    }

    /// Write a document a publication made to a temporary file, while its SHA-256 and gzip
    /// variant are computed (see [`Store::write_staged`]).
    pub fn stage_document(&self, pieces: &[&[u8]]) -> Result<documents::Staged, StoreError> {
        self.files
            .stage(pieces)
            .map_err(|x| self.file_err("(being written)", &x))
    }

    /// Name a document [`Store::stage_document`] wrote, write its gzip variant, and map
    /// both, before the publication commits. A publication that fails later leaves files
    /// no row refers to; the next commit removes them.
    pub fn write_staged(
        &self,
        sha256: &str,
        staged: documents::Staged,
        gzip: &[u8],
    ) -> Result<Mapped, StoreError> {
        self.files
            .put_staged(sha256, staged, gzip)
            .and_then(|()| self.files.map(sha256))
            .map_err(|x| self.file_err(sha256, &x))
    }

    /// A published document's bytes, by storage key (`None` if never published).
    pub fn document(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.resolve(key, |f, sha| f.read(sha), Some)
    }

    /// A published document as a stream with its length (`None` if never published);
    /// the stream fails at its end if the bytes do not match the SHA-256 they were
    /// published with. For exports of the whole history in bounded memory.
    pub fn document_reader(&self, key: &str) -> Result<Option<documents::Stream>, StoreError> {
        self.resolve(
            key,
            |f, sha| f.reader(sha),
            |v| Some((v.len() as u64, Box::new(std::io::Cursor::new(v)))),
        )
    }

    /// A document of the published set as the server holds it: mapped from its files
    /// (`None` for one stored inline: a detached signature, a few kB).
    pub fn mapped(&self, key: &str) -> Result<Option<Mapped>, StoreError> {
        self.resolve(key, |f, sha| f.map(sha), |_| None)
    }

    /// A historic document as the server holds it for one request, mapped from its files:
    /// its stored gzip file when `gzip` or when it is kept only gzipped (the server then
    /// inflates it as it sends it), else its file. Nothing is read or hashed here.
    pub fn historic_body(&self, key: &str, gzip: bool) -> Result<Option<HistoricBody>, StoreError> {
        use documents::MappedAs;
        self.resolve(
            key,
            |f, sha| {
                let gz = |file| HistoricBody::Gzip {
                    file,
                    sha256: sha.to_string(),
                };
                match gzip {
                    true => f.map_gzip(sha).map(gz),
                    false => f.map_stored(sha).map(|m| match m {
                        MappedAs::Plain(b) => HistoricBody::Plain(b),
                        MappedAs::Gzip(b) => gz(b),
                    }),
                }
            },
            |v| Some(HistoricBody::Plain(bytes::Bytes::from(v))),
        )
    }

    /// A published document's SHA-256, from its reference (not read and hashed).
    pub fn document_sha256(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .document_value(key)?
            .map(|v| match documents::referenced(&v) {
                Some(sha) => sha.to_string(),
                None => sha256_hex(&v),
            }))
    }

    /// A stored document: from its files when its row is a reference, else the row itself.
    fn resolve<T>(
        &self,
        key: &str,
        from_file: impl FnOnce(&Files, &str) -> std::io::Result<T>,
        inline: impl FnOnce(Vec<u8>) -> Option<T>,
    ) -> Result<Option<T>, StoreError> {
        let Some(v) = self.document_value(key)? else {
            return Ok(None);
        };
        match documents::referenced(&v).map(str::to_string) {
            Some(sha) => from_file(&self.files, &sha)
                .map(Some)
                .map_err(|x| self.file_err(&sha, &x)),
            None => Ok(inline(v)),
        }
    }

    fn document_value(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        let t = tx.open_table(DOCUMENTS).map_err(|x| e(&x))?;
        let v = t.get(key).map_err(|x| e(&x))?;
        Ok(v.map(|v| v.value().to_vec()))
    }

    /// A document file that cannot be read or written: an I/O error like redb's (a full
    /// disk is reported by `/health` until a publication succeeds again).
    fn file_err(&self, sha: &str, x: &std::io::Error) -> StoreError {
        let msg = format!("document file {sha}: I/O error: {x}");
        if x.kind() != std::io::ErrorKind::InvalidData {
            tracing::error!("{msg}");
            self.set_fault(Some(msg.clone()));
        }
        StoreError::Db {
            path: self.path.display().to_string(),
            msg,
        }
    }

    pub fn log(&self) -> Result<Vec<(LogEntry, Vec<u8>)>, StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        let t = tx.open_table(PUBLICATIONS).map_err(|x| e(&x))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(|x| e(&x))? {
            let (_, v) = row.map_err(|x| e(&x))?;
            out.push((from_json("publication log", v.value())?, v.value().to_vec()));
        }
        Ok(out)
    }

    fn last_log_hash(&self, tx: &redb::WriteTransaction) -> Result<String, StoreError> {
        let e = self.e();
        let t = tx.open_table(PUBLICATIONS).map_err(|x| e(&x))?;
        let last = t.last().map_err(|x| e(&x))?;
        Ok(match last {
            Some((_, v)) => hex(ring::digest::digest(&ring::digest::SHA256, v.value()).as_ref()),
            None => hex(&[0u8; 32]),
        })
    }

    /// Commit a publication: new documents, the new index and the log entry, atomically.
    /// `expected_seq` guards against a concurrent publication in between.
    pub fn commit_publication(
        &self,
        _guard: &PublicationGuard,
        index: &PublishedIndex,
        mut entry: LogEntry,
        documents: &[NewDocument],
        registry: &Registry,
        from: Snapshot,
    ) -> Result<LogEntry, StoreError> {
        let journal_head = from.journal_head;
        check_recorded(&entry.operator, Some(&entry.reason)).map_err(StoreError::Refused)?;
        // The files first: a crash before the commit leaves unreferenced files only.
        for d in documents.iter().filter(|d| !d.inline()) {
            self.files
                .put(&d.sha256, &d.bytes, &d.gzip)
                .map_err(|x| self.file_err(&d.sha256, &x))?;
        }
        // A rendition that returns to the set at an earlier Volgnummer is served from its
        // file again.
        for r in &index.renditions {
            self.files
                .restore(&r.sha256)
                .map_err(|x| self.file_err(&r.sha256, &x))?;
        }
        let e = self.e();
        let tx = self.write_tx()?;
        let current_seq = {
            let meta = tx.open_table(META).map_err(|x| e(&x))?;
            let current_seq = published_seq(&meta, &e)?;
            if current_seq + 1 != index.seq {
                return Err(StoreError::Refused(format!(
                    "another publication ({current_seq}) was committed meanwhile; run publish again"
                )));
            }
            self.read_catalogue(&meta)?
                .check_transition(&index.catalogue)
                .map_err(StoreError::Refused)?;
            current_seq
        };
        entry.prev_sha256 = self.last_log_hash(&tx)?;
        if let Some(head) = journal_head {
            // The edits this publication rendered become part of its audit record; edits
            // that arrived while it rendered stay pending.
            let mut j = tx.open_table(JOURNAL).map_err(|x| e(&x))?;
            for row in j.range(..=head).map_err(|x| e(&x))? {
                let (_, v) = row.map_err(|x| e(&x))?;
                let mut change: Change = from_json("journal", v.value())?;
                // An edit made without --reason is made for the publication's reason.
                if change.reason.is_none() {
                    change.reason = Some(entry.reason.clone());
                }
                entry.changes.push(change);
            }
            j.retain(|k, _| k > head).map_err(|x| e(&x))?;
        }
        {
            let mut docs = tx.open_table(DOCUMENTS).map_err(|x| e(&x))?;
            for d in documents {
                let k = &d.key;
                let value = match d.inline() {
                    true => d.bytes.to_vec(),
                    false => documents::reference(&d.sha256),
                };
                // History is immutable: a Volgnummer once published keeps its bytes.
                if let Some(old) = docs.get(k.as_str()).map_err(|x| e(&x))? {
                    let same = match documents::referenced(old.value()) {
                        Some(sha) => sha == d.sha256,
                        None => old.value() == d.bytes.as_ref(),
                    };
                    if !same {
                        return Err(StoreError::Refused(format!(
                            "document {k} was published before with other bytes; refusing to rewrite history"
                        )));
                    }
                }
                docs.insert(k.as_str(), value.as_slice())
                    .map_err(|x| e(&x))?;
            }
            let mut meta = tx.open_table(META).map_err(|x| e(&x))?;
            meta.insert(META_PUBLISHED, to_json(index)?.as_slice())
                .map_err(|x| e(&x))?;
            // Publishing the working registry with no write since its snapshot: the
            // working tables hold exactly the rows it rendered.
            let generation = generation(&meta).map_err(|x| e(&x))?;
            let compare = match (journal_head, &from.touched) {
                (Some(_), _) if generation == from.generation => Compare::Nothing,
                _ if current_seq == 0 => Compare::All,
                (_, Some(t)) => Compare::Rows(t),
                (_, None) => Compare::All,
            };
            set_published(&tx, registry, from.partial.as_ref(), compare).map_err(|x| e(&x))?;
            if journal_head.is_some() {
                // What the snapshot included is published; later writes stay dirty.
                let mut dirty = read_json::<Dirty>(&meta, META_DIRTY)
                    .map_err(|x| e(&x))?
                    .unwrap_or_default();
                dirty.retain(|_, g| *g > from.generation);
                meta.insert(META_DIRTY, to_json(&dirty)?.as_slice())
                    .map_err(|x| e(&x))?;
            }
            // The catalogue takes effect with the publication that uses it.
            meta.insert(META_CATALOGUE, to_json(&index.catalogue)?.as_slice())
                .map_err(|x| e(&x))?;
            let mut log = tx.open_table(PUBLICATIONS).map_err(|x| e(&x))?;
            log.insert(index.seq, to_json(&entry)?.as_slice())
                .map_err(|x| e(&x))?;
        }
        crate::failpoint::hit("publish.commit").map_err(StoreError::Refused)?;
        self.commit(tx)?;
        let current: Vec<String> = index.renditions.iter().map(|r| r.sha256.clone()).collect();
        self.prune_files(&current);
        Ok(entry)
    }

    /// Uncompressed files of documents that left the published set go (their history
    /// stays), and so do files that no row refers to (left by a publication that failed
    /// after writing them). Runs under the publication lock or at open, so no publication
    /// is writing files meanwhile. A failure only leaves files behind.
    fn prune_files(&self, current: &[String]) {
        let referenced = || -> Result<std::collections::HashSet<String>, StoreError> {
            let e = self.e();
            let tx = self.read_tx()?;
            let t = tx.open_table(DOCUMENTS).map_err(|x| e(&x))?;
            let mut out = std::collections::HashSet::new();
            for row in t.iter().map_err(|x| e(&x))? {
                let (_, v) = row.map_err(|x| e(&x))?;
                if let Some(sha) = documents::referenced(v.value()) {
                    out.insert(sha.to_string());
                }
            }
            Ok(out)
        };
        let referenced = match referenced() {
            Ok(r) => r,
            Err(x) => return tracing::warn!("not pruning document files: {x}"),
        };
        let current: std::collections::HashSet<&str> = current.iter().map(|s| s.as_str()).collect();
        let referenced: std::collections::HashSet<&str> =
            referenced.iter().map(|s| s.as_str()).collect();
        if let Err(x) = self.files.prune(&current, &referenced) {
            tracing::warn!("removing document files: {x}");
        }
    }

    /// The lists whose tables changed since the last publication of the working registry.
    pub fn dirty(&self) -> Result<Option<Dirty>, StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        let meta = tx.open_table(META).map_err(|x| e(&x))?;
        read_json(&meta, META_DIRTY).map_err(|x| e(&x))
    }

    /// A publication of the working registry found nothing to publish: what its snapshot
    /// included equals what is published, so those lists are no longer dirty.
    pub fn clear_dirty(
        &self,
        _guard: &PublicationGuard,
        generation: u64,
    ) -> Result<(), StoreError> {
        let e = self.e();
        let tx = self.write_tx()?;
        {
            let mut meta = tx.open_table(META).map_err(|x| e(&x))?;
            let Some(mut dirty) = read_json::<Dirty>(&meta, META_DIRTY).map_err(|x| e(&x))? else {
                return Ok(());
            };
            let before = dirty.len();
            dirty.retain(|_, g| *g > generation);
            if dirty.len() == before {
                return Ok(());
            }
            meta.insert(META_DIRTY, to_json(&dirty)?.as_slice())
                .map_err(|x| e(&x))?;
        }
        self.commit(tx)
    }

    /// Persist client records (replacing those rows).
    pub fn save_clients(&self, rows: &[(String, ClientUse)]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let e = self.e();
        let tx = self.write_tx()?;
        {
            let mut t = tx.open_table(CLIENTS).map_err(|x| e(&x))?;
            for (k, v) in rows {
                t.insert(k.as_str(), to_json(v)?.as_slice())
                    .map_err(|x| e(&x))?;
            }
        }
        self.commit(tx)
    }

    /// Remove client records (evicted from the bounded set).
    pub fn forget_clients(&self, keys: &[String]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let e = self.e();
        let tx = self.write_tx()?;
        {
            let mut t = tx.open_table(CLIENTS).map_err(|x| e(&x))?;
            for k in keys {
                t.remove(k.as_str()).map_err(|x| e(&x))?;
            }
        }
        self.commit(tx)
    }

    /// One record of what a publication learnt (tables `validated_elements`, `gzip_blocks`).
    fn cached(
        &self,
        table: TableDefinition<'static, &'static str, &'static [u8]>,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        let t = match tx.open_table(table) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(x) => return Err(e(&x)),
        };
        let v = t.get(key).map_err(|x| e(&x))?;
        Ok(v.map(|v| v.value().to_vec()))
    }

    /// The elements recorded as validated by `validator` (a SHA-256 naming the XSD text and
    /// the validator; a record made by another, or one that cannot be read as hashes, is
    /// empty: everything is validated).
    pub fn validated_elements(
        &self,
        xsd_file: &str,
        validator: &[u8; 32],
    ) -> Result<std::collections::HashSet<[u8; 32]>, StoreError> {
        let Some(v) = self.cached(VALIDATED, xsd_file)? else {
            return Ok(Default::default());
        };
        if v.len() % 32 != 0 || v.get(..32) != Some(validator.as_slice()) {
            return Ok(Default::default());
        }
        Ok(v[32..]
            .chunks_exact(32)
            .filter_map(|c| <[u8; 32]>::try_from(c).ok())
            .collect())
    }

    /// The last recorded gzip blocks of `rendition`: the document's `.gz` file (mapped)
    /// and the encoded entries; `None` if there are none or the file is gone.
    pub fn gzip_blocks(
        &self,
        rendition: &str,
    ) -> Result<Option<(bytes::Bytes, Vec<u8>)>, StoreError> {
        let Some(v) = self.cached(GZIP_BLOCKS, rendition)? else {
            return Ok(None);
        };
        let Some(sha) = v.get(..64).and_then(|s| std::str::from_utf8(s).ok()) else {
            return Ok(None);
        };
        if !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        // A file pruned since (its publication did not commit) only means no reuse.
        Ok(self
            .files
            .map_gzip(sha)
            .ok()
            .map(|gz| (gz, v[64..].to_vec())))
    }

    /// Replace the records a publication made, in one transaction.
    pub fn record_caches(
        &self,
        _guard: &PublicationGuard,
        caches: Caches,
    ) -> Result<(), StoreError> {
        let e = self.e();
        let tx = self.write_tx()?;
        {
            let mut t = tx.open_table(VALIDATED).map_err(|x| e(&x))?;
            for (xsd_file, mut r) in caches.validated {
                let elements = &mut r.elements;
                elements.sort_unstable();
                elements.dedup();
                let mut v = Vec::with_capacity(32 * (elements.len() + 1));
                v.extend_from_slice(&r.validator);
                for h in elements.iter() {
                    v.extend_from_slice(h);
                }
                t.insert(xsd_file, v.as_slice()).map_err(|x| e(&x))?;
            }
        }
        {
            let mut t = tx.open_table(GZIP_BLOCKS).map_err(|x| e(&x))?;
            for (rendition, sha256, entries) in caches.gzip_blocks {
                let mut v = Vec::with_capacity(64 + entries.len());
                v.extend_from_slice(sha256.as_bytes());
                v.extend_from_slice(&entries);
                t.insert(rendition.as_str(), v.as_slice())
                    .map_err(|x| e(&x))?;
            }
        }
        self.commit(tx)
    }

    /// Every persisted client record (none in a registry made before they existed).
    pub fn clients(&self) -> Result<BTreeMap<String, ClientUse>, StoreError> {
        let e = self.e();
        let tx = self.read_tx()?;
        let t = match tx.open_table(CLIENTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(BTreeMap::new()),
            Err(x) => return Err(e(&x)),
        };
        let mut out = BTreeMap::new();
        for row in t.iter().map_err(|x| e(&x))? {
            let (k, v) = row.map_err(|x| e(&x))?;
            out.insert(k.value().to_string(), from_json("clients", v.value())?);
        }
        Ok(out)
    }
}

fn read_registry(tx: &redb::ReadTransaction, set: RegistryTables) -> Result<Registry, redb::Error> {
    read_tables(tx, set, None)
}

/// `read_registry`, of only the tables behind `lists` (and the small tables) when given.
fn read_tables(
    tx: &redb::ReadTransaction,
    set: RegistryTables,
    lists: Option<&std::collections::BTreeSet<ListKind>>,
) -> Result<Registry, redb::Error> {
    let wanted = |l: ListKind| lists.is_none_or(|s| s.contains(&l));
    let mut whitelist = std::collections::BTreeSet::new();
    if wanted(ListKind::Whitelist) {
        for row in tx.open_table(set.whitelist)?.iter()? {
            whitelist.insert(row?.0.value().to_string());
        }
    }
    let mut reg = Registry {
        zorgaanbieders: match wanted(ListKind::Zorgaanbiederslijst) {
            true => all_rows_spread(tx, set.zorgaanbieders)?,
            false => BTreeMap::new(),
        },
        oauthclients: match wanted(ListKind::OAuthclientlist) {
            true => all_rows(tx, set.oauthclients)?,
            false => BTreeMap::new(),
        },
        whitelist,
        gegevensdiensten: all_rows(tx, set.gegevensdiensten)?,
        livegangen: all_rows(tx, set.livegangen)?,
    };
    // Rows written before canonical order existed are read in it.
    reg.canonicalize();
    Ok(reg)
}

/// Every row of a table of records, decoded.
fn all_rows<T: for<'a> Deserialize<'a>>(
    tx: &redb::ReadTransaction,
    t: Rows,
) -> Result<BTreeMap<String, T>, redb::Error> {
    let mut out = BTreeMap::new();
    for row in tx.open_table(t)?.iter()? {
        let (k, v) = row?;
        out.insert(k.value().to_string(), decode(t, k.value(), v.value())?);
    }
    Ok(out)
}

/// [`all_rows`] of a table of up to 100,000 rows, read on every core: the keys are cut
/// into ranges by their first two letters (a Zorgaanbiedernaam is `[a-z]+@medmij`; other
/// keys fall in the first or last range), each walked and decoded by whichever thread is
/// free, all in the caller's one read transaction. At 100k, reading on one core was the
/// half second before a publication could use the second core.
fn all_rows_spread<T: for<'a> Deserialize<'a> + Send>(
    tx: &redb::ReadTransaction,
    t: Rows,
) -> Result<BTreeMap<String, T>, redb::Error> {
    let mut bounds = vec![String::new()];
    for a in 'a'..='z' {
        for b in 'a'..='z' {
            bounds.push(format!("{a}{b}"));
        }
    }
    let ranges: Vec<(&str, Option<&str>)> = bounds
        .iter()
        .enumerate()
        .map(|(i, lo)| (lo.as_str(), bounds.get(i + 1).map(String::as_str)))
        .collect();
    let parts = crate::cores::map(&ranges, |_, &(lo, hi)| {
        let table = tx.open_table(t)?;
        let rows = match hi {
            Some(hi) => table.range::<&str>(lo..hi)?,
            None => table.range::<&str>(lo..)?,
        };
        rows.map(|row| {
            let (k, v) = row?;
            Ok((k.value().to_string(), decode(t, k.value(), v.value())?))
        })
        .collect::<Result<Vec<(String, T)>, redb::Error>>()
    });
    let mut out = Vec::new();
    for part in parts {
        out.extend(part.ok_or_else(|| decode_err(t, "?", &"a reading thread panicked"))??);
    }
    // In key order already: the map is built in one pass.
    Ok(out.into_iter().collect())
}

/// A stored record, in functions that speak redb's error type.
fn decode<T: for<'a> Deserialize<'a>>(t: Rows, key: &str, v: &[u8]) -> Result<T, redb::Error> {
    serde_json::from_slice(v).map_err(|e| decode_err(t, key, &e))
}

fn decode_err(t: Rows, key: &str, e: &dyn std::fmt::Display) -> redb::Error {
    redb::Error::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{} {key}: {e}", t.name()),
    ))
}

/// Whether anything was published (before, the published registry is empty and no
/// overlay rows are kept), from the meta table of a read or write transaction.
fn is_published(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<bool, redb::StorageError> {
    Ok(meta.get(META_PUBLISHED)?.is_some())
}

/// The keys of every overlay: the rows that differ from what is published.
fn pending_rows(tx: &redb::ReadTransaction) -> Result<Touched, redb::Error> {
    let keys = |t: Rows| -> Result<std::collections::BTreeSet<String>, redb::Error> {
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
fn read_published(tx: &redb::ReadTransaction) -> Result<Registry, redb::Error> {
    if !is_published(&tx.open_table(META)?)? {
        return Ok(Registry::default());
    }
    let mut reg = read_registry(tx, WORKING)?;
    put_back_all(tx, &mut reg)?;
    Ok(reg)
}

/// Every overlay's published rows put back into `reg` (working rows): what was published,
/// for the rows `reg` holds and the ones the overlays name.
fn put_back_all(tx: &redb::ReadTransaction, reg: &mut Registry) -> Result<(), redb::Error> {
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
fn put_back<T: for<'a> Deserialize<'a>>(
    tx: &redb::ReadTransaction,
    overlay: Rows,
    rows: &mut BTreeMap<String, T>,
) -> Result<(), redb::Error> {
    for row in tx.open_table(overlay)?.iter()? {
        let (k, v) = row?;
        match v.value() {
            NOT_PUBLISHED => rows.remove(k.value()),
            bytes => rows.insert(k.value().to_string(), decode(overlay, k.value(), bytes)?),
        };
    }
    Ok(())
}

/// The rows `scope` names (those that exist) and the small tables, from any transaction.
/// `open` and `open_whitelist` open a working table in the caller's read or write
/// transaction.
fn read_rows<T, W>(
    open: impl Fn(TableDefinition<'static, &'static str, &'static [u8]>) -> Result<T, redb::TableError>,
    open_whitelist: impl FnOnce() -> Result<W, redb::TableError>,
    scope: &Scope,
    e: &dyn Fn(&dyn std::fmt::Display) -> StoreError,
) -> Result<Registry, StoreError>
where
    T: ReadableTable<&'static str, &'static [u8]>,
    W: ReadableTable<&'static str, ()>,
{
    type ErrFn<'a> = &'a dyn Fn(&dyn std::fmt::Display) -> StoreError;
    fn named<T: for<'a> Deserialize<'a>>(
        t: &impl ReadableTable<&'static str, &'static [u8]>,
        keys: &[String],
        e: ErrFn,
    ) -> Result<BTreeMap<String, T>, StoreError> {
        let mut out = BTreeMap::new();
        for k in keys {
            if let Some(v) = t.get(k.as_str()).map_err(|x| e(&x))? {
                out.insert(k.clone(), from_json(k, v.value())?);
            }
        }
        Ok(out)
    }
    fn all<T: for<'a> Deserialize<'a>>(
        t: &impl ReadableTable<&'static str, &'static [u8]>,
        e: ErrFn,
    ) -> Result<BTreeMap<String, T>, StoreError> {
        let mut out = BTreeMap::new();
        for row in t.iter().map_err(|x| e(&x))? {
            let (k, v) = row.map_err(|x| e(&x))?;
            out.insert(k.value().to_string(), from_json(k.value(), v.value())?);
        }
        Ok(out)
    }
    let Scope::Rows {
        zorgaanbieders: za,
        oauthclients: oc,
        whitelist: wl,
    } = scope
    else {
        return Err(StoreError::Corrupt("read_rows needs named rows".into()));
    };
    let table = |d| open(d).map_err(|x| e(&x));
    let whitelist = open_whitelist().map_err(|x| e(&x))?;
    let mut hosts = std::collections::BTreeSet::new();
    for h in wl {
        if whitelist.get(h.as_str()).map_err(|x| e(&x))?.is_some() {
            hosts.insert(h.clone());
        }
    }
    let mut reg = Registry {
        zorgaanbieders: named(&table(ZORGAANBIEDERS)?, za, e)?,
        oauthclients: named(&table(OAUTHCLIENTS)?, oc, e)?,
        whitelist: hosts,
        gegevensdiensten: all(&table(GEGEVENSDIENSTEN)?, e)?,
        livegangen: all(&table(LIVEGANGEN)?, e)?,
    };
    reg.canonicalize();
    Ok(reg)
}

/// One ordered pass over `old` beside `new`, both in key order (redb orders `&str` keys as
/// Rust orders strings; at 100k rows, one B-tree lookup per row cost more): the keys only
/// in `old` go to `stale`, and `differs` gets each row of `new` that `old` lacks or holds
/// with other bytes.
fn merge<K: AsRef<str>, V: AsRef<[u8]>>(
    old: &impl ReadableTable<&'static str, &'static [u8]>,
    new: impl Iterator<Item = Result<(K, V), redb::Error>>,
    stale: &mut Vec<String>,
    mut differs: impl FnMut(K, V),
) -> Result<(), redb::Error> {
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
enum Compare<K> {
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
type Mode<'a> = Compare<&'a std::collections::BTreeSet<String>>;

/// Make the overlay say that `reg` is what is published. `reg` holds the tables of the
/// lists in `partial` and the small tables (all when `None`); the others stay published as
/// they are.
fn set_published(
    tx: &redb::WriteTransaction,
    reg: &Registry,
    partial: Option<&std::collections::BTreeSet<ListKind>>,
    compare: Compare<&Touched>,
) -> Result<(), redb::Error> {
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
fn candidates(
    tx: &redb::WriteTransaction,
    overlay: Rows,
    mode: Mode,
) -> Result<std::collections::BTreeSet<String>, redb::Error> {
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
fn emptied<'t>(
    tx: &'t redb::WriteTransaction,
    overlay: Rows,
) -> Result<redb::Table<'t, &'static str, &'static [u8]>, redb::Error> {
    tx.delete_table(overlay)?;
    Ok(tx.open_table(overlay)?)
}

/// [`set_published`] for one table of records: its overlay gets the rows of `rows` whose
/// bytes the working table does not hold, and the working rows `rows` lacks.
fn publish_rows<T: Serialize>(
    tx: &redb::WriteTransaction,
    (working, overlay): (Rows, Rows),
    rows: &BTreeMap<String, T>,
    mode: Mode,
) -> Result<(), redb::Error> {
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
fn overlay_all<K: AsRef<str>, V: AsRef<[u8]>>(
    tx: &redb::WriteTransaction,
    (working, overlay): (Rows, Rows),
    rows: impl Iterator<Item = Result<(K, V), redb::Error>>,
) -> Result<(), redb::Error> {
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
fn publish_hosts(
    tx: &redb::WriteTransaction,
    hosts: &std::collections::BTreeSet<String>,
    mode: Mode,
) -> Result<(), redb::Error> {
    let keys = candidates(tx, OVERLAY.whitelist, mode)?;
    let mut o = emptied(tx, OVERLAY.whitelist)?;
    let w = tx.open_table(WHITELIST)?;
    let mut differs = |h: &str, held: bool| -> Result<(), redb::Error> {
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
fn keep_published(
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

/// Write only the rows that differ between `before` and `after`, keep the published bytes
/// of the rows written (see [`OVERLAY`]), and mark the lists whose tables changed as dirty
/// (see [`Dirty`]).
fn write_registry(
    tx: &redb::WriteTransaction,
    before: &Registry,
    after: &Registry,
) -> Result<(), redb::Error> {
    use ListKind::*;
    let mut lists = std::collections::BTreeSet::new();
    let published = is_published(&tx.open_table(META)?)?;
    let pair = |w: Rows, o: Rows| writing(tx, (w, o), published);
    let mut t = pair(ZORGAANBIEDERS, OVERLAY.zorgaanbieders)?;
    if sync_map(&mut t, &before.zorgaanbieders, &after.zorgaanbieders)? {
        lists.insert(Zorgaanbiederslijst);
    }
    let mut t = pair(OAUTHCLIENTS, OVERLAY.oauthclients)?;
    if sync_map(&mut t, &before.oauthclients, &after.oauthclients)? {
        lists.insert(OAuthclientlist);
    }
    let mut t = pair(GEGEVENSDIENSTEN, OVERLAY.gegevensdiensten)?;
    if sync_map(&mut t, &before.gegevensdiensten, &after.gegevensdiensten)? {
        lists.insert(Gegevensdienstnamenlijst);
    }
    let mut t = pair(LIVEGANGEN, OVERLAY.livegangen)?;
    if sync_map(&mut t, &before.livegangen, &after.livegangen)? {
        // A livegang is not a list, but it moves offerings and clients: be conservative.
        lists.insert(Zorgaanbiederslijst);
        lists.insert(OAuthclientlist);
    }
    if write_hosts(tx, &before.whitelist, &after.whitelist, published)? {
        lists.insert(Whitelist);
    }
    mark_written(tx, lists)
}

/// Make the working Whitelist `after` where it holds `before`, keeping the published
/// state of every host added or removed in the overlay. Returns whether any was.
fn write_hosts(
    tx: &redb::WriteTransaction,
    before: &std::collections::BTreeSet<String>,
    after: &std::collections::BTreeSet<String>,
    published: bool,
) -> Result<bool, redb::Error> {
    let mut t = tx.open_table(WHITELIST)?;
    let mut o = published
        .then(|| tx.open_table(OVERLAY.whitelist))
        .transpose()?;
    let mut changed = false;
    for h in before.difference(after) {
        t.remove(h.as_str())?;
        if let Some(o) = o.as_mut() {
            keep_published(o, h, HOST_PUBLISHED, NOT_PUBLISHED)?;
        }
        changed = true;
    }
    for h in after.difference(before) {
        t.insert(h.as_str(), ())?;
        if let Some(o) = o.as_mut() {
            keep_published(o, h, NOT_PUBLISHED, HOST_PUBLISHED)?;
        }
        changed = true;
    }
    Ok(changed)
}

/// Count a write to the working registry and mark the lists whose tables it changed as
/// dirty.
fn mark_written(
    tx: &redb::WriteTransaction,
    lists: std::collections::BTreeSet<ListKind>,
) -> Result<(), redb::Error> {
    let mut meta = tx.open_table(META)?;
    let generation = generation(&meta)? + 1;
    meta.insert(META_GENERATION, encode(&generation)?.as_slice())?;
    if let Some(mut dirty) = read_json::<Dirty>(&meta, META_DIRTY)? {
        for l in lists {
            dirty.insert(l, generation);
        }
        meta.insert(META_DIRTY, encode(&dirty)?.as_slice())?;
    }
    Ok(())
}

/// Make the working tables hold `after` as a whole (an import; see [`Store::replace`]):
/// each table's stored rows are compared in one ordered pass with `after`'s rows encoded,
/// and only the rows that differ are written (encoded again then, rather than held).
/// Returns whether anything changed.
fn write_whole(tx: &redb::WriteTransaction, after: &Registry) -> Result<bool, redb::Error> {
    use ListKind::*;
    let published = is_published(&tx.open_table(META)?)?;
    fn rows<T: Serialize>(
        tx: &redb::WriteTransaction,
        (working, overlay): (Rows, Rows),
        rows: &BTreeMap<String, T>,
        published: bool,
    ) -> Result<bool, redb::Error> {
        let mut stale = Vec::new();
        let mut differ = Vec::new();
        {
            let w = tx.open_table(working)?;
            let encoded = rows.iter().map(|(k, v)| Ok((k.as_str(), encode(v)?)));
            merge(&w, encoded, &mut stale, |k, _| differ.push(k))?;
        }
        let mut t = writing(tx, (working, overlay), published)?;
        for k in &stale {
            write_row(&mut t, k, None)?;
        }
        for k in &differ {
            if let Some(v) = rows.get(*k) {
                write_row(&mut t, k, Some(&encode(v)?))?;
            }
        }
        Ok(!stale.is_empty() || !differ.is_empty())
    }
    let mut lists = std::collections::BTreeSet::new();
    let (z, c) = (&after.zorgaanbieders, &after.oauthclients);
    if rows(tx, (ZORGAANBIEDERS, OVERLAY.zorgaanbieders), z, published)? {
        lists.insert(Zorgaanbiederslijst);
    }
    if rows(tx, (OAUTHCLIENTS, OVERLAY.oauthclients), c, published)? {
        lists.insert(OAuthclientlist);
    }
    let (g, l) = (&after.gegevensdiensten, &after.livegangen);
    if rows(
        tx,
        (GEGEVENSDIENSTEN, OVERLAY.gegevensdiensten),
        g,
        published,
    )? {
        lists.insert(Gegevensdienstnamenlijst);
    }
    if rows(tx, (LIVEGANGEN, OVERLAY.livegangen), l, published)? {
        // As in `write_registry`: a livegang moves offerings and clients.
        lists.insert(Zorgaanbiederslijst);
        lists.insert(OAuthclientlist);
    }
    let mut held = std::collections::BTreeSet::new();
    for row in tx.open_table(WHITELIST)?.iter()? {
        held.insert(row?.0.value().to_string());
    }
    if write_hosts(tx, &held, &after.whitelist, published)? {
        lists.insert(Whitelist);
    }
    let changed = !lists.is_empty();
    if changed {
        mark_written(tx, lists)?;
    }
    Ok(changed)
}

/// The working registry's write count (0 before the first write).
fn generation(meta: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<u64, redb::Error> {
    Ok(read_json::<u64>(meta, META_GENERATION)?.unwrap_or(0))
}

/// A JSON value from the meta table, inside functions that speak redb's error type.
fn read_json<T: for<'a> Deserialize<'a>>(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>, redb::StorageError> {
    match meta.get(key)? {
        Some(v) => serde_json::from_slice(v.value())
            .map(Some)
            .map_err(|e| redb::StorageError::Backend(Box::new(e))),
        None => Ok(None),
    }
}

fn clear_journal(tx: &redb::WriteTransaction) -> Result<(), redb::Error> {
    let mut j = tx.open_table(JOURNAL)?;
    j.retain(|_, _| false)?;
    Ok(())
}

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

/// Who makes a change, and why.
#[derive(Clone, Debug)]
pub struct Who {
    pub operator: String,
    pub reason: Option<String>,
}

/// Longest operator name and reason recorded.
pub const MAX_OPERATOR: usize = 100;
pub const MAX_REASON: usize = 1000;

impl Who {
    /// Operator and reason are recorded line by line: refuse what could forge a line.
    pub fn check(&self) -> Result<(), String> {
        check_recorded(&self.operator, self.reason.as_deref())
    }
}

pub fn check_recorded(operator: &str, reason: Option<&str>) -> Result<(), String> {
    if operator.trim().is_empty() {
        return Err("the operator name is empty (--operator NAME)".into());
    }
    rules::recorded_text("--operator", operator, MAX_OPERATOR)?;
    if let Some(r) = reason {
        rules::recorded_text("--reason", r, MAX_REASON)?;
    }
    Ok(())
}

/// A working table of records open for writing, with its overlay (`None` before anything
/// is published).
type Writing<'t> = (
    redb::Table<'t, &'static str, &'static [u8]>,
    Option<redb::Table<'t, &'static str, &'static [u8]>>,
);

/// A working table open for writing, with its overlay if anything is published.
fn writing<'t>(
    tx: &'t redb::WriteTransaction,
    (working, overlay): (Rows, Rows),
    published: bool,
) -> Result<Writing<'t>, redb::TableError> {
    Ok((
        tx.open_table(working)?,
        published.then(|| tx.open_table(overlay)).transpose()?,
    ))
}

/// Write the rows of `after` that differ from `before` into a working table, keeping
/// their published bytes in its overlay.
fn sync_map<T: Serialize + PartialEq>(
    t: &mut Writing,
    before: &BTreeMap<String, T>,
    after: &BTreeMap<String, T>,
) -> Result<bool, redb::StorageError> {
    let mut changed = false;
    for k in before.keys() {
        if !after.contains_key(k) {
            write_row(t, k, None)?;
            changed = true;
        }
    }
    for (k, v) in after {
        if before.get(k) != Some(v) {
            write_row(t, k, Some(&encode(v)?))?;
            changed = true;
        }
    }
    Ok(changed)
}

/// Write one working row (`None`: remove it), keeping its published bytes in the overlay.
fn write_row(
    (t, overlay): &mut Writing,
    k: &str,
    new: Option<&[u8]>,
) -> Result<(), redb::StorageError> {
    let old = match new {
        Some(v) => t.insert(k, v)?,
        None => t.remove(k)?,
    }
    .map(|v| v.value().to_vec());
    if let Some(o) = overlay.as_mut() {
        keep_published(
            o,
            k,
            old.as_deref().unwrap_or(NOT_PUBLISHED),
            new.unwrap_or(NOT_PUBLISHED),
        )?;
    }
    Ok(())
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, b).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::catalogue::{Status, DEFAULT_CATALOGUE};

    fn demo_store(dir: &Path) -> Store {
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

    fn who() -> Who {
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
        let names: Vec<String> = store
            .read_tx()
            .unwrap()
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_string())
            .collect();
        assert!(names.contains(&META.name().to_string()), "{names:?}");
        assert!(!names.contains(&OLD_META.name().to_string()), "{names:?}");
        assert!(store.catalogue().is_ok() && store.published().unwrap().is_some());
    }

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
        let names: Vec<String> = store
            .read_tx()
            .unwrap()
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_string())
            .collect();
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

    #[test]
    fn validated_elements_are_recorded_per_validator() {
        let dir = tempfile::tempdir().unwrap();
        let store = demo_store(dir.path());
        let (v1, v2) = ([7; 32], [8; 32]);
        assert!(store.validated_elements("z.xsd", &v1).unwrap().is_empty());
        let guard = store.lock_publications();
        let record = |elements: Vec<[u8; 32]>| {
            let mut caches = Caches::default();
            let validator = v1;
            caches.validated.insert(
                "z.xsd",
                ValidatedRecord {
                    validator,
                    elements,
                },
            );
            store.record_caches(&guard, caches).unwrap();
        };
        record(vec![[2; 32], [1; 32], [2; 32]]);
        let known = store.validated_elements("z.xsd", &v1).unwrap();
        assert_eq!(known.len(), 2);
        assert!(known.contains(&[1; 32]) && known.contains(&[2; 32]));
        // Another validator (a changed XSD text, another libxml2) knows nothing.
        assert!(store.validated_elements("z.xsd", &v2).unwrap().is_empty());
        // A record is replaced, not merged.
        record(vec![[3; 32]]);
        let known = store.validated_elements("z.xsd", &v1).unwrap();
        assert_eq!(known.into_iter().collect::<Vec<_>>(), vec![[3; 32]]);
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
}
