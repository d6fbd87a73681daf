//! The one code path from a registry snapshot to a commit: Volgnummers from content
//! hashes, then per rendition render → XSD-validate → sign → check our own signatures (in
//! parallel), then one redb transaction. It runs only under the publication lock, which
//! [`super::Publisher`] holds.

use super::render::{self, Header};
use super::{PublishError, Published};
use crate::registry::catalogue::{Catalogue, Rendition};
use crate::registry::model::{tijdstempel, ListKind, Registry};
use crate::registry::store::{
    document_key, sha256_hex, ListVersion, LogEntry, NewDocument, PublicationBase,
    PublicationGuard, PublishedIndex, PublishedRendition, Snapshot, Store,
};
use crate::serve::set::Body;
use crate::sign::{self, SigningKey};
use crate::xml::schema;
use std::collections::BTreeMap;
use std::collections::HashMap;
use time::OffsetDateTime;

/// A rendition ready to commit.
/// A rendition made and written: the document and its gzip variant are mapped from their
/// files (see `registry::documents`), so a publication does not hold every document it made
/// on its heap until the commit.
struct Made {
    rendition: Rendition,
    volgnummer: u64,
    xml: bytes::Bytes,
    gzip: bytes::Bytes,
    sha256: String,
    sig: Vec<u8>,
}

/// From this many Zorgaanbieders on, a ZAL is rendered and validated in parts on all cores.
const PARALLEL_FROM: usize = 4096;

fn schema_of(r: &Rendition) -> Result<&'static schema::SchemaDef, PublishError> {
    schema::def(r.list, r.version).map_err(|errors| PublishError::Schema {
        rendition: r.to_string(),
        xsd: "-".into(),
        errors,
    })
}

/// Render a large ZAL as independent, complete part documents on every core, validate each
/// part against the XSD (libxml2's validator is single-threaded per document, and the
/// largest list is the critical path of a publication), then join them byte-exactly.
/// Each part holds whole Zorgaanbieder elements, so every element is validated in context;
/// the only cross-part constraint, unique Zorgaanbiedernaam, holds by registry key.
fn render_in_parts(
    reg: &Registry,
    r: &Rendition,
    header: &Header,
) -> Result<Vec<u8>, PublishError> {
    let def = schema_of(r)?;
    let all: Vec<&crate::registry::model::Zorgaanbieder> = reg.zorgaanbieders.values().collect();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    // A few parts per core, so a part with heavier entries does not leave a core idle.
    let size = all.len().div_ceil(cores * 4).max(1);
    let chunks: Vec<&[&crate::registry::model::Zorgaanbieder]> = all.chunks(size).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut parts: Vec<Option<Result<Vec<u8>, PublishError>>> =
        (0..chunks.len()).map(|_| None).collect();
    type Part = (usize, Result<Vec<u8>, PublishError>);
    let results: Vec<Vec<Part>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..cores)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(part) = chunks.get(i) else { break };
                        let checked = render::render_zal_part(reg, part, r, header)
                            .map_err(|e| PublishError::Render {
                                rendition: r.to_string(),
                                msg: e.to_string(),
                            })
                            .and_then(|bytes| {
                                schema::validate(def, &bytes)
                                    .map(|()| bytes)
                                    .map_err(|errors| PublishError::Schema {
                                        rendition: format!(
                                            "{r} (Zorgaanbieders {}..{})",
                                            i * size + 1,
                                            i * size + part.len()
                                        ),
                                        xsd: def.xsd_file.to_string(),
                                        errors,
                                    })
                            });
                        done.push((i, checked));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect()
    });
    for (i, res) in results.into_iter().flatten() {
        parts[i] = Some(res);
    }
    let parts: Vec<Vec<u8>> = parts
        .into_iter()
        .map(|p| {
            p.unwrap_or_else(|| {
                Err(PublishError::Signature {
                    rendition: r.to_string(),
                    msg: "a rendering thread failed".into(),
                })
            })
        })
        .collect::<Result<_, _>>()?;
    render::join_zal_parts(parts).ok_or_else(|| PublishError::Signature {
        rendition: r.to_string(),
        msg: "parts could not be joined".into(),
    })
}

