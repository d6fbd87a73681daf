//! XMLDSig signatures with ring, in one profile (see [`profile`]):
//!
//! * Detached: a `ds:Signature` document served at `<list>.xml.sig` whose Reference digests
//!   the exact bytes served (no transforms). Works for the closed official schemas.
//! * Enveloped: a `ds:Signature` as last child of the root, for project-authored schemas.
//!
//! Signing relies on `render` writing the root element in canonical form, so the digest is
//! taken over bytes already in memory. Verification ([`verify`]) never relies on that: it
//! parses with libxml2 and canonicalises.

pub mod chain;
pub mod key;
pub mod keyring;
pub mod profile;
pub mod verify;

pub use key::{cert_der_from_pem, describe_certificate, PublicKey, SignError, SigningKey};
pub use profile::{Algorithm, DSIG_NS};
pub use verify::{
    by_newest, detached_is_canonical, verify_detached, verify_detached_digest, verify_enveloped,
    verify_enveloped_owned, Verified,
};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::digest;

#[derive(Debug, thiserror::Error)]
#[error("signature invalid: {0}")]
pub struct VerifyError(pub String);

pub(crate) fn verr(s: impl Into<String>) -> VerifyError {
    VerifyError(s.into())
}

pub(crate) fn b64_decode(s: &str) -> Result<Vec<u8>, String> {
    let clean: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    B64.decode(clean)
        .map_err(|e| format!("not valid base64: {e}"))
}

/// The running digest of an enveloped signature over a rendered document whose pieces
/// come in order: the root element's bytes, from after the XML declaration.
pub struct EnvelopedDigest {
    ctx: digest::Context,
    past_declaration: bool,
}

impl Default for EnvelopedDigest {
    fn default() -> Self {
        Self::new()
    }
}

impl EnvelopedDigest {
    pub fn new() -> EnvelopedDigest {
        EnvelopedDigest {
            ctx: digest::Context::new(&digest::SHA256),
            past_declaration: false,
        }
    }

    fn layout() -> SignError {
        SignError::Sign("document is not in the rendered layout".into())
    }

    /// `piece` without the declaration if it is the first piece, which must start with it.
    fn past_declaration<'p>(&mut self, piece: &'p [u8]) -> Result<&'p [u8], SignError> {
        if self.past_declaration {
            return Ok(piece);
        }
        let rest = piece
            .strip_prefix(crate::xml::decl::XML_DECL)
            .ok_or_else(Self::layout)?;
        self.past_declaration = true;
        Ok(rest)
    }

    /// Add the next piece of the document. Never its last: that one goes to
    /// [`SigningKey::enveloped_signature_after`], which leaves out its final newline.
    pub fn update(&mut self, piece: &[u8]) -> Result<(), SignError> {
        let bytes = self.past_declaration(piece)?;
        self.ctx.update(bytes);
        Ok(())
    }
}

impl SigningKey {
    /// A complete `ds:Signature` element over a Reference with the given digest.
    fn signature_element(
        &self,
        uri: &str,
        enveloped: bool,
        digest: &[u8],
    ) -> Result<String, SignError> {
        let inner =
            profile::signed_info_inner(self.algorithm(), uri, enveloped, &B64.encode(digest));
        let value = self.sign_bytes(profile::canonical_signed_info(&inner).as_bytes())?;
        Ok(profile::signature_element(
            &inner,
            &B64.encode(value),
            Some(&B64.encode(&self.cert_der)),
        ))
    }

    /// Insert an enveloped signature as the last child of the root of a rendered document
    /// (see `render`: declaration, newline, canonical root element, newline).
    pub fn sign_enveloped(&self, doc: &[u8]) -> Result<Vec<u8>, SignError> {
        let mut out = Vec::with_capacity(doc.len() + 4096);
        out.extend_from_slice(doc);
        self.sign_enveloped_in_place(&mut out)?;
        Ok(out)
    }

    /// `sign_enveloped` without a second copy of a document of hundreds of MB: the
    /// signature is inserted before the closing root tag, moving only that tag.
    pub fn sign_enveloped_in_place(&self, doc: &mut Vec<u8>) -> Result<(), SignError> {
        let (at, sig) = self.enveloped_signature(&[doc.as_slice()])?;
        doc.splice(at..at, sig);
        Ok(())
    }

