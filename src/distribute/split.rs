//! A published document as its three parts: the head (declaration, root, Tijdstempel,
//! Volgnummer, the container's start tag), the entries (one per Zorgaanbieder, OAuthclient,
//! MedMijNode or Gegevensdienst, each with the line break and indentation before it) and
//! the tail (the container's end tag, an enveloped signature, the root's end tag).
//!
//! Documents are rendered in one fixed form (`publish::render`: two-space indentation, no
//! empty-element tags, text escaped), and a consumer's copy is bound to that form by the
//! SHA-256 in a signed head, so an entry is found by its exact start tag at its exact
//! indentation: a byte search, not a parse, at hundreds of MB a second less. A document
//! not in that form (or without entries) has no split, and is only ever sent whole. A
//! document whose writer recorded where its entries lie is split there instead ([`at`]),
//! or, reading nothing, at places kept from such a split ([`from_places`]).

use crate::registry::model::ListKind;
use memchr::memmem;
use std::ops::Range;

/// The entry element of each list and the child that keys it.
pub fn entry_names(list: ListKind) -> (&'static str, &'static str) {
    match list {
        ListKind::Zorgaanbiederslijst => ("Zorgaanbieder", "Zorgaanbiedernaam"),
        ListKind::OAuthclientlist => ("OAuthclient", "Hostname"),
        ListKind::Whitelist => ("MedMijNode", "Hostname"),
        ListKind::Gegevensdienstnamenlijst => ("Gegevensdienst", "GegevensdienstId"),
    }
}

/// One entry: its key (the key child's text as written) and its bytes' range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub key: &'a [u8],
    pub range: Range<usize>,
}

/// A document's head, entries in document order, and tail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split<'a> {
    pub head: Range<usize>,
    pub entries: Vec<Entry<'a>>,
    pub tail: Range<usize>,
}

/// Split `doc`, a document of `list` in the rendered form. `None`: not in that form, or
/// without entries.
pub fn split(doc: &[u8], list: ListKind) -> Option<Split<'_>> {
    let (entry, key) = entry_names(list);
    // The container is the root's child, so its entries are indented by four spaces.
    let start = format!("\n    <{entry}>");
    let end = format!("</{entry}>");
    let key_open = format!("<{key}>");
    let (start_f, end_f, key_f) = (
        memmem::Finder::new(start.as_bytes()),
        memmem::Finder::new(end.as_bytes()),
        memmem::Finder::new(key_open.as_bytes()),
    );
    let mut entries = Vec::new();
    let mut at = 0;
    while let Some(found) = start_f.find(&doc[at..]) {
        let begin = at + found;
        // Entries follow each other with nothing between them.
        if !entries.is_empty() && begin != at {
            return None;
        }
        let body = begin + start.len();
        let close = body + end_f.find(&doc[body..])? + end.len();
        entries.push(Entry {
            key: key_in(&doc[body..close], &key_f, key_open.len())?,
            range: begin..close,
        });
        at = close;
    }
    let first = entries.first()?.range.start;
    let last = entries.last()?.range.end;
    Some(Split {
        head: 0..first,
        entries,
        tail: last..doc.len(),
    })
}

/// Where a split lies in its document: head, each entry's key and bytes, tail. Kept
/// instead of the split, it does not hold the document (or its pages) in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Places {
    pub head: Range<usize>,
    pub entries: Vec<(Range<usize>, Range<usize>)>,
    pub tail: Range<usize>,
}

impl Split<'_> {
    /// Where this split of `doc` lies in it (`None` if it is not a split of `doc`).
    pub fn places(&self, doc: &[u8]) -> Option<Places> {
        let at = |key: &[u8]| {
            let start = (key.as_ptr() as usize).checked_sub(doc.as_ptr() as usize)?;
            let end = start.checked_add(key.len()).filter(|e| *e <= doc.len())?;
            Some(start..end)
        };
        let mut entries = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            entries.push((at(e.key)?, e.range.clone()));
        }
        Some(Places {
            head: self.head.clone(),
            entries,
            tail: self.tail.clone(),
        })
    }
}

