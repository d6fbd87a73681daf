//! The audit archive's one tar form: entries in path order, each a ustar header with fixed
//! metadata, its bytes and zero padding to the next 512-byte block, then two zero blocks
//! and nothing after. `history export` writes it with the `tar` crate; `history verify`
//! reads it back as a stream with [`Reader`], which compares every header with the one
//! this form gives and every padding byte with zero. So a changed byte anywhere is caught
//! without holding the archive in memory: a 100k history is gigabytes.

use anyhow::{bail, Result};
use std::io::Read;

const BLOCK: u64 = 512;

/// The one header form: regular file, fixed mode, owner and time.
pub fn header(path: &str, size: u64) -> Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path)?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(h)
}

/// One entry of the archive, its header already checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub path: String,
    pub size: u64,
    /// Where its bytes start in the archive.
    pub offset: u64,
}

/// Reads an archive that must be in the canonical form, one entry at a time. The caller
/// takes each entry's bytes with [`Reader::data`] before asking for the next entry.
pub struct Reader<R> {
    inner: R,
    /// Bytes consumed so far.
    pos: u64,
    last: Option<String>,
    /// Bytes of the current entry not yet taken.
    pending: u64,
}

fn altered(what: String) -> anyhow::Error {
    anyhow::anyhow!("the archive is not in its canonical form ({what}): it was altered")
}

