//! The deltas a publication made, kept in three tables this module defines and owns (the
//! store keeps them without knowing them): each delta by its SHA-256, each rendition's
//! chain of deltas leading to its current document, and the session id heads carry.
//!
//! Retention follows the RRDP publication-server practice: a delta is kept while it is
//! among the newest [`KEEP_STEPS`] of its rendition or younger than [`KEEP_FOR`], and only
//! while the chain up to it is no larger than the current document (a consumer further
//! behind takes the document whole). A publication whose delta could not be made breaks
//! the chain: older deltas no longer lead to the current document and go.

use super::delta::Delta;
use crate::registry::store::{open_or_empty, RowError, Store, StoreError};
use redb::{ReadableTable, TableDefinition, TableHandle};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// Deltas by the SHA-256 (hex) of their encoded bytes.
const DELTAS: TableDefinition<&str, &[u8]> = TableDefinition::new("deltas");
/// Per rendition id: its chain, newest first (JSON of `Vec<Link>`).
const CHAINS: TableDefinition<&str, &[u8]> = TableDefinition::new("delta_chains");
/// `session`: the session id.
const META: TableDefinition<&str, &str> = TableDefinition::new("distribution");

pub const KEEP_STEPS: usize = 100;
pub const KEEP_FOR: i64 = 24 * 60 * 60;

/// One delta of a chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub from: u64,
    pub to: u64,
    pub sha256: String,
    pub size: u64,
    /// Unix time it was made.
    pub made: i64,
}

/// What a publication made for one rendition: its delta from the previous document, or
/// `None` when it has none (the chain then starts again).
pub struct Made {
    pub rendition: String,
    pub delta: Option<Delta>,
    /// The new document's size: the chain is kept no larger.
    pub document_size: u64,
}

/// Record what a publication made, at Unix time `now`, and drop what retention no longer
/// keeps.
pub fn record(store: &Store, made: Vec<Made>, now: i64) -> Result<(), StoreError> {
    if made.is_empty() {
        return Ok(());
    }
    store.write(|tx| {
        let mut chains = tx.open_table(CHAINS)?;
        let mut deltas = tx.open_table(DELTAS)?;
        for m in made {
            let mut chain: Vec<Link> = match chains.get(m.rendition.as_str())? {
                Some(v) => serde_json::from_slice(v.value())
                    .map_err(|e| RowError::decode(CHAINS.name(), &m.rendition, &e))?,
                None => Vec::new(),
            };
            let before: HashSet<String> = chain.iter().map(|l| l.sha256.clone()).collect();
            match m.delta {
                None => chain.clear(),
                Some(d) => {
                    // A chain continues only from the document it led to.
                    if chain.first().map(|l| l.to) != Some(d.from.0) {
                        chain.clear();
                    }
                    let bytes = d.encode();
                    let sha = crate::digest::sha256_hex(&bytes);
                    deltas.insert(sha.as_str(), bytes.as_slice())?;
                    chain.insert(
                        0,
                        Link {
                            from: d.from.0,
                            to: d.to.0,
                            sha256: sha,
                            size: bytes.len() as u64,
                            made: now,
                        },
                    );
                }
            }
            let mut total = 0;
            let kept: Vec<Link> = chain
                .into_iter()
                .enumerate()
                .take_while(|(i, l)| {
                    total += l.size;
                    (*i < KEEP_STEPS || now - l.made <= KEEP_FOR) && total <= m.document_size
                })
                .map(|(_, l)| l)
                .collect();
            let now_kept: HashSet<&str> = kept.iter().map(|l| l.sha256.as_str()).collect();
            for gone in before.iter().filter(|s| !now_kept.contains(s.as_str())) {
                deltas.remove(gone.as_str())?;
            }
            let json = serde_json::to_vec(&kept).map_err(|e| RowError::Encode(e.to_string()))?;
            chains.insert(m.rendition.as_str(), json.as_slice())?;
        }
        Ok(())
    })
}

/// Every rendition's chain, newest first, by rendition id.
pub fn chains(store: &Store) -> Result<BTreeMap<String, Vec<Link>>, StoreError> {
    store.records(CHAINS)
}

/// A delta's encoded bytes.
pub fn delta(store: &Store, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
    store.read(|tx| {
        let Some(t) = open_or_empty(tx.open_table(DELTAS))? else {
            return Ok(None);
        };
        Ok(t.get(sha256)?.map(|v| v.value().to_vec()))
    })
}

/// The session id heads carry: made (128 random bits) the first time it is asked for.
pub fn session(store: &Store) -> Result<String, StoreError> {
    let found = store.read(|tx| {
        let Some(t) = open_or_empty(tx.open_table(META))? else {
            return Ok(None);
        };
        Ok(t.get("session")?.map(|v| v.value().to_string()))
    })?;
    if let Some(s) = found {
        return Ok(s);
    }
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| StoreError::Refused("no random bytes for a session id".into()))?;
    let made = crate::digest::hex(&bytes);
    store.write(|tx| {
        let mut t = tx.open_table(META)?;
        // Another process may have made one meanwhile: the first one stays.
        let existing = t.get("session")?.map(|v| v.value().to_string());
        match existing {
            Some(s) => Ok(s),
            None => {
                t.insert("session", made.as_str())?;
                Ok(made)
            }
        }
    })
}