/// The split of `doc` at `places` (made by [`Split::places`] of the same document), without
/// reading it: `None` if a place lies outside it.
pub fn from_places<'a>(doc: &'a [u8], places: &Places) -> Option<Split<'a>> {
    let mut entries = Vec::with_capacity(places.entries.len());
    for (key, range) in &places.entries {
        doc.get(range.clone())?;
        entries.push(Entry {
            key: doc.get(key.clone())?,
            range: range.clone(),
        });
    }
    doc.get(places.head.clone())?;
    doc.get(places.tail.clone())?;
    Some(Split {
        head: places.head.clone(),
        entries,
        tail: places.tail.clone(),
    })
}

/// The text of the first key element in `entry` (found by `key_f`, its start tag
/// `open_len` bytes long).
fn key_in<'a>(entry: &'a [u8], key_f: &memmem::Finder, open_len: usize) -> Option<&'a [u8]> {
    let k = key_f.find(entry)? + open_len;
    Some(&entry[k..k + memchr::memchr(b'<', &entry[k..])?])
}

/// The split of `doc` whose entries a writer recorded at `ranges` (each with the line
/// break and indentation before it, one after the other): what [`split`] finds, without
/// searching the document. `None` if the places do not fit it (an entry out of bounds,
/// not starting with its start tag, without its key, or a gap between entries).
pub fn at<'a>(doc: &'a [u8], list: ListKind, ranges: &[(usize, usize)]) -> Option<Split<'a>> {
    let (entry, key) = entry_names(list);
    let start = format!("\n    <{entry}>");
    let key_open = format!("<{key}>");
    let key_f = memmem::Finder::new(key_open.as_bytes());
    let mut entries = Vec::with_capacity(ranges.len());
    let mut at = ranges.first()?.0;
    for &(a, b) in ranges {
        let bytes = doc.get(a..b).filter(|_| a == at)?;
        if !bytes.starts_with(start.as_bytes()) {
            return None;
        }
        entries.push(Entry {
            key: key_in(bytes, &key_f, key_open.len())?,
            range: a..b,
        });
        at = b;
    }
    Some(Split {
        head: 0..ranges.first()?.0,
        entries,
        tail: at..doc.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::render::{render, Header};
    use crate::registry::catalogue::{Catalogue, DEFAULT_CATALOGUE};

    #[test]
    fn every_rendition_splits_into_its_entries_and_joins_back() {
        let reg = crate::consume::read::demo_registry();
        let h = Header {
            volgnummer: 3,
            tijdstempel: "2026-01-01T00:00:00Z".into(),
        };
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        for r in cat.renditions() {
            let doc = render(&reg, &r, &h).unwrap();
            let s = split(&doc, r.list).unwrap_or_else(|| panic!("{r}"));
            let keys: Vec<String> = s
                .entries
                .iter()
                .map(|e| String::from_utf8(e.key.to_vec()).unwrap())
                .collect();
            let expected: Vec<String> = crate::registry::diff::entries(&reg, &r)
                .into_keys()
                .collect();
            let mut sorted = keys.clone();
            sorted.sort();
            assert_eq!(sorted, expected, "{r}");
            let mut joined = doc[s.head.clone()].to_vec();
            for e in &s.entries {
                joined.extend_from_slice(&doc[e.range.clone()]);
            }
            joined.extend_from_slice(&doc[s.tail.clone()]);
            assert_eq!(joined, doc, "{r}");
            // The same split from the entries' places, as a writer records them.
            let ranges: Vec<(usize, usize)> = s
                .entries
                .iter()
                .map(|e| (e.range.start, e.range.end))
                .collect();
            assert_eq!(at(&doc, r.list, &ranges), Some(s.clone()), "{r}");
            let mut gap = ranges.clone();
            gap[0].1 -= 1;
            assert_eq!(at(&doc, r.list, &gap), None, "{r}");
            let mut shifted = ranges.clone();
            shifted[0].0 += 1;
            assert_eq!(at(&doc, r.list, &shifted), None, "{r}");
            // Its places give it back; places past the end give nothing.
            let places = s.places(&doc).unwrap();
            assert_eq!(from_places(&doc, &places), Some(s.clone()), "{r}");
            assert_eq!(from_places(&doc[..doc.len() - 1], &places), None, "{r}");
        }
        // Not in the rendered form, or no entries: no split.
        assert!(split(
            b"<Whitelist><MedMijNodes/></Whitelist>",
            ListKind::Whitelist
        )
        .is_none());
        let first = cat.renditions().into_iter().next().unwrap();
        let empty = render(&crate::registry::model::Registry::default(), &first, &h).unwrap();
        assert!(split(&empty, first.list).is_none());
    }
}
