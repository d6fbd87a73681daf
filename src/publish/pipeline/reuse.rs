//! A large ZAL's unchanged Zorgaanbieder elements copied from the document it replaces
//! instead of rendered again: most of a publication in which a few Zorgaanbieders changed.
//!
//! Sound because an element's bytes are a function of the Zorgaanbieder and the rendition
//! alone (`render::render_zal_part_reusing`), so an element is copied only when all of
//! these hold:
//! - the publication publishes the working registry, and the Zorgaanbieder is not among
//!   the rows that differ from the published ones (the overlay's keys);
//! - the previous document is the published one of this rendition, and the layout that
//!   says where its elements lie was recorded with it by a renderer with this fingerprint
//!   (`cache::layout`);
//! - the element found there is an entry of the rendered form, keyed by this
//!   Zorgaanbiedernaam;
//! - its SHA-256 is one this XSD validated (`render_in_parts` renders the part again if
//!   not: a damaged file is never copied).

use super::*;
use crate::registry::model::Zorgaanbieder;
use crate::registry::publication::{document_key, PublishedRendition};
use std::collections::{BTreeSet, HashMap};

/// Where a rendition's elements may come from: its published document, and the rows that
/// changed since.
#[derive(Clone, Copy)]
pub(super) struct ReuseFrom<'a> {
    pub(super) previous: &'a PublishedRendition,
    pub(super) changed: &'a BTreeSet<String>,
}

/// What may be copied from for `r` in `run`: only when publishing the working registry,
/// whose `pending` rows are exactly those that differ from the published ones.
pub(super) fn reuse_from<'a>(run: &'a Run, r: &Rendition) -> Option<ReuseFrom<'a>> {
    run.journal_head?;
    Some(ReuseFrom {
        previous: run.published(r)?,
        changed: &run.base.pending.zorgaanbieders,
    })
}

/// The published document of `from` (mapped) and where its elements lie, if its layout
/// was recorded by this renderer; `None` (copy nothing) otherwise.
pub(super) fn previous(
    store: &Store,
    from: ReuseFrom,
) -> Option<(bytes::Bytes, Vec<(usize, usize)>)> {
    let pr = from.previous;
    let rendition = pr.rendition.to_string();
    let layout = match crate::publish::cache::layout(store, &rendition, &pr.sha256) {
        Ok(l) => l?,
        Err(e) => {
            tracing::warn!("{rendition}: the layout of the published document cannot be read: {e}");
            return None;
        }
    };
    let ranges = decode(&layout)?;
    let doc = store
        .mapped(&document_key(&pr.rendition, pr.volgnummer))
        .ok()
        .flatten()?
        .identity;
    Some((doc, ranges))
}

/// The places of a document's elements, for the record: where the first begins, then
/// each one's length (elements follow each other), little-endian.
pub(super) fn encode(ranges: &[(usize, usize)]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(8 + 4 * ranges.len());
    out.extend_from_slice(
        &u64::try_from(ranges.first().map_or(0, |r| r.0))
            .ok()?
            .to_le_bytes(),
    );
    let mut at = ranges.first().map_or(0, |r| r.0);
    for &(a, b) in ranges {
        if a != at || b < a {
            return None;
        }
        out.extend_from_slice(&u32::try_from(b - a).ok()?.to_le_bytes());
        at = b;
    }
    Some(out)
}

pub(super) fn decode(v: &[u8]) -> Option<Vec<(usize, usize)>> {
    let (first, lengths) = (v.get(..8)?, v.get(8..)?);
    if lengths.len() % 4 != 0 {
        return None;
    }
    let mut at = usize::try_from(u64::from_le_bytes(first.try_into().ok()?)).ok()?;
    let mut out = Vec::with_capacity(lengths.len() / 4);
    for l in lengths.chunks_exact(4) {
        let b = at.checked_add(usize::try_from(u32::from_le_bytes(l.try_into().ok()?)).ok()?)?;
        out.push((at, b));
        at = b;
    }
    Some(out)
}

/// The previous document's elements by Zorgaanbiedernaam (as written), for copying.
pub(super) struct Reusable<'a> {
    doc: &'a [u8],
    places: crate::distribute::split::Places,
    /// Each entry's place and its index among the entries.
    at: HashMap<&'a [u8], (usize, usize, usize)>,
    changed: &'a BTreeSet<String>,
}

impl<'a> Reusable<'a> {
    /// `None` if the places do not fit `doc` (see `distribute::split::at`) or name a
    /// Zorgaanbiedernaam twice: nothing is copied then.
    pub(super) fn new(
        doc: &'a [u8],
        ranges: &[(usize, usize)],
        changed: &'a BTreeSet<String>,
    ) -> Option<Reusable<'a>> {
        let split = crate::distribute::split::at(doc, ListKind::Zorgaanbiederslijst, ranges)?;
        let places = split.places(doc)?;
        let mut at = HashMap::with_capacity(ranges.len());
        for (i, e) in split.entries.into_iter().enumerate() {
            if at.insert(e.key, (e.range.start, e.range.end, i)).is_some() {
                return None;
            }
        }
        Some(Reusable {
            doc,
            places,
            at,
            changed,
        })
    }

    /// Where the previous document's entries lie, for its delta once it is let go of.
    pub(super) fn into_places(self) -> crate::distribute::split::Places {
        self.places
    }

    /// `z`'s element as the previous document holds it, if `z` did not change since, and
    /// which of its entries that is.
    pub(super) fn element(&self, z: &Zorgaanbieder) -> Option<(&'a [u8], usize)> {
        if self.changed.contains(&z.zorgaanbiedernaam) {
            return None;
        }
        let key = quick_xml::escape::partial_escape(&z.zorgaanbiedernaam);
        let &(a, b, i) = self.at.get(key.as_bytes())?;
        Some((self.doc.get(a..b)?, i))
    }
}
