//! Making one rendition: render, validate, write, compress, sign and check it ([`Making`]),
//! whole or in parts.

use super::*;

/// A rendition made and written, ready to commit: the document and its gzip variant are mapped from their
/// files (see `registry::documents`), so a publication does not hold every document it made
/// on its heap until the commit.
pub(super) struct Made {
    pub(super) rendition: Rendition,
    pub(super) volgnummer: u64,
    pub(super) xml: bytes::Bytes,
    pub(super) gzip: bytes::Bytes,
    pub(super) sha256: String,
    pub(super) sig: Vec<u8>,
    /// A large ZAL's validated elements, for the next publication (see `render_in_parts`).
    pub(super) elements: Option<Vec<[u8; 32]>>,
    /// Where its `.gz` file holds each group's block, for the next publication.
    pub(super) gzip_entries: Option<Vec<compress::Entry>>,
    /// Where a large ZAL holds its elements, encoded, for the next publication to copy
    /// from (see `reuse`).
    pub(super) layout: Option<Vec<u8>>,
    /// Its delta from the document it replaces (see `record::delta_of`).
    pub(super) delta: Option<crate::distribute::delta::Delta>,
}

/// One rendition being made: what each step of it needs.
#[derive(Clone, Copy)]
pub(super) struct Making<'a> {
    pub(super) store: &'a Store,
    pub(super) reg: &'a Registry,
    pub(super) r: &'a Rendition,
    pub(super) header: &'a Header,
    pub(super) key: &'a Signers,
    pub(super) def: &'static schema::SchemaDef,
    /// Makes its delta from the document it replaces (`record::delta_of`), beside its
    /// checks; none where no delta is made.
    pub(super) delta: Option<&'a MakeDelta<'a>>,
    /// Where a large ZAL's unchanged elements may be copied from (see `reuse`).
    pub(super) reuse: Option<reuse::ReuseFrom<'a>>,
}

/// A rendition's delta from the bytes made for it (its `to` SHA-256 still empty).
pub(super) type MakeDelta<'a> = dyn Fn(&Rendition, u64, &[u8], Option<&Copied>) -> Option<crate::distribute::delta::Delta>
    + Sync
    + 'a;

/// What a large ZAL made with elements copied from the published document knows about
/// its delta from it: that document's SHA-256 and where it holds its entries (not its
/// bytes: it is let go of once copied from, and mapped again for the few entries the
/// delta reads), where the new one holds its elements, and which entry of the old one
/// each of them was copied from.
pub(super) struct Copied {
    pub(super) from_sha256: String,
    pub(super) from_places: crate::distribute::split::Places,
    pub(super) ranges: Vec<(usize, usize)>,
    pub(super) copied: Vec<Option<usize>>,
}

impl<'a> Making<'a> {
    pub(super) fn new(
        store: &'a Store,
        reg: &'a Registry,
        r: &'a Rendition,
        header: &'a Header,
        key: &'a Signers,
    ) -> Result<Self, PublishError> {
        Ok(Making {
            store,
            reg,
            r,
            header,
            key,
            def: schema_of(r)?,
            delta: None,
            reuse: None,
        })
    }

    pub(super) fn render_err(&self, e: std::io::Error) -> PublishError {
        PublishError::Render {
            rendition: self.r.to_string(),
            msg: e.to_string(),
        }
    }

    pub(super) fn sig_err(&self, msg: String) -> PublishError {
        PublishError::Signature {
            rendition: self.r.to_string(),
            msg,
        }
    }
}

/// A rendition written to its staged file and compressed, before its checks.
pub(super) struct Staging {
    pub(super) staged: crate::registry::documents::Staged,
    /// The staged file, mapped.
    pub(super) xml: bytes::Bytes,
    pub(super) gzip: Vec<u8>,
    pub(super) gzip_entries: Option<Vec<compress::Entry>>,
    /// A large ZAL's validated elements (see [`render_in_parts`]).
    pub(super) elements: Option<Vec<[u8; 32]>>,
    /// A large ZAL's element layout, encoded (see `reuse`).
    pub(super) layout: Option<Vec<u8>>,
    /// What it copied from the published document, for its delta.
    pub(super) copied: Option<Copied>,
}

