//! The body of an answer: bytes at hand (a mapped document, a message), or a historic
//! document inflated from its stored gzip file a piece at a time, as the connection takes
//! it. A historic list is kept only gzipped; inflating it whole per request held the whole
//! document per connection (16 slow clients of a 100k ZAL: 4 GB). Inflated as the
//! connection drains, a response holds one piece.

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::future::Future;
use std::io::{self, Read};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Output taken from the inflater per frame.
const PIECE: usize = 64 << 10;

pub struct Payload(Inner);

enum Inner {
    Bytes(Option<Bytes>),
    Inflate(Box<Inflate>),
}

impl Payload {
    pub fn bytes(b: Bytes) -> Payload {
        Payload(Inner::Bytes(Some(b)))
    }

    /// The document inside `gz` (one gzip member, as `publish` writes them), inflated as it
    /// is sent and checked against `sha256` (hex), the name it is stored under. Its length is
    /// the member's ISIZE (documents are far below 4 GiB). The last piece is only sent
    /// once the whole document has inflated, matched its length, gzip CRC and SHA-256: a
    /// damaged file ends the response short, so no client takes it for the document.
    pub fn inflate(gz: Bytes, sha256: &str) -> io::Result<(Payload, u64)> {
        let isize = gz
            .len()
            .checked_sub(4)
            .and_then(|at| gz.get(at..))
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not a gzip file"))?;
        let len = u64::from(isize);
        if len == 0 {
            // Announced empty, hyper sends the headers as the whole answer and never asks
            // for the body: the check has to happen now.
            let mut decoder = flate2::bufread::GzDecoder::new(bytes::Buf::reader(gz));
            let mut rest = Vec::new();
            decoder.by_ref().take(1).read_to_end(&mut rest)?;
            if !rest.is_empty() {
                return Err(damaged("longer than its gzip trailer says"));
            }
            if crate::digest::sha256_hex(b"") != sha256 {
                return Err(damaged("SHA-256 differs from the one it is stored under"));
            }
            return Ok((Payload::bytes(Bytes::new()), 0));
        }
        let inflate = Inflate {
            decoder: flate2::bufread::GzDecoder::new(bytes::Buf::reader(gz)),
            left: len,
            digest: ring::digest::Context::new(&ring::digest::SHA256),
            expect: sha256.to_string(),
            checked: false,
            done: false,
            since_pause: 0,
            pause: None,
        };
        Ok((Payload(Inner::Inflate(Box::new(inflate))), len))
    }
}

struct Inflate {
    decoder: flate2::bufread::GzDecoder<bytes::buf::Reader<Bytes>>,
    /// Bytes of the document not yet sent.
    left: u64,
    digest: ring::digest::Context,
    /// The SHA-256 (hex) the document is stored under.
    expect: String,
    /// The end was checked: length, CRC, SHA-256.
    checked: bool,
    done: bool,
    /// Pieces since the task last let the others on its thread run.
    since_pause: u8,
    pause: Option<Pin<Box<dyn Future<Output = ()> + Send + Sync>>>,
}

/// Pieces inflated per turn. hyper takes frames for as long as the socket accepts them; a
/// fast client would otherwise keep its worker thread (and every connection on it) for
/// milliseconds per turn. `yield_now` lets the runtime poll for I/O before coming back.
const PIECES_PER_TURN: u8 = 2;

fn damaged(why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("historic document: {why}"),
    )
}

impl Inflate {
    fn next_piece(&mut self) -> Option<io::Result<Bytes>> {
        if self.done {
            return None;
        }
        let r = self.read_piece();
        if !matches!(r, Ok(ref b) if !b.is_empty()) {
            self.done = true;
        }
        if let Err(e) = &r {
            // The client only sees a connection that ended short: the operator needs why.
            tracing::error!(
                "history file {}.xml.gz: {e}; the answer was cut off",
                self.expect
            );
        }
        match r {
            Ok(b) if b.is_empty() => None,
            other => Some(other),
        }
    }

    fn read_piece(&mut self) -> io::Result<Bytes> {
        if self.left == 0 {
            // After the last piece, which was checked before it went out (an empty
            // document never gets here: `inflate` checks it).
            if !self.checked {
                self.finish()?;
            }
            return Ok(Bytes::new());
        }
        let mut buf = vec![0u8; self.left.min(PIECE as u64) as usize];
        let mut n = 0;
        while n < buf.len() {
            match self.decoder.read(&mut buf[n..])? {
                0 => return Err(damaged("shorter than its gzip trailer says")),
                k => n += k,
            }
        }
        self.digest.update(&buf);
        self.left -= n as u64;
        if self.left == 0 {
            self.finish()?;
        }
        Ok(Bytes::from(buf))
    }

