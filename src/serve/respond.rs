//! What the server answers to one request: a pure function of the published set and the
//! request line, unit-tested in-process. Only historic documents need the store; for those
//! the answer says which document to read.

use super::payload::Payload;
use super::set::{PublishedSet, ReleaseHeaders};
use crate::registry::catalogue::{Release, SelectError};
use crate::registry::model::ListKind;
use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Method, Response, StatusCode};

pub type Resp = Response<Payload>;

pub fn text(status: StatusCode, msg: impl Into<String>) -> Resp {
    let mut body = msg.into();
    body.push('\n');
    let mut r = Response::new(Payload::bytes(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Query parameters we act on; each may appear once.
#[derive(Default, Debug, PartialEq)]
pub(super) struct Query {
    pub(super) release: Option<String>,
    pub(super) api: Option<String>,
    pub(super) volgnummer: Option<String>,
}

/// The one query grammar `serve` and the static edges share (README, "Query grammar"):
///
/// ```text
/// query     = "" | selector | selector "&volgnummer=" N | "volgnummer=" N
/// selector  = "release=" MAJOR "." MINOR "." PATCH | "api=" MAJOR
/// ```
///
/// written exactly so: these lowercase names, no percent-encoding, no empty or repeated
/// parameters, `release` and `api` not together, numbers without leading zeros. Anything
/// else is 400 from both, with the canonical form in the message: one document, one URL,
/// so caches and edges cannot disagree about what a spelling means.
pub const CANONICAL: &str = "the query is ?release=MAJOR.MINOR.PATCH or ?api=MAJOR, optionally followed by &volgnummer=N (or ?volgnummer=N alone), written exactly so: lowercase names, no percent-encoding, no empty or repeated parameters, numbers without leading zeros";

/// At most this many digits in a Volgnummer asked for (below 2^64).
pub const VOLGNUMMER_DIGITS: usize = 19;

pub(super) fn parse_query(q: Option<&str>) -> Result<Query, String> {
    let mut out = Query::default();
    let q = q.unwrap_or("");
    if q.is_empty() {
        return Ok(out);
    }
    let shown = || crate::clip::clip(q);
    if q.contains('%') {
        return Err(format!(
            "query '{}': percent-encoding is not accepted; {CANONICAL}",
            shown()
        ));
    }
    let pairs: Vec<&str> = q.split('&').collect();
    if pairs.iter().any(|p| p.is_empty()) {
        return Err(format!(
            "query '{}' has an empty parameter (a leading, trailing or doubled '&'); {CANONICAL}",
            shown()
        ));
    }
    let mut keys = Vec::with_capacity(pairs.len());
    for pair in &pairs {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match k {
            "release" => &mut out.release,
            "api" => &mut out.api,
            "volgnummer" => &mut out.volgnummer,
            _ => {
                return Err(format!(
                    "unknown query parameter '{}'; this Stelselnode knows release, api and volgnummer (names are lowercase); {CANONICAL}",
                    crate::clip::clip(k)
                ))
            }
        };
        if slot.is_some() {
            return Err(format!(
                "parameter '{k}' is given more than once; {CANONICAL}"
            ));
        }
        let well_formed = match k {
            "release" => crate::registry::rules::release_id(v).is_ok(),
            "api" => canonical_number(v, 4),
            _ => canonical_number(v, VOLGNUMMER_DIGITS),
        };
        if !well_formed {
            return Err(format!(
                "parameter '{k}' has an invalid value '{}' (release=MAJOR.MINOR.PATCH such as 1.1.2, api=MAJOR such as 2, volgnummer=N, each number from 1 and without leading zeros); {CANONICAL}",
                crate::clip::clip(v)
            ));
        }
        *slot = Some(v.to_string());
        keys.push(k);
    }
    match keys.as_slice() {
        ["release" | "api"] | ["volgnummer"] | ["release" | "api", "volgnummer"] => Ok(out),
        ["release", "api"] | ["api", "release"] => Err(format!(
            "release and api are given together; give one of them; {CANONICAL}"
        )),
        _ => Err(format!(
            "query '{}': volgnummer comes last, after one release or api; {CANONICAL}",
            shown()
        )),
    }
}

/// Digits, at least 1, without a leading zero, at most `max` of them.
fn canonical_number(v: &str, max: usize) -> bool {
    !v.is_empty() && v.len() <= max && v.bytes().all(|b| b.is_ascii_digit()) && !v.starts_with('0')
}

pub fn list_for_path(path: &str) -> Option<(ListKind, bool)> {
    let name = path.strip_prefix('/')?;
    if let Some(doc) = name.strip_suffix(".sig") {
        return ListKind::from_file_name(doc).map(|l| (l, true));
    }
    ListKind::from_file_name(name).map(|l| (l, false))
}

/// The Volgnummer of the list document an answer carries (a response extension): the
/// access log and `status --clients` record it from the set that answered, without
/// parsing the request again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServedVolgnummer(pub u64);

/// What a request needs: an answer now, or a historic document from the store.
pub enum Answer {
    Ready(Resp),
    /// A historic document: the caller reads `key` from the store (on a blocking thread)
    /// and answers with [`historic`].
    Historic {
        key: String,
        ask: HistoricAsk,
    },
}

/// What a historic answer needs besides the document's bytes.
pub struct HistoricAsk {
    pub etag: HeaderValue,
    pub head: bool,
    pub release: String,
    pub what: String,
    /// Answer with the stored gzip file as it is (the client accepts gzip); else a list's
    /// gzip file is inflated as it is sent.
    pub gzip: bool,
    pub volgnummer: u64,
}

/// The release headers' names, made once: a name given as `&str` is parsed (and a custom
/// one copied) on every insert.
pub const MEDMIJ_RELEASE: HeaderName = HeaderName::from_static("medmij-release");
const DEPRECATION: HeaderName = HeaderName::from_static("deprecation");
const SUNSET: HeaderName = HeaderName::from_static("sunset");

fn base_headers(r: &mut Resp, etag: &HeaderValue, set: &PublishedSet, release: &Release) {
    // Made with the set from the same catalogue the release came from; cloning a
    // HeaderValue shares its bytes.
    let rh = set
        .release_headers
        .get(&release.id)
        .cloned()
        .unwrap_or_else(|| ReleaseHeaders::of(release));
    let h = r.headers_mut();
    h.insert(header::ETAG, etag.clone());
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    for (name, v) in [
        (MEDMIJ_RELEASE, rh.release),
        (DEPRECATION, rh.deprecation),
        (SUNSET, rh.sunset),
    ] {
        if let Some(v) = v {
            h.insert(name, v);
        }
    }
}

pub(super) fn xml_response(method: &Method, bytes: Bytes, not_modified: bool) -> Resp {
    // Room for every header a list answer gets, so inserting them does not regrow the map.
    let sized = |body| {
        let mut r = Response::new(Payload::bytes(body));
        *r.headers_mut() = http::HeaderMap::with_capacity(16);
        r
    };
    if not_modified {
        let mut r = sized(Bytes::new());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        return r;
    }
    let len = bytes.len();
    let mut r = sized(if method == Method::HEAD {
        Bytes::new()
    } else {
        bytes
    });
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    if method == Method::HEAD {
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    r
}

pub(super) fn matches_etag(if_none_match: Option<&[u8]>, etag: &HeaderValue) -> bool {
    if_none_match.is_some_and(|inm| {
        // If-None-Match uses weak comparison (RFC 9110 §13.1.2).
        let etag = etag.as_bytes();
        let etag = etag.strip_prefix(b"W/").unwrap_or(etag);
        inm == b"*"
            || inm.split(|&b| b == b',').any(|t| {
                let t = t.trim_ascii();
                t.strip_prefix(b"W/").unwrap_or(t) == etag
            })
    })
}

/// The parts of a request the answer depends on.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ask<'a> {
    pub query: Option<&'a str>,
    pub if_none_match: Option<&'a [u8]>,
    /// `Accept-Encoding` allows gzip.
    pub gzip: bool,
}

/// Whether an `Accept-Encoding` value allows gzip (`gzip` or `*` with a q above 0).
pub fn accepts_gzip(accept_encoding: Option<&[u8]>) -> bool {
    let Some(v) = accept_encoding.and_then(|v| std::str::from_utf8(v).ok()) else {
        return false;
    };
    let mut star = false;
    for item in v.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .filter_map(|q| q.trim().parse::<f32>().ok())
            .next()
            .unwrap_or(1.0);
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            return q > 0.0;
        }
        if coding == "*" {
            star = q > 0.0;
        }
    }
    star
}

pub fn respond(set: Option<&PublishedSet>, method: &Method, path: &str, ask: Ask) -> Answer {
    let Ask {
        query,
        if_none_match,
        gzip,
    } = ask;
    if method != Method::GET && method != Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are allowed",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Answer::Ready(r);
    }
    if path == "/health" {
        return Answer::Ready(health(set, None));
    }
    let Some(set) = set else {
        return Answer::Ready(text(
            StatusCode::SERVICE_UNAVAILABLE,
            "nothing has been published yet",
        ));
    };
    if path == "/signing-certificate.pem" {
        let mut r = Response::new(Payload::bytes(set.certificate.clone()));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-pem-file"),
        );
        return Answer::Ready(r);
    }
    if let Some(rest) = path.strip_prefix(crate::distribute::head::PREFIX) {
        return Answer::Ready(super::distribution::respond(set, method, rest, ask));
    }
    let Some((list, want_sig)) = list_for_path(path) else {
        return Answer::Ready(text(
            StatusCode::NOT_FOUND,
            "not found; this Stelselnode serves /MedMij_Zorgaanbiederslijst.xml, /MedMij_OAuthclientlist.xml, /MedMij_Whitelist.xml, /MedMij_Gegevensdienstnamenlijst.xml (each also with .sig), /signing-certificate.pem and /health",
        ));
    };
    let q = match parse_query(query) {
        Ok(q) => q,
        Err(e) => return Answer::Ready(text(StatusCode::BAD_REQUEST, e)),
    };
    let catalogue = &set.index.catalogue;
    let release = match catalogue.select(q.release.as_deref(), q.api.as_deref()) {
        Ok(r) => r,
        Err(SelectError::BadRequest(m)) => return Answer::Ready(text(StatusCode::BAD_REQUEST, m)),
        Err(SelectError::NotFound(m)) => return Answer::Ready(text(StatusCode::NOT_FOUND, m)),
        Err(SelectError::Gone(m)) => return Answer::Ready(text(StatusCode::GONE, m)),
    };
    let rendition = release.rendition(list);
    let Some(doc) = set.docs.get(&rendition) else {
        return Answer::Ready(text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("release {} has not been published yet", release.id),
        ));
    };
    if let Some(v) = &q.volgnummer {
        let Ok(n) = v.parse::<u64>() else {
            return Answer::Ready(text(
                StatusCode::BAD_REQUEST,
                format!("volgnummer '{v}' is not a positive number"),
            ));
        };
        let current = set.index.lists.get(&list).map(|l| l.volgnummer);
        if current != Some(n) {
            let key = crate::registry::publication::document_key(&rendition, n);
            let what = format!("{list} Volgnummer {n} for release {}", release.id);
            let Some(sha) = set.history.get(&key) else {
                return Answer::Ready(never_published(&what));
            };
            // History is immutable, so the logged hash is a strong validator for the
            // document, and (suffixed) for its signature.
            let tag = &sha[..sha.len().min(32)];
            // A historic list is sent as its stored gzip file to clients that accept gzip:
            // nothing is decompressed or hashed per request. Signatures are kept plain.
            let gz = gzip && !want_sig;
            // Without gzip, a historic list is inflated from its stored gzip file as it is
            // sent: a weak validator and no length up front, as an edge's nginx (gunzip)
            // answers the same request.
            let etag = if want_sig {
                format!("\"{tag}-sig\"")
            } else if gz {
                format!("\"{tag}-gzip\"")
            } else {
                format!("W/\"{tag}\"")
            };
            let etag = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""));
            if matches_etag(if_none_match, &etag) {
                let mut r = xml_response(method, Bytes::new(), true);
                base_headers(&mut r, &etag, set, release);
                historic_headers(&mut r, gz);
                r.extensions_mut().insert(ServedVolgnummer(n));
                return Answer::Ready(r);
            }
            return Answer::Historic {
                key: if want_sig { format!("{key}.sig") } else { key },
                ask: HistoricAsk {
                    etag,
                    head: method == Method::HEAD,
                    release: release.id.clone(),
                    what,
                    gzip: gz,
                    volgnummer: n,
                },
            };
        }
    }
    let body = if want_sig { &doc.sig } else { &doc.xml };
    let (bytes, etag) = if gzip {
        (&body.gzip.bytes, &body.gzip.etag)
    } else {
        (&body.bytes, &body.etag)
    };
    let mut r = xml_response(method, bytes.clone(), matches_etag(if_none_match, etag));
    base_headers(&mut r, etag, set, release);
    if let Some(v) = set.index.lists.get(&list) {
        r.extensions_mut().insert(ServedVolgnummer(v.volgnummer));
    }
    let h = r.headers_mut();
    // Caches keep one variant per encoding.
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(header::LAST_MODIFIED, doc.last_modified.clone());
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    Answer::Ready(r)
}

