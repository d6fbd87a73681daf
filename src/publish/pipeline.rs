//! The one code path from a registry snapshot to a commit: Volgnummers from content
//! hashes, then per rendition render → XSD-validate → sign → check our own signatures (in
//! parallel), then one redb transaction. It runs only under the publication lock, which
//! [`super::Publisher`] holds.

use super::compress;
use super::render::{self, Header};
use super::{PublishError, Published};
use crate::registry::catalogue::{Catalogue, Rendition};
use crate::registry::model::{tijdstempel, ListKind, Registry};
use crate::registry::publication::{
    document_key, ListVersion, LogEntry, PublishedIndex, PublishedRendition,
};
use crate::registry::store::{NewDocument, PublicationBase, PublicationGuard, Snapshot, Store};
use crate::serve::set::Body;
use crate::sign::{self, SigningKey};
use crate::xml::schema;
use std::collections::BTreeMap;
use std::collections::{HashMap, HashSet};
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
    /// A large ZAL's validated elements, for the next publication (see `render_in_parts`).
    elements: Option<Vec<[u8; 32]>>,
    /// Where its `.gz` file holds each group's block, for the next publication.
    gzip_entries: Option<Vec<compress::Entry>>,
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

/// SHA-256s of Zorgaanbieder elements (their exact bytes in a ZAL, with the whitespace
/// before them) that were validated against one XSD.
pub type Validated = HashSet<[u8; 32]>;

/// A large ZAL rendered and checked in parts, whose header and Zorgaanbieder elements are
/// written to its staged file in order; its footer is not (a project schema's enveloped
/// signature goes into it).
struct Parts {
    /// Where each Zorgaanbieder element lies in the file, beside `elements`.
    ranges: Vec<(usize, usize)>,
    /// The SHA-256 of every Zorgaanbieder element, each of which has been validated.
    elements: Vec<[u8; 32]>,
    /// Where the header ends and the elements begin, and where they end.
    header_end: usize,
    body_end: usize,
    footer: Vec<u8>,
    /// How many elements this publication validated (the rest were validated before).
    validated: usize,
    /// The enveloped signature's digest over everything written (a project schema's).
    digest: Option<sign::EnvelopedDigest>,
}

/// A part rendered and validated: its bytes and marks, its elements' SHA-256s.
struct Checked {
    part: render::MarkedPart,
    elements: Vec<[u8; 32]>,
}

/// What a written part left: its elements' places in the file.
struct Written {
    ranges: Vec<(usize, usize)>,
    elements: Vec<[u8; 32]>,
}

/// The parts of [`render_in_parts`] on their way into the file, in order. A part validated
/// before the one ahead of it waits in `ready`; whoever completes the sequence writes, one
/// thread at a time and outside the lock, so the others go on validating. Parts are let
/// go of as they are written: the heap holds a few, not the document.
struct Sink<'a> {
    staged: &'a crate::registry::documents::Staged,
    state: std::sync::Mutex<SinkState>,
    /// Taken over each part as it is written, in order, while other parts are still being
    /// validated, instead of over the whole file after the last (a tenth of a second
    /// with one core idle at 100k). Only the writer locks it.
    digest: Option<std::sync::Mutex<sign::EnvelopedDigest>>,
}

#[derive(Default)]
struct SinkState {
    next: usize,
    writing: bool,
    ready: BTreeMap<usize, Checked>,
    written: Vec<Written>,
    header_end: usize,
    footer: Option<Footer>,
    /// Why a part could not be made or written: nothing more is.
    failed: Option<String>,
}

/// The footer of the first part with elements, as the whole document has it (an empty
/// part closes `Zorgaanbieders` on the same line); the first part's until then.
struct Footer {
    bytes: Vec<u8>,
    after_elements: bool,
}

