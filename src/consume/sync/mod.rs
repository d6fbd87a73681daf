//! `stelselnode sync`: the reference consumer. It fetches a release's signed head, checks
//! it against the pinned certificate, brings every list up to what the head names (by
//! deltas when it holds the previous document, else whole), checks each list's bytes
//! against the head's SHA-256, its detached signature and its XSD, and only then replaces
//! the files in the output directory, under the official file names, atomically.
//!
//! It refuses, leaving the directory exactly as it was: a lower Volgnummer than it holds
//! (rollback), the same Volgnummer with other bytes (equivocation), an expired head
//! (freeze), a signature by another key, any hash that does not match (tampering), a body
//! larger than announced, a redirect, a TLS failure.
//!
//! It follows the operator's signing key rollovers by itself: the head names the key
//! chain's links (`sign::chain`), each signed by the outgoing key; from its pin (or the
//! keys it followed before) it walks them, refusing a link not signed by the key it names,
//! and then trusts the new key. Keys older than the newest that signed an accepted head are
//! left behind.
//!
//! Exit codes (`--once`): 0 the lists are current (updated or not), 1 a local problem (the
//! directory, its state), 2 bad arguments, 3 the server is unavailable for now (retry
//! later), 4 refused, 5 equivocation (the operator published two different documents under
//! one Volgnummer, or someone forged one: raise the alarm).

pub mod http;
pub mod metrics;
pub mod state;

use crate::distribute::delta::{self, Delta};
use crate::distribute::head::{self, Blob, Head, ListHead};
use crate::registry::model::ListKind;
use crate::sign::PublicKey;
use state::{Held, State};
use std::path::PathBuf;
use std::time::Duration;

/// Why an update was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    Rollback,
    Equivocation,
    Expired,
    Key,
    Hash,
    Oversize,
    Redirect,
    Tls,
    Invalid,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Rollback => "rollback",
            Reason::Equivocation => "equivocation",
            Reason::Expired => "expired",
            Reason::Key => "key",
            Reason::Hash => "hash",
            Reason::Oversize => "oversize",
            Reason::Redirect => "redirect",
            Reason::Tls => "tls",
            Reason::Invalid => "invalid",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("refused ({}): {detail}", .reason.as_str())]
    Refused { reason: Reason, detail: String },
    #[error("the server is unavailable: {detail}")]
    Unavailable {
        detail: String,
        retry_after: Option<u64>,
    },
    #[error("{0}")]
    Local(String),
}

impl Failure {
    pub fn refused(reason: Reason, detail: impl Into<String>) -> Failure {
        Failure::Refused {
            reason,
            detail: detail.into(),
        }
    }

    /// The exit code of `--once`.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Local(_) => 1,
            Failure::Unavailable { .. } => 3,
            Failure::Refused {
                reason: Reason::Equivocation,
                ..
            } => 5,
            Failure::Refused { .. } => 4,
        }
    }
}

/// Which release to follow.
#[derive(Clone, Debug)]
pub enum Select {
    Default,
    Release(String),
    Api(String),
}

pub struct Options {
    /// Ends with '/'.
    pub base_url: String,
    pub out: PathBuf,
    /// The pinned certificate (DER): the trust anchor of a first run.
    pub pinned: Vec<u8>,
    pub select: Select,
    pub client: http::Client,
    /// Largest list document accepted.
    pub max_size: u64,
}

/// What one sync did.
#[derive(Debug, PartialEq, Eq)]
pub struct Synced {
    pub updated: Vec<ListKind>,
    pub publication: u64,
    /// Bytes received for this sync.
    pub fetched: u64,
}

/// Largest detached signature and delta index accepted.
const MAX_SIG: u64 = 64 * 1024;
const MAX_INDEX: u64 = 1 << 20;
/// Documents above this, rebuilt by deltas, are written straight to their file as they
/// are put together (and hashed on the way), and validated incrementally: the entries that
/// changed, with the new header and tail (the rest was validated when first received and
/// is bound to the head's SHA-256).
const VALIDATE_WHOLE_UP_TO: usize = 1 << 20;

impl Options {
    fn url(&self, rel: &str) -> String {
        format!("{}stelselnode/{rel}", self.base_url)
    }

