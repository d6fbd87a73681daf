//! A large ZAL in parts: rendered and validated on every core, appended to its staged
//! file in order as each part is done, its enveloped digest taken part by part.

use super::*;

/// A large ZAL rendered and checked in parts, whose header and Zorgaanbieder elements are
/// written to its staged file in order; its footer is not (a project schema's enveloped
/// signature goes into it).
pub(super) struct Parts {
    /// Where each Zorgaanbieder element lies in the file, beside `elements`.
    pub(super) ranges: Vec<(usize, usize)>,
    /// The SHA-256 of every Zorgaanbieder element, each of which has been validated.
    pub(super) elements: Vec<[u8; 32]>,
    /// Where the header ends and the elements begin, and where they end.
    pub(super) header_end: usize,
    pub(super) body_end: usize,
    pub(super) footer: Vec<u8>,
    /// How many elements this publication validated (the rest were validated before).
    pub(super) validated: usize,
    /// How many elements were copied from the published document (see `reuse`), and
    /// per element (beside `elements`; empty when nothing could be) the entry it was
    /// copied from.
    pub(super) copied: usize,
    pub(super) copied_at: Vec<Option<usize>>,
    /// The enveloped signature's digest over everything written (a project schema's).
    pub(super) digest: Option<sign::EnvelopedDigest>,
}

/// One Zorgaanbieder element of a part: its place, its SHA-256, the published
/// document's entry it was copied from.
struct Element {
    at: (usize, usize),
    sha256: [u8; 32],
    copied: Option<usize>,
}

/// A part rendered and validated: its bytes and marks, its elements' SHA-256s and where
/// each was copied from (empty: nothing could be).
pub(super) struct Checked {
    pub(super) part: render::MarkedPart,
    pub(super) elements: Vec<[u8; 32]>,
    pub(super) copied: Vec<Option<usize>>,
}

/// What a written part left: its elements' places in the file.
pub(super) struct Written {
    pub(super) ranges: Vec<(usize, usize)>,
    pub(super) elements: Vec<[u8; 32]>,
    pub(super) copied: Vec<Option<usize>>,
}

/// The parts of [`render_in_parts`] on their way into the file, in order. A part validated
/// before the one ahead of it waits in `ready`; whoever completes the sequence writes, one
/// thread at a time and outside the lock, so the others go on validating. Parts are let
/// go of as they are written: the heap holds a few, not the document.
pub(super) struct Sink<'a> {
    pub(super) staged: &'a crate::registry::documents::Staged,
    pub(super) state: std::sync::Mutex<SinkState>,
    /// Taken over each part as it is written, in order, while other parts are still being
    /// validated, instead of over the whole file after the last (a tenth of a second
    /// with one core idle at 100k). Only the writer locks it.
    pub(super) digest: Option<std::sync::Mutex<sign::EnvelopedDigest>>,
}

#[derive(Default)]
pub(super) struct SinkState {
    pub(super) next: usize,
    pub(super) writing: bool,
    pub(super) ready: BTreeMap<usize, Checked>,
    pub(super) written: Vec<Written>,
    pub(super) header_end: usize,
    pub(super) footer: Option<Footer>,
    /// Why a part could not be made or written: nothing more is.
    pub(super) failed: Option<String>,
}

/// The footer of the first part with elements, as the whole document has it (an empty
/// part closes `Zorgaanbieders` on the same line); the first part's until then.
pub(super) struct Footer {
    pub(super) bytes: Vec<u8>,
    pub(super) after_elements: bool,
}

