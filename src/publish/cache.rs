//! What a publication learnt that lets the next one skip work, kept in tables this module
//! defines and owns (the store keeps them without knowing them): which Zorgaanbieder
//! elements an XSD validated, where a large ZAL's gzip file holds each group's block,
//! where a large ZAL holds its elements (and which renderer wrote it), and which content
//! the rules found valid. Facts about bytes and content, true whether or
//! not the publication that learnt them commits.

use crate::registry::store::{open_or_empty, PublicationGuard, Store, StoreError};
use redb::TableDefinition;
use std::collections::{BTreeMap, HashSet};

/// What one publication learnt, replacing earlier records (see `publish::pipeline`).
#[derive(Default)]
pub struct Caches {
    /// Per XSD file.
    pub validated: BTreeMap<&'static str, ValidatedRecord>,
    /// Per rendition: its document's SHA-256 and its encoded gzip block entries.
    pub gzip_blocks: Vec<(String, String, Vec<u8>)>,
    /// What the rule check found valid.
    pub rules_checked: Option<RulesChecked>,
    /// Per rendition: its document's SHA-256 and the encoded places of its Zorgaanbieder
    /// elements (recorded with this renderer's fingerprint).
    pub layouts: Vec<(String, String, Vec<u8>)>,
}

/// Registry content the rules (named by `registry::rules::fingerprint`) found valid: the
/// content hash of its Zorgaanbieders, and the GegevensdienstIds they were checked
/// against (`registry::rules::gegevensdienst_ids`; see `publish::pipeline::plan`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesChecked {
    pub rules: String,
    pub zorgaanbieders: String,
    pub gegevensdiensten: String,
}

/// One row, under [`RULES_KEY`]: the three hashes of a [`RulesChecked`], a line each.
const RULES_CHECKED: TableDefinition<&str, &[u8]> = TableDefinition::new("rules_checked");
const RULES_KEY: &str = "registry";

/// What the last publication's rule check found valid; `None` if nothing is recorded or
/// the record cannot be read (then every row is checked).
pub fn rules_checked(store: &Store) -> Result<Option<RulesChecked>, StoreError> {
    let Some(v) = cached(store, RULES_CHECKED, RULES_KEY)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&v);
    let mut lines = text.split('\n').map(str::to_string);
    Ok(
        match (lines.next(), lines.next(), lines.next(), lines.next()) {
            (Some(rules), Some(zorgaanbieders), Some(gegevensdiensten), None) => {
                Some(RulesChecked {
                    rules,
                    zorgaanbieders,
                    gegevensdiensten,
                })
            }
            _ => None,
        },
    )
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

/// Per rendition: the SHA-256 (hex) of its last large document, the fingerprint (hex) of
/// the renderer that wrote it, then where that document holds each Zorgaanbieder element
/// (see `publish::pipeline::reuse`).
const LAYOUTS: TableDefinition<&str, &[u8]> = TableDefinition::new("element_layouts");

/// One record (`None` before the table exists).
fn cached(
    store: &Store,
    table: TableDefinition<'static, &'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    store.read(|tx| {
        let Some(t) = open_or_empty(tx.open_table(table))? else {
            return Ok(None);
        };
        let v = t.get(key)?;
        Ok(v.map(|v| v.value().to_vec()))
    })
}

