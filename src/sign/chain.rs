//! The chain of the operator's signing keys. Each key change is a link document
//! (`schemas/stelselnode-keylink-1.xsd`) in which the outgoing key names its successor's
//! certificate, signed (enveloped) by the outgoing key. A consumer pinned to any key of the
//! chain follows it to the current key, trusting nothing but its pin: a link is accepted
//! only if the key it names as its signer is one the consumer already trusts and the
//! signature is that key's.

use super::{b64_decode, verify_enveloped, PublicKey, SignError, SigningKey, B64};
use quick_xml::events::Event;

pub const XSD: &str = include_str!("../../schemas/stelselnode-keylink-1.xsd");
const NS: &str = "urn:stelselnode:keylink:1";
const CLOSE: &str = "</KeyLink>\n";
/// Largest link document accepted (a certificate of a few kB, and a signature).
pub const MAX_SIZE: usize = 64 * 1024;
/// Most links a consumer walks.
pub const MAX_LINKS: usize = 1000;

/// One key change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub sequence: u64,
    /// SHA-256 fingerprint (hex) of the outgoing key's certificate (DER).
    pub previous: String,
    /// The successor's certificate (DER).
    pub next: Vec<u8>,
    pub announced: String,
    pub activation_from: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("key link: {0}")]
    Invalid(String),
    #[error("key link {sequence} is not signed by the key it names as its signer ({previous}): {why}; a forged link, refused")]
    Forged {
        sequence: u64,
        previous: String,
        why: String,
    },
    #[error("key link {sequence} forks the chain: key {previous} was followed by {followed} before, now by {now}")]
    Fork {
        sequence: u64,
        previous: String,
        followed: String,
        now: String,
    },
}

pub fn fingerprint(cert_der: &[u8]) -> String {
    crate::digest::sha256_hex(cert_der)
}

impl Link {
    pub fn next_fingerprint(&self) -> String {
        fingerprint(&self.next)
    }

    /// The link document, signed by `outgoing` (whose certificate must be `previous`).
    pub fn render_signed(&self, outgoing: &SigningKey) -> Result<Vec<u8>, SignError> {
        if fingerprint(&outgoing.cert_der) != self.previous {
            return Err(SignError::Sign(
                "a key link is signed by the key it names as previous".into(),
            ));
        }
        let mut o = self.unsigned();
        o.push_str(CLOSE);
        outgoing.sign_enveloped(o.as_bytes())
    }

    /// The document up to where its signature goes: the declaration and the root element
    /// in canonical form (no empty-element tags, text that needs no escaping), as the
    /// enveloped signature requires, and as [`Link::parse`] requires a link to be.
    fn unsigned(&self) -> String {
        use base64::Engine;
        let mut o = String::from_utf8_lossy(crate::xml::decl::XML_DECL).into_owned();
        o.push_str(&format!("<KeyLink xmlns=\"{NS}\">\n"));
        for (tag, v) in [
            ("Sequence", self.sequence.to_string()),
            ("Previous", self.previous.clone()),
            ("Next", B64.encode(&self.next)),
            ("Announced", self.announced.clone()),
            ("ActivationFrom", self.activation_from.clone()),
        ] {
            o.push_str(&format!("  <{tag}>{v}</{tag}>\n"));
        }
        o
    }

