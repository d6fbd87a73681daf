//! Published documents as files beside the redb file, content-addressed by SHA-256:
//!
//! - `documents/<sha256>.xml.gz` for every document ever published: the history, written
//!   once and never changed. Compressed, so a publication in which one Zorgaanbieder
//!   changed grows the data directory by the gzip size of the lists it re-publishes, not
//!   by their full size.
//! - `documents/<sha256>.xml` for the documents in the published set now: the server maps
//!   them (and their `.gz`) into memory at start-up instead of reading hundreds of MB out
//!   of redb and compressing them again. Removed when they leave the published set.
//!
//! redb keeps a reference (`file:sha256:<hex>`) under the document's key, so a
//! publication's files are written (and synced) before the transaction that names them
//! commits; a crash in between leaves an unreferenced file, never a dangling reference.

use bytes::Bytes;
use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The value redb holds for a document that lives in a file.
pub const REF_PREFIX: &[u8] = b"file:sha256:";

pub fn reference(sha256: &str) -> Vec<u8> {
    [REF_PREFIX, sha256.as_bytes()].concat()
}

/// The SHA-256 a stored value refers to, if it is a reference.
pub fn referenced(value: &[u8]) -> Option<&str> {
    let hex = value.strip_prefix(REF_PREFIX)?;
    let ok = hex.len() == 64 && hex.iter().all(|c| c.is_ascii_hexdigit());
    ok.then(|| std::str::from_utf8(hex).ok()).flatten()
}

/// A document as a stream, with its length.
pub type Stream = (u64, Box<dyn Read + Send>);

pub mod stored;

pub use stored::HistoricBody;

/// A document as served: its bytes and its gzip variant, both mapped from their files.
pub struct Mapped {
    pub identity: Bytes,
    pub gzip: Bytes,
}

pub struct Files {
    dir: PathBuf,
}

impl Files {
    /// The documents directory beside the registry file.
    pub fn beside(registry: &Path) -> Files {
        let parent = registry.parent().unwrap_or(Path::new("."));
        Files {
            dir: parent.join("documents"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a published document's gzip file is (every published document has one).
    pub fn gzip_path(&self, sha256: &str) -> PathBuf {
        self.path(sha256, true)
    }

    fn path(&self, sha256: &str, gz: bool) -> PathBuf {
        self.dir
            .join(format!("{sha256}.xml{}", if gz { ".gz" } else { "" }))
    }

    /// Write a document's files (those that do not exist yet) and sync them.
    pub fn put(&self, sha256: &str, identity: &[u8], gzip: &[u8]) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        for (gz, bytes) in [(true, gzip), (false, identity)] {
            let path = self.path(sha256, gz);
            let whole = fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64);
            if !whole {
                write_synced(&path, bytes)?;
            }
        }
        // Always: a file found here may have been renamed into place by a run that crashed
        // before it synced the directory; the reference to it is about to be committed.
        fs::File::open(&self.dir)?.sync_all()
    }

    /// Write a document's uncompressed bytes, given as consecutive pieces, under a
    /// temporary name (not synced yet), for [`Files::put_staged`].
    pub fn stage(&self, pieces: &[&[u8]]) -> io::Result<Staged> {
        fs::create_dir_all(&self.dir)?;
        Staged::write(&self.dir.join("document.xml"), pieces)
    }

    /// [`Files::put`] with the uncompressed bytes already written by [`Files::stage`].
    pub fn put_staged(&self, sha256: &str, identity: Staged, gzip: &[u8]) -> io::Result<()> {
        let gz = self.path(sha256, true);
        if !fs::metadata(&gz).is_ok_and(|m| m.len() == gzip.len() as u64) {
            write_synced(&gz, gzip)?;
        }
        let plain = self.path(sha256, false);
        if !fs::metadata(&plain).is_ok_and(|m| m.len() == identity.written()) {
            identity.sync()?;
            fs::rename(&identity.path, &plain)?;
            identity.renamed();
        }
        fs::File::open(&self.dir)?.sync_all()
    }

    /// The document's bytes: its file, else its history file decompressed. The content is
    /// checked against its SHA-256, so a changed file is an error, not a silent answer.
    pub fn read(&self, sha256: &str) -> io::Result<Vec<u8>> {
        checked(sha256, self.read_unchecked(sha256)?)
    }

    /// The document as a stream (its file, else its history file decompressed) and its
    /// length. The stream checks the SHA-256 and the length as it ends: a changed file is
    /// a read error, never a quiet answer.
    pub fn reader(&self, sha256: &str) -> io::Result<Stream> {
        let (len, inner): (u64, Box<dyn Read + Send>) =
            match fs::File::open(self.path(sha256, false)) {
                Ok(f) => (f.metadata()?.len(), Box::new(f)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let len = self.recorded_len(sha256)?;
                    let f = fs::File::open(self.path(sha256, true))?;
                    (
                        len,
                        Box::new(flate2::read::GzDecoder::new(io::BufReader::new(f))),
                    )
                }
                Err(e) => return Err(e),
            };
        Ok((
            len,
            Box::new(Checked::new(
                inner,
                sha256,
                len,
                mismatch(sha256).to_string(),
            )),
        ))
    }

    /// The document's history file, mapped as it is (for clients that accept gzip).
    pub fn map_gzip(&self, sha256: &str) -> io::Result<Bytes> {
        map_file(&self.path(sha256, true))
    }

    fn read_unchecked(&self, sha256: &str) -> io::Result<Vec<u8>> {
        match fs::read(self.path(sha256, false)) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.gunzip(sha256),
            Err(e) => Err(e),
        }
    }