    /// The enveloped signature of a rendered document given as consecutive pieces (a large
    /// list is never joined in memory), and where it goes: before the closing root tag, at
    /// that offset into the last piece. The digest is taken over the root element as
    /// rendered (already canonical), without the declaration and the final newline. The
    /// first piece must hold the whole declaration and the last the closing root tag.
    pub fn enveloped_signature(&self, pieces: &[&[u8]]) -> Result<(usize, Vec<u8>), SignError> {
        let (last, before) = pieces.split_last().ok_or_else(EnvelopedDigest::layout)?;
        let mut digest = EnvelopedDigest::new();
        for p in before {
            digest.update(p)?;
        }
        self.enveloped_signature_after(digest, last)
    }

    /// [`enveloped_signature`](Self::enveloped_signature) with every piece but the last
    /// already in `digest` (a list written in parts digests each as it is written).
    pub fn enveloped_signature_after(
        &self,
        mut digest: EnvelopedDigest,
        last: &[u8],
    ) -> Result<(usize, Vec<u8>), SignError> {
        let root = digest.past_declaration(last)?;
        let offset = last.len() - root.len();
        let end = root
            .len()
            .checked_sub(1)
            .filter(|&e| root[e] == b'\n')
            .ok_or_else(EnvelopedDigest::layout)?;
        let close = root
            .iter()
            .rposition(|&b| b == b'<')
            .ok_or_else(|| SignError::Sign("document has no closing root tag".into()))?;
        digest.ctx.update(&root[..end]);
        let sig = self.signature_element("", true, digest.ctx.finish().as_ref())?;
        Ok((offset + close, sig.into_bytes()))
    }

    /// Check an enveloped signature this key made over a rendered document, from the bytes
    /// alone: the digest over the root element without the signature (which `render`
    /// writes in canonical form, so no re-parse or c14n is needed) and the SignatureValue
    /// over SignedInfo. Used by `publish` on documents of hundreds of MB; the general,
    /// libxml2-based [`verify_enveloped`] is what `stelselnode verify` and the tests use.
    pub fn check_own_enveloped(&self, doc: &[u8]) -> Result<(), VerifyError> {
        let root = doc
            .strip_prefix(crate::xml::decl::XML_DECL)
            .and_then(|d| d.strip_suffix(b"\n"))
            .ok_or_else(|| verr("document is not in the rendered layout"))?;
        // Only the signature is read as text: a quarter of a gigabyte checked for UTF-8
        // first took a fifth of this check (the document passed its XSD).
        let at = memchr::memmem::rfind(root, profile::OPEN.as_bytes())
            .ok_or_else(|| verr("no ds:Signature"))?;
        let tail =
            std::str::from_utf8(&root[at..]).map_err(|_| verr("the signature is not UTF-8"))?;
        let own = profile::find_own(tail).map_err(verr)?;
        let (start, end) = (at + own.start, at + own.end);
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&root[..start]);
        ctx.update(&root[end..]);
        let expected = b64_decode(own.digest_b64).map_err(|e| verr(format!("DigestValue: {e}")))?;
        if ctx.finish().as_ref() != expected.as_slice() {
            return Err(verr("DigestValue does not match the document"));
        }
        let value = b64_decode(own.value_b64).map_err(|e| verr(format!("SignatureValue: {e}")))?;
        self.public_key()
            .verify(profile::canonical_signed_info(own.inner).as_bytes(), &value)
    }

    /// A detached signature document whose Reference (`uri`, relative to the signature's own
    /// URL) digests `served` byte for byte.
    pub fn sign_detached(&self, served: &[u8], uri: &str) -> Result<Vec<u8>, SignError> {
        self.sign_detached_digest(digest::digest(&digest::SHA256, served).as_ref(), uri)
    }

    /// [`SigningKey::sign_detached`] from the SHA-256 of the served bytes, which a
    /// publication also names the document by (one pass over hundreds of MB less).
    pub fn sign_detached_digest(&self, sha256: &[u8], uri: &str) -> Result<Vec<u8>, SignError> {
        Ok(profile::detached_document(
            &self.signature_element(uri, false, sha256)?,
        ))
    }
}