/// The elements recorded as validated by `validator` (a SHA-256 naming the XSD text and
/// the validator; a record made by another, or one that cannot be read as hashes, is
/// empty: everything is validated).
pub fn validated_elements(
    store: &Store,
    xsd_file: &str,
    validator: &[u8; 32],
) -> Result<HashSet<[u8; 32]>, StoreError> {
    let Some(v) = cached(store, VALIDATED, xsd_file)? else {
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
    store: &Store,
    rendition: &str,
) -> Result<Option<(bytes::Bytes, Vec<u8>)>, StoreError> {
    let Some(v) = cached(store, GZIP_BLOCKS, rendition)? else {
        return Ok(None);
    };
    let Some(sha) = v.get(..64).and_then(|s| std::str::from_utf8(s).ok()) else {
        return Ok(None);
    };
    if !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    // A file pruned since (its publication did not commit) only means no reuse.
    Ok(store
        .files()
        .map_gzip(sha)
        .ok()
        .map(|gz| (gz, v[64..].to_vec())))
}

/// The last recorded element layout of `rendition`, if its document is `sha256` and this
/// renderer (`render::fingerprint`) wrote it: the encoded places.
pub fn layout(store: &Store, rendition: &str, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(v) = cached(store, LAYOUTS, rendition)? else {
        return Ok(None);
    };
    let renderer = crate::publish::render::fingerprint();
    let fits =
        v.get(..64) == Some(sha256.as_bytes()) && v.get(64..128) == Some(renderer.as_bytes());
    Ok(fits.then(|| v[128..].to_vec()))
}

/// Replace the records a publication made, in one transaction.
pub fn record(store: &Store, _guard: &PublicationGuard, caches: Caches) -> Result<(), StoreError> {
    store.write(|tx| {
        let mut t = tx.open_table(VALIDATED)?;
        for (xsd_file, mut r) in caches.validated {
            let elements = &mut r.elements;
            elements.sort_unstable();
            elements.dedup();
            let mut v = Vec::with_capacity(32 * (elements.len() + 1));
            v.extend_from_slice(&r.validator);
            for h in elements.iter() {
                v.extend_from_slice(h);
            }
            t.insert(xsd_file, v.as_slice())?;
        }
        let mut t = tx.open_table(GZIP_BLOCKS)?;
        for (rendition, sha256, entries) in caches.gzip_blocks {
            let mut v = Vec::with_capacity(64 + entries.len());
            v.extend_from_slice(sha256.as_bytes());
            v.extend_from_slice(&entries);
            t.insert(rendition.as_str(), v.as_slice())?;
        }
        let mut t = tx.open_table(LAYOUTS)?;
        let renderer = crate::publish::render::fingerprint();
        for (rendition, sha256, layout) in caches.layouts {
            let mut v = Vec::with_capacity(128 + layout.len());
            v.extend_from_slice(sha256.as_bytes());
            v.extend_from_slice(renderer.as_bytes());
            v.extend_from_slice(&layout);
            t.insert(rendition.as_str(), v.as_slice())?;
        }
        if let Some(r) = caches.rules_checked {
            let mut t = tx.open_table(RULES_CHECKED)?;
            let v = format!("{}\n{}\n{}", r.rules, r.zorgaanbieders, r.gegevensdiensten);
            t.insert(RULES_KEY, v.as_bytes())?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::catalogue::{Catalogue, DEFAULT_CATALOGUE};

    #[test]
    fn validated_elements_are_recorded_per_validator() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        let store = Store::create(&dir.path().join("r.redb"), &cat).unwrap();
        let (v1, v2) = ([7; 32], [8; 32]);
        assert!(validated_elements(&store, "z.xsd", &v1).unwrap().is_empty());
        let guard = store.lock_publications();
        let put = |elements: Vec<[u8; 32]>| {
            let mut caches = Caches::default();
            let validator = v1;
            caches.validated.insert(
                "z.xsd",
                ValidatedRecord {
                    validator,
                    elements,
                },
            );
            record(&store, &guard, caches).unwrap();
        };
        put(vec![[2; 32], [1; 32], [2; 32]]);
        let known = validated_elements(&store, "z.xsd", &v1).unwrap();
        assert_eq!(known.len(), 2);
        assert!(known.contains(&[1; 32]) && known.contains(&[2; 32]));
        // Another validator (a changed XSD text, another libxml2) knows nothing.
        assert!(validated_elements(&store, "z.xsd", &v2).unwrap().is_empty());
        // A record is replaced, not merged.
        put(vec![[3; 32]]);
        let known = validated_elements(&store, "z.xsd", &v1).unwrap();
        assert_eq!(known.into_iter().collect::<Vec<_>>(), vec![[3; 32]]);
    }
}