    fn gunzip(&self, sha256: &str) -> io::Result<Vec<u8>> {
        let f = fs::File::open(self.path(sha256, true))?;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(io::BufReader::new(f)).read_to_end(&mut out)?;
        Ok(out)
    }

    /// Map a document and its gzip variant for serving, restoring the uncompressed file
    /// from the history file first if it is missing (a document that returns to the
    /// published set).
    pub fn map(&self, sha256: &str) -> io::Result<Mapped> {
        self.restore(sha256)?;
        Ok(Mapped {
            identity: map_file(&self.path(sha256, false))?,
            gzip: map_file(&self.path(sha256, true))?,
        })
    }

    /// Make sure the uncompressed file of a document in the published set exists and has
    /// the length its history file records (a file truncated or replaced from outside is
    /// made again from the history file, which is checked against its SHA-256).
    pub fn restore(&self, sha256: &str) -> io::Result<()> {
        let plain = self.path(sha256, false);
        let len = fs::metadata(&plain).ok().map(|m| m.len());
        if len.is_some() && len == self.recorded_len(sha256).ok() {
            return Ok(());
        }
        if len.is_some() {
            tracing::warn!(
                "document file {sha256}.xml has the wrong length; made again from its history file"
            );
        }
        let bytes = checked(sha256, self.gunzip(sha256)?)?;
        write_synced(&plain, &bytes)?;
        fs::File::open(&self.dir)?.sync_all()
    }

    /// The document's length as its history file's gzip trailer records it (ISIZE, the
    /// length mod 2^32; libxml2 limits documents to less than 2 GiB).
    fn recorded_len(&self, sha256: &str) -> io::Result<u64> {
        use std::io::Seek;
        let mut f = fs::File::open(self.path(sha256, true))?;
        f.seek(io::SeekFrom::End(-4))?;
        let mut isize = [0u8; 4];
        f.read_exact(&mut isize)?;
        Ok(u64::from(u32::from_le_bytes(isize)))
    }

