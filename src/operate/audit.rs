//! Audit exports that an auditor can verify offline: the archive of every publication's log
//! entry, documents and signatures, with `changes.csv` for non-technical readers.
//!
//! An export is a tar archive written in one canonical form (sorted entries, fixed
//! metadata, see `archive`): `history verify` checks every header against that form as it
//! streams by, and every entry's content (hash chain, document hashes, signatures, the CSV
//! recomputed from the documents). So a change to any byte is detected.

use super::history::{diff_between, digests_of, doc_path, rendition_at, store_open, Open};
use crate::digest::sha256_hex;
use crate::registry::model::ListKind;
use crate::registry::publication::LogEntry;
use crate::registry::store::Store;
use crate::sign::{self, PublicKey, Signers};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

const LOG: &str = "audit-log.jsonl";
const CSV: &str = "changes.csv";
const README: &str = "README.txt";
const CERT_DIR: &str = "certificates/";
const KEY_DIR: &str = "keys/";
const KEYS_LINE: &str =
    "keys/                  the signing key chain: each key change, signed by the outgoing key\n";

const README_TEXT: &str = "stelselnode audit export\n\
\n\
audit-log.jsonl        one JSON line per publication: sequence, time, operator, reason, the edits\n\
                       it published, per list Volgnummer and Tijdstempel, per document its SHA-256;\n\
                       prev_sha256 is the SHA-256 of the previous line (a hash chain)\n\
audit-log.jsonl.sig    detached XML signature over audit-log.jsonl by the Stelselnode\n\
changes.csv            per publication and list: what changed, for non-technical readers\n\
documents/             every published document and its detached signature (.sig)\n\
certificates/          the signing certificates\n\
keys/                  the signing key chain: each key change, signed by the outgoing key\n\
\n\
Verify offline with: stelselnode history verify THIS-FILE [--cert operator-certificate.pem]\n";

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The CSV summary, computed from the log and the documents only. Entries are compared by
/// the digests of their markup, read as a stream: the summary of a 100k history needs a
/// map of keys and hashes per document, not two registries. Only a list whose Volgnummers
/// share no rendition (a schema change in between) is compared through registries.
fn changes_csv(log: &[LogEntry], open: Open) -> Result<String> {
    use crate::registry::publication::document_key;
    let keys = |m: &BTreeMap<String, [u8; 32]>| m.keys().cloned().collect::<Vec<_>>().join(" ");
    let mut out = String::from("publication,time,operator,reason,list,from_volgnummer,to_volgnummer,added,removed,changed\n");
    let mut last: BTreeMap<ListKind, u64> = BTreeMap::new();
    // Each list's newest digests, by document key: a document is the `to` of one row and
    // the `from` of the next, and is read once (hundreds of MB at 100k Zorgaanbieders).
    let mut kept = BTreeMap::new();
    type Kept = BTreeMap<ListKind, (String, BTreeMap<String, [u8; 32]>)>;
    let fetch = |kept: &mut Kept, key: &str, list: ListKind| match kept.remove(&list) {
        Some((k, m)) if k == key => Ok(m),
        _ => digests_of(open, key, list),
    };
    for e in log {
        for l in &e.changed {
            let to = e.lists.get(l).map(|v| v.volgnummer).unwrap_or(0);
            let from = last.get(l).copied();
            let (added, removed, changed) = match from {
                Some(f) => {
                    let rb = rendition_at(log, *l, to);
                    match rendition_at(log, *l, f)
                        .into_iter()
                        .find(|r| rb.contains(r))
                    {
                        Some(r) => {
                            let old = fetch(&mut kept, &document_key(&r, f), *l)?;
                            let new_key = document_key(&r, to);
                            let new = fetch(&mut kept, &new_key, *l)?;
                            let pick =
                                |keep: &dyn Fn(&String, &[u8; 32]) -> bool,
                                 m: &BTreeMap<String, [u8; 32]>| {
                                    m.iter()
                                        .filter(|(k, d)| keep(k, d))
                                        .map(|(k, _)| k.as_str())
                                        .collect::<Vec<_>>()
                                        .join(" ")
                                };
                            let row = (
                                pick(&|k, _| !old.contains_key(k), &new),
                                pick(&|k, _| !new.contains_key(k), &old),
                                pick(&|k, d| old.get(k).is_some_and(|o| o != d), &new),
                            );
                            kept.insert(*l, (new_key, new));
                            row
                        }
                        None => {
                            let (_, d, _) = diff_between(log, open, *l, f, to)?;
                            (
                                d.added.join(" "),
                                d.removed.join(" "),
                                d.changed
                                    .iter()
                                    .map(|c| c.0.clone())
                                    .collect::<Vec<_>>()
                                    .join(" "),
                            )
                        }
                    }
                }
                None => {
                    let r = rendition_at(log, *l, to)
                        .into_iter()
                        .next()
                        .ok_or_else(|| anyhow!("{l} #{to} has no document"))?;
                    let key = document_key(&r, to);
                    let first = fetch(&mut kept, &key, *l)?;
                    let row = (keys(&first), String::new(), String::new());
                    kept.insert(*l, (key, first));
                    row
                }
            };
            writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{}",
                e.seq,
                e.time,
                csv_field(&e.operator),
                csv_field(&e.reason),
                l.root(),
                from.map(|f| f.to_string()).unwrap_or_default(),
                to,
                csv_field(&added),
                csv_field(&removed),
                csv_field(&changed)
            )?;
        }
        for (l, v) in &e.lists {
            last.insert(*l, v.volgnummer);
        }
    }
    Ok(out)
}