pub(super) const IMMUTABLE: &str = "public, max-age=31536000, immutable";

fn never_published(what: &str) -> Resp {
    text(
        StatusCode::NOT_FOUND,
        format!("{what} was never published; `history list` on the Stelselnode shows what was"),
    )
}

/// Serve a historic document: immutable, so cacheable for long. Its ETag comes from the
/// publication log; the bytes are not hashed again, except a document kept only gzipped
/// and asked for without gzip, which is inflated as it is sent and checked against its
/// name before its last piece (see [`Payload::inflate`]).
pub fn historic(
    set: &PublishedSet,
    body: Option<crate::registry::documents::HistoricBody>,
    h: HistoricAsk,
) -> Resp {
    use crate::registry::documents::HistoricBody;
    let HistoricAsk {
        etag,
        head,
        release,
        what,
        gzip,
        volgnummer,
    } = h;
    let method = if head { Method::HEAD } else { Method::GET };
    let mut r = match body {
        None => return never_published(&what),
        Some(HistoricBody::Gzip { file, sha256 }) if !gzip => {
            match Payload::inflate(file, &sha256) {
                // Sent chunked: see the weak ETag in `respond`.
                // A HEAD is told the document's length (hyper would announce 0).
                Ok((payload, len)) => {
                    let mut r = xml_response(&method, Bytes::new(), false);
                    if head {
                        r.headers_mut()
                            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
                    } else {
                        *r.body_mut() = payload;
                    }
                    r
                }
                Err(e) => {
                    tracing::error!("{what}: history file {sha256}.xml.gz: {e}");
                    return text(StatusCode::INTERNAL_SERVER_ERROR, "history is unavailable");
                }
            }
        }
        Some(HistoricBody::Gzip { file, .. }) => xml_response(&method, file, false),
        Some(HistoricBody::Plain(bytes)) => xml_response(&method, bytes, false),
    };
    if let Some(rel) = set.index.catalogue.get(&release) {
        base_headers(&mut r, &etag, set, rel);
    }
    historic_headers(&mut r, gzip);
    r.extensions_mut().insert(ServedVolgnummer(volgnummer));
    r
}