/// The keys that sign a publication: the active key, and during a rollover's overlap the
/// outgoing one beside it. The enveloped signature (one per document, as the XSDs allow)
/// is the active key's; a detached signature carries both, the outgoing key's as the
/// document's signature and the active key's in its ds:Object (see
/// [`profile::with_second`]).
pub struct Signers {
    pub active: SigningKey,
    pub outgoing: Option<SigningKey>,
}

impl Signers {
    pub fn one(active: SigningKey) -> Signers {
        Signers {
            active,
            outgoing: None,
        }
    }

    /// Every key that signs, the active one first.
    pub fn keys(&self) -> impl Iterator<Item = &SigningKey> {
        std::iter::once(&self.active).chain(self.outgoing.as_ref())
    }

    /// A detached signature document over bytes with this SHA-256, by every key.
    pub fn sign_detached_digest(&self, sha256: &[u8], uri: &str) -> Result<Vec<u8>, SignError> {
        let Some(outgoing) = &self.outgoing else {
            return self.active.sign_detached_digest(sha256, uri);
        };
        let outer = outgoing.signature_element(uri, false, sha256)?;
        let inner = self.active.signature_element(uri, false, sha256)?;
        Ok(profile::detached_document(&profile::with_second(
            &outer, &inner,
        )))
    }

    pub fn sign_detached(&self, served: &[u8], uri: &str) -> Result<Vec<u8>, SignError> {
        self.sign_detached_digest(digest::digest(&digest::SHA256, served).as_ref(), uri)
    }

    /// [`Signers::check_detached_digest`] over the served bytes.
    pub fn check_detached(&self, served: &[u8], sig: &[u8], uri: &str) -> Result<(), VerifyError> {
        self.check_detached_digest(digest::digest(&digest::SHA256, served).as_ref(), sig, uri)
    }