/// Render, validate, sign and self-verify one rendition, then compress it and write its
/// files (see `registry::documents`).
fn make(
    store: &Store,
    reg: &Registry,
    r: &Rendition,
    header: &Header,
    key: &SigningKey,
) -> Result<Made, PublishError> {
    let def = schema_of(r)?;
    let t = std::time::Instant::now();
    crate::failpoint::hit("publish.render").map_err(|msg| PublishError::Signature {
        rendition: r.to_string(),
        msg,
    })?;
    let (plain, validated) =
        if r.list == ListKind::Zorgaanbiederslijst && reg.zorgaanbieders.len() >= PARALLEL_FROM {
            (render_in_parts(reg, r, header)?, true)
        } else {
            (
                render::render(reg, r, header).map_err(|e| PublishError::Render {
                    rendition: r.to_string(),
                    msg: e.to_string(),
                })?,
                false,
            )
        };
    let t_render = t.elapsed();
    let sig_err = |msg: String| PublishError::Signature {
        rendition: r.to_string(),
        msg,
    };
    let xml = if def.official {
        plain
    } else {
        let mut signed = plain;
        key.sign_enveloped_in_place(&mut signed)
            .map_err(|e| sig_err(e.to_string()))?;
        signed
    };
    let t_enveloped = t.elapsed();
    // Validate exactly the bytes that will be served (with the enveloped signature, which
    // the project XSDs allow as the last child of the root), unless the parts were.
    if !validated {
        schema::validate(def, &xml).map_err(|errors| PublishError::Schema {
            rendition: r.to_string(),
            xsd: def.xsd_file.to_string(),
            errors,
        })?;
    }
    let t_validate = t.elapsed();
    // The checks and products of the final bytes are independent passes over hundreds of
    // MB, each single-threaded but gzip: run them side by side.
    let file = r.list.file_name();
    let (own, detached, sha256, gz) = std::thread::scope(|s| {
        let own = s.spawn(|| match def.official {
            true => Ok(()),
            false => key
                .check_own_enveloped(&xml)
                .map_err(|e| sig_err(format!("own enveloped signature does not verify: {e}"))),
        });
        let detached = s.spawn(|| {
            let sig = key
                .sign_detached(&xml, file)
                .map_err(|e| sig_err(e.to_string()))?;
            sign::verify_detached(&xml, &sig, file, Some(key.public_key()))
                .map_err(|e| sig_err(format!("own detached signature does not verify: {e}")))?;
            Ok::<_, PublishError>(sig)
        });
        let sha256 = s.spawn(|| sha256_hex(&xml));
        let gz = crate::registry::documents::gzip(&xml);
        let joined = |what: &str| sig_err(format!("{what}: a thread panicked"));
        (
            own.join().map_err(|_| joined("enveloped check")),
            detached.join().map_err(|_| joined("detached signature")),
            sha256.join().map_err(|_| joined("hash")),
            gz,
        )
    });
    own??;
    let sig = detached??;
    let sha256 = sha256?;
    let gz = gz.map_err(|e| sig_err(format!("gzip: {e}")))?;
    let t_checked = t.elapsed();
    // Written now, then let go of: the heap holds one large document at a time, not all
    // of them until the commit.
    let written = store.write_document(&sha256, &xml, &gz)?;
    tracing::debug!(
        "{r}: {} bytes; render {:?}, enveloped sign {:?}, validate {:?}, checks+detached+hash+gzip {:?}, write {:?}",
        xml.len(),
        t_render,
        t_enveloped - t_render,
        t_validate - t_enveloped,
        t_checked - t_validate,
        t.elapsed() - t_checked
    );
    Ok(Made {
        rendition: r.clone(),
        volgnummer: header.volgnummer,
        xml: written.identity,
        gzip: written.gzip,
        sha256,
        sig,
    })
}

/// What one publication renders and why.
pub struct Run<'a> {
    pub registry: &'a Registry,
    pub catalogue: &'a Catalogue,
    pub base: &'a PublicationBase,
    pub operator: &'a str,
    pub reason: &'a str,
    pub now: OffsetDateTime,
    /// The journal entries this publication makes public (publishing the working
    /// registry); `None` for a change published on top of the published registry.
    pub journal_head: Option<u64>,
}