/// A list rendered whole: written from its pieces to a file and gzipped from the same
/// pieces alongside, never joined on the heap.
pub(super) fn stage_whole(m: &Making) -> Result<Staging, PublishError> {
    let r = m.r;
    let (render_err, sig_err) = (|e| m.render_err(e), |e| m.sig_err(e));
    let bytes = render::render(m.reg, r, m.header).map_err(render_err)?;
    let mut pieces: Vec<&[u8]> = vec![&bytes];
    let enveloped;
    if !m.def.official {
        let (at, sig) = m
            .key
            .active
            .enveloped_signature(&pieces)
            .map_err(|e| sig_err(e.to_string()))?;
        enveloped = sig;
        pieces = vec![&bytes[..at], enveloped.as_slice(), &bytes[at..]];
    }
    let (staged, gz) = std::thread::scope(|s| {
        let staged = s.spawn(|| m.store.stage_document(&pieces));
        let gz = crate::registry::documents::gzip_pieces(&pieces);
        (staged.join(), gz)
    });
    let staged = staged.map_err(|_| sig_err("write: a thread panicked".into()))??;
    let gzip = gz.map_err(|e| sig_err(format!("gzip: {e}")))?;
    Ok(Staging {
        xml: staged.map().map_err(render_err)?,
        staged,
        gzip,
        gzip_entries: None,
        elements: None,
        layout: None,
        copied: None,
    })
}

/// A large ZAL made in parts ([`render_in_parts`]), its footer (with a project schema's
/// enveloped signature) appended, its gzip variant made from the file in groups that
/// reuse the previous publication's blocks where the group is unchanged (see `compress`).
pub(super) fn stage_in_parts(m: &Making, known: &Validated) -> Result<Staging, PublishError> {
    let r = m.r;
    let (render_err, sig_err) = (|e| m.render_err(e), |e| m.sig_err(e));
    let t = std::time::Instant::now();
    let staged = m.store.stage_document(&[])?;
    // Only elements this XSD validated are copied: with none known (another XSD or
    // libxml2), every part would be copied, found unknown and rendered after all.
    let copy_from = m
        .reuse
        .filter(|_| !known.is_empty())
        .and_then(|from| Some((reuse::previous(m.store, from)?, from)));
    let reusable = copy_from
        .as_ref()
        .and_then(|((doc, ranges), from)| reuse::Reusable::new(doc, ranges, from.changed));
    if copy_from.is_some() && reusable.is_none() {
        tracing::warn!(
            "{r}: the recorded layout does not fit the published document; rendering every element"
        );
    }
    let mut parts = render_in_parts(
        m.reg,
        r,
        m.header,
        known,
        &staged,
        !m.def.official,
        reusable.as_ref(),
    )?;
    // The published document's pages leave this process's memory with its mapping.
    let places = reusable.map(reuse::Reusable::into_places);
    let copy_from = copy_from.map(|(_, from)| from);
    tracing::debug!(
        "{r}: {} of {} Zorgaanbieder elements validated, the rest were before; {} copied from the published document",
        parts.validated,
        parts.elements.len(),
        parts.copied
    );
    let footer = &parts.footer;
    if m.def.official {
        staged.append(footer).map_err(render_err)?;
    } else {
        let digest = parts
            .digest
            .take()
            .ok_or_else(|| sig_err("the parts were written without their digest".into()))?;
        let (at, sig) = m
            .key
            .active
            .enveloped_signature_after(digest, footer)
            .map_err(|e| sig_err(e.to_string()))?;
        for piece in [&footer[..at], &sig, &footer[at..]] {
            staged.append(piece).map_err(render_err)?;
        }
    }
    let xml = staged.map().map_err(render_err)?;
    tracing::debug!("{r}: rendered, validated and written in {:?}", t.elapsed());
    // Only speed depends on the record: one that cannot be read is no record.
    let blocks = gzip_blocks(&xml, &parts);
    let previous = match &blocks {
        Some(_) => match crate::publish::cache::gzip_blocks(m.store, &r.to_string()) {
            Ok(found) => found
                .and_then(|(gz, entries)| compress::decode(&entries).map(|entries| (gz, entries))),
            Err(e) => {
                tracing::warn!("{r}: the gzip blocks of the last publication cannot be read: {e}");
                None
            }
        },
        None => None,
    };
    let previous = previous
        .as_ref()
        .map(|(gz, entries)| compress::Previous { gz, entries });
    let grouped = blocks.map(|blocks| compress::gzip(&blocks, previous.as_ref()));
    let (gzip, gzip_entries) = match grouped {
        Some(Ok((gz, entries, copied))) => {
            tracing::debug!("{r}: gzip: {copied} of {} groups reused", entries.len());
            (gz, Some(entries))
        }
        failed => {
            if let Some(Err(e)) = failed {
                tracing::warn!("{r}: gzip in groups failed ({e}); compressed it whole");
            }
            let gz = crate::registry::documents::gzip(&xml)
                .map_err(|e| sig_err(format!("gzip: {e}")))?;
            (gz, None)
        }
    };
    Ok(Staging {
        staged,
        xml,
        gzip,
        gzip_entries,
        layout: reuse::encode(&parts.ranges),
        copied: match (copy_from, places) {
            (Some(from), Some(from_places)) if parts.copied > 0 => Some(Copied {
                from_sha256: from.previous.sha256.clone(),
                from_places,
                ranges: parts.ranges,
                copied: parts.copied_at,
            }),
            _ => None,
        },
        elements: Some(parts.elements),
    })
}