impl Sink<'_> {
    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a part failed: the others need not be made.
    pub(super) fn failed(&self) -> bool {
        self.state().failed.is_some()
    }

    /// A part could not be made: nothing more is written, and the parts waiting go.
    pub(super) fn fail(&self, why: String) {
        let mut st = self.state();
        st.failed.get_or_insert(why);
        st.ready.clear();
    }

    pub(super) fn deposit(&self, i: usize, checked: Checked) {
        let mut st = self.state();
        if st.failed.is_some() {
            return;
        }
        st.ready.insert(i, checked);
        if st.writing {
            return;
        }
        st.writing = true;
        loop {
            let next = st.next;
            let Some(checked) = st.ready.remove(&next) else {
                st.writing = false;
                return;
            };
            drop(st);
            // A write that panics must not leave the others waiting for it.
            let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.write(next, checked)
            }))
            .unwrap_or_else(|_| Err(format!("part {next}: writing it panicked")));
            st = self.state();
            match done {
                Ok(w) if st.failed.is_none() => {
                    if next == 0 {
                        st.header_end = w.header_end;
                    }
                    let after_elements = !w.written.ranges.is_empty();
                    if st
                        .footer
                        .as_ref()
                        .is_none_or(|f| !f.after_elements && after_elements)
                    {
                        st.footer = Some(Footer {
                            bytes: w.footer,
                            after_elements,
                        });
                    }
                    st.written.push(w.written);
                    st.next += 1;
                }
                done => {
                    if let Err(e) = done {
                        st.failed.get_or_insert(e);
                    }
                    st.ready.clear();
                    st.writing = false;
                    return;
                }
            }
        }
    }

    /// Append part `i`: the first with its header, each its elements.
    pub(super) fn write(&self, i: usize, checked: Checked) -> Result<Appended, String> {
        let (a, b) = render::element_span(&checked.part)
            .ok_or_else(|| format!("part {i}: marks outside the part"))?;
        let (bytes, marks) = checked.part;
        let from = if i == 0 { 0 } else { a };
        let at = usize::try_from(self.staged.written()).map_err(|e| e.to_string())?;
        let place = |m: usize| at + (m - from);
        self.staged
            .append(&bytes[from..b])
            .map_err(|e| format!("write: {e}"))?;
        if let Some(d) = &self.digest {
            d.lock()
                .unwrap_or_else(|p| p.into_inner())
                .update(&bytes[from..b])
                .map_err(|e| format!("part {i}: {e}"))?;
        }
        let ranges: Vec<(usize, usize)> = marks
            .windows(2)
            .filter(|w| w[0] < w[1])
            .map(|w| (place(w[0]), place(w[1])))
            .collect();
        if ranges.len() != checked.elements.len() {
            return Err(format!("part {i}: marks and elements differ"));
        }
        Ok(Appended {
            written: Written {
                ranges,
                elements: checked.elements,
                copied: checked.copied,
            },
            header_end: place(a),
            footer: bytes[b..].to_vec(),
        })
    }
}

/// A part appended: its elements' places, where its header ended, its footer.
pub(super) struct Appended {
    pub(super) written: Written,
    pub(super) header_end: usize,
    pub(super) footer: Vec<u8>,
}

/// At most this many Zorgaanbieders in a part (1–2 MB of a release3 ZAL). A part is on
/// the heap while libxml2 validates it and until the parts before it are written, so at
/// 100k a fixed few parts per core (50 MB each) cost 130 MB more peak memory, and fresh
/// pages the VM charges for, and were slower.
pub(super) const PART_MAX: usize = 512;