    fn head_query(&self) -> String {
        match &self.select {
            Select::Default => String::new(),
            Select::Release(r) => format!("?release={r}"),
            Select::Api(a) => format!("?api={a}"),
        }
    }
}

fn sha(b: &[u8]) -> String {
    crate::digest::sha256_hex(b)
}

/// Fetch `blob` and check it is exactly what the head (or index) says.
fn fetch_blob(o: &Options, blob: &Blob, what: &str) -> Result<Vec<u8>, Failure> {
    let got = o.client.get(&o.url(&blob.href), None, false, blob.size)?;
    if got.gzip {
        return Err(Failure::refused(
            Reason::Invalid,
            format!("{what}: sent gzip-encoded, which was not asked for"),
        ));
    }
    if got.body.len() as u64 != blob.size || sha(&got.body) != blob.sha256 {
        return Err(Failure::refused(
            Reason::Hash,
            format!(
                "{what}: the bytes received are not the ones the head names (SHA-256 {})",
                blob.sha256
            ),
        ));
    }
    Ok(got.body)
}

/// A head as accepted: parsed, its bytes and signature, its ETag, and the keys trusted
/// from it on.
struct Fetched {
    head: Head,
    bytes: Vec<u8>,
    sig: Vec<u8>,
    etag: Option<String>,
    trust: Trust,
}

/// The signing keys a sync trusts: certificates (DER) in chain order.
struct Trust {
    certs: Vec<Vec<u8>>,
    keys: Vec<PublicKey>,
    /// Fingerprints left behind.
    followed_from: Vec<String>,
}