/// Where an archive entry's bytes come from: the store (streamed from its file when
/// written, so an export of the whole history runs in bounded memory) or memory.
enum Source {
    Document(String),
    Bytes(Vec<u8>),
}

/// The certificates a signature file of ours carries (two during a key rollover; read by
/// the profile's layout: the file passed `detached_is_canonical` first).
fn certs_in_signature(sig: &[u8]) -> Vec<Vec<u8>> {
    use base64::Engine;
    let text = String::from_utf8_lossy(sig);
    crate::sign::profile::carried_certificates(&text)
        .into_iter()
        .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .collect()
}

fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(chunk));
        s.push('\n');
    }
    s.push_str("-----END CERTIFICATE-----\n");
    s
}

/// `history export --out PATH [--from SEQ] [--to SEQ]`
pub fn export(
    store: &Store,
    key: &Signers,
    out_path: &Path,
    from: Option<u64>,
    to: Option<u64>,
) -> Result<String> {
    let all = store.log()?;
    let selected: Vec<(LogEntry, Vec<u8>)> = all
        .into_iter()
        .filter(|(e, _)| from.is_none_or(|f| e.seq >= f) && to.is_none_or(|t| e.seq <= t))
        .collect();
    if selected.is_empty() {
        bail!("no publications in the requested range");
    }
    let mut entries: BTreeMap<String, Source> = BTreeMap::new();
    let mut log_text = Vec::new();
    for (_, raw) in &selected {
        log_text.extend_from_slice(raw);
        log_text.push(b'\n');
    }
    let log: Vec<LogEntry> = selected.iter().map(|(e, _)| e.clone()).collect();
    let mut certs = BTreeSet::new();
    certs.extend(key.keys().map(|k| k.cert_der.clone()));
    for e in &log {
        for d in &e.documents {
            let p = doc_path(&d.rendition, d.volgnummer);
            if entries.contains_key(&p) {
                continue; // a rendition several publications kept
            }
            let k = crate::registry::publication::document_key(&d.rendition, d.volgnummer);
            let sig = store
                .document(&format!("{k}.sig"))?
                .ok_or_else(|| anyhow!("signature {k} is missing"))?;
            certs.extend(certs_in_signature(&sig));
            entries.insert(format!("{p}.sig"), Source::Bytes(sig));
            entries.insert(p, Source::Document(k));
        }
    }
    let open = |k: &str| -> Result<(u64, Box<dyn std::io::Read + Send>)> {
        store
            .document_reader(k)?
            .ok_or_else(|| anyhow!("document {k} is missing"))
    };
    entries.insert(
        CSV.into(),
        Source::Bytes(changes_csv(&log, &store_open(store))?.into_bytes()),
    );
    entries.insert(
        format!("{LOG}.sig"),
        Source::Bytes(key.sign_detached(&log_text, LOG)?),
    );
    entries.insert(LOG.into(), Source::Bytes(log_text));
    entries.insert(
        README.into(),
        Source::Bytes(README_TEXT.as_bytes().to_vec()),
    );
    for (seq, link) in crate::sign::keyring::links(store)? {
        entries.insert(format!("{KEY_DIR}{seq}.xml"), Source::Bytes(link));
    }
    for der in &certs {
        entries.insert(
            format!("{CERT_DIR}{}.pem", &sha256_hex(der)[..16]),
            Source::Bytes(pem_of(der).into_bytes()),
        );
    }
    // Streamed to a temporary file, renamed when complete: never a half-written archive.
    let tmp = out_path.with_extension("tar.partial");
    let file = std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(file));
    let files = entries.len();
    for (path, src) in entries {
        match src {
            // Streamed from its file: the archive of a 100k history never holds a whole
            // document in memory. A file that does not match its hash fails the export.
            Source::Document(k) => {
                let (len, r) = open(&k)?;
                b.append(&super::archive::header(&path, len)?, r)
                    .with_context(|| format!("archiving {k}"))?;
            }
            Source::Bytes(data) => {
                b.append(
                    &super::archive::header(&path, data.len() as u64)?,
                    data.as_slice(),
                )?;
            }
        }
    }
    let mut w = b.into_inner()?;
    std::io::Write::flush(&mut w)?;
    w.get_ref().sync_all()?;
    drop(w);
    std::fs::rename(&tmp, out_path).with_context(|| format!("writing {}", out_path.display()))?;
    let size = std::fs::metadata(out_path)?.len();
    Ok(format!(
        "wrote {} ({} publications #{}..#{}, {} files, {} bytes)\n",
        out_path.display(),
        log.len(),
        log.first().map(|e| e.seq).unwrap_or(0),
        log.last().map(|e| e.seq).unwrap_or(0),
        files,
        size
    ))
}

