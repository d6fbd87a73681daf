//! What a publication records: what it learnt for the next one (validated elements, gzip
//! blocks, element layouts, what its rule check found valid), its deltas, and the
//! published index, log entry and documents its commit writes.

use super::*;
use crate::publish::cache::{self, Caches, ValidatedRecord};
use crate::registry::publication::{document_key, LogEntry, PublishedIndex};
use crate::registry::store::NewDocument;
use crate::serve::set::Body;
use std::collections::HashMap;

/// What this publication validated, compressed and laid out replaces what the last one
/// did: every
/// rendition of an XSD is made again when its list changes, so the records stay the size
/// of one list. They are facts about bytes, true whether or not the commit succeeds.
pub(super) fn caches(
    store: &Store,
    guard: &PublicationGuard,
    mut made: Vec<Made>,
    rules_checked: Option<cache::RulesChecked>,
) -> Vec<Made> {
    let mut caches = Caches {
        rules_checked,
        ..Caches::default()
    };
    for m in &mut made {
        if let (Some(elements), Ok(def)) = (m.elements.take(), schema_of(&m.rendition)) {
            caches
                .validated
                .entry(def.xsd_file)
                .or_insert_with(|| ValidatedRecord {
                    validator: validator(def),
                    elements: Vec::new(),
                })
                .elements
                .extend(elements);
        }
        if let Some(layout) = m.layout.take() {
            caches
                .layouts
                .push((m.rendition.to_string(), m.sha256.clone(), layout));
        }
        if let Some(entries) = m.gzip_entries.take() {
            caches.gzip_blocks.push((
                m.rendition.to_string(),
                m.sha256.clone(),
                compress::encode(&entries),
            ));
        }
    }
    if let Err(x) = cache::record(store, guard, caches) {
        // Only the next publication's speed depends on them.
        tracing::warn!("what this publication validated and compressed was not recorded: {x}");
    }
    made
}

/// The delta of one rendition made again from the document it replaces (`distribute`),
/// its `to` SHA-256 left for the caller: made beside the rendition's checks, before the
/// commit removes the previous document's file, and recorded after it. A rendition that
/// is new, or whose delta cannot be made, starts its chain again.
pub(super) fn delta_of(
    store: &Store,
    run: &Run,
    r: &Rendition,
    volgnummer: u64,
    xml: &[u8],
    copied: Option<&Copied>,
) -> Option<crate::distribute::delta::Delta> {
    use crate::distribute::{delta, split};
    let t = std::time::Instant::now();
    let id = crate::registry::publication::rendition_id(r);
    let old = run.published(r).filter(|pr| pr.volgnummer != volgnummer)?;
    let key = document_key(&old.rendition, old.volgnummer);
    let mapped = store.mapped(&key).ok().flatten()?;
    let (from, to) = (
        (&mapped.identity[..], old.volgnummer, old.sha256.as_str()),
        (xml, volgnummer, ""),
    );
    // Made by copying from that very document: both are split at the places their writers
    // recorded, and only what was not copied is compared (and read). Otherwise, or if that
    // fails, by comparing the documents.
    let d = copied
        .filter(|c| c.from_sha256 == old.sha256)
        .and_then(|c| {
            let a = split::from_places(from.0, &c.from_places)?;
            let b = split::at(xml, r.list, &c.ranges)?;
            delta::make_copied(&id, (from, a), (to, b), &c.copied)
        })
        .or_else(|| delta::make(r.list, &id, from, to));
    tracing::debug!("{r}: delta {:?}", t.elapsed());
    d
}

/// Per rendition made again, the delta [`delta_of`] made for it.
pub(super) fn deltas(made: &mut [Made]) -> Vec<crate::distribute::store::Made> {
    let out: Vec<crate::distribute::store::Made> = made
        .iter_mut()
        .map(|m| crate::distribute::store::Made {
            rendition: crate::registry::publication::rendition_id(&m.rendition),
            delta: m.delta.take(),
            document_size: m.xml.len() as u64,
        })
        .collect();
    if tracing::enabled!(tracing::Level::DEBUG) {
        let (n, bytes) = out
            .iter()
            .filter_map(|m| m.delta.as_ref())
            .fold((0, 0), |(n, b), d| (n + 1, b + d.encode().len()));
        let documents: u64 = out.iter().map(|m| m.document_size).sum();
        tracing::debug!(
            "deltas: {n} of {} renditions, {bytes} bytes beside {documents} bytes of documents",
            out.len()
        );
    }
    out
}

/// What the commit writes and the server then serves.
pub(super) struct Records {
    pub(super) index: PublishedIndex,
    pub(super) entry: LogEntry,
    pub(super) new: Vec<NewDocument>,
    pub(super) documents: HashMap<String, Body>,
}

/// The published index, the log entry and the new documents of a publication.
pub(super) fn records(
    run: &Run,
    lists: BTreeMap<ListKind, ListVersion>,
    changed: Vec<ListKind>,
    reuse: Vec<PublishedRendition>,
    made: Vec<Made>,
    stamp: String,
) -> Result<Records, PublishError> {
    let mut renditions = reuse;
    let mut documents = HashMap::new();
    for m in made {
        let k = document_key(&m.rendition, m.volgnummer);
        renditions.push(PublishedRendition {
            rendition: m.rendition,
            volgnummer: m.volgnummer,
            sha256: m.sha256.clone(),
        });
        // Detached signatures are a few kB each: hashed and compressed here, kept in redb.
        documents.insert(format!("{k}.sig"), Body::new(m.sig)?);
        documents.insert(k, Body::from_parts(m.xml, m.gzip, &m.sha256)?);
    }
    let new: Vec<NewDocument> = documents
        .iter()
        .map(|(key, b)| NewDocument {
            key: key.clone(),
            bytes: b.bytes.clone(),
            gzip: b.gzip.bytes.clone(),
            sha256: b.sha256.clone(),
        })
        .collect();
    renditions.sort_by(|a, b| a.rendition.cmp(&b.rendition));
    let seq = run.base.published.as_ref().map(|p| p.seq).unwrap_or(0) + 1;
    let index = PublishedIndex {
        seq,
        lists: lists.clone(),
        catalogue: run.catalogue.clone(),
        renditions: renditions.clone(),
        floors: run.base.floors.clone(),
    };
    let entry = LogEntry {
        seq,
        time: stamp,
        operator: run.operator.to_string(),
        reason: run.reason.to_string(),
        changed,
        lists,
        documents: renditions,
        prev_sha256: String::new(),
        changes: Vec::new(),
    };
    Ok(Records {
        index,
        entry,
        new,
        documents,
    })
}
