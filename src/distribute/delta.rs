//! A delta: how one published document of a rendition becomes the next, byte for byte.
//! It carries the new head and tail whole (the Volgnummer, the Tijdstempel and an enveloped
//! signature change with every publication), the entries added or changed with their exact
//! bytes and the entry they follow, and the keys removed. Applied to the previous
//! document's bytes it gives exactly the new document's bytes, which the consumer checks
//! against the SHA-256 a signed head names.
//!
//! The encoding is binary-safe and small: a line per item, each byte string preceded by
//! its length.
//!
//! ```text
//! stelselnode-delta/1
//! rendition zorgaanbiederslijst-release3
//! from 11 <sha256 of the previous document>
//! to 12 <sha256 of the new document> <its size>
//! head <n>            n bytes follow, then a line break
//! tail <n>
//! remove <n>          the key
//! put <k> <a|-> <n>   the key, the key it follows ("-": first), the entry's bytes
//! end
//! ```

use super::split::{split, Split};
use crate::registry::model::ListKind;
use std::collections::{HashMap, HashSet};

const MAGIC: &[u8] = b"stelselnode-delta/1\n";

/// One entry added or changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Put {
    pub key: Vec<u8>,
    /// The entry it follows in the new document; `None`: it is the first.
    pub after: Option<Vec<u8>>,
    pub bytes: Vec<u8>,
}

/// A document as it was before (`from`) and after (`to`): Volgnummer and SHA-256 (hex).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delta {
    pub rendition: String,
    pub from: (u64, String),
    pub to: (u64, String),
    pub to_size: u64,
    pub head: Vec<u8>,
    pub tail: Vec<u8>,
    pub removed: Vec<Vec<u8>>,
    pub puts: Vec<Put>,
}