    /// Check a detached signature as a consumer pinned to each of these keys would.
    pub fn check_detached_digest(
        &self,
        sha256: &[u8],
        sig: &[u8],
        uri: &str,
    ) -> Result<(), VerifyError> {
        for k in self.keys() {
            verify_detached_digest(sha256, sig, uri, Some(k.public_key()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::render::{render, Header};
    use crate::registry::catalogue::{Catalogue, DEFAULT_CATALOGUE};
    use crate::registry::model::{Gegevensdienstnaam, OAuthclient, Registry};
    use crate::xml::libxml::{exc_c14n, parse_strict};

    fn registry_with_awkward_text() -> Registry {
        let mut reg = Registry::default();
        for (id, name) in [
            ("1", "Basis & <zorg> \"quotes\" 'x'"),
            ("2", "Médicatie — 日本語 😀"),
        ] {
            reg.gegevensdiensten.insert(
                id.into(),
                Gegevensdienstnaam {
                    gegevensdienst_id: id.into(),
                    weergavenaam: name.into(),
                },
            );
        }
        // Long multi-byte text crosses libxml's output-buffer chunk boundaries.
        for i in 0..300 {
            let host = format!("pgo{i}.voorbeeld.nl");
            reg.oauthclients.insert(
                host.clone(),
                OAuthclient {
                    hostname: host,
                    oauthclient_organisatienaam: format!("Zorg & Co {i} — é日😀"),
                    gegevensdiensten: vec!["1".into(), "2".into()],
                },
            );
        }
        reg
    }

    fn c14n_of(doc: &[u8]) -> String {
        let d = parse_strict(doc).unwrap();
        d.canonicalize(exc_c14n(), None).unwrap()
    }

    #[test]
    fn rendered_root_is_already_canonical() {
        let reg = registry_with_awkward_text();
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        let h = Header {
            volgnummer: 7,
            tijdstempel: "2026-01-01T00:00:00Z".into(),
        };
        for r in cat.renditions() {
            let doc = render(&reg, &r, &h).unwrap();
            let root = doc
                .strip_prefix(crate::xml::decl::XML_DECL)
                .and_then(|d| d.strip_suffix(b"\n"))
                .unwrap();
            assert_eq!(c14n_of(&doc).as_bytes(), root, "{r}");
        }
    }

    fn keys() -> Vec<SigningKey> {
        let (k, c) = SigningKey::generate_development().unwrap();
        let mut out = vec![SigningKey::from_pem(&k, &c).unwrap()];
        // RSA through openssl, as an operator would make it.
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        let cert = dir.path().join("c.pem");
        let st = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=test", "-days", "2",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl");
        assert!(st.status.success());
        out.push(
            SigningKey::from_pem(
                &std::fs::read_to_string(&key).unwrap(),
                &std::fs::read_to_string(&cert).unwrap(),
            )
            .unwrap(),
        );
        out
    }

    #[test]
    fn enveloped_and_detached_round_trip_and_detect_tampering() {
        let reg = registry_with_awkward_text();
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        let r = cat
            .renditions()
            .into_iter()
            .find(|r| {
                r.version == crate::registry::model::SchemaVersion::Release3
                    && r.list == crate::registry::model::ListKind::OAuthclientlist
            })
            .unwrap();
        let h = Header {
            volgnummer: 1,
            tijdstempel: "2026-01-01T00:00:00Z".into(),
        };
        for key in keys() {
            let pk = key.public_key().clone();
            let signed = key.sign_enveloped(&render(&reg, &r, &h).unwrap()).unwrap();
            let v = verify_enveloped(&signed, Some(&pk)).unwrap();
            key.check_own_enveloped(&signed).unwrap();
            // Signed in pieces (as a large list is, never joined in memory): a signature
            // that verifies, at the same place; a piece cut anywhere but the last's root
            // tag is the same document (the first piece holds the declaration, the last the
            // closing root tag).
            let doc = render(&reg, &r, &h).unwrap();
            let decl = crate::xml::decl::XML_DECL.len();
            for cuts in [vec![decl, 300], vec![50, 51, 2000], vec![doc.len() - 30]] {
                let mut pieces = crate::registry::documents::cut_at(&doc, &cuts);
                let (at, sig) = key.enveloped_signature(&pieces).unwrap();
                let last = pieces.pop().unwrap();
                let mut whole = pieces.concat();
                whole.extend_from_slice(&last[..at]);
                whole.extend_from_slice(&sig);
                whole.extend_from_slice(&last[at..]);
                assert_eq!(whole.len(), signed.len());
                verify_enveloped(&whole, Some(&pk)).unwrap();
                key.check_own_enveloped(&whole).unwrap();
            }
            assert!(key.enveloped_signature(&[&doc[..doc.len() - 1]]).is_err());
            assert!(key.enveloped_signature(&[&doc[..1], &doc[1..]]).is_err());
            assert!(key.enveloped_signature(&[]).is_err());
            // Continued from a running digest: the last piece must still end the document.
            let at = doc.len() - 30;
            for bad in [&doc[at..doc.len() - 1], b"no closing tag here\n".as_slice()] {
                let mut d = EnvelopedDigest::new();
                d.update(&doc[..at]).unwrap();
                assert!(key.enveloped_signature_after(d, bad).is_err());
            }
            let mut d = EnvelopedDigest::new();
            d.update(&doc[..at]).unwrap();
            assert!(key.enveloped_signature_after(d, &doc[at..]).is_ok());
            assert_eq!(v.alg, key.algorithm());
            assert!(
                verify_enveloped(&signed, None).is_ok(),
                "KeyInfo certificate"
            );
            // Nothing unsigned may ride along inside the signature either.
            let smuggled = String::from_utf8(signed.clone()).unwrap().replacen(
                "</ds:Signature>",
                "<ds:Object>extra</ds:Object></ds:Signature>",
                1,
            );
            assert!(verify_enveloped(smuggled.as_bytes(), Some(&pk)).is_err());
            let tampered = String::from_utf8(signed.clone())
                .unwrap()
                .replacen("pgo1.", "pgo9.", 1);
            assert!(verify_enveloped(tampered.as_bytes(), Some(&pk)).is_err());
            assert!(key.check_own_enveloped(tampered.as_bytes()).is_err());

            let sig = key
                .sign_detached(&signed, "MedMij_OAuthclientlist.xml")
                .unwrap();
            verify_detached(&signed, &sig, "MedMij_OAuthclientlist.xml", Some(&pk)).unwrap();
            assert!(verify_detached(
                tampered.as_bytes(),
                &sig,
                "MedMij_OAuthclientlist.xml",
                Some(&pk)
            )
            .is_err());
            assert!(verify_detached(&signed, &sig, "MedMij_Whitelist.xml", Some(&pk)).is_err());
            // Given the digest instead of the bytes (publish): the same checks.
            let sha = |b: &[u8]| ring::digest::digest(&ring::digest::SHA256, b);
            let name = "MedMij_OAuthclientlist.xml";
            verify_detached_digest(sha(&signed).as_ref(), &sig, name, Some(&pk)).unwrap();
            let other = sha(tampered.as_bytes());
            assert!(verify_detached_digest(other.as_ref(), &sig, name, Some(&pk)).is_err());
            let (k2, c2) = SigningKey::generate_development().unwrap();
            let stranger = SigningKey::from_pem(&k2, &c2).unwrap().public_key().clone();
            let digest = sha(&signed);
            assert!(verify_detached_digest(digest.as_ref(), &sig, name, Some(&stranger)).is_err());
        }
        // A signature by another key does not pass the publish-time check.
        let ks = keys();
        let signed = ks[0]
            .sign_enveloped(&render(&reg, &r, &h).unwrap())
            .unwrap();
        assert!(ks[1].check_own_enveloped(&signed).is_err());
        // A key and a certificate that do not belong together are refused.
        let (k1, _) = SigningKey::generate_development().unwrap();
        let (_, c2) = SigningKey::generate_development().unwrap();
        assert!(SigningKey::from_pem(&k1, &c2).is_err());
    }

    /// A document in the rendered form is verified from its bytes, without a tree; any
    /// other form goes to libxml2's c14n, which accepts the same signature over the same
    /// content and refuses what was changed; the byte path never refuses on its own.
    #[test]
    fn a_detached_signature_in_a_rollover_verifies_with_either_key_and_only_with_them() {
        let key = || {
            let (k, c) = SigningKey::generate_development().unwrap();
            SigningKey::from_pem(&k, &c).unwrap()
        };
        let (old, new, other) = (key(), key(), key());
        let (old_pub, new_pub) = (old.public_key().clone(), new.public_key().clone());
        let both = Signers {
            active: new,
            outgoing: Some(old),
        };
        let doc = b"<x>the served bytes</x>\n";
        let sig = both.sign_detached(doc, "F.xml").unwrap();
        assert!(detached_is_canonical(&sig).unwrap());
        for k in [&old_pub, &new_pub] {
            verify_detached(doc, &sig, "F.xml", Some(k)).unwrap();
        }
        verify_detached(doc, &sig, "F.xml", None).unwrap();
        assert!(verify_detached(doc, &sig, "F.xml", Some(other.public_key())).is_err());
        let e = verify_detached(b"<x>other bytes</x>\n", &sig, "F.xml", Some(&old_pub));
        assert!(e.unwrap_err().to_string().contains("DigestValue"));
        // The second signature changed on the way (nothing signs it): a consumer pinned to
        // the old key is not refused for it; one pinned to the new key is, and so is an
        // unpinned check; the file is no longer in its canonical form.
        let text = String::from_utf8(sig.clone()).unwrap();
        let at = text.rfind("<ds:SignatureValue>").unwrap() + "<ds:SignatureValue>".len();
        let mut bent = sig.clone();
        bent[at] = if bent[at] == b'A' { b'B' } else { b'A' };
        verify_detached(doc, &bent, "F.xml", Some(&old_pub)).unwrap();
        assert!(verify_detached(doc, &bent, "F.xml", Some(&new_pub)).is_err());
        assert!(verify_detached(doc, &bent, "F.xml", None).is_err());
        // A third signature, or one nested deeper, is not a shape this profile writes.
        let nested = text.replacen("<ds:Object>", "<ds:Object><ds:Object>", 1);
        assert!(verify_detached(doc, nested.as_bytes(), "F.xml", Some(&old_pub)).is_err());
    }

    #[test]
    fn enveloped_verification_from_the_bytes_and_its_fallback() {
        use super::verify::enveloped_as_canonical;
        let reg = registry_with_awkward_text();
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        let h = Header {
            volgnummer: 3,
            tijdstempel: "2026-01-01T00:00:00Z".into(),
        };
        let key = &keys()[0];
        let pk = key.public_key().clone();
        let (k2, c2) = SigningKey::generate_development().unwrap();
        let stranger = SigningKey::from_pem(&k2, &c2).unwrap().public_key().clone();
        for r in cat.renditions() {
            let signed = key.sign_enveloped(&render(&reg, &r, &h).unwrap()).unwrap();
            let text = String::from_utf8(signed.clone()).unwrap();
            assert!(enveloped_as_canonical(&signed, Some(&pk)).is_some(), "{r}");
            assert!(enveloped_as_canonical(&signed, Some(&stranger)).is_none());
            assert!(verify_enveloped(&signed, Some(&stranger)).is_err());
            // Without the declaration, or with other whitespace around the root: the same
            // canonical bytes.
            let bare = text.split_once('\n').unwrap().1;
            assert!(enveloped_as_canonical(bare.as_bytes(), Some(&pk)).is_some());
            let spaced = text.replacen("?>\n", "?>\n\n  ", 1) + "\n\n";
            assert!(enveloped_as_canonical(spaced.as_bytes(), Some(&pk)).is_some());
            // The same content in other forms: a comment, an attribute in single quotes, an
            // empty element written short. Not these bytes, so libxml2 decides: valid.
            let root_open = text.find("?>").unwrap() + 3;
            let tag_end = root_open + text[root_open..].find('>').unwrap() + 1;
            let commented = format!("{}<!-- c -->{}", &text[..tag_end], &text[tag_end..]);
            let quoted = format!(
                "{}{}{}",
                &text[..root_open],
                text[root_open..tag_end].replace('"', "'"),
                &text[tag_end..]
            );
            let spaced_tag = text.replacen("<Volgnummer>", "<Volgnummer >", 1);
            for (what, other) in [
                ("comment", commented),
                ("quotes", quoted),
                ("space in a tag", spaced_tag),
            ] {
                assert_ne!(other, text, "{what}: the test changes the form");
                assert!(
                    enveloped_as_canonical(other.as_bytes(), Some(&pk)).is_none(),
                    "{what}"
                );
                verify_enveloped(other.as_bytes(), Some(&pk))
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
            }
            // Changed content, a second signature, a signature that is not the last child,
            // an element after the root: refused, by libxml2's reasons.
            let sig_at = text.find("<ds:Signature").unwrap();
            let end_at = text.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
            let sig_el = &text[sig_at..end_at];
            let close = text.rfind("</").unwrap();
            let changed = text.replacen("2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", 1);
            let twice = format!("{}{sig_el}{}", &text[..end_at], &text[end_at..]);
            let first = format!(
                "{}{sig_el}{}{}",
                &text[..tag_end],
                &text[tag_end..sig_at],
                &text[end_at..]
            );
            let after_root = format!(
                "{}<x/>",
                &text[..close + text[close..].find('>').unwrap() + 1]
            );
            // Not XML, or a prolog other than ours: the byte path leaves them to libxml2.
            let form_feed = format!("{text}\x0c");
            let reordered = text.replacen(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
                "<?xml version=\"1.0\" standalone=\"yes\" encoding=\"UTF-8\"?>",
                1,
            );
            // Unsigned markup inside the signature's values.
            let value_at = text.find("<ds:SignatureValue>").unwrap() + "<ds:SignatureValue>".len();
            let in_value = format!("{}<!--x-->{}", &text[..value_at], &text[value_at..]);
            for (what, bad) in [
                ("changed", changed),
                ("twice", twice),
                ("first", first),
                ("after the root", after_root),
                ("form feed", form_feed),
                ("declaration order", reordered),
                ("comment in SignatureValue", in_value),
            ] {
                assert_ne!(bad, text, "{what}: the test changes the document");
                assert!(
                    enveloped_as_canonical(bad.as_bytes(), Some(&pk)).is_none(),
                    "{what}"
                );
                assert!(
                    verify_enveloped(bad.as_bytes(), Some(&pk)).is_err(),
                    "{what}"
                );
            }
        }
    }
}
