//! Publication history: listing, showing and entry-level diffs between Volgnummers. The
//! audit export and its offline verification are `audit`'s.

use crate::registry::catalogue::Rendition;
use crate::registry::diff;
use crate::registry::model::ListKind;
use crate::registry::publication::{rendition_id, LogEntry};
use crate::registry::store::Store;
use anyhow::{anyhow, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// `history list | show | diff | export` (`history verify` is local: it needs no registry).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum HistoryOp {
    List {
        list: Option<ListKind>,
    },
    Show {
        seq: u64,
    },
    Diff {
        list: ListKind,
        a: u64,
        b: u64,
    },
    Export {
        out: std::path::PathBuf,
        from: Option<u64>,
        to: Option<u64>,
    },
}

impl HistoryOp {
    pub fn apply(self, ctx: &super::Ctx) -> Result<String> {
        match self {
            HistoryOp::List { list: l } => list(ctx.store, l),
            HistoryOp::Show { seq } => show(ctx.store, seq),
            HistoryOp::Diff { list, a, b } => diff_cmd(ctx.store, list, a, b),
            HistoryOp::Export { out, from, to } => {
                super::audit::export(ctx.store, &ctx.publisher()?.key()?, &out, from, to)
            }
        }
    }
}

pub(super) fn doc_path(r: &Rendition, volgnummer: u64) -> String {
    format!(
        "documents/{}/{volgnummer}.xml",
        rendition_id(r).replace('@', "-")
    )
}

/// `history list`
pub fn list(store: &Store, list: Option<ListKind>) -> Result<String> {
    let mut out = String::new();
    for (e, _) in store.log()? {
        if let Some(l) = list {
            if !e.changed.contains(&l) {
                continue;
            }
        }
        let lists: Vec<String> = e
            .lists
            .iter()
            .map(|(l, v)| {
                let mark = if e.changed.contains(l) { "*" } else { "" };
                format!("{}{} {}", l.key(), mark, v.volgnummer)
            })
            .collect();
        writeln!(
            out,
            "#{:<4} {} {:<16} {}  [{}]",
            e.seq,
            e.time,
            e.operator,
            e.reason,
            lists.join(", ")
        )?;
    }
    if out.is_empty() {
        out.push_str("no publications\n");
    }
    Ok(out)
}

fn entry(store: &Store, seq: u64) -> Result<LogEntry> {
    store
        .log()?
        .into_iter()
        .map(|(e, _)| e)
        .find(|e| e.seq == seq)
        .ok_or_else(|| anyhow!("publication #{seq} does not exist"))
}

/// `history show SEQ`
pub fn show(store: &Store, seq: u64) -> Result<String> {
    let e = entry(store, seq)?;
    let mut out = String::new();
    writeln!(
        out,
        "publication #{} at {} by {}",
        e.seq, e.time, e.operator
    )?;
    writeln!(out, "reason: {}", e.reason)?;
    for c in &e.changes {
        writeln!(out, "{}", c.describe())?;
    }
    out.push_str(&super::changeset::volgnummer_table(&e.lists, |l, v| {
        let mark = if e.changed.contains(&l) {
            "changed"
        } else {
            "unchanged"
        };
        format!("{}  {mark}", v.tijdstempel)
    }));
    for d in &e.documents {
        writeln!(
            out,
            "  {} #{} sha256 {}",
            d.rendition, d.volgnummer, d.sha256
        )?;
    }
    writeln!(out, "previous entry sha256 {}", e.prev_sha256)?;
    Ok(out)
}

/// The richest rendition of `list` published at `volgnummer` (release3 over release2).
pub(super) fn rendition_at(log: &[LogEntry], list: ListKind, volgnummer: u64) -> Vec<Rendition> {
    let mut found: BTreeSet<Rendition> = BTreeSet::new();
    for e in log {
        for d in &e.documents {
            if d.rendition.list == list && d.volgnummer == volgnummer {
                found.insert(d.rendition.clone());
            }
        }
    }
    let mut v: Vec<Rendition> = found.into_iter().collect();
    v.sort_by(|a, b| b.version.cmp(&a.version).then(a.cmp(b)));
    v
}