/// Files other than documents are held in memory while an archive is verified (documents
/// are streamed): each kind has a bound, and so have all of them together and the number
/// of files. Far above any real history: the CSV and log of four publications at 100k
/// Zorgaanbieders are 2.7 MB and 8 KB, a signature 1.4 KB.
const MAX_KEPT: u64 = 768 << 20;
const MAX_ENTRIES: usize = 1_000_000;
const MAX_SIGNATURE: u64 = 64 << 10;

enum Limit {
    /// A document: hashed as it streams by.
    Stream,
    /// Kept in memory, at most this many bytes.
    Keep(u64),
}

/// What the format allows at `path`, or `None` for a path it does not define.
fn entry_limit(path: &str) -> Option<Limit> {
    let hex16 =
        |h: &str| h.len() == 16 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    match path {
        README => return Some(Limit::Keep(README_TEXT.len() as u64)),
        _ if path.starts_with(KEY_DIR) => {
            let seq = path.strip_prefix(KEY_DIR)?.strip_suffix(".xml")?;
            let digits =
                !seq.is_empty() && seq.len() <= 19 && seq.bytes().all(|b| b.is_ascii_digit());
            return digits.then_some(Limit::Keep(crate::sign::chain::MAX_SIZE as u64));
        }
        LOG | CSV => return Some(Limit::Keep(256 << 20)),
        _ if path == format!("{LOG}.sig") => return Some(Limit::Keep(MAX_SIGNATURE)),
        _ => {}
    }
    if let Some(name) = path.strip_prefix(CERT_DIR) {
        return name
            .strip_suffix(".pem")
            .filter(|h| hex16(h))
            .map(|_| Limit::Keep(MAX_SIGNATURE));
    }
    // documents/<list>/<schema version>[-<Interfaceversie>]/<Volgnummer>.xml[.sig]
    let (rendition, file) = path.strip_prefix("documents/")?.rsplit_once('/')?;
    let segment = |g: &str| {
        !g.is_empty()
            && g.bytes().any(|b| b.is_ascii_alphanumeric())
            && g.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    };
    if !rendition.split('/').all(segment) {
        return None;
    }
    let digits = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    if let Some(v) = file.strip_suffix(".xml.sig") {
        return digits(v).then_some(Limit::Keep(MAX_SIGNATURE));
    }
    file.strip_suffix(".xml")
        .filter(|v| digits(v))
        .map(|_| Limit::Stream)
}