impl Delta {
    /// From `old` to `new` (document, Volgnummer, SHA-256), whose head and tail are at
    /// `ends`.
    fn between(
        rendition: &str,
        old: (&[u8], u64, &str),
        new: (&[u8], u64, &str),
        ends: (std::ops::Range<usize>, std::ops::Range<usize>),
        removed: Vec<Vec<u8>>,
        puts: Vec<Put>,
    ) -> Delta {
        Delta {
            rendition: rendition.to_string(),
            from: (old.1, old.2.to_string()),
            to: (new.1, new.2.to_string()),
            to_size: new.0.len() as u64,
            head: new.0[ends.0].to_vec(),
            tail: new.0[ends.1].to_vec(),
            removed,
            puts,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeltaError {
    #[error("delta is malformed: {0}")]
    Malformed(String),
    #[error("delta does not fit the previous document: {0}")]
    Misfit(String),
    #[error("writing the document: {0}")]
    Io(String),
}

fn malformed(what: impl Into<String>) -> DeltaError {
    DeltaError::Malformed(what.into())
}

/// The delta from `old` to `new`, documents of `list`, or `None` when there is none to
/// make (a document not in the rendered form, no entries, an entry moved) or it would be
/// no smaller than `new` itself. Checked by applying it before it is returned.
pub fn make(
    list: ListKind,
    rendition: &str,
    old: (&[u8], u64, &str),
    new: (&[u8], u64, &str),
) -> Option<Delta> {
    let (old_doc, new_doc) = (old.0, new.0);
    let (a, b) = (split(old_doc, list)?, split(new_doc, list)?);
    let before: HashMap<&[u8], &[u8]> = a
        .entries
        .iter()
        .map(|e| (e.key, &old_doc[e.range.clone()]))
        .collect();
    let now: HashSet<&[u8]> = b.entries.iter().map(|e| e.key).collect();
    let removed = a
        .entries
        .iter()
        .filter(|e| !now.contains(e.key))
        .map(|e| e.key.to_vec())
        .collect();
    let mut puts = Vec::new();
    let mut prev: Option<&[u8]> = None;
    for e in &b.entries {
        let bytes = &new_doc[e.range.clone()];
        if before.get(e.key) != Some(&bytes) {
            puts.push(Put {
                key: e.key.to_vec(),
                after: prev.map(<[u8]>::to_vec),
                bytes: bytes.to_vec(),
            });
        }
        prev = Some(e.key);
    }
    let d = Delta::between(rendition, old, new, (b.head, b.tail), removed, puts);
    // Unchanged entries are byte-equal by the comparison above, the head and tail are
    // copied: the delta rebuilds `new` exactly when applying it puts the keys in `new`'s
    // order. Checked on the keys alone (no 250 MB copy); an entry that moved (none do: the
    // order is the registry's) means no delta, and the consumer takes the whole document.
    let order: Vec<&[u8]> = b.entries.iter().map(|e| e.key).collect();
    let fits = applied_order(&a, &d).is_some_and(|o| o == order);
    (fits && encoded_len(&d) < new_doc.len()).then_some(d)
}

/// [`make`] for a new document whose writer copied entries from the old one: `copied[i]`
/// is the index of the old entry the new one's `i`-th entry is a byte-for-byte copy of.
/// Only the entries not copied are compared (a few, when few changed), and the order is
/// checked on indices, so the cost follows the change, not the document's size.
pub fn make_copied(
    rendition: &str,
    (old, a): ((&[u8], u64, &str), Split),
    (new, b): ((&[u8], u64, &str), Split),
    copied: &[Option<usize>],
) -> Option<Delta> {
    let (old_doc, new_doc) = (old.0, new.0);
    if copied.len() != b.entries.len() {
        return None;
    }
    let mut kept = vec![false; a.entries.len()];
    for &i in copied.iter().flatten() {
        // Each old entry is copied at most once.
        if std::mem::replace(kept.get_mut(i)?, true) {
            return None;
        }
    }
    // The old entries not copied (changed or removed), by key; the new ones not copied.
    let rest: HashMap<&[u8], usize> = a
        .entries
        .iter()
        .enumerate()
        .filter(|(i, _)| !kept[*i])
        .map(|(i, e)| (e.key, i))
        .collect();
    let fresh: HashSet<&[u8]> = b
        .entries
        .iter()
        .zip(copied)
        .filter(|(_, c)| c.is_none())
        .map(|(e, _)| e.key)
        .collect();
    let mut removed_at = vec![false; a.entries.len()];
    let mut gone: Vec<(usize, &[u8])> = rest
        .iter()
        .filter(|(key, _)| !fresh.contains(*key))
        .map(|(&key, &i)| (i, key))
        .collect();
    gone.sort_unstable();
    for &(i, _) in &gone {
        removed_at[i] = true;
    }
    let removed = gone.into_iter().map(|(_, key)| key.to_vec()).collect();
    // What `apply` does, on indices: the old entries not removed, in order, each copied
    // or replaced at its place; an entry the old document lacks goes after the one before
    // it. The new document must be exactly that.
    let mut puts = Vec::new();
    let mut j = 0;
    for (i, e) in b.entries.iter().enumerate() {
        while removed_at.get(j) == Some(&true) {
            j += 1;
        }
        let at_old = copied[i].or_else(|| rest.get(e.key).copied());
        match at_old {
            Some(k) if k == j => j += 1,
            Some(_) => return None, // moved
            None => {}
        }
        let bytes = &new_doc[e.range.clone()];
        let same = copied[i].is_some()
            || at_old.is_some_and(|k| old_doc.get(a.entries[k].range.clone()) == Some(bytes));
        if !same {
            puts.push(Put {
                key: e.key.to_vec(),
                after: i.checked_sub(1).map(|p| b.entries[p].key.to_vec()),
                bytes: bytes.to_vec(),
            });
        }
    }
    while removed_at.get(j) == Some(&true) {
        j += 1;
    }
    if j != a.entries.len() {
        return None;
    }
    let d = Delta::between(rendition, old, new, (b.head, b.tail), removed, puts);
    (encoded_len(&d) < new_doc.len()).then_some(d)
}

/// The keys, in order, that applying `d` to a document split as `old` gives; `None` if
/// it does not apply.
fn applied_order<'a>(old: &super::split::Split<'a>, d: &'a Delta) -> Option<Vec<&'a [u8]>> {
    let old_keys: HashSet<&[u8]> = old.entries.iter().map(|e| e.key).collect();
    let removed: HashSet<&[u8]> = d.removed.iter().map(Vec::as_slice).collect();
    let mut inserted: HashMap<Option<&[u8]>, &[u8]> = HashMap::new();
    for p in d
        .puts
        .iter()
        .filter(|p| !old_keys.contains(p.key.as_slice()))
    {
        if inserted.insert(p.after.as_deref(), &p.key).is_some() {
            return None;
        }
    }
    let mut out = Vec::with_capacity(old.entries.len() + inserted.len());
    let chain = |out: &mut Vec<&'a [u8]>, mut after: Option<&'a [u8]>| {
        while let Some(k) = inserted.get(&after) {
            out.push(*k);
            after = Some(*k);
        }
    };
    chain(&mut out, None);
    for e in &old.entries {
        if removed.contains(e.key) {
            continue;
        }
        out.push(e.key);
        chain(&mut out, Some(e.key));
    }
    Some(out)
}

/// The length of `d.encode()`, without encoding it.
fn encoded_len(d: &Delta) -> usize {
    d.head.len()
        + d.tail.len()
        + d.removed.iter().map(|k| k.len() + 16).sum::<usize>()
        + d.puts
            .iter()
            .map(|p| p.key.len() + p.after.as_ref().map_or(0, Vec::len) + p.bytes.len() + 32)
            .sum::<usize>()
        + 256
}

/// `old` with `d` applied.
pub fn apply(old: &[u8], list: ListKind, d: &Delta) -> Result<Vec<u8>, DeltaError> {
    let mut out = Vec::with_capacity(usize::try_from(d.to_size).unwrap_or(0).min(1 << 30));
    apply_into(old, list, d, &mut |piece| {
        out.extend_from_slice(piece);
        Ok(())
    })?;
    Ok(out)
}

/// `old` with `d` applied, handed to `sink` in pieces, in order: unchanged runs of
/// entries as one piece each, so a large document streams to a file (and a hash) without
/// being put together in memory. On `Err`, what `sink` was given is to be thrown away.
pub fn apply_into<'a>(
    old: &'a [u8],
    list: ListKind,
    d: &'a Delta,
    sink: &mut dyn FnMut(&'a [u8]) -> std::io::Result<()>,
) -> Result<(), DeltaError> {
    let misfit = |w: String| DeltaError::Misfit(w);
    let s = split(old, list)
        .ok_or_else(|| misfit("the previous document is not in the rendered form".into()))?;
    let old_keys: HashSet<&[u8]> = s.entries.iter().map(|e| e.key).collect();
    let removed: HashSet<&[u8]> = d.removed.iter().map(Vec::as_slice).collect();
    if let Some(k) = removed.iter().find(|k| !old_keys.contains(*k)) {
        return Err(misfit(format!(
            "it removes '{}', which is not there",
            String::from_utf8_lossy(k)
        )));
    }
    let mut replaced: HashMap<&'a [u8], &'a [u8]> = HashMap::new();
    // An added entry is found by the one it follows; each entry has one successor.
    let mut inserted: HashMap<Option<&'a [u8]>, &'a Put> = HashMap::new();
    for p in &d.puts {
        if old_keys.contains(p.key.as_slice()) {
            if removed.contains(p.key.as_slice()) {
                return Err(malformed("an entry both removed and changed"));
            }
            replaced.insert(&p.key, &p.bytes);
        } else if inserted.insert(p.after.as_deref(), p).is_some() {
            return Err(malformed("two entries follow the same entry"));
        }
    }
    let io = |e: std::io::Error| DeltaError::Io(e.to_string());
    // A run of unchanged entries of `old`, not yet handed on.
    let mut run: std::ops::Range<usize> = 0..0;
    let flush = |sink: &mut dyn FnMut(&'a [u8]) -> std::io::Result<()>,
                 run: &mut std::ops::Range<usize>|
     -> Result<(), DeltaError> {
        if run.start < run.end {
            sink(&old[run.clone()]).map_err(io)?;
        }
        *run = 0..0;
        Ok(())
    };
    sink(&d.head).map_err(io)?;
    let mut added = 0;
    let mut chain = |sink: &mut dyn FnMut(&'a [u8]) -> std::io::Result<()>,
                     mut after: Option<&'a [u8]>|
     -> Result<(), DeltaError> {
        while let Some(p) = inserted.get(&after) {
            sink(&p.bytes).map_err(io)?;
            added += 1;
            after = Some(p.key.as_slice());
        }
        Ok(())
    };
    chain(sink, None)?;
    for e in &s.entries {
        if removed.contains(e.key) {
            continue;
        }
        match replaced.get(e.key) {
            Some(b) => {
                flush(sink, &mut run)?;
                sink(b).map_err(io)?;
            }
            None if run.end == e.range.start && run.start < run.end => run.end = e.range.end,
            None => {
                flush(sink, &mut run)?;
                run = e.range.clone();
            }
        }
        if inserted.contains_key(&Some(e.key)) {
            flush(sink, &mut run)?;
            chain(sink, Some(e.key))?;
        }
    }
    flush(sink, &mut run)?;
    if added != inserted.len() {
        return Err(misfit(
            "an added entry follows one that is not in the new document".into(),
        ));
    }
    sink(&d.tail).map_err(io)?;
    Ok(())
}

impl Delta {
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Vec::with_capacity(
            self.head.len()
                + self.tail.len()
                + self.puts.iter().map(|p| p.bytes.len() + 64).sum::<usize>()
                + 256,
        );
        o.extend_from_slice(MAGIC);
        o.extend_from_slice(format!("rendition {}\n", self.rendition).as_bytes());
        o.extend_from_slice(format!("from {} {}\n", self.from.0, self.from.1).as_bytes());
        o.extend_from_slice(
            format!("to {} {} {}\n", self.to.0, self.to.1, self.to_size).as_bytes(),
        );
        let bytes = |o: &mut Vec<u8>, tag: &str, b: &[u8]| {
            o.extend_from_slice(format!("{tag} {}\n", b.len()).as_bytes());
            o.extend_from_slice(b);
            o.push(b'\n');
        };
        bytes(&mut o, "head", &self.head);
        bytes(&mut o, "tail", &self.tail);
        for k in &self.removed {
            bytes(&mut o, "remove", k);
        }
        for p in &self.puts {
            let after = p
                .after
                .as_ref()
                .map(|a| a.len().to_string())
                .unwrap_or_else(|| "-".into());
            o.extend_from_slice(
                format!("put {} {after} {}\n", p.key.len(), p.bytes.len()).as_bytes(),
            );
            o.extend_from_slice(&p.key);
            if let Some(a) = &p.after {
                o.extend_from_slice(a);
            }
            o.extend_from_slice(&p.bytes);
            o.push(b'\n');
        }
        o.extend_from_slice(b"end\n");
        o
    }

    /// Read a delta; every length is checked against what is left, so no input makes it
    /// allocate more than the input's size.
    pub fn decode(input: &[u8]) -> Result<Delta, DeltaError> {
        let mut r = Reader { rest: input };
        if !r.rest.starts_with(MAGIC) {
            return Err(malformed("it does not start with stelselnode-delta/1"));
        }
        r.rest = &r.rest[MAGIC.len()..];
        let rendition = r
            .line()?
            .strip_prefix("rendition ")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| malformed("expected 'rendition'"))?
            .to_string();
        let from = r.fields("from", 2)?;
        let to = r.fields("to", 3)?;
        let head = r.section("head")?;
        let tail = r.section("tail")?;
        let mut d = Delta {
            rendition,
            from: (number(&from[0])?, hash(&from[1])?),
            to: (number(&to[0])?, hash(&to[1])?),
            to_size: number(&to[2])?,
            head,
            tail,
            removed: Vec::new(),
            puts: Vec::new(),
        };
        loop {
            let line = r.line()?;
            let mut words = line.split(' ');
            match words.next() {
                Some("end") if r.rest.is_empty() => return Ok(d),
                Some("end") => return Err(malformed("bytes after its end")),
                Some("remove") => {
                    let n = number(words.next().unwrap_or(""))?;
                    d.removed.push(r.take(n)?.to_vec());
                    r.newline()?;
                }
                Some("put") => {
                    let k = number(words.next().unwrap_or(""))?;
                    let a = words.next().unwrap_or("");
                    let n = number(words.next().unwrap_or(""))?;
                    let key = r.take(k)?.to_vec();
                    let after = match a {
                        "-" => None,
                        a => Some(r.take(number(a)?)?.to_vec()),
                    };
                    let bytes = r.take(n)?.to_vec();
                    r.newline()?;
                    d.puts.push(Put { key, after, bytes });
                }
                _ => {
                    return Err(malformed(format!(
                        "unknown line '{}'",
                        crate::clip::clip(&line)
                    )))
                }
            }
        }
    }
}

fn number(s: &str) -> Result<u64, DeltaError> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(format!(
            "'{}' is not a number",
            crate::clip::clip(s)
        )));
    }
    s.parse().map_err(|_| malformed("a number out of range"))
}

