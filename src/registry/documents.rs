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

    fn path(&self, sha256: &str, gz: bool) -> PathBuf {
        self.dir
            .join(format!("{sha256}.xml{}", if gz { ".gz" } else { "" }))
    }

    /// Write a document's files (those that do not exist yet) and sync them.
    pub fn put(&self, sha256: &str, identity: &[u8], gzip: &[u8]) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let mut wrote = false;
        for (gz, bytes) in [(true, gzip), (false, identity)] {
            let path = self.path(sha256, gz);
            if !path.exists() {
                write_synced(&path, bytes)?;
                wrote = true;
            }
        }
        if wrote {
            fs::File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }

    /// The document's bytes: its file, else its history file decompressed. The content is
    /// checked against its SHA-256, so a changed file is an error, not a silent answer.
    pub fn read(&self, sha256: &str) -> io::Result<Vec<u8>> {
        let bytes = match fs::read(self.path(sha256, false)) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.gunzip(sha256)?,
            Err(e) => return Err(e),
        };
        if crate::registry::store::sha256_hex(&bytes) != sha256 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("document file {sha256} does not match its SHA-256"),
            ));
        }
        Ok(bytes)
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

    /// Make sure the uncompressed file of a document in the published set exists.
    pub fn restore(&self, sha256: &str) -> io::Result<()> {
        let plain = self.path(sha256, false);
        if !plain.exists() {
            let bytes = self.read(sha256)?;
            write_synced(&plain, &bytes)?;
        }
        Ok(())
    }

    /// Remove the uncompressed files of documents that left the published set (their
    /// history files stay). Files still mapped by a running server stay valid until unmapped.
    pub fn prune(&self, current: &HashSet<&str>) -> io::Result<usize> {
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
            if let Some(sha) = name.strip_suffix(".xml") {
                if !current.contains(sha) {
                    fs::remove_file(entry.path())?;
                    removed += 1;
                }
            } else if name.starts_with(".tmp-") {
                // Left by a crash while writing.
                fs::remove_file(entry.path())?;
            }
        }
        Ok(removed)
    }
}

/// gzip at the default level: most of the size gain at a fraction of level 9's time. The
/// same bytes are the history file and the served `Content-Encoding: gzip` variant.
pub fn gzip(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 8),
        flate2::Compression::default(),
    );
    e.write_all(bytes)?;
    e.finish()
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("document");
    let tmp = path.with_file_name(format!(".tmp-{}-{name}", std::process::id()));
    let mut f = fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)
}

fn map_file(path: &Path) -> io::Result<Bytes> {
    let f = fs::File::open(path)?;
    if f.metadata()?.len() == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: document files are content-addressed and written once through a temporary
    // file and a rename; nothing writes to or truncates them afterwards (they are only
    // unlinked, which keeps an existing mapping valid), so the mapping cannot change
    // under the server.
    let map = unsafe { memmap2::Mmap::map(&f)? };
    Ok(Bytes::from_owner(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_written_once_read_back_checked_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::beside(&dir.path().join("registry.redb"));
        let doc = b"<Whitelist/>".to_vec();
        let sha = crate::registry::store::sha256_hex(&doc);
        let gz = gzip(&doc).unwrap();
        files.put(&sha, &doc, &gz).unwrap();
        assert_eq!(files.read(&sha).unwrap(), doc);
        let m = files.map(&sha).unwrap();
        assert_eq!(&m.identity[..], &doc[..]);
        assert_eq!(&m.gzip[..], &gz[..]);
        // Out of the published set: the plain file goes, the history file stays and the
        // document still reads (decompressed) and maps again (restored).
        assert_eq!(files.prune(&HashSet::new()).unwrap(), 1);
        assert!(!files.path(&sha, false).exists());
        assert_eq!(files.read(&sha).unwrap(), doc);
        assert_eq!(&files.map(&sha).unwrap().identity[..], &doc[..]);
        // A changed file is an error.
        fs::remove_file(files.path(&sha, false)).unwrap();
        let other = gzip(b"<Whitelist>x</Whitelist>").unwrap();
        fs::write(files.path(&sha, true), other).unwrap();
        let e = files.read(&sha).unwrap_err().to_string();
        assert!(e.contains("does not match"), "{e}");
    }

    #[test]
    fn only_well_formed_references_are_references() {
        let sha = "ab".repeat(32);
        assert_eq!(referenced(&reference(&sha)), Some(sha.as_str()));
        assert_eq!(referenced(b"<?xml version=\"1.0\"?>"), None);
        assert_eq!(referenced(b"file:sha256:../../etc/passwd"), None);
    }
}