/// A document in an archive being verified: where it is and what it hashed to.
struct Stored {
    offset: u64,
    size: u64,
    sha256: [u8; 32],
}

/// A document read again from the archive file at its offset, hashed as it is read: the
/// read that reaches its end fails if the bytes are not those the first pass hashed.
fn reread(archive: &Path, d: &Stored, path: String) -> Result<Box<dyn std::io::BufRead>> {
    use std::io::{Read, Seek};
    let mut f = std::fs::File::open(archive)?;
    f.seek(std::io::SeekFrom::Start(d.offset))?;
    let checked = crate::registry::documents::Checked::new(
        Box::new(f.take(d.size)),
        &crate::digest::hex(&d.sha256),
        d.size,
        format!("{path} changed while the archive was being verified"),
    );
    Ok(Box::new(std::io::BufReader::with_capacity(
        1 << 16,
        checked,
    )))
}

/// What one pass over an archive kept: the small files' bytes, and where each document is
/// with its hash.
struct Read {
    entries: BTreeMap<String, Vec<u8>>,
    documents: BTreeMap<String, Stored>,
}

impl Read {
    fn take(&self, name: &str) -> Result<&Vec<u8>> {
        self.entries
            .get(name)
            .ok_or_else(|| anyhow!("{name} is missing from the archive"))
    }
}

/// One pass over the archive: every byte is checked against the one form as it streams by,
/// documents are hashed, everything else (small) is kept. What is kept is bounded per kind
/// of file and in all, and a path the format does not define is refused before its bytes
/// are read: memory stays bounded whatever the archive holds.
fn read_archive(path: &Path, max_bytes: u64) -> Result<Read> {
    let (file, len) = crate::xml::input::open_file(path, max_bytes).map_err(|e| anyhow!("{e}"))?;
    let mut entries: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut kept = 0u64;
    let mut documents: BTreeMap<String, Stored> = BTreeMap::new();
    // The file as it was opened: one that grows meanwhile is not read past --max-size.
    let bounded = std::io::Read::take(&file, len);
    let mut reader =
        super::archive::Reader::new(std::io::BufReader::with_capacity(1 << 16, bounded));
    let mut count = 0usize;
    while let Some(e) = reader.next_entry()? {
        count += 1;
        if count > MAX_ENTRIES {
            bail!("the archive holds more than {MAX_ENTRIES} files; an audit archive is refused beyond that");
        }
        let Some(limit) = entry_limit(&e.path) else {
            bail!(
                "{} is not a file an audit archive holds (README.txt, audit-log.jsonl[.sig], changes.csv, certificates/<hash>.pem, keys/<Sequence>.xml, documents/<rendition>/<Volgnummer>.xml[.sig])",
                crate::clip::clip(&e.path)
            );
        };
        match limit {
            Limit::Stream => {
                let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
                reader.data(|piece| {
                    ctx.update(piece);
                    Ok(())
                })?;
                documents.insert(
                    e.path,
                    Stored {
                        offset: e.offset,
                        size: e.size,
                        sha256: ctx.finish().as_ref().try_into()?,
                    },
                );
            }
            Limit::Keep(max) => {
                kept = kept.saturating_add(e.size);
                if e.size > max || kept > MAX_KEPT {
                    bail!(
                        "{}: {} bytes is more than this kind of file may have in an audit archive ({max} bytes, {MAX_KEPT} for all files other than documents)",
                        e.path,
                        e.size
                    );
                }
                let mut data = Vec::with_capacity(e.size.min(1 << 20) as usize);
                reader.data(|piece| {
                    data.extend_from_slice(piece);
                    Ok(())
                })?;
                entries.insert(e.path, data);
            }
        }
    }
    Ok(Read { entries, documents })
}

/// The archive's certificates, each named by its hash and in its one PEM form.
fn archive_certificates(read: &Read) -> Result<Vec<Vec<u8>>> {
    let mut certs = Vec::new();
    for (p, pem) in read.entries.iter().filter(|(p, _)| p.starts_with(CERT_DIR)) {
        let der = sign::cert_der_from_pem(&String::from_utf8_lossy(pem))
            .map_err(|e| anyhow!("{p}: {e}"))?;
        let named = format!("{CERT_DIR}{}.pem", &sha256_hex(&der)[..16]);
        if *p != named || pem_of(&der).as_bytes() != pem.as_slice() {
            bail!("{p} does not match its certificate");
        }
        certs.push(der);
    }
    Ok(certs)
}