/// The index a head names for one rendition: its chain, newest first, in a small text
/// form a consumer reads without a parser.
///
/// ```text
/// stelselnode-deltas/1
/// rendition <id>
/// <from> <to> <sha256> <size>
/// ```
pub fn index_document(rendition: &str, chain: &[Link]) -> Vec<u8> {
    let mut o = format!("stelselnode-deltas/1\nrendition {rendition}\n");
    for l in chain {
        o.push_str(&format!("{} {} {} {}\n", l.from, l.to, l.sha256, l.size));
    }
    o.into_bytes()
}

/// An index read back: `(from, to, sha256, size)`, newest first. At most `max` links.
pub fn read_index(bytes: &[u8], max: usize) -> Result<Vec<(u64, u64, String, u64)>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the delta index is not UTF-8")?;
    let mut lines = text.lines();
    if lines.next() != Some("stelselnode-deltas/1") {
        return Err("the delta index does not start with stelselnode-deltas/1".into());
    }
    if !lines.next().is_some_and(|l| l.starts_with("rendition ")) {
        return Err("the delta index names no rendition".into());
    }
    let mut out = Vec::new();
    for line in lines {
        if out.len() == max {
            return Err(format!("the delta index has more than {max} deltas"));
        }
        let f: Vec<&str> = line.split(' ').collect();
        let n = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| format!("'{}' is not a number", crate::clip::clip(s)))
        };
        match f.as_slice() {
            [from, to, sha, size]
                if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                out.push((n(from)?, n(to)?, sha.to_string(), n(size)?))
            }
            _ => {
                return Err(format!(
                    "the delta index line '{}' is not 'from to sha256 size'",
                    crate::clip::clip(line)
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableTableMetadata;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let cat = crate::registry::catalogue::Catalogue::parse(
            crate::registry::catalogue::DEFAULT_CATALOGUE,
        )
        .unwrap();
        let s = Store::create(&dir.path().join("r.redb"), &cat).unwrap();
        (dir, s)
    }

    fn delta(from: u64, filler: usize) -> Delta {
        Delta {
            rendition: "whitelist/release2".into(),
            from: (from, "a".repeat(64)),
            to: (from + 1, "b".repeat(64)),
            to_size: 10,
            head: vec![b'h'; filler],
            tail: Vec::new(),
            removed: Vec::new(),
            puts: Vec::new(),
        }
    }

    fn made(d: Option<Delta>, size: u64) -> Vec<Made> {
        vec![Made {
            rendition: "whitelist/release2".into(),
            delta: d,
            document_size: size,
        }]
    }

    #[test]
    fn chains_keep_recent_steps_within_the_document_size_and_restart_on_a_gap() {
        let (_d, s) = store();
        let day = KEEP_FOR + 1;
        // 120 steps, each a day apart: the newest 100 are kept.
        for v in 1..=120u64 {
            record(&s, made(Some(delta(v, 10)), 1 << 30), v as i64 * day).unwrap();
        }
        let c = &chains(&s).unwrap()["whitelist/release2"];
        assert_eq!(c.len(), KEEP_STEPS);
        assert_eq!((c[0].from, c[0].to), (120, 121));
        assert!(super::delta(&s, &c[99].sha256).unwrap().is_some());
        // Within a day, more are kept; the total stays within the document's size.
        let size = c[0].size;
        record(&s, made(Some(delta(121, 10)), size * 3), 200 * day).unwrap();
        let c = &chains(&s).unwrap()["whitelist/release2"];
        assert_eq!(c.len(), 3);
        // A delta that does not continue the chain starts it again; none empties it.
        record(&s, made(Some(delta(500, 10)), 1 << 30), 201 * day).unwrap();
        assert_eq!(chains(&s).unwrap()["whitelist/release2"].len(), 1);
        record(&s, made(None, 1 << 30), 202 * day).unwrap();
        assert!(chains(&s).unwrap()["whitelist/release2"].is_empty());
        // Every delta no chain names is gone.
        let names: usize = s.read(|tx| Ok(tx.open_table(DELTAS)?.len()?)).unwrap() as usize;
        assert_eq!(names, 0);
    }

    #[test]
    fn the_session_is_made_once_and_the_index_reads_back() {
        let (_d, s) = store();
        let a = session(&s).unwrap();
        assert_eq!(a.len(), 32);
        assert_eq!(session(&s).unwrap(), a);
        let chain = vec![Link {
            from: 4,
            to: 5,
            sha256: "c".repeat(64),
            size: 99,
            made: 0,
        }];
        let doc = index_document("whitelist/release2", &chain);
        assert_eq!(
            read_index(&doc, 10).unwrap(),
            vec![(4, 5, "c".repeat(64), 99)]
        );
        assert!(read_index(&doc, 0).is_err());
        assert!(read_index(b"stelselnode-deltas/1\nrendition x\n1 2 zz 3\n", 9).is_err());
    }
}