impl Sink<'_> {
    fn state(&self) -> std::sync::MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a part failed: the others need not be made.
    fn failed(&self) -> bool {
        self.state().failed.is_some()
    }

    /// A part could not be made: nothing more is written, and the parts waiting go.
    fn fail(&self, why: String) {
        let mut st = self.state();
        st.failed.get_or_insert(why);
        st.ready.clear();
    }

    fn deposit(&self, i: usize, checked: Checked) {
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
    fn write(&self, i: usize, checked: Checked) -> Result<Appended, String> {
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
            },
            header_end: place(a),
            footer: bytes[b..].to_vec(),
        })
    }
}

/// A part appended: its elements' places, where its header ended, its footer.
struct Appended {
    written: Written,
    header_end: usize,
    footer: Vec<u8>,
}

/// At most this many Zorgaanbieders in a part (1–2 MB of a release3 ZAL). A part is on
/// the heap while libxml2 validates it and until the parts before it are written, so at
/// 100k a fixed few parts per core (50 MB each) cost 130 MB more peak memory, and fresh
/// pages the VM charges for, and were slower.
const PART_MAX: usize = 512;

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
fn render_in_parts(
    reg: &Registry,
    r: &Rendition,
    header: &Header,
    known: &Validated,
    staged: &crate::registry::documents::Staged,
    enveloped: bool,
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
        let (bytes, marks) = render::render_zal_part_marked(reg, part, r, header).map_err(|e| {
            PublishError::Render {
                rendition: r.to_string(),
                msg: e.to_string(),
            }
        })?;
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
        let mut elements = Vec::with_capacity(part.len());
        let mut new = Vec::new();
        for w in marks.windows(2) {
            let (a, b) = (w[0], w[1]);
            if a == b {
                continue; // not in this rendition
            }
            let h = sha256(&bytes[a..b]);
            if !known.contains(&h) {
                new.push((a, b));
            }
            elements.push(h);
        }
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
        let validated = new.len();
        sink.deposit(
            i,
            Checked {
                part: (bytes, marks),
                elements,
            },
        );
        Ok(Some(validated))
    };
    let results = crate::cores::map(&chunks, |i, part| {
        let made = check(i, part);
        if let Err(e) = &made {
            sink.fail(e.to_string());
        }
        made
    });
    let mut validated = 0;
    for n in results {
        let n = n.unwrap_or_else(|| {
            Err(PublishError::Signature {
                rendition: r.to_string(),
                msg: "a rendering thread failed".into(),
            })
        })?;
        validated += n.unwrap_or(0);
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
    for w in st.written {
        ranges.extend(w.ranges);
        elements.extend(w.elements);
    }
    Ok(Parts {
        ranges,
        elements,
        header_end: st.header_end,
        body_end: usize::try_from(staged.written()).map_err(|e| written_err(e.to_string()))?,
        footer,
        validated,
        digest,
    })
}

/// What validated a record of elements: the XSD's text, the libxml2 that checked them
/// and the record's layout. Any change to one of them starts the record afresh.
fn validator(def: &schema::SchemaDef) -> [u8; 32] {
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

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

/// Validate what a ZAL made in parts holds besides its Zorgaanbieder elements, as it will
/// be served: the header and, in a project schema, the enveloped signature. The elements
/// were validated by [`render_in_parts`].
fn validate_skeleton(def: &schema::SchemaDef, xml: &[u8]) -> Result<(), schema::SchemaErrors> {
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

/// One rendition being made: what each step of it needs.
#[derive(Clone, Copy)]
struct Making<'a> {
    store: &'a Store,
    reg: &'a Registry,
    r: &'a Rendition,
    header: &'a Header,
    key: &'a SigningKey,
    def: &'static schema::SchemaDef,
}

impl<'a> Making<'a> {
    fn new(
        store: &'a Store,
        reg: &'a Registry,
        r: &'a Rendition,
        header: &'a Header,
        key: &'a SigningKey,
    ) -> Result<Self, PublishError> {
        Ok(Making {
            store,
            reg,
            r,
            header,
            key,
            def: schema_of(r)?,
        })
    }

    fn render_err(&self, e: std::io::Error) -> PublishError {
        PublishError::Render {
            rendition: self.r.to_string(),
            msg: e.to_string(),
        }
    }

    fn sig_err(&self, msg: String) -> PublishError {
        PublishError::Signature {
            rendition: self.r.to_string(),
            msg,
        }
    }
}

/// A rendition written to its staged file and compressed, before its checks.
struct Staging {
    staged: crate::registry::documents::Staged,
    /// The staged file, mapped.
    xml: bytes::Bytes,
    gzip: Vec<u8>,
    gzip_entries: Option<Vec<compress::Entry>>,
    /// Whether the gzip variant copies blocks from an earlier file.
    reused: bool,
    /// A large ZAL's validated elements (see [`render_in_parts`]).
    elements: Option<Vec<[u8; 32]>>,
}

/// A list rendered whole: written from its pieces to a file and gzipped from the same
/// pieces alongside, never joined on the heap.
fn stage_whole(m: &Making) -> Result<Staging, PublishError> {
    let r = m.r;
    let (render_err, sig_err) = (|e| m.render_err(e), |e| m.sig_err(e));
    let bytes = render::render(m.reg, r, m.header).map_err(render_err)?;
    let mut pieces: Vec<&[u8]> = vec![&bytes];
    let enveloped;
    if !m.def.official {
        let (at, sig) = m
            .key
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
        reused: false,
        elements: None,
    })
}