/// The keys signatures are verified with: the pinned certificate's and every key the
/// archive's key chain leads to from it (signatures across a key rollover), or, unpinned,
/// the certificates signatures carry. Every certificate a signature carries must be one
/// the archive declares, pinned or not, and is remembered: nothing in the archive goes
/// unchecked.
struct Keys {
    /// Empty when unpinned.
    trusted: Vec<PublicKey>,
    archive: Vec<Vec<u8>>,
    carried: BTreeSet<Vec<u8>>,
}

impl Keys {
    /// The pinned certificate (DER), followed along the archive's key chain.
    fn new(pinned: Option<&[u8]>, archive: Vec<Vec<u8>>, read: &Read) -> Result<Keys> {
        let mut trusted = Vec::new();
        // Every key link in the archive is checked, whoever trusts what: its name is its
        // Sequence, and it is signed by the key it names as its predecessor.
        let mut links: Vec<Vec<u8>> = Vec::new();
        for (p, b) in read.entries.iter().filter(|(p, _)| p.starts_with(KEY_DIR)) {
            let l = crate::sign::chain::Link::parse(b).map_err(|e| anyhow!("{p}: {e}"))?;
            if *p != format!("{KEY_DIR}{}.xml", l.sequence) {
                bail!("{p} holds key link {}", l.sequence);
            }
            let v = sign::verify_enveloped(b, None).map_err(|e| anyhow!("{p}: {e}"))?;
            if v.cert.as_deref().map(sha256_hex) != Some(l.previous.clone()) {
                bail!("{p}: not signed by the key it names as its predecessor");
            }
            links.push(b.clone());
        }
        if let Some(der) = pinned {
            for c in crate::sign::chain::follow(&[der.to_vec()], &links)? {
                trusted.push(PublicKey::from_cert_der(&c)?);
            }
        }
        Ok(Keys {
            trusted,
            archive,
            carried: BTreeSet::new(),
        })
    }

    fn check(&mut self, sha256: &[u8], sig: &[u8], uri: &str) -> Result<()> {
        if !sign::detached_is_canonical(sig)? {
            bail!("signature file is not in its canonical form: it was altered");
        }
        let carried = certs_in_signature(sig);
        if carried.iter().any(|c| !self.archive.contains(c)) {
            bail!("signature carries a certificate that is not among the archive's certificates");
        }
        self.carried.extend(carried.iter().cloned());
        if self.trusted.is_empty() {
            sign::verify_detached_digest(sha256, sig, uri, None)?;
            return Ok(());
        }
        match sign::by_newest(&self.trusted, |k| {
            sign::verify_detached_digest(sha256, sig, uri, Some(k))
        }) {
            Ok(_) => Ok(()),
            Err(e) if self.trusted.len() == 1 => Err(e.into()),
            Err(e) => Err(anyhow!(
                "not signed by the pinned key or a key its chain leads to: {e}"
            )),
        }
    }
}

/// The audit log's entries, its hash chain and numbering checked.
fn check_log(log_bytes: &[u8]) -> Result<Vec<LogEntry>> {
    let text = std::str::from_utf8(log_bytes).context("audit log is not UTF-8")?;
    let lines: Vec<&str> = text
        .strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .collect();
    let mut log = Vec::new();
    let mut prev: Option<&str> = None;
    for (i, line) in lines.iter().enumerate() {
        let e: LogEntry =
            serde_json::from_str(line).with_context(|| format!("{LOG} line {}", i + 1))?;
        if let Some(p) = prev {
            if e.prev_sha256 != sha256_hex(p.as_bytes()) {
                bail!(
                    "{LOG} line {}: hash chain broken (prev_sha256 does not match line {i})",
                    i + 1
                );
            }
            if Some(e.seq) != log.last().and_then(|l: &LogEntry| l.seq.checked_add(1)) {
                bail!(
                    "{LOG} line {}: publication {} does not follow the previous one",
                    i + 1,
                    e.seq
                );
            }
        }
        prev = Some(line);
        log.push(e);
    }
    Ok(log)
}

