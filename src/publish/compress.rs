//! The gzip variant of a large ZAL, reusing the previous publication's compressed blocks.
//!
//! The document is compressed as independent deflate blocks (each ended by a sync flush,
//! no dictionary shared between blocks) in one gzip member: the header, groups of
//! Zorgaanbieder elements, and the tail (signature, closing tags). Group boundaries depend
//! only on the elements' content (see `pipeline`), so when one Zorgaanbieder changes,
//! every other group has the same bytes as in the previous publication and its
//! compressed block is copied from that publication's `.gz` file instead of compressed
//! again. A block is copied only if its bytes there have the SHA-256 recorded when it was
//! compressed (a damaged file is compressed from the document instead) and the group's
//! bytes now have the CRC-32 recorded with it (the member's trailer is combined from it): it then holds what
//! the compressor made of exactly this group's bytes, which its key names. Checking that
//! is a hash of the compressed blocks, a tenth of the document, where decompressing the
//! whole result and comparing it took a quarter of a second per large ZAL.

use crate::digest::sha256;
use std::collections::HashMap;
use std::io;

/// Where a group's compressed block lies in a `.gz` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// SHA-256 over the SHA-256s of the group's elements: names its exact bytes.
    pub key: [u8; 32],
    pub offset: u64,
    pub len: u64,
    /// CRC-32 and length of the group's uncompressed bytes.
    pub crc: u32,
    pub input: u64,
    /// SHA-256 of the compressed block, as the compressor made it.
    pub packed: [u8; 32],
}

const ENTRY: usize = 32 + 8 + 8 + 4 + 8 + 32;

/// The entries as stored (see `publish::cache::record`).
pub fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut v = Vec::with_capacity(entries.len() * ENTRY);
    for e in entries {
        v.extend_from_slice(&e.key);
        v.extend_from_slice(&e.offset.to_le_bytes());
        v.extend_from_slice(&e.len.to_le_bytes());
        v.extend_from_slice(&e.crc.to_le_bytes());
        v.extend_from_slice(&e.input.to_le_bytes());
        v.extend_from_slice(&e.packed);
    }
    v
}

/// `None` for bytes that are not a list of entries.
pub fn decode(v: &[u8]) -> Option<Vec<Entry>> {
    if v.len() % ENTRY != 0 {
        return None;
    }
    v.chunks_exact(ENTRY)
        .map(|c| {
            Some(Entry {
                key: c.get(..32)?.try_into().ok()?,
                offset: u64::from_le_bytes(c.get(32..40)?.try_into().ok()?),
                len: u64::from_le_bytes(c.get(40..48)?.try_into().ok()?),
                crc: u32::from_le_bytes(c.get(48..52)?.try_into().ok()?),
                input: u64::from_le_bytes(c.get(52..60)?.try_into().ok()?),
                packed: c.get(60..92)?.try_into().ok()?,
            })
        })
        .collect()
}

/// One block of the document: a group of elements (with its key, so it can be reused)
/// or a part that is compressed every time (`key: None`).
pub struct Block<'a> {
    pub key: Option<[u8; 32]>,
    pub slices: Vec<&'a [u8]>,
}

/// The previous publication's `.gz` file of the same rendition and its entries.
pub struct Previous<'a> {
    pub gz: &'a [u8],
    pub entries: &'a [Entry],
}

/// The gzip variant of the concatenation of `blocks`, the entries of its keyed blocks,
/// and how many of them were copied from `previous`.
pub fn gzip(
    blocks: &[Block],
    previous: Option<&Previous>,
) -> io::Result<(Vec<u8>, Vec<Entry>, usize)> {
    let old: HashMap<[u8; 32], Entry> = previous
        .map(|p| p.entries.iter().map(|e| (e.key, *e)).collect())
        .unwrap_or_default();
    // An entry is used only if it fits: same key, same length of input, inside the file,
    // the bytes there the ones compressed.
    let reused = |b: &Block| -> Option<(&[u8], Entry)> {
        let e = old.get(&b.key?)?;
        let input: u64 = b.slices.iter().map(|s| s.len() as u64).sum();
        if e.input != input {
            return None;
        }
        let start = usize::try_from(e.offset).ok()?;
        let end = usize::try_from(e.offset.checked_add(e.len)?).ok()?;
        let packed = previous?.gz.get(start..end)?;
        // The bytes are what was compressed, and the CRC-32 the trailer is combined from
        // is this group's (SIMD: a few ms for a whole ZAL).
        let mut crc = crc32fast::Hasher::new();
        for s in &b.slices {
            crc.update(s);
        }
        (sha256(packed) == e.packed && crc.finalize() == e.crc).then_some((packed, *e))
    };
    // Each block's bytes to copy, if any (checked once: each is hashed).
    let copies: Vec<Option<(&[u8], Entry)>> = blocks.iter().map(reused).collect();
    // Compress what cannot be reused, on every core.
    let todo: Vec<usize> = (0..blocks.len()).filter(|&i| copies[i].is_none()).collect();
    let fresh = crate::cores::map(&todo, |_, &i| {
        crate::registry::documents::deflate_for_member(&blocks[i].slices)
    });
    let mut made: HashMap<usize, (Vec<u8>, u32)> = HashMap::new();
    for (&i, r) in todo.iter().zip(fresh) {
        made.insert(
            i,
            r.ok_or_else(|| io::Error::other("a gzip thread panicked"))??,
        );
    }
    let mut member = crate::registry::documents::Member::default();
    let mut entries = Vec::new();
    let mut copied = 0;
    for (i, b) in blocks.iter().enumerate() {
        let input: u64 = b.slices.iter().map(|s| s.len() as u64).sum();
        let (bytes, block_crc, packed) = match (made.get(&i), copies[i]) {
            (Some((d, c)), _) => (d.as_slice(), *c, None),
            (None, Some((d, e))) => {
                copied += 1;
                (d, e.crc, Some(e.packed))
            }
            (None, None) => return Err(io::Error::other("a gzip block was not compressed")),
        };
        let offset = member.push(bytes, block_crc, input);
        if let Some(key) = b.key {
            entries.push(Entry {
                key,
                offset,
                len: bytes.len() as u64,
                crc: block_crc,
                input,
                packed: packed.unwrap_or_else(|| sha256(bytes)),
            });
        }
    }
    Ok((member.finish()?, entries, copied))
}

