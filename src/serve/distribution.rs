//! What the server answers beside the official lists (see `distribute`), under
//! `/stelselnode/`: per release a signed head (`head.xml` and `head.xml.sig`, selected by
//! `?release=` or `?api=` as the lists are), and the files heads name by their SHA-256:
//! documents and signatures (`doc/<sha256>`), deltas (`delta/<sha256>`) and each
//! rendition's delta index (`deltas/<sha256>`). Heads are made again every
//! `--head-resign` (15 minutes) and after every publication; each is validated against its XSD
//! and its signature checked before it is served.

use super::respond::{matches_etag, text, xml_response, Ask, Resp};
use super::set::{Body, PublishedSet};
use crate::distribute::head::{self, Blob, Head, ListHead};
use crate::distribute::store as delta_store;
use crate::registry::catalogue::{Rendition, SelectError, Status};
use crate::registry::publication::rendition_id;
use crate::registry::store::{Store, StoreError};
use crate::sign::Signers;
use arc_swap::ArcSwap;
use http::{header, HeaderValue, Method, StatusCode};
use std::collections::HashMap;
use std::sync::Arc;

/// A release's head and its detached signature, as served.
pub struct Signed {
    pub head: Body,
    pub sig: Body,
    pub issued: time::OffsetDateTime,
    pub expires: time::OffsetDateTime,
    /// `Last-Modified`: when it was issued (an edge's file has that mtime).
    pub last_modified: HeaderValue,
}

/// The distribution files of one published set.
#[derive(Default)]
pub struct Distribution {
    pub session: String,
    /// Deltas by their SHA-256 (documents and signatures are the set's).
    pub deltas: HashMap<String, Body>,
    /// Delta indexes by their SHA-256.
    pub indexes: HashMap<String, Body>,
    /// Per rendition: its delta index, if it has deltas.
    index_of: HashMap<Rendition, Blob>,
    /// `Last-Modified` of each delta, index and key link, by SHA-256: when it was made
    /// (a delta), when its newest delta was (an index), when it was announced (a key
    /// link). A file that stays in later sets keeps it, as an edge's file keeps its mtime.
    pub made: HashMap<String, (time::OffsetDateTime, HeaderValue)>,
    /// Per rendition: the SHA-256 of its document's gzip form, hashed once per set.
    gzip_sha256: HashMap<Rendition, String>,
    /// The signing key chain's links by their SHA-256, in Sequence order (every head
    /// names them all).
    pub key_links: Vec<(String, Body)>,
    /// Per release id; replaced whole when heads are made again.
    pub heads: ArcSwap<HashMap<String, Arc<Signed>>>,
}

impl Distribution {
    /// The deltas and indexes of `set`'s renditions, from the store.
    pub fn load(store: &Store, set: &PublishedSet) -> Result<Distribution, StoreError> {
        let chains = delta_store::chains(store)?;
        let mut d = Distribution {
            session: delta_store::session(store)?,
            ..Distribution::default()
        };
        for (_, bytes) in crate::sign::keyring::links(store)? {
            let b = Body::new(bytes)?;
            let announced = crate::sign::chain::Link::parse(&b.bytes)
                .ok()
                .and_then(|l| head::parse_utc(&l.announced));
            d.dated(&b.sha256, announced);
            d.key_links.push((b.sha256.clone(), b));
        }
        let at = |unix: i64| time::OffsetDateTime::from_unix_timestamp(unix).ok();
        for pr in &set.index.renditions {
            if let Some(doc) = set.docs.get(&pr.rendition) {
                d.gzip_sha256.insert(
                    pr.rendition.clone(),
                    crate::digest::sha256_hex(&doc.xml.gzip.bytes),
                );
            }
            let id = rendition_id(&pr.rendition);
            // Only a chain that ends at the document served now leads anywhere.
            let Some(chain) = chains
                .get(&id)
                .filter(|c| c.first().is_some_and(|l| l.to == pr.volgnummer))
            else {
                continue;
            };
            for l in chain {
                if let Some(bytes) = delta_store::delta(store, &l.sha256)? {
                    d.deltas.insert(l.sha256.clone(), Body::new(bytes)?);
                    d.dated(&l.sha256, at(l.made));
                }
            }
            let index = Body::new(delta_store::index_document(&id, chain))?;
            d.dated(
                &index.sha256,
                chain.iter().map(|l| l.made).max().and_then(at),
            );
            d.index_of.insert(
                pr.rendition.clone(),
                Blob::at("deltas", &index.sha256, index.bytes.len() as u64),
            );
            d.indexes.insert(index.sha256.clone(), index);
        }
        Ok(d)
    }