/// Every document the log names: present, hash as logged, signature valid. Returns the
/// paths of the documents and signatures checked.
fn check_documents(read: &Read, log: &[LogEntry], keys: &mut Keys) -> Result<BTreeSet<String>> {
    let mut referenced = BTreeSet::new();
    for e in log {
        for d in &e.documents {
            let p = doc_path(&d.rendition, d.volgnummer);
            let xml = read
                .documents
                .get(&p)
                .ok_or_else(|| anyhow!("{p} is missing from the archive"))?;
            if crate::digest::hex(&xml.sha256) != d.sha256 {
                bail!(
                    "{p}: SHA-256 differs from publication #{}'s log entry",
                    e.seq
                );
            }
            let sig_p = format!("{p}.sig");
            let sig = read.take(&sig_p)?;
            keys.check(&xml.sha256, sig, d.rendition.list.file_name())
                .map_err(|x| anyhow!("{sig_p}: {x}"))?;
            referenced.insert(p.clone());
            referenced.insert(sig_p);
        }
    }
    Ok(referenced)
}

/// `changes.csv` recomputed from the documents, which are read again from the archive
/// file, each checked against the hash the first pass took (the file could have changed
/// in between).
fn check_csv(path: &Path, read: &Read, log: &[LogEntry]) -> Result<()> {
    // Document keys are `<rendition id>#<Volgnummer>`.
    let path_of = |k: &str| -> Result<String> {
        let (rid, v) = k.rsplit_once('#').ok_or_else(|| anyhow!("bad key {k}"))?;
        Ok(format!("documents/{}/{v}.xml", rid.replace('@', "-")))
    };
    let open = |k: &str| -> Result<Box<dyn std::io::BufRead>> {
        let p = path_of(k)?;
        let d = read
            .documents
            .get(&p)
            .ok_or_else(|| anyhow!("{p} is missing from the archive"))?;
        reread(path, d, p)
    };
    if read.take(CSV)?.as_slice() != changes_csv(log, &open)?.as_bytes() {
        bail!("{CSV} does not match the documents");
    }
    Ok(())
}

/// Nothing the format does not define: every certificate is carried by a signature, and
/// every file is one the log refers to or one of the fixed files.
fn check_nothing_else(read: &Read, keys: &Keys, referenced: &BTreeSet<String>) -> Result<()> {
    for der in &keys.archive {
        if !keys.carried.contains(der) {
            bail!(
                "{CERT_DIR}{}.pem is carried by no signature in the archive; an archive holds nothing it does not define",
                &sha256_hex(der)[..16]
            );
        }
    }
    for p in read.entries.keys().chain(read.documents.keys()) {
        let known = referenced.contains(p)
            || p.starts_with(CERT_DIR)
            || p.starts_with(KEY_DIR)
            || [LOG, CSV, README].contains(&p.as_str())
            || *p == format!("{LOG}.sig");
        if !known {
            bail!("{p} is in the archive but not in the audit log");
        }
    }
    Ok(())
}