    /// Remove the uncompressed files of documents that left the published set (`current`)
    /// and history files no stored row refers to (`referenced`). Files still mapped by a
    /// running server stay valid until unmapped.
    pub fn prune(&self, current: &HashSet<&str>, referenced: &HashSet<&str>) -> io::Result<usize> {
        let mut removed = 0;
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(".tmp-") {
                // Left by a crash while writing (prune runs under the publication lock or
                // at open, when nothing writes here).
                fs::remove_file(entry.path())?;
            } else if let Some(sha) = name.strip_suffix(".xml") {
                if !current.contains(sha) {
                    fs::remove_file(entry.path())?;
                    removed += 1;
                }
            } else if let Some(sha) = name.strip_suffix(".xml.gz") {
                if !referenced.contains(sha) {
                    fs::remove_file(entry.path())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// `bytes` if they hash to `sha256`, else the error every reader of document files gives.
fn checked(sha256: &str, bytes: Vec<u8>) -> io::Result<Vec<u8>> {
    match crate::digest::sha256_hex(&bytes) == sha256 {
        true => Ok(bytes),
        false => Err(mismatch(sha256)),
    }
}

fn mismatch(sha256: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("document file {sha256} does not match its SHA-256"),
    )
}

/// A document stream that checks its SHA-256 and length when it ends.
pub struct Checked {
    inner: Box<dyn Read + Send>,
    sha256: String,
    hash: ring::digest::Context,
    len: u64,
    seen: u64,
    checked: bool,
    /// A mismatch, repeated to any later read: a retrying caller must not see a clean end.
    failed: bool,
    /// What the error of a mismatch says.
    mismatch: String,
}

impl Checked {
    /// `inner`, which must end after `len` bytes that hash to `sha256` (hex); otherwise
    /// the read that reaches its end, and every later one, fails with `mismatch`.
    pub fn new(inner: Box<dyn Read + Send>, sha256: &str, len: u64, mismatch: String) -> Checked {
        Checked {
            inner,
            sha256: sha256.to_string(),
            hash: ring::digest::Context::new(&ring::digest::SHA256),
            len,
            seen: 0,
            checked: false,
            failed: false,
            mismatch,
        }
    }

    fn mismatch(&self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self.mismatch.clone())
    }
}

impl Read for Checked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(self.mismatch());
        }
        if self.checked || buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.seen += n as u64;
        if n == 0 || self.seen > self.len {
            let hash = std::mem::replace(
                &mut self.hash,
                ring::digest::Context::new(&ring::digest::SHA256),
            );
            self.checked = true;
            let hex = crate::digest::hex(hash.finish().as_ref());
            if self.seen != self.len || hex != self.sha256 {
                self.failed = true;
                return Err(self.mismatch());
            }
        }
        Ok(n)
    }
}

/// gzip at the default level: most of the size gain at a fraction of level 9's time. The
/// same bytes are the history file and the served `Content-Encoding: gzip` variant.
///
/// A large document is compressed on every core, as pigz does, into one ordinary gzip
/// member that every decoder reads: cut into blocks, each deflated on its own and ended
/// with a sync flush (which byte-aligns it), so the blocks concatenate into one deflate
/// stream; the CRC-32s are combined. (A 408 MB list took ~3 s on one core.)
pub fn gzip(bytes: &[u8]) -> io::Result<Vec<u8>> {
    gzip_in_blocks(&[bytes], 4 << 20)
}

/// [`gzip`] of the concatenation of `pieces`, byte for byte the same, without joining them:
/// a large document is compressed from its rendered pieces while it is being written.
pub fn gzip_pieces(pieces: &[&[u8]]) -> io::Result<Vec<u8>> {
    gzip_in_blocks(pieces, 4 << 20)
}

/// The fixed-size blocks of the concatenation of `pieces`: borrowed where a block lies in
/// one piece, copied where it spans several.
fn blocks<'a>(pieces: &[&'a [u8]], block: usize) -> Vec<std::borrow::Cow<'a, [u8]>> {
    use std::borrow::Cow;
    let mut out = Vec::new();
    let mut spanning: Vec<u8> = Vec::new();
    for &p in pieces {
        let mut p = p;
        if !spanning.is_empty() {
            let take = (block - spanning.len()).min(p.len());
            spanning.extend_from_slice(&p[..take]);
            p = &p[take..];
            if spanning.len() == block {
                out.push(Cow::Owned(std::mem::take(&mut spanning)));
            }
        }
        let whole = p.len() / block * block;
        out.extend(p[..whole].chunks(block).map(Cow::Borrowed));
        spanning.extend_from_slice(&p[whole..]);
    }
    if !spanning.is_empty() {
        out.push(Cow::Owned(spanning));
    }
    out
}

fn gzip_in_blocks(pieces: &[&[u8]], block: usize) -> io::Result<Vec<u8>> {
    let blocks = blocks(pieces, block.max(1));
    let deflated = crate::cores::map(&blocks, |_, b| deflate_for_member(&[b]));
    let mut member = Member::default();
    for (b, d) in blocks.iter().zip(deflated) {
        let (bytes, crc) = d.ok_or_else(|| io::Error::other("a gzip thread panicked"))??;
        member.push(&bytes, crc, b.len() as u64);
    }
    member.finish()
}

/// One gzip member put together from raw deflate blocks that each end byte-aligned (a
/// sync flush) and share no dictionary, so they concatenate into one deflate stream: the
/// header, the blocks, an empty final block, the combined CRC-32 and the length.
pub struct Member {
    out: Vec<u8>,
    crc: crc32fast::Hasher,
    len: u64,
}