    /// Read a link document: size, XSD, fields, and the one form `render_signed` writes
    /// (so the fields read are byte for byte the text the signature covers: no comment,
    /// CDATA section or character reference can make them read otherwise). Its signature
    /// is not checked here (see [`follow`]): who signed it decides whether it means
    /// anything.
    pub fn parse(bytes: &[u8]) -> Result<Link, ChainError> {
        let invalid = |m: String| ChainError::Invalid(m);
        if bytes.len() > MAX_SIZE {
            return Err(invalid(format!(
                "{} bytes, more than the {MAX_SIZE} a key link may have",
                bytes.len()
            )));
        }
        crate::xml::libxml::validate_stream(XSD, bytes)
            .map_err(|e| invalid(format!("not valid against its XSD: {e}")))?;
        let mut r = quick_xml::Reader::from_reader(bytes);
        let mut link = Link {
            sequence: 0,
            previous: String::new(),
            next: Vec::new(),
            announced: String::new(),
            activation_from: String::new(),
        };
        let mut at = String::new();
        let mut buf = Vec::new();
        loop {
            match r
                .read_event_into(&mut buf)
                .map_err(|e| invalid(format!("not well-formed: {e}")))?
            {
                Event::Start(s) => at = s.local_name().as_ref().to_string(),
                Event::End(_) => at.clear(),
                Event::Text(t) => {
                    let v = t[..].trim().to_string();
                    match at.as_str() {
                        "Sequence" => {
                            link.sequence = v
                                .parse()
                                .map_err(|_| invalid(format!("Sequence '{v}' is not a number")))?
                        }
                        "Previous" => link.previous = v,
                        "Next" => {
                            link.next = b64_decode(&v).map_err(|e| invalid(format!("Next: {e}")))?
                        }
                        "Announced" => link.announced = v,
                        "ActivationFrom" => link.activation_from = v,
                        _ => {}
                    }
                }
                Event::Eof => break,
                _ => {}
            }
            buf.clear();
        }
        if link.sequence == 0 {
            return Err(invalid("Sequence 0: links are numbered from 1".into()));
        }
        PublicKey::from_cert_der(&link.next)
            .map_err(|e| invalid(format!("Next of link {}: {e}", link.sequence)))?;
        let signature = bytes
            .strip_prefix(link.unsigned().as_bytes())
            .and_then(|r| r.strip_suffix(CLOSE.as_bytes()));
        if !signature
            .is_some_and(|s| s.starts_with(b"<ds:Signature ") && s.ends_with(b"</ds:Signature>"))
        {
            return Err(invalid(format!(
                "link {} is not in the one form a key link is written in",
                link.sequence
            )));
        }
        Ok(link)
    }
}