/// `history verify PATH [--cert PEM | --trust-embedded-cert]`: every check an auditor
/// needs, offline. Without a pinned certificate it refuses, unless `trust_embedded`.
pub fn verify(
    path: &Path,
    pinned: Option<&[u8]>,
    trust_embedded: bool,
    max_bytes: u64,
) -> Result<String> {
    let read = read_archive(path, max_bytes)?;
    let mut out = String::new();
    // Archives made before key chains existed have no keys/ and no line on it.
    let readme = read.take(README)?.as_slice();
    let before_keys = README_TEXT.replace(KEYS_LINE, "");
    let has_keys = read.entries.keys().any(|p| p.starts_with(KEY_DIR));
    if readme != README_TEXT.as_bytes() && (has_keys || readme != before_keys.as_bytes()) {
        bail!("{README} was altered");
    }
    // Certificates: the archive's own, unless the auditor pins the operator's.
    let mut keys = Keys::new(pinned, archive_certificates(&read)?, &read)?;
    let (log_bytes, log_sig) = (read.take(LOG)?, read.take(&format!("{LOG}.sig"))?);
    let log_sha = ring::digest::digest(&ring::digest::SHA256, log_bytes);
    keys.check(log_sha.as_ref(), log_sig, LOG)
        .map_err(|e| anyhow!("{LOG}: {e}"))?;
    writeln!(out, "{LOG}: signature valid")?;
    let log = check_log(log_bytes)?;
    writeln!(
        out,
        "{LOG}: {} publications, hash chain intact (anchored at {})",
        log.len(),
        log.first().map(|e| e.prev_sha256.as_str()).unwrap_or("-")
    )?;
    let referenced = check_documents(&read, &log, &mut keys)?;
    writeln!(
        out,
        "documents: {} verified (hash and signature)",
        referenced.len() / 2
    )?;
    check_csv(path, &read, &log)?;
    writeln!(out, "{CSV}: matches the documents")?;
    check_nothing_else(&read, &keys, &referenced)?;
    if pinned.is_none() && !trust_embedded {
        let certs: Vec<Vec<u8>> = keys.carried.into_iter().collect();
        return Err(crate::consume::verify::unpinned_refusal(
            &path.display().to_string(),
            &certs,
        ));
    }
    writeln!(
        out,
        "OK: {} verified{}",
        path.display(),
        if pinned.is_some() {
            " against the pinned certificate"
        } else {
            " with the archive's own certificates (--trust-embedded-cert; NOT pinned)"
        }
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{reread, Stored};
    use std::io::Read;

    #[test]
    fn an_archive_holds_only_the_files_its_format_defines() {
        use super::{entry_limit, Limit};
        for (path, kept) in [
            ("README.txt", Some(752)),
            ("keys/1.xml", Some(64 << 10)),
            ("audit-log.jsonl", Some(256 << 20)),
            ("audit-log.jsonl.sig", Some(64 << 10)),
            ("changes.csv", Some(256 << 20)),
            ("certificates/2670b10549422f3d.pem", Some(64 << 10)),
            ("documents/zorgaanbiederslijst/release2-1.1.0/12.xml", None),
            (
                "documents/zorgaanbiederslijst/release2-1.1.0/12.xml.sig",
                Some(64 << 10),
            ),
        ] {
            match (entry_limit(path), kept) {
                (Some(Limit::Keep(max)), Some(k)) => assert_eq!(max, k, "{path}"),
                (Some(Limit::Stream), None) => {}
                _ => panic!("{path}"),
            }
        }
        for path in [
            "zz/0",
            "README.txt.bak",
            "certificates/copy-2670b10549422f3d.pem",
            "certificates/2670b10549422f3d.pem.old",
            "certificates/2670B10549422F3D.pem",
            "documents/12.xml",
            "documents/whitelist/release2/12.xml.bak",
            "documents/whitelist/release2/x12.xml",
            "documents/whitelist/../12.xml",
            "documents/whitelist//12.xml",
            "documents/whitelist/release2/.xml",
            "keys/x.xml",
            "keys/1.xml.sig",
            "keys/../1.xml",
        ] {
            assert!(entry_limit(path).is_none(), "{path}");
        }
    }

    #[test]
    fn a_document_read_again_must_be_the_bytes_first_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        std::fs::write(&path, b"headerDOCUMENTtrailer").unwrap();
        let hashed = |b: &[u8]| -> [u8; 32] {
            ring::digest::digest(&ring::digest::SHA256, b)
                .as_ref()
                .try_into()
                .unwrap()
        };
        let at = |sha256| Stored {
            offset: 6,
            size: 8,
            sha256,
        };
        let mut got = Vec::new();
        reread(&path, &at(hashed(b"DOCUMENT")), "d".into())
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, b"DOCUMENT");
        // The archive changed between the passes: the read that reaches the end fails,
        // naming the document.
        let err = reread(&path, &at(hashed(b"DOCUMENt")), "documents/x/1.xml".into())
            .unwrap()
            .read_to_end(&mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("documents/x/1.xml changed"), "{err}");
        // And stays failed: read again, it does not end cleanly.
        let mut r = reread(&path, &at([0; 32]), "d".into()).unwrap();
        assert!(r.read_to_end(&mut Vec::new()).is_err());
        assert!(r.read(&mut [0u8; 8]).is_err());
        // Also when copied to the end.
        let mut r = reread(&path, &at([0; 32]), "d".into()).unwrap();
        assert!(std::io::copy(&mut r, &mut std::io::sink()).is_err());
    }
}