    /// At the end: nothing more inflates (the decoder checks the CRC and ISIZE here), and
    /// the document is the one its name promises.
    fn finish(&mut self) -> io::Result<()> {
        if self.decoder.read(&mut [0u8; 1])? != 0 {
            return Err(damaged("longer than its gzip trailer says"));
        }
        let digest = std::mem::replace(
            &mut self.digest,
            ring::digest::Context::new(&ring::digest::SHA256),
        );
        if crate::digest::hex(digest.finish().as_ref()) != self.expect {
            return Err(damaged("SHA-256 differs from the one it is stored under"));
        }
        self.checked = true;
        Ok(())
    }
}

impl Body for Payload {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        Poll::Ready(match &mut self.get_mut().0 {
            Inner::Bytes(b) => b
                .take()
                .filter(|b| !b.is_empty())
                .map(|b| Ok(Frame::data(b))),
            Inner::Inflate(i) => {
                if let Some(pause) = i.pause.as_mut() {
                    if pause.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    i.pause = None;
                }
                i.since_pause += 1;
                if i.since_pause >= PIECES_PER_TURN {
                    i.since_pause = 0;
                    i.pause = Some(Box::pin(tokio::task::yield_now()));
                }
                i.next_piece().map(|r| r.map(Frame::data))
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Inner::Bytes(b) => b.as_ref().is_none_or(Bytes::is_empty),
            Inner::Inflate(i) => i.done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Inner::Bytes(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            // Not announced: sent chunked, as nginx's gunzip sends the same document.
            Inner::Inflate(i) => {
                let mut h = SizeHint::new();
                h.set_upper(i.left);
                h
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(b: &[u8]) -> Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b).unwrap();
        Bytes::from(e.finish().unwrap())
    }

    fn sha(b: &[u8]) -> String {
        crate::digest::sha256_hex(b)
    }

    /// Every frame, then the error that ended it, if any.
    fn drain(mut p: Payload) -> (Vec<u8>, Option<io::Error>) {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut out = Vec::new();
        let mut pauses = 0usize;
        loop {
            assert!(pauses <= out.len() / PIECE + 1, "pauses, not a stall");
            match Pin::new(&mut p).poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(f))) => {
                    let d = f.into_data().unwrap();
                    assert!(d.len() <= PIECE, "one piece at a time");
                    out.extend_from_slice(&d)
                }
                Poll::Ready(Some(Err(e))) => return (out, Some(e)),
                Poll::Ready(None) => {
                    assert!(p.is_end_stream());
                    return (out, None);
                }
                // A pause for the others on the thread: asked again, it goes on.
                Poll::Pending => pauses += 1,
            }
        }
    }

    #[test]
    fn a_historic_document_inflates_in_pieces_and_is_checked_before_its_end() {
        let doc: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let gz = gzip(&doc);
        let (p, len) = Payload::inflate(gz.clone(), &sha(&doc)).unwrap();
        assert_eq!(len, doc.len() as u64);
        // Not announced (sent chunked, as an edge sends it), but never more than it says.
        assert_eq!(p.size_hint().exact(), None);
        assert_eq!(p.size_hint().upper(), Some(len));
        let (got, err) = drain(p);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(got, doc);
        let (empty, _) = Payload::inflate(gzip(b""), &sha(b"")).unwrap();
        assert_eq!(drain(empty).0, b"");

        // Damaged in any way: the response ends before its last piece, with the reason.
        let with_trailer = |isize: u32| {
            let mut v = gz.to_vec();
            let at = v.len() - 4;
            v[at..].copy_from_slice(&isize.to_le_bytes());
            Bytes::from(v)
        };
        let mut flipped = gz.to_vec();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x55;
        for (what, file, hash, why) in [
            ("another hash", gz.clone(), sha(b"other"), "SHA-256"),
            ("a byte flipped", Bytes::from(flipped), sha(&doc), ""),
            (
                "ISIZE too large",
                with_trailer(len as u32 + 7),
                sha(&doc),
                "",
            ),
            (
                "ISIZE too small",
                with_trailer(len as u32 - 7),
                sha(&doc),
                "",
            ),
        ] {
            let (p, _) = Payload::inflate(file, &hash).unwrap();
            let (got, err) = drain(p);
            let err = err.unwrap_or_else(|| panic!("{what}: not refused"));
            assert!(err.to_string().contains(why), "{what}: {err}");
            assert!(got.len() < doc.len().max(1), "{what}: all of it was sent");
        }
        assert!(Payload::inflate(Bytes::from_static(b"gz"), &sha(b"")).is_err());
        // Announced empty: hyper never asks for such a body, so it is checked at once.
        let err = |r: io::Result<(Payload, u64)>| r.err().map(|e| e.to_string());
        assert!(err(Payload::inflate(gzip(b""), &sha(b"x")))
            .unwrap()
            .contains("SHA-256"));
        assert!(err(Payload::inflate(with_trailer(0), &sha(&doc))).is_some());
        // Bytes at hand: one frame, then the end.
        let p = Payload::bytes(Bytes::from_static(b"abc"));
        assert_eq!(p.size_hint().exact(), Some(3));
        assert_eq!(drain(p).0, b"abc");
        assert!(Payload::bytes(Bytes::new()).is_end_stream());
    }
}