    /// Record when the file with this SHA-256 was made: its `Last-Modified`.
    fn dated(&mut self, sha: &str, t: Option<time::OffsetDateTime>) {
        if let Some(v) = t.and_then(|t| Some((t, http_date_header(t)?))) {
            self.made.insert(sha.to_string(), v);
        }
    }

    /// Make, check and serve a signed head for every release served, valid from `now`.
    pub fn sign(
        &self,
        set: &PublishedSet,
        key: &Signers,
        now: time::OffsetDateTime,
        lifetime: std::time::Duration,
    ) -> Result<(), String> {
        let mut heads = HashMap::new();
        let expires = now + lifetime;
        for release in set.index.catalogue.served() {
            let mut lists = Vec::new();
            for l in crate::registry::model::ListKind::ALL {
                let r = release.rendition(l);
                let (Some(doc), Some(v), Some(gzip_sha256)) = (
                    set.docs.get(&r),
                    set.index.lists.get(&l),
                    self.gzip_sha256.get(&r),
                ) else {
                    continue;
                };
                lists.push(ListHead {
                    list: l,
                    volgnummer: v.volgnummer,
                    tijdstempel: v.tijdstempel.clone(),
                    document: Blob::at("doc", &doc.xml.sha256, doc.xml.bytes.len() as u64),
                    gzip_sha256: gzip_sha256.clone(),
                    gzip_size: doc.xml.gzip.bytes.len() as u64,
                    signature: Blob::at("doc", &doc.sig.sha256, doc.sig.bytes.len() as u64),
                    deltas: self.index_of.get(&r).cloned(),
                });
            }
            if lists.is_empty() {
                continue;
            }
            let h = Head {
                session: self.session.clone(),
                publication: set.index.seq,
                release: release.id.clone(),
                issued: head::utc(now),
                expires: head::utc(expires),
                lists,
                keys: self
                    .key_links
                    .iter()
                    .map(|(sha, b)| Blob::at("keys", sha, b.bytes.len() as u64))
                    .collect(),
            };
            let bytes = h.render();
            // What a consumer will check, checked first: the XSD, the size, the signature.
            Head::parse(&bytes).map_err(|e| format!("release {}: {e}", release.id))?;
            let sig = key
                .sign_detached(&bytes, head::FILE)
                .map_err(|e| format!("release {}: signing the head: {e}", release.id))?;
            key.check_detached(&bytes, &sig, head::FILE)
                .map_err(|e| format!("release {}: the head's own signature: {e}", release.id))?;
            let signed = Signed {
                head: Body::new(bytes).map_err(|e| e.to_string())?,
                sig: Body::new(sig).map_err(|e| e.to_string())?,
                issued: now,
                expires,
                last_modified: http_date_header(now)
                    .ok_or_else(|| "the head's time is not an HTTP date".to_string())?,
            };
            heads.insert(release.id.clone(), Arc::new(signed));
        }
        self.heads.store(Arc::new(heads));
        Ok(())
    }
}

fn http_date_header(t: time::OffsetDateTime) -> Option<HeaderValue> {
    HeaderValue::from_str(&super::set::http_date(t).ok()?).ok()
}

