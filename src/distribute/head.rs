//! The signed head of one release (`schemas/stelselnode-head-1.xsd`): per list the
//! Volgnummer, the Tijdstempel, the SHA-256 and size of the exact bytes served (identity,
//! gzip, detached signature), where the whole document is and where the index of deltas
//! leading to it is; a session id and an expiry. It is re-signed on a schedule even when
//! nothing changes, so a consumer tells a frozen mirror from a quiet week.

use crate::registry::model::ListKind;
use quick_xml::events::Event;
use std::time::Duration;

/// The head's file name, which its detached signature's Reference names.
pub const FILE: &str = "head.xml";
/// Where the head, and the content-addressed files it names, are served.
pub const PREFIX: &str = "/stelselnode/";
/// A head is made again this often even when nothing was published.
pub const RESIGN_EVERY: Duration = Duration::from_secs(15 * 60);
/// How long a head is valid: eight times the 900 s a MedMij node waits between fetches, so
/// a signer that is briefly down freezes no one, yet a mirror that stopped is refused
/// within two hours.
pub const LIFETIME: Duration = Duration::from_secs(2 * 60 * 60);
/// How often heads are made again and how long each is valid (`serve --head-resign`,
/// `--head-lifetime`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub resign_every: Duration,
    pub lifetime: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            resign_every: RESIGN_EVERY,
            lifetime: LIFETIME,
        }
    }
}

/// A head is at most this large (four lists, fixed fields).
pub const MAX_SIZE: usize = 16 * 1024;
/// `Cache-Control` of a head and its signature.
pub const CACHE_CONTROL: &str = "public, max-age=60";
/// `Cache-Control` of what a head names by its hash: it never changes.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

pub const XSD: &str = include_str!("../../schemas/stelselnode-head-1.xsd");
const NS: &str = "urn:stelselnode:head:1";

/// A file named by its hash, at `href` (relative to the head).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    pub href: String,
    pub sha256: String,
    pub size: u64,
}

impl Blob {
    /// A document, signature or delta at its content address `dir/<sha256>`.
    pub fn at(dir: &str, sha256: &str, size: u64) -> Blob {
        Blob {
            href: format!("{dir}/{sha256}"),
            sha256: sha256.to_string(),
            size,
        }
    }
}

/// What the head says of one list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListHead {
    pub list: ListKind,
    pub volgnummer: u64,
    pub tijdstempel: String,
    pub document: Blob,
    pub gzip_sha256: String,
    pub gzip_size: u64,
    pub signature: Blob,
    /// The index of deltas that lead to this document (none before the second one).
    pub deltas: Option<Blob>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub session: String,
    pub publication: u64,
    pub release: String,
    pub issued: String,
    pub expires: String,
    pub lists: Vec<ListHead>,
    /// Every link of the signing key chain (`sign::chain`), in Sequence order.
    pub keys: Vec<Blob>,
}

#[derive(Debug, thiserror::Error)]
#[error("head: {0}")]
pub struct HeadError(pub String);

fn err(what: impl Into<String>) -> HeadError {
    HeadError(what.into())
}

fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