/// A large ZAL made in parts ([`render_in_parts`]), its footer (with a project schema's
/// enveloped signature) appended, its gzip variant made from the file in groups that
/// reuse the previous publication's blocks where the group is unchanged (see `compress`).
fn stage_in_parts(m: &Making, known: &Validated) -> Result<Staging, PublishError> {
    let r = m.r;
    let (render_err, sig_err) = (|e| m.render_err(e), |e| m.sig_err(e));
    let t = std::time::Instant::now();
    let staged = m.store.stage_document(&[])?;
    let mut parts = render_in_parts(m.reg, r, m.header, known, &staged, !m.def.official)?;
    tracing::debug!(
        "{r}: {} of {} Zorgaanbieder elements validated, the rest were before",
        parts.validated,
        parts.elements.len()
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
        Some(_) => match super::cache::gzip_blocks(m.store, &r.to_string()) {
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
    let (gzip, gzip_entries, reused) = match grouped {
        Some(Ok((gz, entries, copied))) => {
            tracing::debug!("{r}: gzip: {copied} of {} groups reused", entries.len());
            (gz, Some(entries), copied > 0)
        }
        failed => {
            if let Some(Err(e)) = failed {
                tracing::warn!("{r}: gzip in groups failed ({e}); compressed it whole");
            }
            let gz = crate::registry::documents::gzip(&xml)
                .map_err(|e| sig_err(format!("gzip: {e}")))?;
            (gz, None, false)
        }
    };
    Ok(Staging {
        staged,
        xml,
        gzip,
        gzip_entries,
        reused,
        elements: Some(parts.elements),
    })
}

/// Render, validate, sign and self-verify one rendition, then compress it and write its
/// files (see `registry::documents`).
fn make(m: Making, known: Option<&Validated>) -> Result<Made, PublishError> {
    let started = start(&m, known)?;
    finish(m, started)
}

/// A rendition rendered, validated, written and compressed ([`Staging`]), since `t`.
struct Started {
    staging: Staging,
    t: std::time::Instant,
}

/// The first half of [`make`]: what uses every core to render and validate.
fn start(m: &Making, known: Option<&Validated>) -> Result<Started, PublishError> {
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
fn finish(m: Making, started: Started) -> Result<Made, PublishError> {
    let Making {
        store,
        r,
        header,
        key,
        def,
        ..
    } = m;
    let sig_err = |e| m.sig_err(e);
    let Started { staging, t } = started;
    let Staging {
        staged,
        xml,
        gzip: mut gz,
        mut gzip_entries,
        reused,
        elements,
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
    let (own, detached, synced, inflated) = std::thread::scope(|s| {
        let own = s.spawn(|| match def.official {
            true => Ok(()),
            false => key
                .check_own_enveloped(&xml)
                .map_err(|e| sig_err(format!("own enveloped signature does not verify: {e}"))),
        });
        // The document's SHA-256, over the bytes as written, names it and is the detached
        // signature's digest. The check verifies the signature document as a consumer
        // would (Reference, DigestValue, SignatureValue) against that same digest.
        let detached = s.spawn(|| {
            let sha256 = ring::digest::digest(&ring::digest::SHA256, &xml);
            let sig = key
                .sign_detached_digest(sha256.as_ref(), file)
                .map_err(|e| sig_err(e.to_string()))?;
            sign::verify_detached_digest(sha256.as_ref(), &sig, file, Some(key.public_key()))
                .map_err(|e| sig_err(format!("own detached signature does not verify: {e}")))?;
            Ok::<_, PublishError>((sig, crate::digest::hex(sha256.as_ref())))
        });
        // A gzip variant put together from reused blocks is served only if it
        // decompresses to exactly these bytes. One compressed here from these pieces
        // alone (a first publication) is the compressor's output, as a whole gzip is.
        let inflated = s.spawn(|| !reused || compress::inflates_to(&gz, &xml));
        // Syncing hundreds of MB waits on the disk, not a core: alongside.
        let synced = staged.sync();
        let joined = |what: &str| sig_err(format!("{what}: a thread panicked"));
        (
            own.join().map_err(|_| joined("enveloped check")),
            detached.join().map_err(|_| joined("detached signature")),
            synced,
            inflated.join().unwrap_or(false),
        )
    });
    own??;
    let (sig, sha256) = detached??;
    synced.map_err(|e| sig_err(format!("write: {e}")))?;
    if !inflated {
        tracing::warn!("{r}: the gzip variant made from reused blocks did not match the document; compressed it whole");
        gz = crate::registry::documents::gzip(&xml).map_err(|e| sig_err(format!("gzip: {e}")))?;
        gzip_entries = None;
    }
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
    })
}

/// The gzip blocks of a ZAL made in parts: its header; groups of elements, each ended
/// after an element whose SHA-256 starts with ten zero bits (about every 1,024 elements,
/// a few MB: each block starts without a dictionary, so smaller ones compress worse; set
/// by content alone, so a changed element changes only its own group) or at 8 MiB; and
/// its tail (signature, closing tags). `None` if the places do not fit the document.
fn gzip_blocks<'a>(xml: &'a [u8], parts: &Parts) -> Option<Vec<compress::Block<'a>>> {
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

/// The result of a thread that made a rendition; a panic is a failed publication.
fn joined(
    h: std::thread::ScopedJoinHandle<'_, Result<Made, PublishError>>,
) -> Result<Made, PublishError> {
    h.join().unwrap_or_else(|_| {
        Err(PublishError::Signature {
            rendition: "publication".into(),
            msg: "a rendering thread panicked".into(),
        })
    })
}

/// The Volgnummer a list gets when its content changed: one above its last and above its
/// floor (`None` if that overflows).
fn next_volgnummer(old: Option<&ListVersion>, floor: u64) -> Option<u64> {
    old.map(|o| o.volgnummer)
        .unwrap_or(0)
        .max(floor)
        .checked_add(1)
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
    let prev = base.published.clone();
    let floors = base.floors.clone();
    let stamp = tijdstempel(now);
    let read = |list: &ListKind| base.partial.as_ref().is_none_or(|d| d.contains(list));
    // The first large ZAL, the longest work, does not wait for the rule check and the
    // content hashes: it is started beside them at the Volgnummer it gets if its content
    // changed (a list written since the last publication almost always did), and used only
    // if that is the Volgnummer they give it; nothing of it is kept if a rule is broken.
    let large = |r: &Rendition| {
        r.list == ListKind::Zorgaanbiederslijst && reg.zorgaanbieders.len() >= PARALLEL_FROM
    };
    // The elements earlier publications validated, per XSD of a large ZAL (read only if
    // this publication may make one).
    let mut known: BTreeMap<&'static str, Validated> = BTreeMap::new();
    for r in catalogue
        .renditions()
        .iter()
        .filter(|r| large(r) && read(&r.list))
    {
        let def = schema_of(r)?;
        if !known.contains_key(def.xsd_file) {
            known.insert(
                def.xsd_file,
                super::cache::validated_elements(store, def.xsd_file, &validator(def))?,
            );
        }
    }
    let known_for = |r: &Rendition| schema_of(r).ok().and_then(|d| known.get(d.xsd_file));
    let guess = catalogue
        .renditions()
        .into_iter()
        .find(|r| large(r) && read(&r.list))
        .and_then(|r| {
            let old = prev.as_ref().and_then(|p| p.lists.get(&r.list));
            let floor = floors.get(&r.list).copied().unwrap_or(0);
            let header = Header {
                volgnummer: next_volgnummer(old, floor)?,
                tijdstempel: stamp.clone(),
            };
            Some((r, header))
        });
    // The content hashes of the lists this publication read, beside the rule check (both
    // walk the whole registry, one core each); a list whose hash cannot be made, or a
    // registry that breaks a rule, publishes nothing.
    let (rules, hashes, early) = std::thread::scope(|s| {
        let hashes = s.spawn(|| {
            ListKind::ALL
                .into_iter()
                .filter(read)
                .map(|list| {
                    let hash = reg
                        .list_content_sha256(list)
                        .map_err(|e| PublishError::Render {
                            rendition: list.to_string(),
                            msg: format!("content could not be serialised: {e}"),
                        })?;
                    Ok((list, hash))
                })
                .collect::<Result<BTreeMap<ListKind, String>, PublishError>>()
        });
        let rules = s.spawn(|| crate::registry::rules::ensure_valid(reg, &catalogue));
        let early = guess.as_ref().map(|(r, h)| {
            let started =
                Making::new(store, reg, r, h, key).and_then(|m| Ok((m, start(&m, known_for(r))?)));
            (r, h, started)
        });
        (rules.join(), hashes.join(), early)
    });
    rules
        .map_err(|_| PublishError::Refused("the rule check panicked".into()))?
        .map_err(PublishError::Invalid)?;
    let mut hashes =
        hashes.map_err(|_| PublishError::Refused("a hashing thread panicked".into()))??;
    // (A partial registry may hold no Whitelist: the published one, unchanged, was checked.)
    if read(&ListKind::Whitelist) && reg.whitelist.is_empty() {
        return Err(PublishError::Refused(
            "the Whitelist would be empty: consumers reject an empty Whitelist, so nothing was published; add the MedMij nodes first (`whitelist add HOST`)".into(),
        ));
    }
    tracing::debug!(
        "rules and content hashes (and the first large ZAL) {:?}",
        t.elapsed()
    );

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
        let hash = hashes.remove(&list).ok_or_else(|| {
            PublishError::Refused(format!("internal error: {list} was not hashed"))
        })?;
        let old = prev.as_ref().and_then(|p| p.lists.get(&list));
        let floor = floors.get(&list).copied().unwrap_or(0);
        match old {
            Some(o) if o.content_sha256 == hash && o.volgnummer >= floor => {
                lists.insert(list, o.clone());
            }
            _ => {
                let volgnummer =
                    next_volgnummer(old, floor).ok_or_else(|| PublishError::Signature {
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

    // Large ZALs, which render in parts on every core anyway, are rendered one after the
    // other, each written to its file part by part: the heap never holds a whole one. The
    // small lists are made alongside.
    let (big, small): (Vec<_>, Vec<_>) = todo.iter().partition(|(r, _)| large(r));
    let made = std::thread::scope(|s| {
        let mut handles: Vec<_> = small
            .iter()
            .map(|(r, h)| {
                s.spawn(|| vec![Making::new(store, reg, r, h, key).and_then(|m| make(m, None))])
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
                        _ => Making::new(store, reg, r, h, key)
                            .and_then(|m| Ok((m, start(&m, known_for(r))?))),
                    };
                    if let Some(c) = checking.take() {
                        out.push(joined(c));
                    }
                    match started {
                        // The one before failed: this one is not finished (its staged file
                        // goes with it).
                        Ok(_) if out.iter().any(|m| m.is_err()) => break,
                        Ok((m, started)) => checking = Some(s.spawn(move || finish(m, started))),
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
    let mut made: Vec<Made> = made.into_iter().collect::<Result<_, _>>()?;
    tracing::debug!("hashes and renditions {:?}", t.elapsed());
    // What this publication validated and compressed replaces what the last one did:
    // every rendition of an XSD is made again when its list changes, so the records stay
    // the size of one list. They are facts about bytes, true whether or not the commit
    // succeeds.
    let mut caches = super::cache::Caches::default();
    for m in &mut made {
        if let (Some(elements), Ok(def)) = (m.elements.take(), schema_of(&m.rendition)) {
            caches
                .validated
                .entry(def.xsd_file)
                .or_insert_with(|| super::cache::ValidatedRecord {
                    validator: validator(def),
                    elements: Vec::new(),
                })
                .elements
                .extend(elements);
        }
        if let Some(entries) = m.gzip_entries.take() {
            caches.gzip_blocks.push((
                m.rendition.to_string(),
                m.sha256.clone(),
                compress::encode(&entries),
            ));
        }
    }
    if let Err(x) = super::cache::record(store, guard, caches) {
        // Only the next publication's speed depends on them.
        tracing::warn!("what this publication validated and compressed was not recorded: {x}");
    }

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
        Snapshot {
            journal_head,
            generation: base.generation,
            partial: base.partial.clone(),
            touched: match journal_head {
                Some(_) => Some(base.pending.clone()),
                None => base
                    .published_registry
                    .as_ref()
                    .map(|p| crate::registry::store::Touched::between(p, reg)),
            },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::catalogue::DEFAULT_CATALOGUE;

    /// The demo registry with `n` more Zorgaanbieders, copies of the demo's.
    fn registry(n: usize) -> Registry {
        let mut reg = crate::consume::read::demo_registry();
        let models: Vec<_> = reg.zorgaanbieders.values().cloned().collect();
        for i in 0..n {
            let mut z = models[i % models.len()].clone();
            let name: String = format!("{i:04}")
                .bytes()
                .map(|d| (b'a' + d - b'0') as char)
                .collect();
            z.zorgaanbiedernaam = format!("extra{name}@medmij");
            reg.zorgaanbieders.insert(z.zorgaanbiedernaam.clone(), z);
        }
        reg
    }

    /// An empty staged file in a directory of its own (kept while the directory is).
    fn staged_file() -> (tempfile::TempDir, crate::registry::documents::Staged) {
        let dir = tempfile::tempdir().unwrap();
        let files = crate::registry::documents::Files::beside(&dir.path().join("r.redb"));
        let staged = files.stage(&[]).unwrap();
        (dir, staged)
    }

    /// [`render_in_parts`] into a file of its own, its footer appended: the document's
    /// bytes and the parts' record. The gzip blocks cut from it must cover it exactly.
    fn in_parts(
        reg: &Registry,
        r: &Rendition,
        h: &Header,
        known: &Validated,
    ) -> Result<(Vec<u8>, Parts), PublishError> {
        let (_dir, staged) = staged_file();
        let parts = render_in_parts(reg, r, h, known, &staged, false)?;
        staged.append(&parts.footer).unwrap();
        let xml = staged.map().unwrap().to_vec();
        let blocks = gzip_blocks(&xml, &parts).expect("blocks fit the document");
        let cut: Vec<u8> = blocks.iter().flat_map(|b| b.slices.concat()).collect();
        assert_eq!(cut, xml);
        Ok((xml, parts))
    }

    fn doc(p: &(Vec<u8>, Parts)) -> Vec<u8> {
        p.0.clone()
    }

    fn header() -> Header {
        Header {
            volgnummer: 4,
            tijdstempel: "2026-12-01T00:00:00Z".into(),
        }
    }

    /// Point every token endpoint of the `i`-th Zorgaanbieder at `uri`.
    fn with_token_endpoint(reg: &Registry, i: usize, uri: &str) -> Registry {
        let mut reg = reg.clone();
        if let Some(z) = reg.zorgaanbieders.values_mut().nth(i) {
            for iv in &mut z.interfaceversies {
                for g in &mut iv.gegevensdiensten {
                    g.token_endpointuri = uri.into();
                }
            }
        }
        reg
    }

    #[test]
    fn incremental_validation_validates_new_elements_only_and_changes_no_byte() {
        let reg = registry(40);
        let h = header();
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        let zals: Vec<Rendition> = cat
            .renditions()
            .into_iter()
            .filter(|r| r.list == ListKind::Zorgaanbiederslijst)
            .collect();
        assert!(zals.len() >= 2, "{zals:?}");
        for r in &zals {
            let whole = render::render(&reg, r, &h).unwrap();
            let cold = in_parts(&reg, r, &h, &Validated::new()).unwrap();
            assert_eq!(doc(&cold), whole, "{r}");
            assert!(!cold.1.elements.is_empty(), "{r}");
            assert_eq!(
                cold.1.validated,
                cold.1.elements.len(),
                "{r}: nothing known yet"
            );
            let known: Validated = cold.1.elements.iter().copied().collect();
            let warm = in_parts(&reg, r, &h, &known).unwrap();
            assert_eq!((doc(&warm), warm.1.validated), (whole, 0), "{r}");

            // One changed Zorgaanbieder: its element alone is validated, the bytes are the
            // whole document's.
            let changed = with_token_endpoint(&reg, 7, "https://ander.voorbeeld.nl/token");
            let warm = in_parts(&changed, r, &h, &known).unwrap();
            assert_eq!(doc(&warm), render::render(&changed, r, &h).unwrap(), "{r}");
            assert!(warm.1.validated <= 1, "{r}: {}", warm.1.validated);
            if r.interfaceversie.is_none() {
                assert_eq!(warm.1.validated, 1, "{r}");
            }

            // An element that breaks the XSD is refused, known neighbours or not.
            let broken = with_token_endpoint(&reg, 7, "http://niet-https.voorbeeld.nl/token");
            if render::render(&broken, r, &h).unwrap() != render::render(&reg, r, &h).unwrap() {
                for k in [&Validated::new(), &known] {
                    match in_parts(&broken, r, &h, k) {
                        Err(PublishError::Schema { errors, .. }) => {
                            assert!(errors.to_string().contains("TokenEndpointuri"), "{errors}")
                        }
                        other => panic!("{r}: {:?}", other.map(|p| p.1.validated)),
                    }
                }
            }
        }
    }

    #[test]
    fn parts_validated_out_of_order_are_written_in_order_and_digested_in_order() {
        let (k, c) = SigningKey::generate_development().unwrap();
        let key = SigningKey::from_pem(&k, &c).unwrap();
        let reg = registry(30);
        let h = header();
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        for r in cat
            .renditions()
            .into_iter()
            .filter(|r| r.list == ListKind::Zorgaanbiederslijst)
        {
            let all: Vec<_> = reg.zorgaanbieders.values().collect();
            // Part sizes that leave some parts with nothing in this Interfaceversie.
            for size in [1, 4, 7] {
                let parts: Vec<render::MarkedPart> = all
                    .chunks(size)
                    .map(|c| render::render_zal_part_marked(&reg, c, &r, &h).unwrap())
                    .collect();
                assert_eq!(
                    render::zal_pieces(&parts).unwrap().concat(),
                    render::render(&reg, &r, &h).unwrap()
                );
                let (_dir, staged) = staged_file();
                let sink = Sink {
                    staged: &staged,
                    state: Default::default(),
                    digest: Some(std::sync::Mutex::new(sign::EnvelopedDigest::new())),
                };
                // Last first: nothing can be written until the first part arrives.
                for (i, part) in parts.iter().enumerate().rev() {
                    let elements = part
                        .1
                        .windows(2)
                        .filter(|w| w[0] < w[1])
                        .map(|w| sha256(&part.0[w[0]..w[1]]))
                        .collect();
                    sink.deposit(
                        i,
                        Checked {
                            part: part.clone(),
                            elements,
                        },
                    );
                    assert_eq!(staged.written() == 0, i > 0, "{r}: part {i}");
                }
                let digest = sink.digest.unwrap().into_inner().unwrap();
                let st = sink.state.into_inner().unwrap();
                assert_eq!(
                    (st.next, st.ready.len(), st.writing),
                    (parts.len(), 0, false)
                );
                let footer = st.footer.unwrap().bytes;
                staged.append(&footer).unwrap();
                let whole = render::render(&reg, &r, &h).unwrap();
                assert_eq!(
                    &staged.map().unwrap()[..],
                    &whole[..],
                    "{r}, parts of {size}"
                );
                // The digest taken part by part as they were written is the document's:
                // the signature made from it verifies over the whole.
                let (at, sig) = key.enveloped_signature_after(digest, &footer).unwrap();
                let mut signed = whole.clone();
                let at = whole.len() - footer.len() + at;
                signed.splice(at..at, sig);
                key.check_own_enveloped(&signed)
                    .unwrap_or_else(|e| panic!("{r}, parts of {size}: {e}"));
                crate::sign::verify_enveloped(&signed, Some(key.public_key())).unwrap();
            }
        }
    }

    #[test]
    fn a_failed_part_lets_go_of_the_parts_waiting_and_stops_the_writing() {
        let reg = registry(8);
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        let r = cat
            .renditions()
            .into_iter()
            .find(|r| r.list == ListKind::Zorgaanbiederslijst)
            .unwrap();
        let all: Vec<_> = reg.zorgaanbieders.values().collect();
        let parts: Vec<Checked> = all
            .chunks(3)
            .map(|c| Checked {
                part: render::render_zal_part_marked(&reg, c, &r, &header()).unwrap(),
                elements: Vec::new(),
            })
            .collect();
        let (_dir, staged) = staged_file();
        let sink = Sink {
            staged: &staged,
            state: Default::default(),
            digest: None,
        };
        let mut parts = parts.into_iter();
        let (first, second) = (parts.next().unwrap(), parts.next().unwrap());
        sink.deposit(1, second);
        assert_eq!(sink.state().ready.len(), 1);
        // Part 0 failed validation: part 1 goes, later parts are not taken, nothing is
        // written, and part 0 arriving anyway is not written either.
        sink.fail("part 0: invalid".into());
        assert!(sink.failed() && sink.state().ready.is_empty());
        for (i, p) in parts.enumerate() {
            sink.deposit(i + 2, p);
        }
        sink.deposit(0, first);
        let st = sink.state.into_inner().unwrap();
        assert_eq!((st.next, st.ready.len(), staged.written()), (0, 0, 0));
        assert_eq!(st.failed.as_deref(), Some("part 0: invalid"));
    }

    #[test]
    fn the_skeleton_of_a_document_made_in_parts_is_validated() {
        let reg = registry(3);
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        for r in cat
            .renditions()
            .into_iter()
            .filter(|r| r.list == ListKind::Zorgaanbiederslijst)
        {
            let def = schema_of(&r).unwrap();
            let good = render::render(&reg, &r, &header()).unwrap();
            validate_skeleton(def, &good).unwrap();
            // A header the XSD refuses, with valid Zorgaanbieders.
            let bad = Header {
                volgnummer: 4,
                tijdstempel: "gisteren".into(),
            };
            let e = validate_skeleton(def, &render::render(&reg, &r, &bad).unwrap())
                .unwrap_err()
                .to_string();
            assert!(e.contains("Tijdstempel"), "{r}: {e}");
        }
    }
}