/// Render, validate, sign and self-verify one rendition, then compress it and write its
/// files (see `registry::documents`).
pub(super) fn make(m: Making, known: Option<&Validated>) -> Result<Made, PublishError> {
    let started = start(&m, known)?;
    finish(m, started)
}

/// A large ZAL's [`Making`], its unchanged elements copied from the published document
/// where they may be (see `reuse`), and its [`start`].
pub(super) fn start_large<'a>(
    store: &'a Store,
    run: &'a Run,
    r: &'a Rendition,
    h: &'a Header,
    key: &'a Signers,
    known: Option<&Validated>,
) -> Result<(Making<'a>, Started), PublishError> {
    let m = Making {
        reuse: reuse::reuse_from(run, r),
        ..Making::new(store, run.registry, r, h, key)?
    };
    let started = start(&m, known)?;
    Ok((m, started))
}

/// A rendition rendered, validated, written and compressed ([`Staging`]), since `t`.
pub(super) struct Started {
    pub(super) staging: Staging,
    pub(super) t: std::time::Instant,
}

/// The first half of [`make`]: what uses every core to render and validate.
pub(super) fn start(m: &Making, known: Option<&Validated>) -> Result<Started, PublishError> {
    let t = std::time::Instant::now();
    crate::failpoint::hit("publish.render").map_err(|msg| m.sig_err(msg))?;
    let staging = match known {
        Some(known) => stage_in_parts(m, known),
        None => stage_whole(m),
    }?;
    Ok(Started { staging, t })
}

/// The second half of [`make`]: validate what the parts did not, check the signatures,
/// sync, name the files.
pub(super) fn finish(m: Making, started: Started) -> Result<Made, PublishError> {
    let Making {
        store,
        r,
        header,
        key,
        def,
        delta,
        ..
    } = m;
    let sig_err = |e| m.sig_err(e);
    let Started { staging, t } = started;
    let Staging {
        staged,
        xml,
        gzip: gz,
        gzip_entries,
        elements,
        layout,
        copied,
    } = staging;
    let t_made = t.elapsed();
    // Validate exactly the bytes that will be served (with the enveloped signature, which
    // the project XSDs allow as the last child of the root); of a ZAL made in parts, what
    // its parts did not validate.
    match elements {
        Some(_) => validate_skeleton(def, &xml),
        None => schema::validate(def, &xml),
    }
    .map_err(|errors| PublishError::Schema {
        rendition: r.to_string(),
        xsd: def.xsd_file.to_string(),
        errors,
    })?;
    let t_validate = t.elapsed();
    // The checks and products of the final bytes are independent passes over hundreds of
    // MB, each single-threaded but gzip: run them side by side.
    let file = r.list.file_name();
    let t0 = std::time::Instant::now();
    let (own, detached, synced, delta) = std::thread::scope(|s| {
        let delta =
            s.spawn(|| delta.and_then(|make| make(r, header.volgnummer, &xml, copied.as_ref())));
        let own = s.spawn(|| match def.official {
            true => Ok(()),
            false => {
                let c = key
                    .active
                    .check_own_enveloped(&xml)
                    .map_err(|e| sig_err(format!("own enveloped signature does not verify: {e}")));
                tracing::debug!("{r}: own enveloped check {:?}", t0.elapsed());
                c
            }
        });
        // The document's SHA-256, over the bytes as written, names it and is the detached
        // signature's digest. The check verifies the signature document as a consumer
        // would (Reference, DigestValue, SignatureValue) against that same digest.
        let detached = s.spawn(|| {
            let sha256 = ring::digest::digest(&ring::digest::SHA256, &xml);
            tracing::debug!("{r}: detached hash {:?}", t0.elapsed());
            let sig = key
                .sign_detached_digest(sha256.as_ref(), file)
                .map_err(|e| sig_err(e.to_string()))?;
            key.check_detached_digest(sha256.as_ref(), &sig, file)
                .map_err(|e| sig_err(format!("own detached signature does not verify: {e}")))?;
            Ok::<_, PublishError>((sig, crate::digest::hex(sha256.as_ref())))
        });
        // Syncing hundreds of MB waits on the disk, not a core: alongside.
        let synced = staged.sync();
        tracing::debug!("{r}: sync {:?}", t0.elapsed());
        let joined = |what: &str| sig_err(format!("{what}: a thread panicked"));
        (
            own.join().map_err(|_| joined("enveloped check")),
            detached.join().map_err(|_| joined("detached signature")),
            synced,
            // Only consumers' speed depends on it: a delta that failed is none.
            delta.join().ok().flatten(),
        )
    });
    own??;
    let (sig, sha256) = detached??;
    let delta = delta.map(|mut d| {
        d.to.1.clone_from(&sha256);
        d
    });
    synced.map_err(|e| sig_err(format!("write: {e}")))?;
    let t_checked = t.elapsed();
    // Named now, then let go of: the heap holds one large document at a time, not all
    // of them until the commit.
    crate::failpoint::hit("publish.staged").map_err(sig_err)?;
    let written = store.write_staged(&sha256, staged, &gz)?;
    tracing::debug!(
        "{r}: {} bytes; render+validate+sign+write+gzip {:?}, validate {:?}, checks+detached+hash+sync {:?}, gzip write {:?}",
        xml.len(),
        t_made,
        t_validate - t_made,
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
        elements,
        gzip_entries,
        layout,
        delta,
    })
}

