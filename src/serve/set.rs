//! The published set: every document the server answers with, with its validators, built
//! once per publication and swapped in whole.

use crate::registry::catalogue::{Release, Rendition, Status};
use crate::registry::publication::{document_key, PublishedIndex};
use crate::registry::store::{Store, StoreError};
use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::HeaderValue;
use std::collections::HashMap;
use std::sync::Arc;

/// One servable body with its validators, and its gzip variant made once, here (at
/// publication), never per request.
#[derive(Clone)]
pub struct Body {
    pub bytes: Bytes,
    pub etag: HeaderValue,
    pub gzip: Variant,
    /// SHA-256 (hex) of `bytes`.
    pub sha256: String,
}

/// A precompressed variant: its own bytes and its own strong ETag.
#[derive(Clone)]
pub struct Variant {
    pub bytes: Bytes,
    pub etag: HeaderValue,
}

impl Body {
    /// A small body (a detached signature, a test document): hashed and compressed here.
    pub fn new(bytes: Vec<u8>) -> Result<Body, StoreError> {
        let hash = crate::digest::sha256_hex(&bytes);
        let gz = crate::registry::documents::gzip(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("gzip: {e}")))?;
        Body::from_parts(Bytes::from(bytes), Bytes::from(gz), &hash)
    }

    /// A body and its gzip variant as they are (mapped from their files).
    pub fn from_parts(bytes: Bytes, gzip: Bytes, hash: &str) -> Result<Body, StoreError> {
        if hash.len() < 32 {
            return Err(StoreError::Corrupt(format!("'{hash}' is not a SHA-256")));
        }
        Ok(Body {
            gzip: Variant {
                bytes: gzip,
                etag: header(&format!("\"{}-gzip\"", &hash[..32]))?,
            },
            bytes,
            etag: header(&format!("\"{}\"", &hash[..32]))?,
            sha256: hash.to_string(),
        })
    }
}

fn header(v: &str) -> Result<HeaderValue, StoreError> {
    HeaderValue::from_str(v)
        .map_err(|_| StoreError::Corrupt(format!("'{v}' is not a valid header value")))
}

pub struct Document {
    pub xml: Body,
    pub sig: Body,
    pub last_modified: HeaderValue,
}

/// Everything the server answers with, built once per publication.
pub struct PublishedSet {
    pub index: PublishedIndex,
    /// The headers that depend only on the release, by release id: made here once, not
    /// per request (parsing and formatting the deprecation and sunset dates was a tenth of
    /// the server's CPU for a 304 of a deprecated release).
    pub release_headers: HashMap<String, ReleaseHeaders>,
    pub docs: HashMap<Rendition, Document>,
    pub certificate: Bytes,
    /// SHA-256 of every document ever published, by storage key (from the publication
    /// log): a historic request is answered (404, 304, ETag) without reading or hashing it.
    pub history: HashMap<String, String>,
    /// Signed heads, deltas and delta indexes (`serve::distribution`); empty until
    /// attached.
    pub distribution: super::distribution::Distribution,
}

pub type Shared = Arc<ArcSwapOption<PublishedSet>>;

/// `medmij-release`, and for a deprecated release `deprecation` and `sunset`.
#[derive(Clone, Debug, Default)]
pub struct ReleaseHeaders {
    pub release: Option<HeaderValue>,
    pub deprecation: Option<HeaderValue>,
    pub sunset: Option<HeaderValue>,
}

impl ReleaseHeaders {
    pub fn of(release: &Release) -> ReleaseHeaders {
        let deprecated = release.status == Status::Verouderd;
        let when = |d: &Option<String>, f: fn(&str) -> Option<HeaderValue>| match deprecated {
            true => d.as_deref().and_then(f),
            false => None,
        };
        ReleaseHeaders {
            release: HeaderValue::from_str(&release.id).ok(),
            deprecation: when(&release.deprecated_since, deprecation_header),
            sunset: when(&release.sunset, date_header),
        }
    }
}

/// A catalogue date (`YYYY-MM-DD`) as an HTTP date, for `Sunset`.
fn date_header(d: &str) -> Option<HeaderValue> {
    let date = crate::registry::catalogue::parse_date("date", d).ok()?;
    HeaderValue::from_str(&http_date(date.midnight().assume_utc()).ok()?).ok()
}