/// Render a large ZAL as independent, complete part documents on every core, validate
/// them against the XSD (libxml2's validator is single-threaded per document, and the
/// largest list is the critical path of a publication) and write them to `staged` in
/// order as they are done, byte-exactly the document [`render::render`] makes, but for
/// its footer (see [`Parts`]).
///
/// Incremental: an element whose exact bytes are in `known` was validated against this
/// XSD by an earlier publication, so a part is validated with only its new elements (a
/// part with none is not validated). That is sound because the XSD's content model for
/// `Zorgaanbieders` is a plain repetition of `Zorgaanbieder` elements whose validity does
/// not depend on their siblings; its one cross-element constraint, unique
/// Zorgaanbiedernaam, holds by registry key; and the rest of the document (header,
/// enveloped signature) is validated in every publication by [`validate_skeleton`].
pub(super) fn render_in_parts(
    reg: &Registry,
    r: &Rendition,
    header: &Header,
    known: &Validated,
    staged: &crate::registry::documents::Staged,
    enveloped: bool,
    reuse: Option<&reuse::Reusable>,
) -> Result<Parts, PublishError> {
    let def = schema_of(r)?;
    let all: Vec<&crate::registry::model::Zorgaanbieder> = reg.zorgaanbieders.values().collect();
    // A few parts per core, so a part with heavier entries does not leave a core idle;
    // small ones at scale (see `PART_MAX`).
    let size = all
        .len()
        .div_ceil(crate::cores::count() * 4)
        .clamp(1, PART_MAX);
    let chunks: Vec<&[&crate::registry::model::Zorgaanbieder]> = all.chunks(size).collect();
    let sink = Sink {
        staged,
        state: Default::default(),
        digest: enveloped.then(|| std::sync::Mutex::new(sign::EnvelopedDigest::new())),
    };
    // `None`: not made, because another part failed (its error is the one reported).
    let check = |i: usize, part: &[&crate::registry::model::Zorgaanbieder]| {
        if sink.failed() {
            return Ok(None);
        }
        let ((bytes, marks), elements) = render_part(reg, r, header, part, known, reuse)?;
        let schema_err = |errors| PublishError::Schema {
            rendition: format!(
                "{r} (Zorgaanbieders {}..{})",
                i * size + 1,
                i * size + part.len()
            ),
            xsd: def.xsd_file.to_string(),
            errors,
        };
        let (first, last) = match (marks.first(), marks.last()) {
            (Some(&a), Some(&b)) => (a, b),
            _ => {
                return Err(PublishError::Render {
                    rendition: r.to_string(),
                    msg: "a part has no Zorgaanbieders element".into(),
                })
            }
        };
        let copied: Vec<Option<usize>> = match reuse {
            Some(_) => elements.iter().map(|e| e.copied).collect(),
            None => Vec::new(),
        };
        let new: Vec<(usize, usize)> = elements
            .iter()
            .filter(|e| !known.contains(&e.sha256))
            .map(|e| e.at)
            .collect();
        let elements: Vec<[u8; 32]> = elements.into_iter().map(|e| e.sha256).collect();
        if new.len() == elements.len() {
            schema::validate(def, &bytes).map_err(schema_err)?;
        } else if !new.is_empty() {
            let mut doc = Vec::with_capacity(first + bytes.len() - last + new.len() * 2048);
            doc.extend_from_slice(&bytes[..first]);
            for &(a, b) in &new {
                doc.extend_from_slice(&bytes[a..b]);
            }
            doc.extend_from_slice(&bytes[last..]);
            schema::validate(def, &doc).map_err(schema_err)?;
        }
        let (validated, n_copied) = (new.len(), copied.iter().flatten().count());
        sink.deposit(
            i,
            Checked {
                part: (bytes, marks),
                elements,
                copied,
            },
        );
        Ok(Some((validated, n_copied)))
    };
    let results = crate::cores::map(&chunks, |i, part| {
        let made = check(i, part);
        if let Err(e) = &made {
            sink.fail(e.to_string());
        }
        made
    });
    let (mut validated, mut copied) = (0, 0);
    for n in results {
        let n = n.unwrap_or_else(|| {
            Err(PublishError::Signature {
                rendition: r.to_string(),
                msg: "a rendering thread failed".into(),
            })
        })?;
        let (v, c) = n.unwrap_or((0, 0));
        validated += v;
        copied += c;
    }
    // Poisoned only by a panic in `write`, which fails the publication; not used then.
    let digest = sink.digest.and_then(|d| d.into_inner().ok());
    let st = sink.state.into_inner().unwrap_or_else(|p| p.into_inner());
    let written_err = |msg: String| PublishError::Signature {
        rendition: r.to_string(),
        msg,
    };
    if let Some(e) = st.failed {
        return Err(written_err(e));
    }
    if st.next != chunks.len() {
        return Err(written_err("not every part was written".into()));
    }
    let footer = st
        .footer
        .ok_or_else(|| written_err("no part was written".into()))?
        .bytes;
    let mut ranges = Vec::with_capacity(all.len());
    let mut elements = Vec::with_capacity(all.len());
    let mut copied_at = Vec::with_capacity(if reuse.is_some() { all.len() } else { 0 });
    for w in st.written {
        ranges.extend(w.ranges);
        elements.extend(w.elements);
        copied_at.extend(w.copied);
    }
    Ok(Parts {
        ranges,
        elements,
        header_end: st.header_end,
        body_end: usize::try_from(staged.written()).map_err(|e| written_err(e.to_string()))?,
        footer,
        validated,
        copied,
        copied_at,
        digest,
    })
}