impl Head {
    pub fn render(&self) -> Vec<u8> {
        let mut o = String::with_capacity(4096);
        o.push_str(&String::from_utf8_lossy(crate::xml::decl::XML_DECL));
        o.push_str(&format!("<Head xmlns=\"{NS}\">\n"));
        for (tag, v) in [
            ("Session", self.session.as_str()),
            ("Publication", &self.publication.to_string()),
            ("Release", &self.release),
            ("Issued", &self.issued),
            ("Expires", &self.expires),
        ] {
            o.push_str(&format!("  <{tag}>{}</{tag}>\n", esc(v)));
        }
        let blob = |o: &mut String, tag: &str, b: &Blob| {
            o.push_str(&format!(
                "    <{tag} href=\"{}\" sha256=\"{}\" size=\"{}\"/>\n",
                esc(&b.href),
                esc(&b.sha256),
                b.size
            ));
        };
        for l in &self.lists {
            o.push_str("  <List>\n");
            o.push_str(&format!("    <Name>{}</Name>\n", l.list.root()));
            o.push_str(&format!("    <File>{}</File>\n", l.list.file_name()));
            o.push_str(&format!("    <Volgnummer>{}</Volgnummer>\n", l.volgnummer));
            o.push_str(&format!(
                "    <Tijdstempel>{}</Tijdstempel>\n",
                esc(&l.tijdstempel)
            ));
            o.push_str(&format!(
                "    <Document href=\"{}\" sha256=\"{}\" size=\"{}\" gzipSha256=\"{}\" gzipSize=\"{}\"/>\n",
                esc(&l.document.href),
                esc(&l.document.sha256),
                l.document.size,
                esc(&l.gzip_sha256),
                l.gzip_size
            ));
            blob(&mut o, "Signature", &l.signature);
            if let Some(d) = &l.deltas {
                blob(&mut o, "Deltas", d);
            }
            o.push_str("  </List>\n");
        }
        for k in &self.keys {
            o.push_str(&format!(
                "  <KeyLink href=\"{}\" sha256=\"{}\" size=\"{}\"/>\n",
                esc(&k.href),
                esc(&k.sha256),
                k.size
            ));
        }
        o.push_str("</Head>\n");
        o.into_bytes()
    }

    /// Read a head: at most [`MAX_SIZE`] bytes, valid against its XSD, then its fields.
    pub fn parse(bytes: &[u8]) -> Result<Head, HeadError> {
        if bytes.len() > MAX_SIZE {
            return Err(err(format!(
                "{} bytes, more than the {MAX_SIZE} a head may have",
                bytes.len()
            )));
        }
        crate::xml::libxml::validate_stream(XSD, bytes)
            .map_err(|e| err(format!("not valid against its XSD: {e}")))?;
        let mut r = quick_xml::Reader::from_reader(bytes);
        let mut head = Head {
            session: String::new(),
            publication: 0,
            release: String::new(),
            issued: String::new(),
            expires: String::new(),
            lists: Vec::new(),
            keys: Vec::new(),
        };
        let mut current: Option<ListHead> = None;
        let mut text_of = String::new();
        let mut buf = Vec::new();
        loop {
            let ev = r
                .read_event_into(&mut buf)
                .map_err(|e| err(format!("not well-formed: {e}")))?;
            match ev {
                Event::Start(s) => {
                    text_of = s.local_name().as_ref().to_string();
                    if text_of == "List" {
                        current = Some(ListHead {
                            list: ListKind::Whitelist,
                            volgnummer: 0,
                            tijdstempel: String::new(),
                            document: Blob::at("doc", "", 0),
                            gzip_sha256: String::new(),
                            gzip_size: 0,
                            signature: Blob::at("doc", "", 0),
                            deltas: None,
                        });
                    }
                }
                Event::Empty(s) => {
                    let get = |name: &str| -> Result<String, HeadError> {
                        s.try_get_attribute(name)
                            .ok()
                            .flatten()
                            // Hex, digits and paths only (the XSD said so): no escapes.
                            .map(|a| a.value.into_owned())
                            .ok_or_else(|| err(format!("{name} missing")))
                    };
                    let number =
                        |v: String| v.parse::<u64>().map_err(|_| err("a size is not a number"));
                    let blob = Blob {
                        href: get("href")?,
                        sha256: get("sha256")?,
                        size: number(get("size")?)?,
                    };
                    let name = s.local_name();
                    match (name.as_ref(), current.as_mut()) {
                        ("KeyLink", _) => head.keys.push(blob),
                        (_, None) => return Err(err("an attribute element outside a List")),
                        ("Document", Some(l)) => {
                            l.gzip_sha256 = get("gzipSha256")?;
                            l.gzip_size = number(get("gzipSize")?)?;
                            l.document = blob;
                        }
                        ("Signature", Some(l)) => l.signature = blob,
                        ("Deltas", Some(l)) => l.deltas = Some(blob),
                        _ => return Err(err("an unknown element")),
                    }
                }
                Event::Text(t) => {
                    let v = t[..].trim().to_string();
                    if v.is_empty() {
                        continue;
                    }
                    let n = || {
                        v.parse::<u64>()
                            .map_err(|_| err(format!("{text_of} is not a number")))
                    };
                    match (text_of.as_str(), current.as_mut()) {
                        ("Session", _) => head.session = v,
                        ("Publication", _) => head.publication = n()?,
                        ("Release", _) => head.release = v,
                        ("Issued", _) => head.issued = v,
                        ("Expires", _) => head.expires = v,
                        ("Name", Some(l)) => {
                            l.list = ListKind::ALL
                                .into_iter()
                                .find(|k| k.root() == v)
                                .ok_or_else(|| err("an unknown list"))?
                        }
                        ("File", Some(_)) => {}
                        ("Volgnummer", Some(l)) => l.volgnummer = n()?,
                        ("Tijdstempel", Some(l)) => l.tijdstempel = v,
                        _ => return Err(err(format!("unexpected text in {text_of}"))),
                    }
                }
                Event::End(e) => {
                    if e.local_name().as_ref() == "List" {
                        head.lists.extend(current.take());
                    }
                    text_of.clear();
                }
                Event::Eof => break,
                _ => {}
            }
            buf.clear();
        }
        Ok(head)
    }

