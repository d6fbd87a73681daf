//! The published set: every document the server answers with, with its validators, built
//! once per publication and swapped in whole.

use crate::registry::catalogue::Rendition;
use crate::registry::store::{document_key, PublishedIndex, Store, StoreError};
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
}

/// A precompressed variant: its own bytes and its own strong ETag.
#[derive(Clone)]
pub struct Variant {
    pub bytes: Bytes,
    pub etag: HeaderValue,
}

impl Body {
    pub fn new(bytes: Vec<u8>) -> Result<Body, StoreError> {
        let hash = crate::registry::store::sha256_hex(&bytes);
        Body::with_hash(bytes, &hash)
    }

    /// A body whose SHA-256 (hex) is known already: the one its publication logged.
    pub fn with_hash(bytes: Vec<u8>, hash: &str) -> Result<Body, StoreError> {
        if hash.len() < 32 {
            return Err(StoreError::Corrupt(format!("'{hash}' is not a SHA-256")));
        }
        let gz = gzip(&bytes)?;
        Ok(Body {
            gzip: Variant {
                bytes: Bytes::from(gz),
                etag: header(&format!("\"{}-gzip\"", &hash[..32]))?,
            },
            bytes: Bytes::from(bytes),
            etag: header(&format!("\"{}\"", &hash[..32]))?,
        })
    }
}

/// gzip at the default level: most of the size gain at a fraction of level 9's time.
pub fn gzip(bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 8),
        flate2::Compression::default(),
    );
    e.write_all(bytes)
        .and_then(|_| e.finish())
        .map_err(|e| StoreError::Corrupt(format!("gzip: {e}")))
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
    pub docs: HashMap<Rendition, Document>,
    pub certificate: Bytes,
    /// SHA-256 of every document ever published, by storage key (from the publication
    /// log): a historic request is answered (404, 304, ETag) without reading or hashing it.
    pub history: HashMap<String, String>,
}

pub type Shared = Arc<ArcSwapOption<PublishedSet>>;

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
        Ok(PublishedSet {
            index,
            docs,
            certificate: Bytes::from(certificate),
            history,
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
        let mut documents = Vec::new();
        for pr in &index.renditions {
            let key = document_key(&pr.rendition, pr.volgnummer);
            for k in [format!("{key}.sig"), key] {
                let bytes = store.document(&k)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("published document {k} is missing"))
                })?;
                documents.push((k, bytes));
            }
        }
        // Gzip on every core; document hashes come from the log, not hashed again.
        let mut made = bodies(documents, &history)?;
        let set = PublishedSet::build(index, certificate, history, |key| {
            made.remove(key)
                .ok_or_else(|| StoreError::Corrupt(format!("published document {key} is missing")))
        })?;
        Ok(Some(set))
    }
}

/// Bodies (hash, gzip variant) of documents, made in parallel: the largest first, one
/// queue shared by a thread per core.
pub fn bodies(
    documents: Vec<(String, Vec<u8>)>,
    hashes: &HashMap<String, String>,
) -> Result<HashMap<String, Body>, StoreError> {
    let mut docs = documents;
    docs.sort_by_key(|(_, b)| std::cmp::Reverse(b.len()));
    let queue = std::sync::Mutex::new(docs.into_iter());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let results: Vec<Result<Vec<(String, Body)>, StoreError>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..cores)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                        let Some((key, bytes)) = next else { break };
                        let body = match hashes.get(&key) {
                            Some(h) => Body::with_hash(bytes, h)?,
                            None => Body::new(bytes)?,
                        };
                        done.push((key, body));
                    }
                    Ok(done)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| {
                    Err(StoreError::Corrupt("a compression thread failed".into()))
                })
            })
            .collect()
    });
    let mut out = HashMap::new();
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}