/// The result of a thread that made a rendition; a panic is a failed publication.
pub(super) fn joined(
    h: std::thread::ScopedJoinHandle<'_, Result<Made, PublishError>>,
) -> Result<Made, PublishError> {
    h.join().unwrap_or_else(|_| {
        Err(PublishError::Signature {
            rendition: "publication".into(),
            msg: "a rendering thread panicked".into(),
        })
    })
}

/// Make every rendition in `todo`. Large ZALs, which render in parts on every core anyway,
/// are made one after the other, each written to its file part by part: the heap never
/// holds a whole one. The small lists are made alongside.
pub(super) fn make_all(
    store: &Store,
    key: &Signers,
    run: &Run,
    known: &BTreeMap<&'static str, Validated>,
    todo: &[(Rendition, Header)],
    early: Early,
) -> Result<Vec<Made>, PublishError> {
    let reg = run.registry;
    let known_for = |r: &Rendition| schema_of(r).ok().and_then(|d| known.get(d.xsd_file));
    // Made beside each rendition's checks (a large ZAL's: while the next one is made).
    let make_delta = |r: &Rendition, volgnummer: u64, xml: &[u8], copied: Option<&Copied>| {
        super::record::delta_of(store, run, r, volgnummer, xml, copied)
    };
    let make_delta: &MakeDelta = &make_delta;
    let (big, small): (Vec<_>, Vec<_>) = todo.iter().partition(|(r, _)| run.large(r));
    let made = std::thread::scope(|s| {
        let mut handles: Vec<_> = small
            .iter()
            .map(|(r, h)| {
                s.spawn(|| {
                    vec![Making::new(store, reg, r, h, key).and_then(|mut m| {
                        m.delta = Some(make_delta);
                        make(m, None)
                    })]
                })
            })
            .collect();
        handles.push(s.spawn(|| {
            // Each large ZAL is rendered and validated on every core while the one before
            // it is checked and synced (which leaves cores idle): one document's checks
            // and the next one's parts are in memory at a time.
            let mut out = Vec::new();
            std::thread::scope(|s| {
                let mut checking = None;
                let mut early = early;
                for (r, h) in &big {
                    // Started beside the rule check, for this very header: used, failure
                    // and all. Started for another (its content did not change after all):
                    // let go of, its staged file with it.
                    let started = match early.take() {
                        Some((er, eh, started)) if er == r && eh == h => started,
                        _ => start_large(store, run, r, h, key, known_for(r)),
                    };
                    if let Some(c) = checking.take() {
                        out.push(joined(c));
                    }
                    match started {
                        // The one before failed: this one is not finished (its staged file
                        // goes with it).
                        Ok(_) if out.iter().any(|m| m.is_err()) => break,
                        Ok((m, started)) => {
                            let m = Making {
                                delta: Some(make_delta),
                                ..m
                            };
                            checking = Some(s.spawn(move || finish(m, started)))
                        }
                        Err(e) => {
                            out.push(Err(e));
                            break;
                        }
                    }
                }
                if let Some(c) = checking.take() {
                    out.push(joined(c));
                }
            });
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
            .collect::<Vec<Result<Made, PublishError>>>()
    });
    made.into_iter().collect()
}