impl<R: Read> Reader<R> {
    pub fn new(inner: R) -> Self {
        Reader {
            inner,
            pos: 0,
            last: None,
            pending: 0,
        }
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<()> {
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.pos += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(altered(format!(
                "it ends inside the block at byte {}: truncated",
                self.pos
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The next entry, or `None` at the archive's end (two zero blocks, then end of file).
    pub fn next_entry(&mut self) -> Result<Option<Entry>> {
        if self.pending > 0 {
            bail!("internal: the previous entry's bytes were not taken");
        }
        let at = self.pos;
        let mut block = [0u8; BLOCK as usize];
        self.fill(&mut block)?;
        if block.iter().all(|&b| b == 0) {
            self.fill(&mut block)?;
            if block.iter().any(|&b| b != 0) {
                return Err(altered(format!(
                    "the block at byte {} after the first end block is not zero",
                    at + BLOCK
                )));
            }
            let mut one = [0u8; 1];
            if self.inner.read(&mut one)? != 0 {
                return Err(altered(format!(
                    "bytes follow the end of the archive at byte {}",
                    self.pos
                )));
            }
            return Ok(None);
        }
        let h = tar::Header::from_byte_slice(&block);
        let path = h
            .path()
            .ok()
            .and_then(|p| p.to_str().map(str::to_string))
            .ok_or_else(|| altered(format!("the header at byte {at} has no UTF-8 path")))?;
        let shown = crate::clip::clip(&path).into_owned();
        let size = h
            .size()
            .map_err(|_| altered(format!("the header at byte {at} ({shown}) has no size")))?;
        if path.starts_with('/') || path.split('/').any(|c| c == "..") {
            return Err(altered(format!(
                "the entry {shown} at byte {at} has an absolute path or one with '..'; an audit archive has neither"
            )));
        }
        let canonical = header(&path, size).map_err(|e| {
            altered(format!(
                "the entry {shown} at byte {at} cannot be read: {e}"
            ))
        })?;
        if canonical.as_bytes()[..] != block[..] {
            return Err(altered(format!(
                "the header of {shown} at byte {at} differs from the one form"
            )));
        }
        if let Some(last) = &self.last {
            if path.as_str() <= last.as_str() {
                return Err(altered(format!(
                    "{shown} follows {}: entries must be in path order, each once",
                    crate::clip::clip(last)
                )));
            }
        }
        self.last = Some(path.clone());
        self.pending = size;
        Ok(Some(Entry {
            path,
            size,
            offset: self.pos,
        }))
    }

    /// The current entry's bytes, handed to `take` in pieces in order; then its padding,
    /// which must be zero.
    pub fn data(&mut self, mut take: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let size = self.pending;
        let mut buf = vec![0u8; 1 << 16];
        while self.pending > 0 {
            let n = self.pending.min(buf.len() as u64) as usize;
            self.fill(&mut buf[..n])?;
            self.pending -= n as u64;
            take(&buf[..n])?;
        }
        let pad = ((BLOCK - size % BLOCK) % BLOCK) as usize;
        let at = self.pos;
        self.fill(&mut buf[..pad])?;
        if buf[..pad].iter().any(|&b| b != 0) {
            return Err(altered(format!("the padding at byte {at} is not zero")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (p, d) in entries {
            b.append(&header(p, d.len() as u64).unwrap(), *d).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn read(bytes: &[u8]) -> Result<Vec<(Entry, Vec<u8>)>> {
        let mut r = Reader::new(bytes);
        let mut out = Vec::new();
        while let Some(e) = r.next_entry()? {
            let mut v = Vec::new();
            r.data(|c| {
                v.extend_from_slice(c);
                Ok(())
            })?;
            out.push((e, v));
        }
        Ok(out)
    }

    #[test]
    fn reads_back_what_the_tar_crate_writes() {
        let big = vec![7u8; 70_000];
        let bytes = write(&[("a", b"one"), ("b/c", &big), ("b/d", b""), ("e", &[0; 512])]);
        let got = read(&bytes).unwrap();
        let paths: Vec<&str> = got.iter().map(|(e, _)| e.path.as_str()).collect();
        assert_eq!(paths, ["a", "b/c", "b/d", "e"]);
        assert_eq!(got[1].1, big);
        assert_eq!(got[3].1, vec![0; 512]);
        for (e, data) in &got {
            let at = e.offset as usize;
            assert_eq!(&bytes[at..at + data.len()], data.as_slice(), "offset");
        }
    }

    #[test]
    fn every_departure_from_the_one_form_is_refused() {
        let ok = write(&[("a", b"one"), ("b", b"two")]);
        let refuse = |bytes: &[u8], why: &str| {
            let err = read(bytes).expect_err(why).to_string();
            assert!(err.contains("canonical form"), "{why}: {err}");
        };
        // Each byte flipped: header, data is not checked here (the caller hashes it),
        // padding, end blocks.
        for p in (0..ok.len()).filter(|p| !(512..515).contains(p) && !(1536..1539).contains(p)) {
            let mut t = ok.clone();
            t[p] ^= 0x20;
            refuse(&t, &format!("byte {p} flipped"));
        }
        let mut longer = ok.clone();
        longer.push(0);
        refuse(&longer, "a byte after the end");
        refuse(&ok[..ok.len() - 1], "truncated in the end blocks");
        refuse(&ok[..600], "truncated inside an entry");
        refuse(&write(&[("b", b"two"), ("a", b"one")]), "out of order");
        refuse(&write(&[("a", b"one"), ("a", b"one")]), "twice");
        // Another header form: a different mode.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header("a", 3).unwrap();
        h.set_mode(0o600);
        h.set_cksum();
        b.append(&h, &b"one"[..]).unwrap();
        refuse(&b.into_inner().unwrap(), "another mode");
    }

    /// Absolute and `..` entries are refused by name and offset, so an auditor can find
    /// them in the file.
    #[test]
    fn an_escaping_entry_is_named_with_its_offset() {
        for bad in ["/etc/cron.d/x", "docs/../../x", "../x"] {
            let mut bytes = write(&[("a.txt", b"first"), ("b.txt", b"second")]);
            // The second header starts after the first's block and one data block.
            let at = 1024;
            let mut h = tar::Header::from_byte_slice(&bytes[at..at + 512]).clone();
            let name = &mut h.as_old_mut().name;
            name.fill(0);
            name[..bad.len()].copy_from_slice(bad.as_bytes());
            h.set_cksum();
            bytes[at..at + 512].copy_from_slice(h.as_bytes());
            let e = read(&bytes).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("at byte 1024"), "{e}");
            assert!(e.contains("absolute path or one with '..'"), "{e}");
        }
    }
}