/// Publish `run`; `Ok(None)` when nothing would change.
pub fn run(
    store: &Store,
    guard: &PublicationGuard,
    key: &SigningKey,
    run: Run,
) -> Result<Option<Published>, PublishError> {
    let Run {
        registry: reg,
        catalogue,
        base,
        operator,
        reason,
        now,
        journal_head,
    } = run;
    let catalogue = catalogue.clone();
    let t = std::time::Instant::now();
    crate::registry::rules::ensure_valid(reg, &catalogue).map_err(PublishError::Invalid)?;
    // (A partial registry may hold no Whitelist: the published one, unchanged, was checked.)
    let whitelist_read = base
        .partial
        .as_ref()
        .is_none_or(|d| d.contains(&ListKind::Whitelist));
    if whitelist_read && reg.whitelist.is_empty() {
        return Err(PublishError::Refused(
            "the Whitelist would be empty: consumers reject an empty Whitelist, so nothing was published; add the MedMij nodes first (`whitelist add HOST`)".into(),
        ));
    }
    tracing::debug!("rules {:?}", t.elapsed());
    let prev = base.published.clone();
    let floors = base.floors.clone();
    let stamp = tijdstempel(now);

    let mut lists = BTreeMap::new();
    let mut changed = Vec::new();
    for list in ListKind::ALL {
        if let Some(dirty) = &base.partial {
            if !dirty.contains(&list) {
                // Its table is unchanged since the publication: same content, same version.
                let old = prev
                    .as_ref()
                    .and_then(|p| p.lists.get(&list))
                    .ok_or_else(|| {
                        PublishError::Refused(format!(
                            "internal error: {list} has no published version"
                        ))
                    })?;
                lists.insert(list, old.clone());
                continue;
            }
        }
        let hash = reg
            .list_content_sha256(list)
            .map_err(|e| PublishError::Render {
                rendition: list.to_string(),
                msg: format!("content could not be serialised: {e}"),
            })?;
        let old = prev.as_ref().and_then(|p| p.lists.get(&list));
        let floor = floors.get(&list).copied().unwrap_or(0);
        match old {
            Some(o) if o.content_sha256 == hash && o.volgnummer >= floor => {
                lists.insert(list, o.clone());
            }
            _ => {
                let base = old.map(|o| o.volgnummer).unwrap_or(0).max(floor);
                let volgnummer = base.checked_add(1).ok_or_else(|| PublishError::Signature {
                    rendition: list.to_string(),
                    msg: "Volgnummer cannot rise any further".into(),
                })?;
                lists.insert(
                    list,
                    ListVersion {
                        volgnummer,
                        tijdstempel: stamp.clone(),
                        content_sha256: hash,
                    },
                );
                changed.push(list);
            }
        }
    }

    // Reuse the bytes of renditions whose list did not change; make the rest, in parallel.
    let wanted = catalogue.renditions();
    let mut reuse = Vec::new();
    let mut todo = Vec::new();
    for r in &wanted {
        let lv = &lists[&r.list];
        let existing = prev.as_ref().and_then(|p| {
            p.renditions
                .iter()
                .find(|pr| &pr.rendition == r && pr.volgnummer == lv.volgnummer)
        });
        // A rendition that was published at this Volgnummer before (and left the served set
        // meanwhile) comes back with its original bytes: history is immutable.
        let historic = match existing {
            Some(_) => None,
            None => store.document_sha256(&document_key(r, lv.volgnummer))?,
        };
        match (existing, historic) {
            (Some(pr), _) => reuse.push(pr.clone()),
            (None, Some(sha256)) => reuse.push(PublishedRendition {
                rendition: r.clone(),
                volgnummer: lv.volgnummer,
                sha256,
            }),
            (None, None) => todo.push((
                r.clone(),
                Header {
                    volgnummer: lv.volgnummer,
                    tijdstempel: lv.tijdstempel.clone(),
                },
            )),
        }
    }
    if let Some(p) = &prev {
        if todo.is_empty() && p.catalogue == catalogue && p.renditions.len() == reuse.len() {
            if journal_head.is_some() {
                // The working registry equals what is published: nothing is dirty any more
                // (after a `discard`, say), so the next publication can be partial again.
                store.clear_dirty(guard, base.generation)?;
            }
            return Ok(None);
        }
    }

    // Large ZALs, which render in parts on every core anyway, are made one after the other:
    // each is written to its file and let go before the next, so the heap never holds two
    // of them (at 100k: 164 + 408 MB). The small lists are made alongside.
    let large = |r: &Rendition| {
        r.list == ListKind::Zorgaanbiederslijst && reg.zorgaanbieders.len() >= PARALLEL_FROM
    };
    let (big, small): (Vec<_>, Vec<_>) = todo.iter().partition(|(r, _)| large(r));
    let made: Vec<Result<Made, PublishError>> = std::thread::scope(|s| {
        let mut handles: Vec<_> = small
            .iter()
            .map(|(r, h)| s.spawn(|| vec![make(store, reg, r, h, key)]))
            .collect();
        handles.push(s.spawn(|| {
            let mut out = Vec::new();
            for (r, h) in &big {
                let m = make(store, reg, r, h, key);
                let failed = m.is_err();
                out.push(m);
                if failed {
                    break;
                }
            }
            out
        }));
        handles
            .into_iter()
            .flat_map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![Err(PublishError::Signature {
                        rendition: "publication".into(),
                        msg: "a rendering thread panicked".into(),
                    })]
                })
            })
            .collect()
    });
    let made: Vec<Made> = made.into_iter().collect::<Result<_, _>>()?;
    tracing::debug!("hashes and renditions {:?}", t.elapsed());

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

    let seq = prev.as_ref().map(|p| p.seq).unwrap_or(0) + 1;
    let index = PublishedIndex {
        seq,
        lists: lists.clone(),
        catalogue,
        renditions: renditions.clone(),
        floors,
    };
    let entry = LogEntry {
        seq,
        time: stamp,
        operator: operator.to_string(),
        reason: reason.to_string(),
        changed,
        lists,
        documents: renditions,
        prev_sha256: String::new(),
        changes: Vec::new(),
    };
    let t = std::time::Instant::now();
    let entry = store.commit_publication(
        guard,
        &index,
        entry,
        &new,
        reg,
        &Snapshot {
            journal_head,
            generation: base.generation,
            partial: base.partial.clone(),
        },
    )?;
    tracing::debug!("commit {:?}", t.elapsed());
    crate::failpoint::hit("publish.committed").map_err(PublishError::Refused)?;
    Ok(Some(Published {
        entry,
        index,
        documents,
    }))
}