/// A catalogue date for `Deprecation`: RFC 9745's structured-field Date, "@" followed by
/// Unix seconds.
fn deprecation_header(d: &str) -> Option<HeaderValue> {
    let date = crate::registry::catalogue::parse_date("date", d).ok()?;
    HeaderValue::from_str(&format!(
        "@{}",
        date.midnight().assume_utc().unix_timestamp()
    ))
    .ok()
}

/// An HTTP date (RFC 9110 IMF-fixdate).
pub fn http_date(t: time::OffsetDateTime) -> Result<String, time::error::Format> {
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.to_offset(time::UtcOffset::UTC).format(&f)
}

/// `Last-Modified` of a list: its Tijdstempel.
fn last_modified(index: &PublishedIndex, r: &Rendition) -> Result<HeaderValue, StoreError> {
    let lv = index
        .lists
        .get(&r.list)
        .ok_or_else(|| StoreError::Corrupt(format!("published index has no {}", r.list)))?;
    let t = time::OffsetDateTime::parse(
        &lv.tijdstempel,
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|e| StoreError::Corrupt(format!("Tijdstempel '{}': {e}", lv.tijdstempel)))?;
    header(&http_date(t).map_err(|e| StoreError::Corrupt(e.to_string()))?)
}

impl PublishedSet {
    /// Attach the deltas and indexes of this set from `store`. Lists are served whatever
    /// happens here: a failure is logged and leaves the set without deltas.
    pub fn attach_distribution(&mut self, store: &Store) {
        match super::distribution::Distribution::load(store, self) {
            Ok(d) => self.distribution = d,
            Err(e) => tracing::error!("deltas and heads not available for this set: {e}"),
        }
    }

    /// Sign this set's heads, valid from `now`; a failure is logged and keeps the heads
    /// served before (which expire).
    pub fn sign_heads(
        &self,
        key: &crate::sign::Signers,
        now: time::OffsetDateTime,
        lifetime: std::time::Duration,
    ) {
        if let Err(e) = self.distribution.sign(self, key, now, lifetime) {
            tracing::error!("heads not signed: {e}");
        }
    }

    /// Build the set from the documents of `index`, each given by `body(key)`.
    pub fn build(
        index: PublishedIndex,
        certificate: String,
        history: HashMap<String, String>,
        mut body: impl FnMut(&str) -> Result<Body, StoreError>,
    ) -> Result<PublishedSet, StoreError> {
        let mut docs = HashMap::new();
        for pr in &index.renditions {
            let key = document_key(&pr.rendition, pr.volgnummer);
            docs.insert(
                pr.rendition.clone(),
                Document {
                    xml: body(&key)?,
                    sig: body(&format!("{key}.sig"))?,
                    last_modified: last_modified(&index, &pr.rendition)?,
                },
            );
        }
        let release_headers = index
            .catalogue
            .releases
            .iter()
            .map(|r| (r.id.clone(), ReleaseHeaders::of(r)))
            .collect();
        Ok(PublishedSet {
            release_headers,
            index,
            docs,
            certificate: Bytes::from(certificate),
            history,
            distribution: Default::default(),
        })
    }

    /// Load the published set from the store; `None` before the first publication.
    pub fn load(store: &Store, certificate: String) -> Result<Option<PublishedSet>, StoreError> {
        let Some(index) = store.published()? else {
            return Ok(None);
        };
        let mut history = HashMap::new();
        for (entry, _) in store.log()? {
            for d in entry.documents {
                history.insert(document_key(&d.rendition, d.volgnummer), d.sha256);
            }
        }
        // Documents are mapped from their files with their stored gzip variants: nothing is
        // read, hashed or compressed at start-up. Only the small detached signatures, kept
        // in redb, are read (and compressed).
        let mut made = HashMap::new();
        for pr in &index.renditions {
            let key = document_key(&pr.rendition, pr.volgnummer);
            let m = store.mapped(&key)?.ok_or_else(|| {
                StoreError::Corrupt(format!("published document {key} has no file"))
            })?;
            made.insert(
                key.clone(),
                Body::from_parts(m.identity, m.gzip, &pr.sha256)?,
            );
            let sig = format!("{key}.sig");
            let bytes = store.document(&sig)?.ok_or_else(|| {
                StoreError::Corrupt(format!("published document {sig} is missing"))
            })?;
            made.insert(sig, Body::new(bytes)?);
        }
        let mut set = PublishedSet::build(index, certificate, history, |key| {
            made.remove(key)
                .ok_or_else(|| StoreError::Corrupt(format!("published document {key} is missing")))
        })?;
        set.attach_distribution(store);
        Ok(Some(set))
    }
}