/// Follow `links` (documents, in any order) from `known`, the certificates (DER) a
/// consumer trusts, in chain order, its pin first. Returns the chain extended by every
/// link its newest key signed, and so on. A link that names a trusted key as its signer
/// must carry that key's signature (else: forged) and agree with what was followed before
/// (else: a fork); a link from a key not in the chain grants nothing and is passed over
/// (it precedes the consumer's pin).
pub fn follow(known: &[Vec<u8>], links: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, ChainError> {
    if links.len() > MAX_LINKS {
        return Err(ChainError::Invalid(format!(
            "{} links, more than the {MAX_LINKS} a consumer walks",
            links.len()
        )));
    }
    let mut parsed = Vec::with_capacity(links.len());
    for bytes in links {
        parsed.push((Link::parse(bytes)?, bytes.as_slice()));
    }
    parsed.sort_by_key(|(l, _)| l.sequence);
    if let Some(w) = parsed
        .windows(2)
        .find(|w| w[0].0.sequence == w[1].0.sequence)
    {
        return Err(ChainError::Invalid(format!(
            "two links with Sequence {}",
            w[0].0.sequence
        )));
    }
    let mut chain: Vec<Vec<u8>> = known.to_vec();
    // In Sequence order, and again while a pass takes on a key: a link is followed once
    // the key it names as its signer is trusted, wherever it stands.
    let mut done = vec![false; parsed.len()];
    loop {
        let before = chain.len();
        for (n, (link, bytes)) in parsed.iter().enumerate() {
            if done[n] {
                continue;
            }
            if let Some(next) = take(&chain, link, bytes)? {
                chain.push(next);
            }
            done[n] = chain.iter().any(|c| fingerprint(c) == link.previous);
        }
        if chain.len() == before {
            return Ok(chain);
        }
    }
}

/// What one link adds to `chain`: nothing if its signer is not in it (yet) or it agrees
/// with what was followed; the next key if it comes from the newest. A link not signed by
/// the key it names, or one that forks the chain, is refused.
fn take(chain: &[Vec<u8>], link: &Link, bytes: &[u8]) -> Result<Option<Vec<u8>>, ChainError> {
    let Some(i) = chain.iter().position(|c| fingerprint(c) == link.previous) else {
        return Ok(None);
    };
    let key =
        PublicKey::from_cert_der(&chain[i]).map_err(|e| ChainError::Invalid(e.to_string()))?;
    verify_enveloped(bytes, Some(&key)).map_err(|e| ChainError::Forged {
        sequence: link.sequence,
        previous: link.previous.clone(),
        why: e.to_string(),
    })?;
    let fork = |followed: String, now: String| ChainError::Fork {
        sequence: link.sequence,
        previous: link.previous.clone(),
        followed,
        now,
    };
    match chain.get(i + 1) {
        Some(followed) if *followed == link.next => Ok(None),
        Some(followed) => Err(fork(fingerprint(followed), link.next_fingerprint())),
        None if chain.contains(&link.next) => Err(fork(
            "nothing".into(),
            format!("{}, a key earlier in the chain", link.next_fingerprint()),
        )),
        None => Ok(Some(link.next.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        let (k, c) = SigningKey::generate_development().unwrap();
        SigningKey::from_pem(&k, &c).unwrap()
    }

    fn link(seq: u64, from: &SigningKey, to: &SigningKey, by: &SigningKey) -> Vec<u8> {
        let l = Link {
            sequence: seq,
            previous: fingerprint(&from.cert_der),
            next: to.cert_der.clone(),
            announced: "2026-12-07T10:00:00Z".into(),
            activation_from: "2026-12-08T10:15:00Z".into(),
        };
        let mut doc = l.render_signed(from).unwrap();
        if !std::ptr::eq(from, by) {
            // A link claiming `from` but signed by `by`: the same text, another key's
            // signature.
            let text = String::from_utf8(doc).unwrap();
            let at = text.find("<ds:Signature").unwrap();
            let unsigned = format!("{}</KeyLink>\n", &text[..at]);
            doc = by.sign_enveloped(unsigned.as_bytes()).unwrap();
        }
        doc
    }

    #[test]
    fn a_pinned_consumer_walks_every_link_and_refuses_forged_and_forked_ones() {
        let (k0, k1, k2, evil) = (key(), key(), key(), key());
        let l1 = link(1, &k0, &k1, &k0);
        let l2 = link(2, &k1, &k2, &k1);
        let parsed = Link::parse(&l1).unwrap();
        assert_eq!(parsed.next, k1.cert_der);
        // In any order, from the first key or a later one.
        let chain = follow(
            std::slice::from_ref(&k0.cert_der),
            &[l2.clone(), l1.clone()],
        )
        .unwrap();
        assert_eq!(
            chain,
            vec![
                k0.cert_der.clone(),
                k1.cert_der.clone(),
                k2.cert_der.clone()
            ]
        );
        let chain = follow(
            std::slice::from_ref(&k1.cert_der),
            &[l1.clone(), l2.clone()],
        )
        .unwrap();
        assert_eq!(chain, vec![k1.cert_der.clone(), k2.cert_der.clone()]);
        // A link naming a trusted key as signer but signed by another: refused.
        let forged = link(2, &k1, &evil, &evil);
        let e = follow(std::slice::from_ref(&k0.cert_der), &[l1.clone(), forged]).unwrap_err();
        assert!(matches!(e, ChainError::Forged { sequence: 2, .. }), "{e}");
        // A link from an untrusted key grants nothing.
        let stray = link(3, &evil, &k2, &evil);
        let chain = follow(std::slice::from_ref(&k0.cert_der), &[l1.clone(), stray]).unwrap();
        assert_eq!(chain.len(), 2);
        // The same key followed by two successors: a fork.
        let fork = link(3, &k0, &k2, &k0);
        let e = follow(std::slice::from_ref(&k0.cert_der), &[l1.clone(), fork]).unwrap_err();
        assert!(matches!(e, ChainError::Fork { .. }), "{e}");
        // The same text written otherwise (a character reference, which the signature's
        // canonical form resolves): not read at all.
        let text = String::from_utf8(l1.clone()).unwrap();
        let other = text.replacen("<Sequence>1</Sequence>", "<Sequence>&#49;</Sequence>", 1);
        assert!(matches!(
            Link::parse(other.as_bytes()),
            Err(ChainError::Invalid(_))
        ));
        // A changed byte in a signed link: its signature no longer verifies.
        let mut bent = l2.clone();
        let at = bent.windows(10).position(|w| w == b"<Announced").unwrap() + 15;
        bent[at] = if bent[at] == b'1' { b'2' } else { b'1' };
        assert!(follow(std::slice::from_ref(&k1.cert_der), &[bent]).is_err());
    }
}