impl Default for Member {
    fn default() -> Member {
        Member {
            // Deflate, no flags, no mtime (output depends on the bytes only), OS unknown.
            out: vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff],
            crc: crc32fast::Hasher::new(),
            len: 0,
        }
    }
}

impl Member {
    /// Append a block made by [`deflate_for_member`] of `input` bytes with CRC-32 `crc`;
    /// where it starts in the member.
    pub fn push(&mut self, deflated: &[u8], crc: u32, input: u64) -> u64 {
        let at = self.out.len() as u64;
        self.out.extend_from_slice(deflated);
        self.crc
            .combine(&crc32fast::Hasher::new_with_initial_len(crc, input));
        self.len += input;
        at
    }

    pub fn finish(mut self) -> io::Result<Vec<u8>> {
        self.out.extend(deflate_slices(&[], true)?);
        self.out
            .extend_from_slice(&self.crc.finalize().to_le_bytes());
        self.out.extend_from_slice(&(self.len as u32).to_le_bytes()); // ISIZE: mod 2^32
        Ok(self.out)
    }
}

/// The concatenation of `slices` deflated as one block of a [`Member`], and its CRC-32.
pub fn deflate_for_member(slices: &[&[u8]]) -> io::Result<(Vec<u8>, u32)> {
    let deflated = deflate_slices(slices, false)?;
    let mut crc = crc32fast::Hasher::new();
    for s in slices {
        crc.update(s);
    }
    Ok((deflated, crc.finalize()))
}