fn hash(s: &str) -> Result<String, DeltaError> {
    if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(malformed(format!(
            "'{}' is not a SHA-256",
            crate::clip::clip(s)
        )));
    }
    Ok(s.to_string())
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn line(&mut self) -> Result<String, DeltaError> {
        let n = memchr::memchr(b'\n', &self.rest[..self.rest.len().min(512)])
            .ok_or_else(|| malformed("a line is missing or too long"))?;
        let line = std::str::from_utf8(&self.rest[..n])
            .map_err(|_| malformed("a line is not UTF-8"))?
            .to_string();
        self.rest = &self.rest[n + 1..];
        Ok(line)
    }

    fn fields(&mut self, tag: &str, n: usize) -> Result<Vec<String>, DeltaError> {
        let line = self.line()?;
        let mut words = line.split(' ');
        if words.next() != Some(tag) {
            return Err(malformed(format!("expected '{tag}'")));
        }
        let v: Vec<String> = words.map(str::to_string).collect();
        if v.len() != n {
            return Err(malformed(format!("'{tag}' needs {n} fields")));
        }
        Ok(v)
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], DeltaError> {
        let n = usize::try_from(n).map_err(|_| malformed("a length out of range"))?;
        if n > self.rest.len() {
            return Err(malformed("a length beyond the end"));
        }
        let (a, b) = self.rest.split_at(n);
        self.rest = b;
        Ok(a)
    }

    fn newline(&mut self) -> Result<(), DeltaError> {
        match self.take(1)? {
            b"\n" => Ok(()),
            _ => Err(malformed("a section does not end its line")),
        }
    }

    fn section(&mut self, tag: &str) -> Result<Vec<u8>, DeltaError> {
        let n = number(&self.fields(tag, 1)?[0])?;
        let b = self.take(n)?.to_vec();
        self.newline()?;
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::render::{render, Header};
    use crate::registry::catalogue::{Catalogue, DEFAULT_CATALOGUE};

    fn header(v: u64) -> Header {
        Header {
            volgnummer: v,
            tijdstempel: format!("2026-01-0{v}T00:00:00Z"),
        }
    }

    #[test]
    fn a_delta_turns_the_old_document_into_the_new_one_and_survives_encoding() {
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        let reg = crate::consume::read::demo_registry();
        let mut next = reg.clone();
        // One changed, one removed, two added (one first, one last).
        let first = next.zorgaanbieders.keys().next().unwrap().clone();
        let last = next.zorgaanbieders.keys().last().unwrap().clone();
        next.zorgaanbieders.remove(&last);
        let mut z = next.zorgaanbieders[&first].clone();
        z.interfaceversies[0].gegevensdiensten[0].token_endpointuri =
            "https://ander.voorbeeld.nl/token".into();
        next.zorgaanbieders.insert(first.clone(), z.clone());
        for name in ["aaaaeerst@medmij", "zzzzlaatst@medmij"] {
            let mut n = z.clone();
            n.zorgaanbiedernaam = name.into();
            next.zorgaanbieders.insert(name.into(), n);
        }
        next.whitelist.insert("nieuw.knooppunt.nl".into());
        for r in cat.renditions() {
            let old = render(&reg, &r, &header(1)).unwrap();
            let new = render(&next, &r, &header(2)).unwrap();
            let id = crate::registry::publication::rendition_id(&r);
            let d = make(
                r.list,
                &id,
                (&old, 1, &"a".repeat(64)),
                (&new, 2, &"b".repeat(64)),
            )
            .unwrap_or_else(|| panic!("{r}: no delta"));
            let back = Delta::decode(&d.encode()).unwrap();
            assert_eq!(back, d);
            assert_eq!(apply(&old, r.list, &back).unwrap(), new, "{r}");
            if r.list == ListKind::Gegevensdienstnamenlijst {
                assert!(
                    d.puts.is_empty() && d.removed.is_empty(),
                    "{r}: nothing changed"
                );
            }
        }
    }

    #[test]
    fn a_delta_from_copied_entries_refuses_a_move_or_a_double_copy() {
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        let r = cat
            .renditions()
            .into_iter()
            .find(|r| r.list == ListKind::Zorgaanbiederslijst && r.interfaceversie.is_none())
            .unwrap();
        let reg = crate::consume::read::demo_registry();
        let (old, new) = (
            render(&reg, &r, &header(1)).unwrap(),
            render(&reg, &r, &header(2)).unwrap(),
        );
        let n = split(&old, r.list).unwrap().entries.len();
        assert!(n >= 2);
        let made = |copied: &[Option<usize>]| {
            make_copied(
                "r",
                ((&old, 1, "a"), split(&old, r.list).unwrap()),
                ((&new, 2, ""), split(&new, r.list).unwrap()),
                copied,
            )
        };
        // Everything copied: only the head changes, and the delta rebuilds the document.
        let all: Vec<Option<usize>> = (0..n).map(Some).collect();
        let d = made(&all).unwrap();
        assert!(d.puts.is_empty() && d.removed.is_empty());
        assert!(apply(&old, r.list, &d).unwrap() == new);
        // Nothing copied: the same delta a comparison gives.
        assert_eq!(
            made(&vec![None; n]),
            make(r.list, "r", (&old, 1, "a"), (&new, 2, ""))
        );
        // Two entries swapped, one copied twice, an index past the end, a wrong count.
        let mut swapped = all.clone();
        swapped.swap(0, 1);
        let mut twice = all.clone();
        twice[1] = Some(0);
        let mut past = all.clone();
        past[0] = Some(n);
        for bad in [swapped, twice, past, all[1..].to_vec()] {
            assert_eq!(made(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_damaged_delta_is_refused_not_applied_wrongly() {
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        let r = cat
            .renditions()
            .into_iter()
            .find(|r| r.list == ListKind::Whitelist)
            .unwrap();
        let reg = crate::consume::read::demo_registry();
        let mut next = reg.clone();
        next.whitelist.insert("nieuw.knooppunt.nl".into());
        let old = render(&reg, &r, &header(1)).unwrap();
        let new = render(&next, &r, &header(2)).unwrap();
        let d = make(
            r.list,
            "w",
            (&old, 1, &"a".repeat(64)),
            (&new, 2, &"b".repeat(64)),
        )
        .unwrap();
        let enc = d.encode();
        // Every truncation is an error, never a panic or a wrong document.
        for cut in 0..enc.len() {
            assert!(Delta::decode(&enc[..cut]).is_err(), "cut at {cut}");
        }
        for bad in [
            b"stelselnode-delta/2\n".to_vec(),
            [&enc[..], b"x"].concat(),
            String::from_utf8_lossy(&enc)
                .replace("head ", "head 99999999999")
                .into_bytes(),
        ] {
            assert!(Delta::decode(&bad).is_err());
        }
        // A removal of an entry that is not there, an insertion after one that is not.
        let mut gone = d.clone();
        gone.removed.push(b"nergens.nl".to_vec());
        assert!(apply(&old, r.list, &gone).is_err());
        let mut orphan = d.clone();
        orphan.puts[0].after = Some(b"nergens.nl".to_vec());
        assert!(apply(&old, r.list, &orphan).is_err());
        assert!(apply(b"not a list", r.list, &d).is_err());
    }
}