impl Trust {
    fn new(certs: Vec<Vec<u8>>, followed_from: Vec<String>) -> Result<Trust, Failure> {
        let keys = certs
            .iter()
            .map(|c| PublicKey::from_cert_der(c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Failure::refused(Reason::Key, format!("a trusted certificate: {e}")))?;
        Ok(Trust {
            certs,
            keys,
            followed_from,
        })
    }

    /// What this directory trusts: the keys it followed to, or on a first run the pin. A
    /// pin that is neither is refused: the directory was filled under another key.
    fn of(o: &Options, prior: Option<&State>) -> Result<Trust, Failure> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let kept = prior.map(|p| p.keys.as_slice()).unwrap_or_default();
        if kept.is_empty() {
            return Trust::new(vec![o.pinned.clone()], Vec::new());
        }
        let certs = kept
            .iter()
            .map(|c| b64.decode(c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Failure::Local(format!("the state's keys: {e}")))?;
        let followed_from = prior.map(|p| p.followed_from.clone()).unwrap_or_default();
        let pin = crate::sign::chain::fingerprint(&o.pinned);
        let known = certs
            .iter()
            .any(|c| crate::sign::chain::fingerprint(c) == pin)
            || followed_from.contains(&pin);
        if !known {
            return Err(Failure::refused(
                Reason::Key,
                format!(
                    "--cert {pin} is neither a key this directory trusts nor one it followed from; the lists here were accepted under another key (remove {} to start again from --cert)",
                    state::state_dir(&o.out).display()
                ),
            ));
        }
        Trust::new(certs, followed_from)
    }

    /// The index of the newest trusted key whose signature `sig` carries over bytes
    /// with this SHA-256.
    fn verify(&self, sha256: &[u8], sig: &[u8], uri: &str, what: &str) -> Result<usize, Failure> {
        crate::sign::by_newest(&self.keys, |k| {
            crate::sign::verify_detached_digest(sha256, sig, uri, Some(k))
        })
        .map(|(_, i)| i)
        .map_err(|e| signature_failure(e, what))
    }

    /// Trust from the key at `i` on (it signed an accepted head): older keys are left.
    fn from(mut self, i: usize) -> Trust {
        for c in self.certs.drain(..i) {
            self.followed_from.push(crate::sign::chain::fingerprint(&c));
        }
        self.keys.drain(..i);
        self
    }
}

/// Walk the key chain links `h` names from what `trust` holds.
fn follow_keys(o: &Options, h: &Head, trust: Trust) -> Result<Trust, Failure> {
    if h.keys.is_empty() {
        return Ok(trust);
    }
    if h.keys.len() > crate::sign::chain::MAX_LINKS {
        return Err(Failure::refused(
            Reason::Oversize,
            "the head names too many key links",
        ));
    }
    let mut links = Vec::with_capacity(h.keys.len());
    for (n, b) in h.keys.iter().enumerate() {
        if b.size > crate::sign::chain::MAX_SIZE as u64 {
            return Err(Failure::refused(
                Reason::Oversize,
                format!("key link {}: {} bytes", n + 1, b.size),
            ));
        }
        links.push(fetch_blob(o, b, &format!("key link {}", n + 1))?);
    }
    let chain = crate::sign::chain::follow(&trust.certs, &links)
        .map_err(|e| Failure::refused(Reason::Key, e.to_string()))?;
    if chain.len() > trust.certs.len() {
        for c in &chain[trust.certs.len()..] {
            tracing::info!(
                "signing key chain followed: {} is trusted from now on (announced by a key this consumer trusts)",
                crate::sign::chain::fingerprint(c)
            );
        }
    }
    Trust::new(chain, trust.followed_from)
}

/// The signed head: fetched (or, unchanged, the one kept), its signature checked with
/// the pinned key, valid against its XSD, not expired.
fn head(o: &Options, prior: Option<&State>, now: time::OffsetDateTime) -> Result<Fetched, Failure> {
    let kept = state::state_dir(&o.out);
    let kept_head = prior.and_then(|_| std::fs::read(kept.join(state::HEAD_FILE)).ok());
    let kept_sig =
        prior.and_then(|_| std::fs::read(kept.join(format!("{}.sig", state::HEAD_FILE))).ok());
    let inm = match (&kept_head, &kept_sig) {
        (Some(_), Some(_)) => prior.and_then(|p| p.head_etag.clone()),
        _ => None,
    };
    let url = format!("{}{}", o.url(head::FILE), o.head_query());
    let got = o
        .client
        .get(&url, inm.as_deref(), false, head::MAX_SIZE as u64)?;
    let (bytes, sig, etag) = match (got.status, kept_head, kept_sig) {
        (304, Some(h), Some(s)) => (h, s, inm),
        _ => {
            let sig_url = format!(
                "{}{}",
                o.url(&format!("{}.sig", head::FILE)),
                o.head_query()
            );
            let sig = o.client.get(&sig_url, None, false, MAX_SIG)?.body;
            (got.body, sig, got.etag)
        }
    };
    // Parsed (XSD, size) before its signature is checked: it names the key chain, whose
    // links prove themselves from the keys already trusted.
    let h = Head::parse(&bytes).map_err(|e| Failure::refused(Reason::Invalid, e.to_string()))?;
    let sha = ring::digest::digest(&ring::digest::SHA256, &bytes);
    let known = Trust::of(o, prior)?;
    let trust = match known.verify(sha.as_ref(), &sig, head::FILE, "the head") {
        // Signed by a key already trusted: the links it names are the operator's (an
        // announced key is trusted from now on).
        Ok(_) => follow_keys(o, &h, known)?,
        // Not (yet): only links that prove themselves from the keys trusted can help.
        Err(unverified) => follow_keys(o, &h, known).map_err(|f| match f {
            Failure::Refused { reason, detail } => Failure::refused(
                reason,
                format!("{detail}; and the head is not signed by a key this consumer trusts ({unverified})"),
            ),
            other => other,
        })?,
    };
    let signer = trust.verify(sha.as_ref(), &sig, head::FILE, "the head")?;
    let trust = trust.from(signer);
    let expires = head::parse_utc(&h.expires)
        .ok_or_else(|| Failure::refused(Reason::Invalid, "the head's Expires is not a time"))?;
    if expires <= now {
        return Err(Failure::refused(
            Reason::Expired,
            format!(
                "the head expired at {} (issued {}): the Stelselnode or a mirror stopped publishing; the last good copy is kept",
                h.expires, h.issued
            ),
        ));
    }
    if let Select::Release(r) = &o.select {
        if &h.release != r {
            return Err(Failure::refused(
                Reason::Invalid,
                format!(
                    "asked for release {r}, the head is of release {}",
                    h.release
                ),
            ));
        }
    }
    Ok(Fetched {
        head: h,
        bytes,
        sig,
        etag,
        trust,
    })
}

fn signature_failure(e: crate::sign::VerifyError, what: &str) -> Failure {
    let m = e.to_string();
    // The digest: the bytes were changed. Anything else: not the pinned key's.
    let reason = if m.contains("DigestValue") {
        Reason::Hash
    } else {
        Reason::Key
    };
    Failure::refused(reason, format!("{what}: {m}"))
}

fn hex_bytes(h: &str) -> Option<Vec<u8>> {
    if h.len() % 2 != 0 {
        return None;
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
        .collect()
}

/// One list brought up to the head: its new bytes and signature, checked.
struct Update {
    list: ListKind,
    xml: Doc,
    sig: Vec<u8>,
    held: Held,
}

/// A new document: in memory, or already in its staged file.
enum Doc {
    Memory(Vec<u8>),
    Staged(state::Staged),
}

/// A document rebuilt by deltas.
enum Rebuilt {
    /// In memory (a document small enough to be validated whole).
    Memory(Vec<u8>),
    /// A large one, written straight to a staged file as it was put together: its SHA-256
    /// (hex) and size, and the document to validate (the new header, the entries the
    /// deltas changed, the new tail).
    Staged {
        file: state::Staged,
        sha256: String,
        size: u64,
        validate: Vec<u8>,
    },
}

/// The document a list head names, rebuilt from `old` by the chain of deltas, if the
/// chain reaches it.
fn by_deltas(
    o: &Options,
    lh: &ListHead,
    held: &Held,
    old: bytes::Bytes,
) -> Result<Option<Rebuilt>, Failure> {
    let Some(index) = &lh.deltas else {
        return Ok(None);
    };
    if index.size > MAX_INDEX {
        return Ok(None);
    }
    let links =
        crate::distribute::store::read_index(&fetch_blob(o, index, "the delta index")?, 10_000)
            .map_err(|e| Failure::refused(Reason::Invalid, e))?;
    let mut path = Vec::new();
    let mut at = lh.volgnummer;
    while at != held.volgnummer {
        let Some(link) = links.iter().find(|l| l.1 == at && l.0 < at) else {
            return Ok(None);
        };
        path.push(link.clone());
        at = link.0;
    }
    path.reverse();
    if path.iter().map(|l| l.3).sum::<u64>() >= lh.document.size {
        return Ok(None);
    }
    let t = std::time::Instant::now();
    let mut deltas = Vec::with_capacity(path.len());
    let mut at_sha = held.sha256.clone();
    for (from, to, sha256, size) in path {
        let bytes = fetch_blob(
            o,
            &Blob::at("delta", &sha256, size),
            &format!("the delta {from} → {to}"),
        )?;
        let d =
            Delta::decode(&bytes).map_err(|e| Failure::refused(Reason::Invalid, e.to_string()))?;
        if d.from != (from, at_sha.clone()) || d.to.0 != to {
            return Err(Failure::refused(
                Reason::Hash,
                format!("the delta {from} → {to} does not start from the document held"),
            ));
        }
        at_sha = d.to.1.clone();
        deltas.push(d);
    }
    let invalid = |e: delta::DeltaError| Failure::refused(Reason::Invalid, e.to_string());
    let Some((last, before)) = deltas.split_last() else {
        return Ok(None);
    };
    let mut doc = old;
    for d in before {
        doc = delta::apply(&doc, lh.list, d).map_err(invalid)?.into();
        tracing::debug!("{}: delta {} → {} applied", lh.list, d.from.0, d.to.0);
    }
    // The entries changed on the way, as they are in the end.
    let mut changed: std::collections::HashMap<&[u8], &[u8]> = Default::default();
    for d in &deltas {
        for k in &d.removed {
            changed.remove(k.as_slice());
        }
        for p in &d.puts {
            changed.insert(&p.key, &p.bytes);
        }
    }
    if (lh.document.size as usize) <= VALIDATE_WHOLE_UP_TO {
        let doc = delta::apply(&doc, lh.list, last).map_err(invalid)?;
        tracing::debug!("{}: delta {} → {} applied", lh.list, last.from.0, last.to.0);
        return Ok(Some(Rebuilt::Memory(doc)));
    }
    // The pieces in order (runs of the old document, the delta's parts), then hashed on
    // one core while the other writes them.
    let mut pieces: Vec<&[u8]> = Vec::new();
    delta::apply_into(&doc, lh.list, last, &mut |piece| {
        pieces.push(piece);
        Ok(())
    })
    .map_err(invalid)?;
    let size: u64 = pieces.iter().map(|p| p.len() as u64).sum();
    tracing::debug!("{}: deltas fetched and laid out {:?}", lh.list, t.elapsed());
    let mut file = state::Staged::create(&o.out, lh.list.file_name())?;
    let (digest, written) = std::thread::scope(|s| {
        let hashing = s.spawn(|| {
            let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
            for p in &pieces {
                hash.update(p);
            }
            hash.finish()
        });
        let written = file.write_pieces(&pieces);
        (hashing.join(), written)
    });
    written.map_err(|e| Failure::Local(format!("writing {}: {e}", lh.list.file_name())))?;
    let digest = digest.map_err(|_| Failure::Local("hashing the document failed".into()))?;
    tracing::debug!("{}: written and hashed {:?}", lh.list, t.elapsed());
    file.finish()?;
    tracing::debug!("{}: synced to the disk {:?}", lh.list, t.elapsed());
    tracing::debug!(
        "{}: delta {} → {} applied into its file",
        lh.list,
        last.from.0,
        last.to.0
    );
    let mut validate = last.head.clone();
    for bytes in changed.values() {
        validate.extend_from_slice(bytes);
    }
    validate.extend_from_slice(&last.tail);
    Ok(Some(Rebuilt::Staged {
        file,
        sha256: crate::digest::hex(digest.as_ref()),
        size,
        validate,
    }))
}

/// The whole document a list head names.
fn whole(o: &Options, lh: &ListHead) -> Result<Vec<u8>, Failure> {
    let d = &lh.document;
    if d.size > o.max_size {
        return Err(Failure::refused(
            Reason::Oversize,
            format!(
                "{} is {} bytes, more than --max-size {}",
                lh.list, d.size, o.max_size
            ),
        ));
    }
    let got = o
        .client
        .get(&o.url(&d.href), None, true, d.size.max(lh.gzip_size))?;
    if got.gzip {
        if got.body.len() as u64 != lh.gzip_size || sha(&got.body) != lh.gzip_sha256 {
            return Err(Failure::refused(
                Reason::Hash,
                format!(
                    "{}: the gzip bytes received are not the ones the head names",
                    lh.list
                ),
            ));
        }
        return http::gunzip(&got.body, d.size);
    }
    Ok(got.body)
}

/// The XSD check of `xml` (a whole document, or the part of one a delta changed).
fn validate(list: ListKind, xml: &[u8]) -> Result<(), Failure> {
    let invalid = |m: String| Failure::refused(Reason::Invalid, format!("{list}: {m}"));
    let (root, ns) = crate::consume::read::detect_root(xml).map_err(|e| invalid(e.to_string()))?;
    let def = crate::xml::schema::by_root(&root, &ns)
        .filter(|d| d.list == list)
        .ok_or_else(|| {
            invalid(format!(
                "root {root} in namespace '{ns}' is not a schema this consumer knows"
            ))
        })?;
    crate::xml::schema::validate(def, xml)
        .map_err(|e| invalid(format!("not valid against its XSD: {e}")))
}

/// One list: refused if it goes back or forks; else its new bytes, checked, or `None`
/// when the directory already holds what the head names.
fn list_update(
    o: &Options,
    trust: &Trust,
    lh: &ListHead,
    held: Option<&Held>,
) -> Result<Option<Update>, Failure> {
    let file = o.out.join(lh.list.file_name());
    if let Some(h) = held {
        if lh.volgnummer < h.volgnummer {
            return Err(Failure::refused(
                Reason::Rollback,
                format!(
                    "{} Volgnummer {} is lower than the {} accepted before",
                    lh.list, lh.volgnummer, h.volgnummer
                ),
            ));
        }
        if lh.volgnummer == h.volgnummer && lh.document.sha256 != h.sha256 {
            return Err(Failure::refused(
                Reason::Equivocation,
                format!(
                    "{} Volgnummer {} now has other bytes (SHA-256 {} instead of {}): two documents under one Volgnummer; ALERT the stelsel operator",
                    lh.list, lh.volgnummer, lh.document.sha256, h.sha256
                ),
            ));
        }
        if lh.volgnummer == h.volgnummer && lh.signature.sha256 == h.sig_sha256 && file.exists() {
            return Ok(None);
        }
    }
    // Not hashed here: deltas applied to other bytes rebuild a document whose hash the
    // head refuses (and then the whole document is taken).
    let t = std::time::Instant::now();
    let old = held.and_then(|h| state::HeldCopy::open(&file, h.size));
    tracing::debug!("{}: the copy held read {:?}", lh.list, t.elapsed());
    let rebuilt = match (held, &old) {
        (Some(h), Some(old)) if h.volgnummer < lh.volgnummer => {
            match by_deltas(o, lh, h, old.bytes.clone()) {
                // Hashed while it was being written to by someone else: what was hashed
                // need not be what was written.
                Ok(Some(Rebuilt::Staged { .. })) if !old.unchanged() => {
                    tracing::warn!(
                        "{}: the copy held was written to while it was used; taking the whole document",
                        lh.list
                    );
                    None
                }
                // A delta that does not fit or rebuilds other bytes: the whole document is
                // the way still open (and is checked the same).
                Err(Failure::Refused {
                    reason: r @ (Reason::Hash | Reason::Invalid),
                    detail,
                }) => {
                    tracing::warn!(
                        "{}: deltas refused ({}): {detail}; taking the whole document",
                        lh.list,
                        r.as_str()
                    );
                    None
                }
                other => other?,
            }
        }
        _ => None,
    };
    let fits = |x: &[u8]| x.len() as u64 == lh.document.size && sha(x) == lh.document.sha256;
    let whole_doc = |warn: bool| -> Result<Vec<u8>, Failure> {
        if warn {
            tracing::warn!(
                "{}: the deltas did not rebuild the document the head names; taking it whole",
                lh.list
            );
        }
        let x = whole(o, lh)?;
        if !fits(&x) {
            return Err(Failure::refused(
                Reason::Hash,
                format!(
                    "{}: the document received is not the one the head names (SHA-256 {})",
                    lh.list, lh.document.sha256
                ),
            ));
        }
        Ok(x)
    };
    // The document, and what its XSD check covers: all of it, or (rebuilt by deltas) the
    // changed entries between the new header and tail.
    let (xml, check): (Doc, Option<Vec<u8>>) = match rebuilt {
        Some(Rebuilt::Memory(x)) if fits(&x) => (Doc::Memory(x), None),
        Some(Rebuilt::Staged {
            file,
            sha256,
            size,
            validate,
        }) if sha256 == lh.document.sha256 && size == lh.document.size => {
            (Doc::Staged(file), Some(validate))
        }
        rebuilt => (Doc::Memory(whole_doc(rebuilt.is_some())?), None),
    };
    tracing::debug!("{}: document and its hash {:?}", lh.list, t.elapsed());
    let sig = fetch_blob(o, &lh.signature, &format!("{}'s signature", lh.list))?;
    // The bytes' SHA-256 was just checked to be the head's: not computed again.
    let digest = hex_bytes(&lh.document.sha256)
        .ok_or_else(|| Failure::refused(Reason::Invalid, "the head's SHA-256 is not hex"))?;
    trust.verify(&digest, &sig, lh.list.file_name(), &lh.list.to_string())?;
    match (&xml, &check) {
        (_, Some(part)) => validate(lh.list, part)?,
        (Doc::Memory(x), None) => validate(lh.list, x)?,
        (Doc::Staged(_), None) => {}
    }
    tracing::debug!("{}: signature and XSD {:?}", lh.list, t.elapsed());
    Ok(Some(Update {
        list: lh.list,
        held: Held {
            volgnummer: lh.volgnummer,
            sha256: lh.document.sha256.clone(),
            size: lh.document.size,
            sig_sha256: lh.signature.sha256.clone(),
        },
        xml,
        sig,
    }))
}

/// One sync: everything is fetched and checked before the first file is replaced.
pub fn once(o: &Options, now: time::OffsetDateTime) -> Result<Synced, Failure> {
    let before = o.client.fetched.load(std::sync::atomic::Ordering::Relaxed);
    let prior = state::load(&o.out)?;
    let Fetched {
        head: h,
        bytes: head_bytes,
        sig: head_sig,
        etag,
        trust,
    } = head(o, prior.as_ref(), now)?;
    if let Some(p) = &prior {
        if !p.session.is_empty() && p.session != h.session {
            tracing::info!("the Stelselnode's session changed ({} → {}): deltas start again, Volgnummers still may not go back", p.session, h.session);
        }
    }
    let mut updates = Vec::new();
    for lh in &h.lists {
        let held = prior.as_ref().and_then(|p| p.lists.get(lh.list.key()));
        if let Some(u) = list_update(o, &trust, lh, held)? {
            updates.push(u);
        }
    }
    // Everything checked: now the directory changes, list by list, each file atomically.
    let mut next = prior.unwrap_or_default();
    let t = std::time::Instant::now();
    // Each file is replaced atomically on its own; their syncs run side by side (each
    // waits for a journal commit), the state last.
    let kept = state::state_dir(&o.out);
    let sig_names: Vec<String> = updates
        .iter()
        .map(|u| format!("{}.sig", u.list.file_name()))
        .collect();
    let head_sig_name = format!("{}.sig", state::HEAD_FILE);
    let results: Vec<Result<(), Failure>> = std::thread::scope(|s| {
        let mut jobs = Vec::new();
        for (u, sig_name) in updates.iter().zip(&sig_names) {
            jobs.push(s.spawn(move || match &u.xml {
                Doc::Memory(x) => state::write_atomic(&o.out, u.list.file_name(), x),
                Doc::Staged(f) => f.commit(&o.out.join(u.list.file_name())),
            }));
            jobs.push(s.spawn(move || state::write_atomic(&o.out, sig_name, &u.sig)));
        }
        jobs.push(s.spawn(|| state::write_atomic(&kept, state::HEAD_FILE, &head_bytes)));
        jobs.push(s.spawn(|| state::write_atomic(&kept, &head_sig_name, &head_sig)));
        jobs.into_iter()
            .map(|j| {
                j.join()
                    .unwrap_or_else(|_| Err(Failure::Local("writing a file failed".into())))
            })
            .collect()
    });
    for r in results {
        r?;
    }
    for u in &updates {
        next.lists.insert(u.list.key().to_string(), u.held.clone());
    }
    next.release = h.release.clone();
    next.session = h.session.clone();
    next.publication = h.publication;
    next.head_etag = etag;
    next.head_expires = h.expires.clone();
    next.last_success = now.unix_timestamp();
    {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        next.keys = trust.certs.iter().map(|c| b64.encode(c)).collect();
        next.followed_from = trust.followed_from;
    }
    state::save(&o.out, &next)?;
    tracing::debug!("files replaced {:?}", t.elapsed());
    Ok(Synced {
        updated: updates.iter().map(|u| u.list).collect(),
        publication: h.publication,
        fetched: o.client.fetched.load(std::sync::atomic::Ordering::Relaxed) - before,
    })
}

/// One line for the log or the terminal.
pub fn describe(s: &Synced) -> String {
    if s.updated.is_empty() {
        return format!(
            "current: publication #{}, nothing new ({} bytes fetched)",
            s.publication, s.fetched
        );
    }
    let names: Vec<&str> = s.updated.iter().map(|l| l.root()).collect();
    format!(
        "updated to publication #{}: {} ({} bytes fetched)",
        s.publication,
        names.join(", "),
        s.fetched
    )
}

/// Sync every `interval`, keeping the last good copy through failures and waiting as long
/// as a 503's Retry-After asks (up to an hour). Never returns.
pub fn daemon(o: &Options, interval: Duration, metrics: Option<&metrics::Metrics>) -> ! {
    loop {
        let now = time::OffsetDateTime::now_utc();
        let before = o.client.fetched.load(std::sync::atomic::Ordering::Relaxed);
        let r = once(o, now);
        let fetched = o.client.fetched.load(std::sync::atomic::Ordering::Relaxed) - before;
        let wait = match &r {
            Ok(s) => {
                tracing::info!("{}", describe(s));
                interval
            }
            Err(f @ Failure::Unavailable { retry_after, .. }) => {
                tracing::warn!("{f}; the last good copy is kept");
                retry_after
                    .map(|s| Duration::from_secs(s.clamp(1, 3600)))
                    .unwrap_or(interval)
            }
            Err(f) => {
                tracing::error!("{f}; the last good copy is kept");
                interval
            }
        };
        if let Some(m) = metrics {
            m.record(&o.out, &r, fetched);
        }
        std::thread::sleep(wait);
    }
}