/// Whether `gz` is one gzip member, and nothing after it, that decompresses to exactly
/// `expected` (its CRC-32 and length checked by the decoder).
#[cfg(test)]
pub fn inflates_to(gz: &[u8], expected: &[u8]) -> bool {
    use std::io::Read;
    // The member as `Member` writes it: a 10-byte header without optional fields, raw
    // deflate, CRC-32 and length. The deflate stream is inflated raw and compared; the
    // trailer is checked against the expected bytes with the SIMD CRC-32 (a gzip decoder's
    // own CRC pass took a fifth of the check's time).
    const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let Some(body) = gz.strip_prefix(&HEADER[..]) else {
        return false;
    };
    let mut d = flate2::bufread::DeflateDecoder::new(body);
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0;
    loop {
        match d.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if expected.get(at..at + n) != buf.get(..n) {
                    return false;
                }
                at += n;
            }
            Err(_) => return false,
        }
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(expected);
    let mut trailer = crc.finalize().to_le_bytes().to_vec();
    trailer.extend_from_slice(&(expected.len() as u32).to_le_bytes());
    // Exactly the trailer follows the deflate stream: nothing after the member.
    at == expected.len() && d.into_inner() == trailer.as_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(doc: &[u8], size: usize) -> Vec<Block<'_>> {
        let mut blocks = vec![Block {
            key: None,
            slices: vec![&doc[..10]],
        }];
        for (i, g) in doc[10..].chunks(size).enumerate() {
            // Two slices per group: groups are made of several element ranges.
            let (a, b) = g.split_at(g.len() / 2);
            let key = ring::digest::digest(&ring::digest::SHA256, g);
            blocks.push(Block {
                key: (i % 5 != 4).then(|| key.as_ref().try_into().unwrap()),
                slices: vec![a, b],
            });
        }
        blocks
    }

    #[test]
    fn blocks_are_reused_only_where_their_bytes_are_the_same() {
        let doc: Vec<u8> = (0..60_000u32)
            .flat_map(|i| format!("<Zorgaanbieder>{}</Zorgaanbieder>", i * 7919).into_bytes())
            .collect();
        let blocks = groups(&doc, 50_000);
        let (gz, entries, copied) = gzip(&blocks, None).unwrap();
        assert_eq!(copied, 0);
        assert!(inflates_to(&gz, &doc));
        assert!(gz.len() < doc.len() / 3);
        assert_eq!(decode(&encode(&entries)).unwrap(), entries);
        // The system's gzip agrees.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("d.gz"), &gz).unwrap();
        assert!(std::process::Command::new("gzip")
            .arg("-t")
            .arg(dir.path().join("d.gz"))
            .status()
            .unwrap()
            .success());

        // One group changed: every other keyed group is copied, and the result is the
        // bytes a fresh compression gives.
        let mut changed = doc.clone();
        changed[200_000] = b'9';
        let blocks = groups(&changed, 50_000);
        let previous = Previous {
            gz: &gz,
            entries: &entries,
        };
        let (again, _, copied) = gzip(&blocks, Some(&previous)).unwrap();
        assert_eq!(copied, entries.len() - 1);
        assert!(inflates_to(&again, &changed));
        assert_eq!(again, gzip(&blocks, None).unwrap().0);

        // A previous file damaged inside a block: that block is compressed again, and
        // the result is what a fresh compression gives.
        let mut damaged = gz.clone();
        let e = entries[entries.len() / 2];
        damaged[(e.offset + e.len / 2) as usize] ^= 0x55;
        let previous = Previous {
            gz: &damaged,
            entries: &entries,
        };
        let (mended, _, copied) = gzip(&blocks, Some(&previous)).unwrap();
        assert_eq!(copied, entries.len() - 2);
        assert_eq!(mended, gzip(&blocks, None).unwrap().0);
        // Entries that point outside the file are not reused.
        let previous = Previous {
            gz: &gz[..20],
            entries: &entries,
        };
        let (ok, _, copied) = gzip(&blocks, Some(&previous)).unwrap();
        assert_eq!(copied, 0);
        assert!(inflates_to(&ok, &changed));
        assert!(!inflates_to(&ok, &doc));
        assert!(!inflates_to(&ok[..ok.len() - 1], &changed));
        let mut trailing = ok.clone();
        trailing.extend_from_slice(b"x");
        assert!(!inflates_to(&trailing, &changed), "data after the member");
        let mut two = ok.clone();
        two.extend_from_slice(&ok);
        assert!(!inflates_to(&two, &changed), "a second member");
        // An entry whose recorded length or CRC-32 is not its group's is not used.
        let misfits: [fn(&mut Entry); 2] = [|e| e.input += 1, |e| e.crc ^= 1];
        for misfit in misfits {
            let mut wrong = entries.clone();
            wrong.iter_mut().for_each(misfit);
            let previous = Previous {
                gz: &gz,
                entries: &wrong,
            };
            let (fresh, _, copied) = gzip(&blocks, Some(&previous)).unwrap();
            assert_eq!(copied, 0);
            assert!(inflates_to(&fresh, &changed));
        }
        assert!(decode(&[0; 91]).is_none());
    }
}