/// A document of the history as a stream, by storage key. The stream fails, as a read
/// error at its end, if its bytes are not those the document was published with.
pub(super) type Open<'a> = &'a dyn Fn(&str) -> Result<Box<dyn std::io::BufRead>>;

/// The registry a document holds; with `keep`, only the entries with those keys.
fn registry_at(
    open: Open,
    r: &Rendition,
    volgnummer: u64,
    keep: Option<&BTreeSet<String>>,
) -> Result<crate::registry::model::Registry> {
    let key = crate::registry::publication::document_key(r, volgnummer);
    let mut input = open(&key)?;
    let bytes = match keep {
        None => {
            let mut v = Vec::new();
            input.read_to_end(&mut v)?;
            v
        }
        Some(keys) => {
            let (bytes, kept) = crate::consume::read::select_entries(input, r.list, keys)
                .map_err(|e| anyhow!("{r} #{volgnummer}: {e}"))?;
            if kept == 0 {
                return Ok(Default::default());
            }
            bytes
        }
    };
    crate::consume::read::registry_of_document(&bytes, r)
        .map_err(|e| anyhow!("{r} #{volgnummer}: {e}"))
}

/// Entry digests of a document (see `consume::read::entry_digests`), read as a stream.
pub(super) fn digests_of(
    open: Open,
    key: &str,
    list: ListKind,
) -> Result<BTreeMap<String, [u8; 32]>> {
    crate::consume::read::entry_digests(open(key)?, list).map_err(|e| anyhow!("{key}: {e}"))
}

/// Entry-level diff of `list` between Volgnummers `a` and `b`. Within one rendition the
/// entries are first compared by the digests of their markup, read as a stream, and only
/// those that differ are read into registries: at 100k Zorgaanbieders a diff of one
/// changed entry reads each document twice as a stream (digests, then the entries that
/// differ) instead of two whole lists into registries.
pub(super) fn diff_between(
    log: &[LogEntry],
    open: Open,
    list: ListKind,
    a: u64,
    b: u64,
) -> Result<(Rendition, diff::EntryDiff, String)> {
    let ra = rendition_at(log, list, a);
    let rb = rendition_at(log, list, b);
    let r = ra
        .iter()
        .find(|r| rb.contains(r))
        .or_else(|| ra.first())
        .ok_or_else(|| anyhow!("{list} Volgnummer {a} was never published"))?
        .clone();
    let rb_r = if rb.contains(&r) {
        r.clone()
    } else {
        rb.first()
            .ok_or_else(|| anyhow!("{list} Volgnummer {b} was never published"))?
            .clone()
    };
    let (old, new) = registries_between(open, &r, a, &rb_r, b)?;
    let d = diff::diff(&diff::entries(&old, &r), &diff::entries(&new, &r));
    let text = diff::describe(&r, &old, &new);
    Ok((r, d, text))
}

/// The registries of two documents to compare. Of one rendition, only the entries whose
/// markup differs (digests compared as the documents stream by); the others are the
/// same on both sides and would add nothing to a diff.
fn registries_between(
    open: Open,
    ra: &Rendition,
    a: u64,
    rb: &Rendition,
    b: u64,
) -> Result<(
    crate::registry::model::Registry,
    crate::registry::model::Registry,
)> {
    if ra != rb {
        return Ok((
            registry_at(open, ra, a, None)?,
            registry_at(open, rb, b, None)?,
        ));
    }
    use crate::registry::publication::document_key;
    let da = digests_of(open, &document_key(ra, a), ra.list)?;
    let db = digests_of(open, &document_key(rb, b), rb.list)?;
    let differ: BTreeSet<String> = da
        .iter()
        .filter(|(k, d)| db.get(*k) != Some(*d))
        .map(|(k, _)| k.clone())
        .chain(db.keys().filter(|k| !da.contains_key(*k)).cloned())
        .collect();
    Ok((
        registry_at(open, ra, a, Some(&differ))?,
        registry_at(open, rb, b, Some(&differ))?,
    ))
}