/// A file a head names, by its directory and SHA-256: its body, content type and
/// `Last-Modified` (as an edge's file carries it in its mtime).
fn content(set: &PublishedSet, dir: &str, sha: &str) -> Option<(Body, &'static str, HeaderValue)> {
    let d = &set.distribution;
    let blob_time = || d.made.get(sha).map(|(_, h)| h.clone());
    match dir {
        "delta" => Some((
            d.deltas.get(sha)?.clone(),
            "application/octet-stream",
            blob_time()?,
        )),
        "deltas" => Some((
            d.indexes.get(sha)?.clone(),
            "text/plain; charset=utf-8",
            blob_time()?,
        )),
        "keys" => Some((
            d.key_links.iter().find(|(s, _)| s == sha)?.1.clone(),
            "application/xml",
            blob_time()?,
        )),
        "doc" => set.docs.values().find_map(|doc| {
            let body = if doc.xml.sha256 == sha {
                &doc.xml
            } else if doc.sig.sha256 == sha {
                &doc.sig
            } else {
                return None;
            };
            Some((body.clone(), "application/xml", doc.last_modified.clone()))
        }),
        _ => None,
    }
}

/// The answer to a path under `/stelselnode/`.
pub fn respond(set: &PublishedSet, method: &Method, rest: &str, ask: Ask) -> Resp {
    let immutable = |b: &Body, ct: &'static str, lm: HeaderValue| {
        let (bytes, etag) = match ask.gzip {
            true => (&b.gzip.bytes, &b.gzip.etag),
            false => (&b.bytes, &b.etag),
        };
        let mut r = xml_response(method, bytes.clone(), matches_etag(ask.if_none_match, etag));
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        h.insert(header::ETAG, etag.clone());
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(head::IMMUTABLE),
        );
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        h.insert(header::LAST_MODIFIED, lm);
        if ask.gzip {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        if r.status() == StatusCode::NOT_MODIFIED {
            r.headers_mut().remove(header::CONTENT_TYPE);
        }
        r
    };
    if let Some((dir, sha)) = rest.split_once('/') {
        let known = sha.len() == 64 && sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if ask.query.is_some_and(|q| !q.is_empty()) {
            return text(
                StatusCode::BAD_REQUEST,
                "content-addressed files take no query",
            );
        }
        return match known.then(|| content(set, dir, sha)).flatten() {
            Some((b, ct, lm)) => immutable(&b, ct, lm),
            None => text(
                StatusCode::NOT_FOUND,
                "no such file here; fetch the head again (a newer publication replaced it)",
            ),
        };
    }
    let want_sig = match rest {
        "head.xml" => false,
        "head.xml.sig" => true,
        _ => {
            return text(
                StatusCode::NOT_FOUND,
                "not found; under /stelselnode/ this Stelselnode serves head.xml and head.xml.sig (?release= or ?api=) and the files a head names",
            )
        }
    };
    let q = match super::respond::parse_query(ask.query) {
        Ok(q) if q.volgnummer.is_none() => q,
        Ok(_) => {
            return text(
                StatusCode::BAD_REQUEST,
                "a head has no volgnummer; ask for ?release= or ?api=",
            )
        }
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let release = match set
        .index
        .catalogue
        .select(q.release.as_deref(), q.api.as_deref())
    {
        Ok(r) => r,
        Err(SelectError::BadRequest(m)) => return text(StatusCode::BAD_REQUEST, m),
        Err(SelectError::NotFound(m)) => return text(StatusCode::NOT_FOUND, m),
        Err(SelectError::Gone(m)) => return text(StatusCode::GONE, m),
    };
    let heads = set.distribution.heads.load();
    let Some(signed) = heads
        .get(&release.id)
        .filter(|_| release.status != Status::Ingetrokken)
    else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no signed head for release {} yet", release.id),
        );
    };
    let body = if want_sig { &signed.sig } else { &signed.head };
    let (bytes, etag) = match ask.gzip {
        true => (&body.gzip.bytes, &body.gzip.etag),
        false => (&body.bytes, &body.etag),
    };
    let mut r = xml_response(method, bytes.clone(), matches_etag(ask.if_none_match, etag));
    let h = r.headers_mut();
    h.insert(header::ETAG, etag.clone());
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(head::CACHE_CONTROL),
    );
    h.insert(header::LAST_MODIFIED, signed.last_modified.clone());
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Ok(v) = HeaderValue::from_str(&release.id) {
        h.insert(super::respond::MEDMIJ_RELEASE, v);
    }
    if ask.gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r
}
