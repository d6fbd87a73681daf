//! Table definitions and the codecs of their rows: every redb table of the registry
//! file is declared here, with the JSON records the meta table holds.

use super::*;

pub(super) const ZORGAANBIEDERS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("zorgaanbieders");

pub(super) const OAUTHCLIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("oauthclients");

pub(super) const WHITELIST: TableDefinition<&str, ()> = TableDefinition::new("whitelist");

pub(super) const GEGEVENSDIENSTEN: TableDefinition<&str, &[u8]> =
    TableDefinition::new("gegevensdiensten");

/// Catalogue, published index, floors and flags. Named `meta_v2` since documents became
/// files: a binary from before that reads `meta`, so it refuses a migrated registry
/// instead of serving references as documents or editing without the dirty-list record.
pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta_v2");

/// Where registries written before documents became files keep META (see [`Store::migrate`]).
pub(super) const OLD_META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Published bytes, keyed `<rendition id>#<Volgnummer>` and `…#<Volgnummer>.sig`.
pub(crate) const DOCUMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("documents");

pub(super) const PUBLICATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("publications");

pub(super) const LIVEGANGEN: TableDefinition<&str, &[u8]> = TableDefinition::new("livegangen");

/// One set of registry tables: the working registry (what the operator edits) or, in data
/// directories written before [`OVERLAY`], a whole copy of the registry as last published.
#[derive(Clone, Copy)]
pub(super) struct RegistryTables {
    pub(super) zorgaanbieders: TableDefinition<'static, &'static str, &'static [u8]>,
    pub(super) oauthclients: TableDefinition<'static, &'static str, &'static [u8]>,
    pub(super) gegevensdiensten: TableDefinition<'static, &'static str, &'static [u8]>,
    pub(super) livegangen: TableDefinition<'static, &'static str, &'static [u8]>,
    pub(super) whitelist: TableDefinition<'static, &'static str, ()>,
}

pub(super) const WORKING: RegistryTables = RegistryTables {
    zorgaanbieders: ZORGAANBIEDERS,
    oauthclients: OAUTHCLIENTS,
    gegevensdiensten: GEGEVENSDIENSTEN,
    livegangen: LIVEGANGEN,
    whitelist: WHITELIST,
};

/// The whole published copy that [`Store::open`] turns into [`OVERLAY`] rows, once.
pub(super) const OLD_PUBLISHED: RegistryTables = RegistryTables {
    zorgaanbieders: TableDefinition::new("published_zorgaanbieders"),
    oauthclients: TableDefinition::new("published_oauthclients"),
    gegevensdiensten: TableDefinition::new("published_gegevensdiensten"),
    livegangen: TableDefinition::new("published_livegangen"),
    whitelist: TableDefinition::new("published_whitelist"),
};

pub(super) type Rows = TableDefinition<'static, &'static str, &'static [u8]>;

/// The registry as last published (for `diff`, `discard`, catalogue changes and expiry)
/// is the working registry with, for each row written since that publication, its
/// published bytes put back: one overlay table per working table, holding those bytes
/// (empty: the row was not published; a Whitelist host published: `1`). Kept once
/// something is published; before, the published registry is empty and no edit keeps
/// anything. Publishing what the working tables hold then only empties these tables: at
/// 100k, copying every row into a whole published copy was most of the first
/// publication's commit.
pub(super) struct Overlay {
    pub(super) zorgaanbieders: Rows,
    pub(super) oauthclients: Rows,
    pub(super) gegevensdiensten: Rows,
    pub(super) livegangen: Rows,
    pub(super) whitelist: Rows,
}

impl Overlay {
    pub(super) fn all(&self) -> [Rows; 5] {
        [
            self.zorgaanbieders,
            self.oauthclients,
            self.gegevensdiensten,
            self.livegangen,
            self.whitelist,
        ]
    }
}

pub(super) const OVERLAY: Overlay = Overlay {
    zorgaanbieders: TableDefinition::new("published_overlay_zorgaanbieders"),
    oauthclients: TableDefinition::new("published_overlay_oauthclients"),
    gegevensdiensten: TableDefinition::new("published_overlay_gegevensdiensten"),
    livegangen: TableDefinition::new("published_overlay_livegangen"),
    whitelist: TableDefinition::new("published_overlay_whitelist"),
};

/// A Whitelist host's overlay row: published, or not.
pub(super) const HOST_PUBLISHED: &[u8] = b"1";

pub(super) const NOT_PUBLISHED: &[u8] = b"";

/// Edits since the last publication of the working registry: the pending change set.
pub(super) const JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("journal");

pub(super) const META_CATALOGUE: &str = "catalogue";

pub(super) const META_PUBLISHED: &str = "published";

/// Set once the published documents live in files (see `documents`); absent in data
/// directories written before, which [`Store::open`] migrates.
pub(super) const META_LAYOUT: &str = "documents_in_files";

/// Counts writes to the working registry.
pub(super) const META_GENERATION: &str = "generation";

/// The lists whose tables changed since the last publication of the working registry
/// (see [`Dirty`]); absent until the first publication that writes it (all lists are then
/// taken as changed).
pub(super) const META_DIRTY: &str = "dirty";

/// List → generation of the last write that changed its table. A publication clears what
/// its snapshot included; a write after the snapshot stays. A publication in which only
/// the Gegevensdienstnamenlijst is dirty reads, checks and hashes only the small tables.
pub type Dirty = BTreeMap<ListKind, u64>;

pub(super) fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Corrupt(format!("cannot encode a record: {e}")))
}

/// The number of the last committed publication (0 before the first).
pub(super) fn published_seq(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    e: impl Fn(RowError) -> StoreError,
) -> Result<u64, StoreError> {
    let current: Option<PublishedIndex> = meta
        .get(META_PUBLISHED)
        .map_err(|x| e(x.into()))?
        .map(|v| from_json("published index", v.value()))
        .transpose()?;
    Ok(current.map(|c| c.seq).unwrap_or(0))
}

/// `to_json` inside functions that speak redb's error type.
pub(super) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, RowError> {
    serde_json::to_vec(v).map_err(|e| RowError::Encode(e.to_string()))
}

pub(super) fn from_json<T: for<'a> Deserialize<'a>>(what: &str, b: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// A stored record, in functions that speak redb's error type.
pub(super) fn decode<T: for<'a> Deserialize<'a>>(
    t: Rows,
    key: &str,
    v: &[u8],
) -> Result<T, RowError> {
    serde_json::from_slice(v).map_err(|e| decode_err(t, key, &e))
}

/// The working registry's write count (0 before the first write).
pub(super) fn generation(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<u64, RowError> {
    Ok(read_json::<u64>(meta, META_GENERATION)?.unwrap_or(0))
}

/// A JSON value from the meta table, inside a transaction.
pub(super) fn read_json<T: for<'a> Deserialize<'a>>(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>, RowError> {
    match meta.get(key)? {
        Some(v) => serde_json::from_slice(v.value())
            .map(Some)
            .map_err(|e| RowError::decode(META.name(), key, &e)),
        None => Ok(None),
    }
}