/// A document of the store as a stream (checked against its hash as it ends).
pub(super) fn store_open(store: &Store) -> impl Fn(&str) -> Result<Box<dyn std::io::BufRead>> + '_ {
    move |k: &str| {
        let (_, r) = store
            .document_reader(k)?
            .ok_or_else(|| anyhow!("document {k} is missing"))?;
        Ok(Box::new(std::io::BufReader::with_capacity(1 << 16, r)) as Box<dyn std::io::BufRead>)
    }
}

/// `history diff --list L A B`
pub fn diff_cmd(store: &Store, list: ListKind, a: u64, b: u64) -> Result<String> {
    let log: Vec<LogEntry> = store.log()?.into_iter().map(|(e, _)| e).collect();
    let (r, d, text) = diff_between(&log, &store_open(store), list, a, b)?;
    if d.is_empty() {
        return Ok(format!(
            "{r}: Volgnummer {a} and {b} have the same entries\n"
        ));
    }
    Ok(format!("{list} Volgnummer {a} -> {b}\n{text}"))
}

#[cfg(test)]
mod tests {
    /// Reading only the entries that differ says exactly what reading both whole
    /// documents says, for every list and rendition, and leaves out the rest.
    #[test]
    fn a_diff_of_one_rendition_reads_only_what_differs_and_says_the_same() {
        use super::{registries_between, registry_at};
        use crate::publish::render::{render, Header};
        use crate::registry::catalogue::{Catalogue, DEFAULT_CATALOGUE};
        use crate::registry::diff;
        use crate::registry::publication::document_key;
        use std::collections::BTreeMap;
        let old = crate::consume::read::demo_registry();
        let mut new = old.clone();
        let host = new.whitelist.iter().next().unwrap().clone();
        new.whitelist.remove(&host);
        new.whitelist.insert("nieuw.voorbeeld.nl".into());
        let first = new.zorgaanbieders.keys().next().unwrap().clone();
        new.zorgaanbieders.remove(&first);
        for z in new.zorgaanbieders.values_mut().take(1) {
            for iv in &mut z.interfaceversies {
                for g in &mut iv.gegevensdiensten {
                    g.token_endpointuri = "https://nieuw.voorbeeld.nl/token".into();
                }
            }
        }
        for c in new.oauthclients.values_mut().take(1) {
            c.oauthclient_organisatienaam = "Nieuwe naam & co".into();
        }
        for g in new.gegevensdiensten.values_mut().take(1) {
            g.weergavenaam = "Andere naam".into();
        }
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        for r in cat.renditions() {
            let mut docs = BTreeMap::new();
            for (v, reg) in [(1, &old), (2, &new), (3, &new)] {
                let h = Header {
                    volgnummer: v,
                    tijdstempel: format!("2026-01-0{v}T00:00:00Z"),
                };
                docs.insert(document_key(&r, v), render(reg, &r, &h).unwrap());
            }
            let open = |k: &str| -> anyhow::Result<Box<dyn std::io::BufRead>> {
                Ok(Box::new(std::io::Cursor::new(docs[k].clone())))
            };
            let (whole_a, whole_b) = (
                registry_at(&open, &r, 1, None).unwrap(),
                registry_at(&open, &r, 2, None).unwrap(),
            );
            let (part_a, part_b) = registries_between(&open, &r, 1, &r, 2).unwrap();
            let said = diff::describe(&r, &whole_a, &whole_b);
            assert!(!said.is_empty(), "{r}: the test changes every list");
            assert_eq!(diff::describe(&r, &part_a, &part_b), said, "{r}");
            assert_eq!(
                diff::diff(&diff::entries(&part_a, &r), &diff::entries(&part_b, &r)),
                diff::diff(&diff::entries(&whole_a, &r), &diff::entries(&whole_b, &r)),
                "{r}"
            );
            let n = |reg: &crate::registry::model::Registry| diff::entries(reg, &r).len();
            assert!(
                n(&part_a) < n(&whole_a) || n(&whole_a) <= 2,
                "{r}: only what differs"
            );
            // The same entries: nothing read into registries.
            let (same_a, same_b) = registries_between(&open, &r, 2, &r, 3).unwrap();
            assert_eq!((n(&same_a), n(&same_b)), (0, 0), "{r}");
        }
    }
}