    /// The head's lists, by list.
    pub fn list(&self, list: ListKind) -> Option<&ListHead> {
        self.lists.iter().find(|l| l.list == list)
    }
}

/// A UTC time as heads write it.
pub fn utc(t: time::OffsetDateTime) -> String {
    crate::registry::model::tijdstempel(t)
}

/// A head's time back (`None`: not a time).
pub fn parse_utc(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

#[cfg(test)]
pub(crate) fn sample() -> Head {
    let h = |c: char| c.to_string().repeat(64);
    Head {
        session: "0123456789abcdef0123456789abcdef".into(),
        publication: 7,
        release: "1.1.2".into(),
        issued: "2026-12-07T10:00:00Z".into(),
        expires: "2026-12-07T12:00:00Z".into(),
        lists: ListKind::ALL
            .into_iter()
            .map(|l| ListHead {
                list: l,
                volgnummer: 3,
                tijdstempel: "2026-12-07T09:59:00Z".into(),
                document: Blob::at("doc", &h('a'), 1000),
                gzip_sha256: h('b'),
                gzip_size: 300,
                signature: Blob::at("doc", &h('c'), 2000),
                deltas: (l == ListKind::Whitelist).then(|| Blob::at("deltas", &h('d'), 90)),
            })
            .collect(),
        keys: vec![Blob::at("keys", &h('e'), 700)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_valid_small_and_reads_back() {
        let head = sample();
        let bytes = head.render();
        assert!(bytes.len() < MAX_SIZE);
        crate::xml::libxml::validate_stream(XSD, &bytes).unwrap();
        assert_eq!(Head::parse(&bytes).unwrap(), head);
        // Not valid against the XSD, or too large: refused.
        let bad = String::from_utf8(bytes.clone())
            .unwrap()
            .replace("<Volgnummer>3", "<Volgnummer>-3");
        assert!(Head::parse(bad.as_bytes()).is_err());
        let mut big = bytes.clone();
        big.extend(std::iter::repeat_n(b' ', MAX_SIZE));
        assert!(Head::parse(&big)
            .unwrap_err()
            .to_string()
            .contains("more than"));
        let escaping = String::from_utf8(bytes)
            .unwrap()
            .replace("href=\"doc/", "href=\"../doc/");
        assert!(Head::parse(escaping.as_bytes()).is_err());
    }
}