/// One part of a large ZAL, its elements copied from the published document where
/// `reuse` has them and rendered otherwise, each with its place and SHA-256.
fn render_part(
    reg: &Registry,
    r: &Rendition,
    header: &Header,
    part: &[&crate::registry::model::Zorgaanbieder],
    known: &Validated,
    reuse: Option<&reuse::Reusable>,
) -> Result<(render::MarkedPart, Vec<Element>), PublishError> {
    let render_err = |e: std::io::Error| PublishError::Render {
        rendition: r.to_string(),
        msg: e.to_string(),
    };
    let hashed = |(bytes, marks): &render::MarkedPart, copied: &[Option<usize>]| {
        marks
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[0] < w[1]) // empty: not in this rendition
            .map(|(j, w)| Element {
                at: (w[0], w[1]),
                sha256: crate::digest::sha256(&bytes[w[0]..w[1]]),
                copied: copied.get(j).copied().flatten(),
            })
            .collect::<Vec<_>>()
    };
    Ok(match reuse {
        Some(from) => {
            let (made, copied) =
                render::render_zal_part_reusing(reg, part, r, header, &|z| from.element(z))
                    .map_err(render_err)?;
            let elements = hashed(&made, &copied);
            // Only bytes this XSD validated are copied: any other (a damaged file)
            // and the part is rendered.
            if elements
                .iter()
                .all(|e| e.copied.is_none() || known.contains(&e.sha256))
            {
                (made, elements)
            } else {
                tracing::warn!("{r}: an element copied from the published document was not one validated before; rendered its part instead");
                let made =
                    render::render_zal_part_marked(reg, part, r, header).map_err(render_err)?;
                let elements = hashed(&made, &[]);
                (made, elements)
            }
        }
        None => {
            let made = render::render_zal_part_marked(reg, part, r, header).map_err(render_err)?;
            let elements = hashed(&made, &[]);
            (made, elements)
        }
    })
}

/// What validated a record of elements: the XSD's text, the libxml2 that checked them
/// and the record's layout. Any change to one of them starts the record afresh.
pub(super) fn validator(def: &schema::SchemaDef) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [
        def.xsd,
        "\0libxml2 ",
        crate::xml::libxml::version(),
        "\0Zorgaanbieder elements with the whitespace before them, v1",
    ] {
        ctx.update(part.as_bytes());
    }
    let mut out = [0; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Validate what a ZAL made in parts holds besides its Zorgaanbieder elements, as it will
/// be served: the header and, in a project schema, the enveloped signature. The elements
/// were validated by [`render_in_parts`].
pub(super) fn validate_skeleton(
    def: &schema::SchemaDef,
    xml: &[u8],
) -> Result<(), schema::SchemaErrors> {
    const OPEN: &[u8] = b"<Zorgaanbieders>";
    const CLOSE: &[u8] = b"</Zorgaanbieders>";
    let a = xml.windows(OPEN.len()).position(|w| w == OPEN);
    let b = xml.windows(CLOSE.len()).rposition(|w| w == CLOSE);
    match (a, b) {
        (Some(a), Some(b)) if a + OPEN.len() <= b => {
            let mut doc = Vec::with_capacity(a + OPEN.len() + xml.len() - b);
            doc.extend_from_slice(&xml[..a + OPEN.len()]);
            doc.extend_from_slice(&xml[b..]);
            schema::validate(def, &doc)
        }
        // Not the shape the parts were joined into: validate it all rather than guess.
        _ => schema::validate(def, xml),
    }
}

/// The gzip blocks of a ZAL made in parts: its header; groups of elements, each ended
/// after an element whose SHA-256 starts with ten zero bits (about every 1,024 elements,
/// a few MB: each block starts without a dictionary, so smaller ones compress worse; set
/// by content alone, so a changed element changes only its own group) or at 8 MiB; and
/// its tail (signature, closing tags). `None` if the places do not fit the document.
pub(super) fn gzip_blocks<'a>(xml: &'a [u8], parts: &Parts) -> Option<Vec<compress::Block<'a>>> {
    const MAX: usize = 8 << 20;
    let mut blocks = vec![compress::Block {
        key: None,
        slices: vec![xml.get(..parts.header_end)?],
    }];
    let mut group = Vec::new();
    let mut key = ring::digest::Context::new(&ring::digest::SHA256);
    let mut size = 0;
    let mut at = parts.header_end;
    for (&(a, b), h) in parts.ranges.iter().zip(&parts.elements) {
        if a != at {
            return None;
        }
        at = b;
        group.push(xml.get(a..b)?);
        key.update(h);
        size += b - a;
        if (h[0] == 0 && h[1] < 64) || size >= MAX {
            let done =
                std::mem::replace(&mut key, ring::digest::Context::new(&ring::digest::SHA256));
            blocks.push(compress::Block {
                key: done.finish().as_ref().try_into().ok(),
                slices: std::mem::take(&mut group),
            });
            size = 0;
        }
    }
    if at != parts.body_end || parts.ranges.len() != parts.elements.len() {
        return None;
    }
    if !group.is_empty() {
        blocks.push(compress::Block {
            key: key.finish().as_ref().try_into().ok(),
            slices: group,
        });
    }
    blocks.push(compress::Block {
        key: None,
        slices: vec![xml.get(parts.body_end..)?],
    });
    Some(blocks)
}