fn historic_headers(r: &mut Resp, gzip: bool) {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
}

/// `/health`: 503 until something is published. A registry that cannot be written (a full
/// disk) is reported as "degraded" with the error, still 200: the published set is served
/// as before, and the store re-opens itself once the cause is gone.
pub fn health(set: Option<&PublishedSet>, store_fault: Option<&str>) -> Resp {
    let (status, mut body) = match set {
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "unpublished"}),
        ),
        Some(s) => (
            StatusCode::OK,
            serde_json::json!({
                "status": if store_fault.is_some() { "degraded" } else { "ok" },
                "publication": s.index.seq,
                "lists": s.index.lists.iter().map(|(l, v)| (l.key().to_string(), serde_json::json!({"volgnummer": v.volgnummer, "tijdstempel": v.tijdstempel}))).collect::<serde_json::Map<_, _>>(),
                "default_release": s.index.catalogue.default,
            }),
        ),
    };
    if let Some(f) = store_fault {
        body["store_error"] = serde_json::Value::String(f.to_string());
    }
    let mut r = Response::new(Payload::bytes(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::catalogue::{Catalogue, DEFAULT_CATALOGUE};
    use crate::registry::publication::{
        document_key, ListVersion, PublishedIndex, PublishedRendition,
    };
    use crate::serve::set::Body;
    use std::collections::{BTreeMap, HashMap};

    /// A published set of the shipped catalogue whose documents are their own names.
    fn set() -> PublishedSet {
        let catalogue = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        let lists: BTreeMap<ListKind, ListVersion> = ListKind::ALL
            .into_iter()
            .map(|l| {
                let v = ListVersion {
                    volgnummer: 3,
                    tijdstempel: "2026-01-01T00:00:00Z".into(),
                    content_sha256: String::new(),
                };
                (l, v)
            })
            .collect();
        let renditions = catalogue
            .renditions()
            .into_iter()
            .map(|r| PublishedRendition {
                rendition: r,
                volgnummer: 3,
                sha256: String::new(),
            })
            .collect();
        let index = PublishedIndex {
            seq: 7,
            lists,
            catalogue,
            renditions,
            floors: BTreeMap::new(),
        };
        let whitelist_2 = index
            .catalogue
            .get("1.1.2")
            .unwrap()
            .rendition(ListKind::Whitelist);
        let history = HashMap::from([(document_key(&whitelist_2, 2), "ab".repeat(32))]);
        PublishedSet::build(index, "CERT".into(), history, |key| {
            Body::new(key.as_bytes().to_vec())
        })
        .unwrap()
    }

    fn get(set: &PublishedSet, path: &str, query: Option<&str>, inm: Option<&str>) -> Resp {
        let ask = Ask {
            query,
            if_none_match: inm.map(str::as_bytes),
            gzip: false,
        };
        match respond(Some(set), &Method::GET, path, ask) {
            Answer::Ready(r) => r,
            Answer::Historic { key, .. } => panic!("historic {key}"),
        }
    }

    fn raw(r: Resp) -> Vec<u8> {
        use http_body_util::BodyExt;
        let b = futures_body(r.into_body().collect());
        b.expect("a body at hand").to_bytes().to_vec()
    }

    fn body(r: Resp) -> String {
        String::from_utf8(raw(r)).unwrap()
    }

    /// A collected body without a runtime: a `Payload` is never pending.
    fn futures_body<F: std::future::Future>(f: F) -> F::Output {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("body not ready"),
        }
    }

    #[test]
    fn releases_select_documents_with_their_headers() {
        let s = set();
        let r = get(&s, "/MedMij_Zorgaanbiederslijst.xml", Some("api=2"), None);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "application/xml");
        assert_eq!(r.headers()["medmij-release"], "2.0.0");
        assert!(r.headers().get("deprecation").is_none());
        assert_eq!(body(r), "zorgaanbiederslijst/release3#3");
        // No parameter: the default release, verouderd, with Deprecation and Sunset.
        let r = get(&s, "/MedMij_Zorgaanbiederslijst.xml", None, None);
        assert_eq!(r.headers()["medmij-release"], "1.1.1");
        assert!(r.headers().get("deprecation").is_some() && r.headers().get("sunset").is_some());
        assert_eq!(body(r), "zorgaanbiederslijst/release2@1.1.0#3");
        let sig = get(&s, "/MedMij_Whitelist.xml.sig", Some("release=1.1.2"), None);
        assert_eq!(body(sig), "whitelist/release2#3.sig");
        // 304 on the strong ETag, also given weak or in a list.
        let etag = get(&s, "/MedMij_Whitelist.xml", None, None).headers()["etag"]
            .to_str()
            .unwrap()
            .to_string();
        for inm in [etag.clone(), format!("W/{etag}"), format!("\"x\", {etag}")] {
            let r = get(&s, "/MedMij_Whitelist.xml", None, Some(&inm));
            assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{inm}");
        }
    }

    #[test]
    fn gzip_is_a_variant_with_its_own_etag() {
        let s = set();
        let ask = |inm: Option<&'static str>| Ask {
            query: None,
            if_none_match: inm.map(str::as_bytes),
            gzip: true,
        };
        let Answer::Ready(gz) = respond(Some(&s), &Method::GET, "/MedMij_Whitelist.xml", ask(None))
        else {
            panic!()
        };
        assert_eq!(gz.headers()["content-encoding"], "gzip");
        assert_eq!(gz.headers()["vary"], "Accept-Encoding");
        let etag = gz.headers()["etag"].to_str().unwrap().to_string();
        assert!(etag.ends_with("-gzip\""), "{etag}");
        let plain = get(&s, "/MedMij_Whitelist.xml", None, None);
        assert_ne!(plain.headers()["etag"], etag.as_str());
        assert_eq!(plain.headers()["vary"], "Accept-Encoding");
        assert!(plain.headers().get("content-encoding").is_none());
        let gz = raw(gz);
        let mut d = flate2::read::GzDecoder::new(&gz[..]);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut d, &mut text).unwrap();
        assert_eq!(text, body(plain));
        // 304 per encoding.
        let etag: &'static str = Box::leak(etag.into_boxed_str());
        let Answer::Ready(r) = respond(
            Some(&s),
            &Method::GET,
            "/MedMij_Whitelist.xml",
            ask(Some(etag)),
        ) else {
            panic!()
        };
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(
            get(&s, "/MedMij_Whitelist.xml", None, Some(etag)).status(),
            StatusCode::OK
        );
        for (v, yes) in [
            ("gzip", true),
            ("br, gzip;q=0.5", true),
            ("gzip;q=0", false),
            ("identity", false),
            ("*", true),
            ("*, gzip;q=0", false),
            ("GZip", true),
            ("br, X-GZIP;q=1", true),
            ("GZIP;q=0", false),
        ] {
            assert_eq!(accepts_gzip(Some(v.as_bytes())), yes, "{v}");
        }
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn errors_are_short_text_with_the_right_status() {
        let s = set();
        for (path, query, status) in [
            (
                "/MedMij_Whitelist.xml",
                Some("release=9.9.9"),
                StatusCode::NOT_FOUND,
            ),
            (
                "/MedMij_Whitelist.xml",
                Some("release=1.1.2&api=2"),
                StatusCode::BAD_REQUEST,
            ),
            (
                "/MedMij_Whitelist.xml",
                Some("api=x"),
                StatusCode::BAD_REQUEST,
            ),
            (
                "/MedMij_Whitelist.xml",
                Some("foo=1"),
                StatusCode::BAD_REQUEST,
            ),
            ("/etc/passwd", None, StatusCode::NOT_FOUND),
            (
                "/MedMij_Whitelist.xml",
                Some("volgnummer=99"),
                StatusCode::NOT_FOUND,
            ),
        ] {
            let r = get(&s, path, query, None);
            assert_eq!(r.status(), status, "{path}?{query:?}");
            assert!(r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain"));
        }
        let post = respond(
            Some(&s),
            &Method::POST,
            "/MedMij_Whitelist.xml",
            Ask::default(),
        );
        let Answer::Ready(r) = post else { panic!() };
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        let none = respond(None, &Method::GET, "/MedMij_Whitelist.xml", Ask::default());
        let Answer::Ready(r) = none else { panic!() };
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn historic_documents_are_answered_from_the_logged_hash() {
        let s = set();
        // Known: the store is asked for it, with the ETag from the log.
        let ask = Ask {
            query: Some("release=1.1.2&volgnummer=2"),
            ..Ask::default()
        };
        match respond(Some(&s), &Method::GET, "/MedMij_Whitelist.xml", ask) {
            Answer::Historic { key, ask } => {
                assert_eq!(key, "whitelist/release2#2");
                // Inflated as it is sent: a weak validator.
                assert_eq!(ask.etag, format!("W/\"{}\"", "ab".repeat(16)).as_str());
            }
            Answer::Ready(r) => panic!("{}", r.status()),
        }
        // Its ETag again: 304 without reading it.
        let inm = format!("\"{}\"", "ab".repeat(16));
        let r = get(
            &s,
            "/MedMij_Whitelist.xml",
            Some("release=1.1.2&volgnummer=2"),
            Some(&inm),
        );
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        // The current Volgnummer is the current document.
        let r = get(&s, "/MedMij_Whitelist.xml", Some("volgnummer=3"), None);
        assert_eq!(body(r), "whitelist/release2#3");
    }

    #[test]
    fn the_query_grammar_is_one_spelling_per_document() {
        for (ok, release, api, volgnummer) in [
            ("", None, None, None),
            ("release=1.1.2", Some("1.1.2"), None, None),
            ("api=2", None, Some("2"), None),
            ("volgnummer=7", None, None, Some("7")),
            ("release=1.1.2&volgnummer=7", Some("1.1.2"), None, Some("7")),
            (
                "api=2&volgnummer=9999999999999999999",
                None,
                Some("2"),
                Some("9999999999999999999"),
            ),
        ] {
            let q = parse_query(Some(ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(
                (
                    q.release.as_deref(),
                    q.api.as_deref(),
                    q.volgnummer.as_deref()
                ),
                (release, api, volgnummer),
                "{ok}"
            );
        }
        assert_eq!(parse_query(None).unwrap(), Query::default());
        for (bad, needle) in [
            ("rel%65ase=1.1.2", "percent-encoding"),
            ("release=1%2E1%2e2", "percent-encoding"),
            ("release=1.1.2&", "empty parameter"),
            ("&api=2", "empty parameter"),
            ("api=2&&volgnummer=1", "empty parameter"),
            ("release=1.1.2&api=1", "together"),
            ("api=2&release=2.0.0", "together"),
            ("volgnummer=1&api=2", "comes last"),
            ("Release=1.1.2", "'Release'"),
            ("foo=1", "'foo'"),
            ("_=123", "'_'"),
            ("release", "invalid value"),
            ("release=", "invalid value"),
            ("release=1.1.2&release=1.1.1", "more than once"),
            ("release=01.1.2", "invalid value"),
            ("release=0.1.2", "invalid value"),
            ("api=02", "invalid value"),
            ("api=0", "invalid value"),
            ("api=12345", "invalid value"),
            ("volgnummer=0", "invalid value"),
            ("volgnummer=01", "invalid value"),
            ("volgnummer=99999999999999999999", "invalid value"),
        ] {
            let e = parse_query(Some(bad)).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
            assert!(
                e.contains("?release=MAJOR.MINOR.PATCH or ?api=MAJOR"),
                "{bad}: {e}"
            );
        }
    }
}