/// Raw deflate of the concatenation of `slices` as one block, without joining them: ended
/// with a sync flush, or finished if it is the `last`.
fn deflate_slices(slices: &[&[u8]], last: bool) -> io::Result<Vec<u8>> {
    use flate2::{Compress, Compression, FlushCompress, Status};
    let total: usize = slices.iter().map(|s| s.len()).sum();
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(total / 4 + 64);
    let empty: &[&[u8]] = &[&[]];
    let slices = if slices.is_empty() { empty } else { slices };
    for (i, input) in slices.iter().enumerate() {
        let final_slice = i + 1 == slices.len();
        let flush = match (final_slice, last) {
            (false, _) => FlushCompress::None,
            (true, true) => FlushCompress::Finish,
            (true, false) => FlushCompress::Sync,
        };
        let base = c.total_in() as usize;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(64));
            }
            let consumed = c.total_in() as usize - base;
            let status = c
                .compress_vec(&input[consumed..], &mut out, flush)
                .map_err(io::Error::other)?;
            let all_in = c.total_in() as usize - base == input.len();
            if !final_slice {
                if all_in {
                    break;
                }
                continue;
            }
            match status {
                Status::StreamEnd => break,
                // A flush is complete once all input is in and zlib left output space unused.
                Status::Ok | Status::BufError if !last && all_in && out.len() < out.capacity() => {
                    break
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = Staged::write(path, &[bytes])?;
    tmp.sync()?;
    fs::rename(&tmp.path, path)?;
    tmp.renamed();
    Ok(())
}

/// A document written under a temporary name in the documents directory (removed again
/// unless renamed into place): a large document is written from its pieces, then read from
/// the page cache (mapped) while its SHA-256, which names it, its signatures and its gzip
/// variant are computed and while it is synced.
pub struct Staged {
    path: PathBuf,
    file: fs::File,
    len: std::sync::atomic::AtomicU64,
    synced: std::sync::atomic::AtomicBool,
    renamed: std::sync::atomic::AtomicBool,
    /// Takes what is appended to the disk as it is appended (see `os::Writeback`), from
    /// the first step on.
    writeback: std::sync::Mutex<Option<crate::os::Writeback>>,
}

impl Staged {
    fn write(beside: &Path, pieces: &[&[u8]]) -> io::Result<Staged> {
        let name = beside
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("document");
        // Unique per write: two threads restoring the same document never share a file.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = beside.with_file_name(format!(".tmp-{}-{n}-{name}", std::process::id()));
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        // Owned by `Staged` from here: any error below removes the file again.
        let staged = Staged {
            path,
            len: 0.into(),
            file,
            synced: false.into(),
            renamed: false.into(),
            writeback: Default::default(),
        };
        for p in pieces {
            staged.append(p)?;
        }
        Ok(staged)
    }

    /// Write `bytes` at its end. One writer at a time: the pieces of a document follow
    /// each other in the order they are appended.
    pub fn append(&self, bytes: &[u8]) -> io::Result<()> {
        debug_assert!(
            !self.synced.load(std::sync::atomic::Ordering::SeqCst),
            "appended after its sync"
        );
        (&self.file).write_all(bytes)?;
        let len = self
            .len
            .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::SeqCst)
            + bytes.len() as u64;
        self.start_writeback(len);
        Ok(())
    }

    /// Hand what was appended to the writeback thread, started with the first step.
    fn start_writeback(&self, len: u64) {
        if len < crate::os::Writeback::STEP {
            return;
        }
        let Ok(mut w) = self.writeback.lock() else {
            return;
        };
        if w.is_none() {
            *w = crate::os::Writeback::start(&self.path);
        }
        if let Some(wb) = w.as_mut() {
            wb.written(len);
        }
    }

    /// The bytes written so far.
    pub fn written(&self) -> u64 {
        self.len.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Its bytes so far, mapped (see [`map_file`]: what is mapped is never written again;
    /// later appends lie beyond it).
    pub fn map(&self) -> io::Result<Bytes> {
        map_open(&self.file)
    }

    /// Flush it to the disk (before it is named and referenced).
    pub fn sync(&self) -> io::Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        if !self.synced.load(SeqCst) {
            // Nothing more to start: its thread ends.
            if let Ok(mut w) = self.writeback.lock() {
                *w = None;
            }
            self.file.sync_all()?;
            self.synced.store(true, SeqCst);
        }
        Ok(())
    }

    fn renamed(&self) {
        self.renamed
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.renamed.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn map_file(path: &Path) -> io::Result<Bytes> {
    map_open(&fs::File::open(path)?)
}

#[allow(unsafe_code)]
fn map_open(f: &fs::File) -> io::Result<Bytes> {
    if f.metadata()?.len() == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: document files are content-addressed and written once through a temporary
    // file and a rename; nothing writes to or truncates them afterwards (they are only
    // unlinked, which keeps an existing mapping valid), so the mapping cannot change
    // under the server. A staged file may be mapped before its last pieces are appended
    // (a ZAL's body, for its enveloped signature): appends lie beyond the mapped range.
    let map = unsafe { memmap2::Mmap::map(f)? };
    Ok(Bytes::from_owner(map))
}

/// `doc` cut into pieces at the offsets `cuts` (ascending; repeats give empty pieces), as a
/// large document is written and signed.
#[cfg(test)]
pub(crate) fn cut_at<'a>(doc: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::with_capacity(cuts.len() + 1);
    let mut from = 0;
    for &c in cuts {
        pieces.push(&doc[from..c]);
        from = c;
    }
    pieces.push(&doc[from..]);
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_written_once_read_back_checked_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::beside(&dir.path().join("registry.redb"));
        let doc = b"<Whitelist/>".to_vec();
        let sha = crate::digest::sha256_hex(&doc);
        let gz = gzip(&doc).unwrap();
        files.put(&sha, &doc, &gz).unwrap();
        assert_eq!(files.read(&sha).unwrap(), doc);
        let m = files.map(&sha).unwrap();
        assert_eq!(&m.identity[..], &doc[..]);
        assert_eq!(&m.gzip[..], &gz[..]);
        // Out of the published set: the plain file goes, the history file stays and the
        // document still reads (decompressed) and maps again (restored).
        let referenced: HashSet<&str> = [sha.as_str()].into();
        assert_eq!(files.prune(&HashSet::new(), &referenced).unwrap(), 1);
        assert!(!files.path(&sha, false).exists());
        assert_eq!(files.read(&sha).unwrap(), doc);
        assert_eq!(&files.map(&sha).unwrap().identity[..], &doc[..]);
        // A truncated file is made again from the history file when mapped.
        let plain = files.path(&sha, false);
        fs::write(&plain, &doc[..3]).unwrap();
        assert_eq!(&files.map(&sha).unwrap().identity[..], &doc[..]);
        // Staged while its name is computed: named by put_staged; when the document exists
        // already, the staged file goes and no temporary file is left either way.
        let staged = files.stage(&[&doc]).unwrap();
        files.put_staged(&sha, staged, &gz).unwrap();
        let new = b"<Whitelist>z</Whitelist>".to_vec();
        let new_sha = crate::digest::sha256_hex(&new);
        let staged = files.stage(&[&new[..3], &new[3..]]).unwrap();
        assert_eq!(&staged.map().unwrap()[..], &new[..]);
        files
            .put_staged(&new_sha, staged, &gzip(&new).unwrap())
            .unwrap();
        assert_eq!(files.read(&new_sha).unwrap(), new);
        assert_eq!(&files.map(&new_sha).unwrap().identity[..], &new[..]);
        let tmp: Vec<_> = fs::read_dir(files.dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
            .collect();
        assert!(tmp.is_empty(), "{tmp:?}");
        fs::remove_file(files.path(&new_sha, false)).unwrap();
        fs::remove_file(files.path(&new_sha, true)).unwrap();
        // The checked stream: an empty buffer is not the end; the end checks the hash.
        let (len, mut r) = files.reader(&sha).unwrap();
        assert_eq!(len, doc.len() as u64);
        assert_eq!(r.read(&mut []).unwrap(), 0);
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert_eq!(back, doc);
        // Unreferenced, the history file goes too.
        let other = b"<Whitelist>y</Whitelist>".to_vec();
        let other_sha = crate::digest::sha256_hex(&other);
        files
            .put(&other_sha, &other, &gzip(&other).unwrap())
            .unwrap();
        // (sha's plain file, restored by `map` above, goes again; other's two go.)
        assert_eq!(files.prune(&HashSet::new(), &referenced).unwrap(), 3);
        assert!(!files.path(&other_sha, true).exists());
        assert!(files.path(&sha, true).exists());
        // A changed file is an error.
        let forged = gzip(b"<Whitelist>x</Whitelist>").unwrap();
        fs::write(files.path(&sha, true), forged).unwrap();
        let e = files.read(&sha).unwrap_err().to_string();
        assert!(e.contains("does not match"), "{e}");
    }

    #[test]
    fn a_document_staged_past_several_writeback_steps_holds_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::beside(&dir.path().join("registry.redb"));
        let piece: Vec<u8> = (0..(crate::os::Writeback::STEP as usize + 4097))
            .map(|i| (i % 253) as u8)
            .collect();
        let staged = files.stage(&[b"<head/>"]).unwrap();
        let n = crate::os::Writeback::SYNC_EVERY + 1;
        for _ in 0..n {
            staged.append(&piece).unwrap();
        }
        assert!(
            staged
                .writeback
                .lock()
                .unwrap()
                .as_ref()
                .is_some_and(|w| w.busy()),
            "started"
        );
        staged.sync().unwrap();
        assert!(staged.writeback.lock().unwrap().is_none(), "let go of");
        let mut whole = b"<head/>".to_vec();
        for _ in 0..n {
            whole.extend_from_slice(&piece);
        }
        assert_eq!(staged.written(), whole.len() as u64);
        assert!(staged.map().unwrap()[..] == whole[..]);
    }

    #[test]
    fn gzip_in_parallel_blocks_is_one_ordinary_member() {
        use std::io::Read;
        let doc: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("<Zorgaanbieder>{}</Zorgaanbieder>", i * 7919).into_bytes())
            .collect();
        for (input, block) in [
            (&doc[..], 1000),
            (&doc[..], 1 << 20),
            (&doc[..0], 1000),
            (&doc[..1], 1000),
        ] {
            let gz = gzip_in_blocks(&[input], block).unwrap();
            // flate2's GzDecoder reads one member only: all of it must be in that member.
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, input, "block size {block}");
            assert!(
                input.len() < 100 || gz.len() < input.len() / 3,
                "it compresses"
            );
        }
        // In pieces cut anywhere (within, across and at block boundaries, empty ones too):
        // the same bytes as the whole.
        let whole = gzip_in_blocks(&[&doc], 1000).unwrap();
        for cuts in [
            vec![0, 1, 999, 1000, 1001, 5500],
            vec![3000],
            vec![1000, 2000, 2000],
        ] {
            let pieces = cut_at(&doc, &cuts);
            assert_eq!(gzip_in_blocks(&pieces, 1000).unwrap(), whole);
        }
        // The system's gzip agrees (CRC and length checked).
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.gz");
        fs::write(&p, gzip_in_blocks(&[&doc], 5000).unwrap()).unwrap();
        let st = std::process::Command::new("gzip")
            .arg("-t")
            .arg(&p)
            .status()
            .unwrap();
        assert!(st.success());
    }

    #[test]
    fn only_well_formed_references_are_references() {
        let sha = "ab".repeat(32);
        assert_eq!(referenced(&reference(&sha)), Some(sha.as_str()));
        assert_eq!(referenced(b"<?xml version=\"1.0\"?>"), None);
        assert_eq!(referenced(b"file:sha256:../../etc/passwd"), None);
    }
}
