//! Static edges: the published set written as files plus a generated nginx configuration,
//! so that nginx (or another static server, a CDN, an object store) answers the same URLs
//! and query parameters with the same bytes and headers as `serve`. One publisher, many
//! read edges; an edge keeps serving the last set it has when the publisher is down.
//!
//! Layout of the export directory:
//! * `docs/<etag>.xml` and `docs/<etag>.xml.gz`: every document and signature, named by
//!   its ETag (content-addressed, so a new set never overwrites a file an edge still
//!   serves), the `.gz` the same gzip bytes `serve` sends;
//! * `docs/<etag>.delta` and `docs/<etag>.deltas` (with `.gz`): the deltas and delta
//!   indexes signed heads name, and the heads themselves as documents;
//! * `stelselnode/{doc,delta,deltas,keys}/<sha256>` (and `.gz`): hard links to those files under
//!   the content addresses heads use (no second copy on disk);
//! * `signing-certificate.pem`;
//! * `nginx` → `nginx-<n>/` (a symlink swapped atomically, `n` counting exports: heads are
//!   signed again without a publication): `maps.conf` (for the
//!   `http` block) and `locations.conf` (for a `server` block). `nginx -s reload` after an
//!   export picks the new set up; until then the previous one is served whole.
//!
//! * `history/<tag>.xml.gz` (hard links to the data directory's gzip files, a copy on
//!   another file system) and `history/<tag>-sig.xml`: every historic list and its
//!   signature, for `?volgnummer=N`; nginx inflates a list for a client without gzip.
//!
//! Edges answer the one query grammar `serve` has (`respond::CANONICAL`): no query,
//! `?release=R` or `?api=N`, each optionally followed by `&volgnummer=N`, or
//! `?volgnummer=N`; other queries get 400 (unknown release 404, withdrawn 410, a
//! Volgnummer never published 404), with short bodies of nginx's own.

use super::set::ReleaseHeaders;
use super::set::{Body, PublishedSet};
use crate::registry::catalogue::Status;
use crate::registry::model::ListKind;
use crate::registry::store::Store;
use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

/// The edge's 400 body for a query outside the grammar (`respond::CANONICAL`).
const BAD_QUERY: &str = "use no query, or ?release=MAJOR.MINOR.PATCH or ?api=MAJOR, optionally followed by &volgnummer=N (or ?volgnummer=N alone), written exactly so\\n";

/// How many generations of configuration (and the documents they name) are kept.
const KEEP: usize = 2;

fn tag(etag: &http::HeaderValue) -> String {
    etag.to_str().unwrap_or("").trim_matches('"').to_string()
}

/// `from` at `to` without a second copy: a hard link (a copy when `to` is on another file
/// system, as an export may be from the data directory), via a temporary name and a
/// rename, so readers see the whole file or none.
fn link_into(from: &Path, to: &Path) -> Result<()> {
    let tmp = to.with_extension("tmp-export");
    let _ = std::fs::remove_file(&tmp);
    if std::fs::hard_link(from, &tmp).is_err() {
        std::fs::copy(from, &tmp)
            .with_context(|| format!("copying {} to {}", from.display(), tmp.display()))?;
    }
    std::fs::rename(&tmp, to).with_context(|| format!("renaming to {}", to.display()))?;
    Ok(())
}

/// Write a file via a temporary name and rename: readers see the old or the new file.
fn write_atomic(path: &Path, bytes: &[u8], mtime: Option<std::time::SystemTime>) -> Result<()> {
    let tmp = path.with_extension("tmp-export");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    if let Some(t) = mtime {
        let f = std::fs::File::options().write(true).open(&tmp)?;
        f.set_modified(t)?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

fn nginx_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The export directory becomes nginx's `root`, where `$` starts a variable that nginx
/// expands per request (there is no escape for it) and a control character has no place:
/// such a directory is refused before anything is written.
pub fn check_root(dir: &Path) -> Result<()> {
    let shown = dir.display().to_string();
    let bad = match dir.to_str() {
        None => Some("is not valid UTF-8".to_string()),
        Some(d) if d.contains('$') => Some(
            "contains '$', which nginx's `root` would expand as a variable; choose a directory without it".to_string(),
        ),
        Some(d) => d
            .chars()
            .find(|c| c.is_control())
            .map(|c| format!("contains the control character U+{:04X}", c as u32)),
    };
    match bad {
        Some(why) => anyhow::bail!("export directory '{}' {why}", crate::clip::clip(&shown)),
        None => Ok(()),
    }
}

/// Write the set to `dir`. Returns a one-line summary.
pub fn export(set: &PublishedSet, dir: &Path, store: &Store) -> Result<String> {
    check_root(dir)?;
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).with_context(|| format!("creating {}", docs.display()))?;
    let mut files: BTreeSet<String> = BTreeSet::new();
    // Documents, content-addressed; mtime = the list's Tijdstempel (nginx's Last-Modified).
    let list_time = |list: ListKind| {
        set.index
            .lists
            .get(&list)
            .and_then(|v| crate::distribute::head::parse_utc(&v.tijdstempel))
            .map(std::time::SystemTime::from)
    };
    // A body as `docs/<tag>.<ext>` and `.gz`; mtime = `Last-Modified` as `serve` sends it.
    let mut write_body =
        |b: &Body, ext: &str, mtime: Option<std::time::SystemTime>| -> Result<String> {
            let t = tag(&b.etag);
            for (name, bytes) in [
                (format!("{t}.{ext}"), &b.bytes),
                (format!("{t}.{ext}.gz"), &b.gzip.bytes),
            ] {
                let p = docs.join(&name);
                if !p.exists() {
                    write_atomic(&p, bytes, mtime)?;
                }
                files.insert(name);
            }
            Ok(t)
        };
    // release id → (list → (document tag, signature tag))
    let mut by_release: BTreeMap<String, BTreeMap<ListKind, (String, String)>> = BTreeMap::new();
    // Content addresses (under `stelselnode/`) → the file in `docs/` they link to.
    let mut links: Vec<(String, String)> = Vec::new();
    for r in set.index.catalogue.served() {
        for l in ListKind::ALL {
            if let Some(d) = set.docs.get(&r.rendition(l)) {
                let doc = write_body(&d.xml, "xml", list_time(l))?;
                let sig = write_body(&d.sig, "xml", list_time(l))?;
                for (b, t) in [(&d.xml, &doc), (&d.sig, &sig)] {
                    links.push((format!("doc/{}", b.sha256), format!("{t}.xml")));
                }
                by_release
                    .entry(r.id.clone())
                    .or_default()
                    .insert(l, (doc, sig));
            }
        }
    }
    let dist = &set.distribution;
    let blob_time = |sha: &str| {
        dist.made
            .get(sha)
            .map(|(t, _)| std::time::SystemTime::from(*t))
    };
    let key_links: HashMap<String, Body> = dist.key_links.iter().cloned().collect();
    for (dir_name, ext, blobs) in [
        ("delta", "delta", &dist.deltas),
        ("deltas", "deltas", &dist.indexes),
        ("keys", "keylink", &key_links),
    ] {
        for (sha, b) in blobs {
            let t = write_body(b, ext, blob_time(sha))?;
            links.push((format!("{dir_name}/{sha}"), format!("{t}.{ext}")));
        }
    }
    let heads = dist.heads.load();
    let mut head_tags: BTreeMap<String, (String, String)> = BTreeMap::new();
    for r in set.index.catalogue.served() {
        if let Some(h) = heads.get(&r.id) {
            let mtime = Some(std::time::SystemTime::from(h.issued));
            let head = write_body(&h.head, "xml", mtime)?;
            let sig = write_body(&h.sig, "xml", mtime)?;
            head_tags.insert(r.id.clone(), (head, sig));
        }
    }
    for (address, target) in &links {
        for gz in ["", ".gz"] {
            let name = format!("stelselnode/{address}{gz}");
            let p = dir.join(&name);
            if !p.exists() {
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                link_into(&docs.join(format!("{target}{gz}")), &p)?;
            }
            files.insert(name);
        }
    }
    let history = export_history(set, dir, store, &mut files)?;
    write_atomic(&dir.join("signing-certificate.pem"), &set.certificate, None)?;

    let generation = format!("nginx-{}", next_generation(dir));
    let gen_dir = dir.join(&generation);
    std::fs::create_dir_all(&gen_dir)?;
    std::fs::write(
        gen_dir.join("maps.conf"),
        maps(set, &by_release, &head_tags, &history),
    )?;
    std::fs::write(gen_dir.join("locations.conf"), locations(set, dir))?;
    std::fs::write(
        gen_dir.join("files.txt"),
        files.iter().cloned().collect::<Vec<_>>().join("\n"),
    )?;
    // Swap the symlink atomically.
    let link_tmp = dir.join("nginx.tmp-export");
    let _ = std::fs::remove_file(&link_tmp);
    std::os::unix::fs::symlink(&generation, &link_tmp)?;
    std::fs::rename(&link_tmp, dir.join("nginx"))?;
    collect_garbage(dir, &generation)?;
    Ok(format!(
        "exported publication #{} to {} ({} releases, {} files)\n",
        set.index.seq,
        dir.display(),
        by_release.len(),
        files.len()
    ))
}

/// Historic documents by release and list: Volgnummer → the tag of its files.
type History = BTreeMap<(String, ListKind), BTreeMap<u64, String>>;

/// Every historic list of the served releases as `history/<tag>.xml.gz` (a hard link to
/// the data directory's file, a copy on another file system) and its signature as
/// `history/<tag>-sig.xml`; written once, as they never change.
fn export_history(
    set: &PublishedSet,
    dir: &Path,
    store: &Store,
    files: &mut BTreeSet<String>,
) -> Result<History> {
    let hist = dir.join("history");
    std::fs::create_dir_all(&hist).with_context(|| format!("creating {}", hist.display()))?;
    let mut by_rendition: HashMap<crate::registry::catalogue::Rendition, BTreeMap<u64, String>> =
        HashMap::new();
    for (entry, _) in store.log()? {
        for d in entry.documents {
            let t = d.sha256.get(..32).unwrap_or(&d.sha256).to_string();
            let key = crate::registry::publication::document_key(&d.rendition, d.volgnummer);
            let (doc, sig) = (format!("{t}.xml.gz"), format!("{t}-sig.xml"));
            let doc_path = hist.join(&doc);
            if !doc_path.exists() {
                link_into(&store.files().gzip_path(&d.sha256), &doc_path)?;
            }
            let sig_path = hist.join(&sig);
            if !sig_path.exists() {
                let bytes = store
                    .document(&format!("{key}.sig"))?
                    .with_context(|| format!("the signature of {key} is missing"))?;
                write_atomic(&sig_path, &bytes, None)?;
            }
            files.insert(format!("history/{doc}"));
            files.insert(format!("history/{sig}"));
            by_rendition
                .entry(d.rendition)
                .or_default()
                .insert(d.volgnummer, t);
        }
    }
    let mut out = History::new();
    for r in set.index.catalogue.served() {
        for l in ListKind::ALL {
            if let Some(v) = by_rendition.get(&r.rendition(l)) {
                out.insert((r.id.clone(), l), v.clone());
            }
        }
    }
    Ok(out)
}

/// Historic lists (internal: reached by the rewrites in the list locations). The gzip file
/// as it is, or inflated by nginx for a client without gzip (sent chunked, so a weak ETag,
/// as `serve` answers); the signature plain.
fn history_locations(o: &mut String) {
    for (pattern, tag, etag, extra) in [
        (
            r"(?<sn_h>[0-9a-f]{32})\.xml\.gz",
            "$sn_h-gzip",
            r#"\"$sn_tag\""#,
            "    add_header Content-Encoding gzip;\n",
        ),
        (
            r"(?<sn_h>[0-9a-f]{32})\.xml",
            "$sn_h",
            r#"W/\"$sn_tag\""#,
            "    gzip_static always;\n    gunzip on;\n",
        ),
        (
            r"(?<sn_h>[0-9a-f]{32})-sig\.xml",
            "$sn_h-sig",
            r#"\"$sn_tag\""#,
            "",
        ),
    ] {
        let _ = write!(
            o,
            r#"location ~ "^/history/{pattern}$" {{
    internal;
    set $sn_tag "{tag}";
    default_type application/xml;
    types {{ }}
    add_header ETag "{etag}";
    add_header X-Content-Type-Options nosniff;
    add_header MedMij-Release $sn_release;
    add_header Deprecation $sn_deprecation;
    add_header Sunset $sn_sunset;
    add_header Vary Accept-Encoding;
    add_header Cache-Control "{cc}";
    add_header Last-Modified "";
{extra}    if ($sn_not_modified) {{ return 304; }}
}}
"#,
            cc = super::respond::IMMUTABLE,
        );
    }
}

/// One more than the newest generation in `dir`.
fn next_generation(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix("nginx-")?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(0)
        + 1
}

/// Keep the newest `KEEP` generations and the documents they name.
fn collect_garbage(dir: &Path, current: &str) -> Result<()> {
    let mut gens: Vec<(u64, String)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let seq = n.strip_prefix("nginx-")?.parse().ok()?;
            Some((seq, n))
        })
        .collect();
    gens.sort();
    let keep: Vec<String> = gens
        .iter()
        .rev()
        .take(KEEP)
        .map(|(_, n)| n.clone())
        .collect();
    let mut referenced = BTreeSet::new();
    for g in &keep {
        if let Ok(list) = std::fs::read_to_string(dir.join(g).join("files.txt")) {
            referenced.extend(list.lines().map(str::to_string));
        }
    }
    for (_, g) in &gens {
        if !keep.contains(g) && g != current {
            let _ = std::fs::remove_dir_all(dir.join(g));
        }
    }
    for e in std::fs::read_dir(dir.join("docs"))?.filter_map(|e| e.ok()) {
        let n = e.file_name().to_string_lossy().into_owned();
        if !referenced.contains(&n) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    if let Ok(rd) = std::fs::read_dir(dir.join("history")) {
        for e in rd.filter_map(|e| e.ok()) {
            let n = format!("history/{}", e.file_name().to_string_lossy());
            if !referenced.contains(&n) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    for sub in ["doc", "delta", "deltas", "keys"] {
        let Ok(rd) = std::fs::read_dir(dir.join("stelselnode").join(sub)) else {
            continue;
        };
        for e in rd.filter_map(|e| e.ok()) {
            let n = format!("stelselnode/{sub}/{}", e.file_name().to_string_lossy());
            if !referenced.contains(&n) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

/// `http`-level maps: query → release, release → file per list, release → headers,
/// Accept-Encoding → variant, If-None-Match → match.
fn maps(
    set: &PublishedSet,
    by_release: &BTreeMap<String, BTreeMap<ListKind, (String, String)>>,
    heads: &BTreeMap<String, (String, String)>,
    history: &History,
) -> String {
    let cat = &set.index.catalogue;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Generated by stelselnode for publication #{}; include in the http block.",
        set.index.seq
    );
    // The query without its Volgnummer, and the Volgnummer (`respond::parse_query`'s
    // grammar: `&volgnummer=N` last, or alone; anything else stays and is refused below).
    let n = super::respond::VOLGNUMMER_DIGITS - 1;
    let _ = writeln!(
        o,
        "map $args $sn_query {{\n    default $args;\n    \"~^((release|api)=[^&]*)&volgnummer=[1-9][0-9]{{0,{n}}}$\" $1;\n    \"~^volgnummer=[1-9][0-9]{{0,{n}}}$\" \"\";\n}}\nmap $args $sn_volgnummer {{\n    default \"\";\n    \"~^((release|api)=[^&]*&)?volgnummer=([1-9][0-9]{{0,{n}}})$\" $3;\n}}"
    );
    // Query → release ("!400", "!404", "!410" for errors). Regular expressions, in order:
    // nginx compares plain map strings ignoring case, and query keys are case-sensitive.
    let exact = |q: &str| nginx_string(&format!("~^{}$", q.replace('.', "\\.")));
    let _ = writeln!(
        o,
        "map $sn_query $sn_release {{\n    default \"!400\";\n    \"\" {};",
        nginx_string(&cat.default)
    );
    for r in &cat.releases {
        let v = if r.status == Status::Ingetrokken {
            "!410".to_string()
        } else {
            r.id.clone()
        };
        let _ = writeln!(
            o,
            "    {} {};",
            exact(&format!("release={}", r.id)),
            nginx_string(&v)
        );
    }
    let majors: BTreeSet<&str> = cat.releases.iter().map(|r| r.major()).collect();
    for m in majors {
        let v = match cat.select(None, Some(m)) {
            Ok(r) => r.id.clone(),
            Err(_) => "!410".into(),
        };
        let _ = writeln!(
            o,
            "    {} {};",
            exact(&format!("api={m}")),
            nginx_string(&v)
        );
    }
    // Well-formed (`rules::release_id`) but not in the catalogue.
    let _ = writeln!(
        o,
        "    \"~^release=[1-9][0-9]{{0,3}}\\.(0|[1-9][0-9]{{0,3}})\\.(0|[1-9][0-9]{{0,3}})$\" \"!404\";"
    );
    let _ = writeln!(o, "    \"~^api=[1-9][0-9]{{0,3}}$\" \"!404\";\n}}");
    // Release → document tag, per list and for its signature.
    for l in ListKind::ALL {
        for (suffix, sig) in [("", false), ("_sig", true)] {
            let _ = writeln!(
                o,
                "map $sn_release $sn_{}{suffix} {{\n    default \"\";",
                l.key()
            );
            for (rid, lists) in by_release {
                if let Some((doc, s)) = lists.get(&l) {
                    let _ = writeln!(
                        o,
                        "    {} {};",
                        nginx_string(rid),
                        nginx_string(if sig { s } else { doc })
                    );
                }
            }
            let _ = writeln!(o, "}}");
        }
    }
    history_maps(&mut o, set, history);
    // Release → its signed head and the head's signature.
    for (var, sig) in [("sn_head", false), ("sn_head_sig", true)] {
        let _ = writeln!(o, "map $sn_release ${var} {{\n    default \"\";");
        for (rid, (h, s)) in heads {
            let _ = writeln!(
                o,
                "    {} {};",
                nginx_string(rid),
                nginx_string(if sig { s } else { h })
            );
        }
        let _ = writeln!(o, "}}");
    }
    // Release → Deprecation and Sunset (verouderd only, as ReleaseHeaders decides; an
    // empty value sends nothing).
    let header_map = |o: &mut String,
                      var: &str,
                      value: &dyn Fn(
        &crate::registry::catalogue::Release,
    ) -> Option<http::HeaderValue>| {
        let _ = writeln!(o, "map $sn_release ${var} {{\n    default \"\";");
        for r in cat.served() {
            if let Some(v) = value(r).and_then(|v| v.to_str().ok().map(str::to_string)) {
                let _ = writeln!(o, "    {} {};", nginx_string(&r.id), nginx_string(&v));
            }
        }
        let _ = writeln!(o, "}}");
    };
    // The values `serve` sends (`ReleaseHeaders`), so the two cannot drift apart.
    header_map(&mut o, "sn_deprecation", &|r| {
        ReleaseHeaders::of(r).deprecation
    });
    header_map(&mut o, "sn_sunset", &|r| ReleaseHeaders::of(r).sunset);
    // Accept-Encoding → the gzip variant, as `serve` decides (explicit q=0 refuses it).
    o.push_str(
        r#"map $http_accept_encoding $sn_gz {
    default "";
    "~*(^|,)\s*(x-)?gzip\s*;\s*q=0(\.0{0,3})?\s*(,|$)" "";
    "~*(^|,)\s*(x-)?gzip\s*(;|,|$)" "-gzip";
    "~(^|,)\s*\*\s*;\s*q=0(\.0{0,3})?\s*(,|$)" "";
    "~(^|,)\s*\*\s*(;|,|$)" "-gzip";
}
map $sn_gz $sn_gz_ext {
    default "";
    "-gzip" ".gz";
}
map $sn_gz $sn_encoding {
    default "";
    "-gzip" "gzip";
}
map "$sn_tag|$http_if_none_match" $sn_not_modified {
    default 0;
    "~^([^|]+)\|(.*,\s*)?(W/)?\"\1\"\s*(,|$)" 1;
    "~\|\s*\*\s*$" 1;
}
"#,
    );
    o
}

/// Release and Volgnummer → the historic list's tag, per list: "" for the current one (and
/// for none asked), "!404" for one never published.
fn history_maps(o: &mut String, set: &PublishedSet, history: &History) {
    let cat = &set.index.catalogue;
    for l in ListKind::ALL {
        let _ = writeln!(
            o,
            "map \"$sn_release|$sn_volgnummer\" $sn_{}_hist {{\n    default \"!404\";\n    \"~\\|$\" \"\";",
            l.key()
        );
        let current = set.index.lists.get(&l).map(|v| v.volgnummer);
        for r in cat.served() {
            if let Some(v) = current {
                let _ = writeln!(o, "    {} \"\";", nginx_string(&format!("{}|{v}", r.id)));
            }
            for (n, t) in history.get(&(r.id.clone(), l)).into_iter().flatten() {
                if Some(*n) != current {
                    let _ = writeln!(
                        o,
                        "    {} {};",
                        nginx_string(&format!("{}|{n}", r.id)),
                        nginx_string(t)
                    );
                }
            }
        }
        let _ = writeln!(o, "}}");
    }
}

/// `server`-level locations: one per list and signature, and the certificate.
fn locations(set: &PublishedSet, dir: &Path) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Generated by stelselnode for publication #{}; include in a server block.",
        set.index.seq
    );
    let _ = writeln!(o, "root {};", nginx_string(&dir.display().to_string()));
    o.push_str("etag off;\ngzip off;\nif_modified_since off;\nserver_tokens off;\n");
    for l in ListKind::ALL {
        let lm = set
            .index
            .lists
            .get(&l)
            .and_then(|v| {
                time::OffsetDateTime::parse(
                    &v.tijdstempel,
                    &time::format_description::well_known::Rfc3339,
                )
                .ok()
            })
            .and_then(|t| super::set::http_date(t).ok())
            .unwrap_or_default();
        for (suffix, var) in [
            ("", format!("sn_{}", l.key())),
            (".sig", format!("sn_{}_sig", l.key())),
        ] {
            let historic = if suffix.is_empty() {
                format!("/history/$sn_{}_hist.xml$sn_gz_ext", l.key())
            } else {
                format!("/history/$sn_{}_hist-sig.xml", l.key())
            };
            let _ = write!(
                o,
                r#"location = /{file}{suffix} {{
    if ($sn_release = "!400") {{ return 400 "{BAD_QUERY}"; }}
    if ($sn_release = "!404") {{ return 404 "unknown release\n"; }}
    if ($sn_release = "!410") {{ return 410 "release withdrawn (ingetrokken)\n"; }}
    if ($sn_{key}_hist = "!404") {{ return 404 "that Volgnummer was never published\n"; }}
    if ($sn_{key}_hist != "") {{ rewrite ^ {historic} last; }}
    set $sn_tag "${var}$sn_gz";
    default_type application/xml;
    types {{ }}
    add_header ETag "\"$sn_tag\"";
    add_header X-Content-Type-Options nosniff;
    add_header MedMij-Release $sn_release;
    add_header Deprecation $sn_deprecation;
    add_header Sunset $sn_sunset;
    add_header Vary Accept-Encoding;
    add_header Content-Encoding $sn_encoding;
    add_header Last-Modified "{lm}";
    add_header Cache-Control "public, max-age=60";
    if ($sn_not_modified) {{ return 304; }}
    try_files /docs/${var}.xml$sn_gz_ext =503;
}}
"#,
                file = l.file_name(),
                key = l.key(),
            );
        }
    }
    for (suffix, var) in [("", "sn_head"), (".sig", "sn_head_sig")] {
        let _ = write!(
            o,
            r#"location = /stelselnode/head.xml{suffix} {{
    if ($sn_release = "!400") {{ return 400 "{BAD_QUERY}"; }}
    if ($sn_volgnummer != "") {{ return 400 "a head has no volgnummer; ask for ?release= or ?api=\n"; }}
    if ($sn_release = "!404") {{ return 404 "unknown release\n"; }}
    if ($sn_release = "!410") {{ return 410 "release withdrawn (ingetrokken)\n"; }}
    set $sn_tag "${var}$sn_gz";
    default_type application/xml;
    types {{ }}
    add_header ETag "\"$sn_tag\"";
    add_header MedMij-Release $sn_release;
    add_header Vary Accept-Encoding;
    add_header Content-Encoding $sn_encoding;
    add_header Cache-Control "{cc}";
    if ($sn_not_modified) {{ return 304; }}
    try_files /docs/${var}.xml$sn_gz_ext =503;
}}
"#,
            cc = crate::distribute::head::CACHE_CONTROL,
        );
    }
    // What heads name, by content address: hard links to the files in `docs/`.
    for (kind, ct) in [
        ("doc", "application/xml"),
        ("delta", "application/octet-stream"),
        ("deltas", "text/plain; charset=utf-8"),
        ("keys", "application/xml"),
    ] {
        let _ = write!(
            o,
            r#"location ~ "^/stelselnode/{kind}/(?<sn_t>[0-9a-f]{{32}})[0-9a-f]{{32}}$" {{
    if ($args != "") {{ return 400 "content-addressed files take no query\n"; }}
    set $sn_tag "$sn_t$sn_gz";
    default_type "{ct}";
    types {{ }}
    add_header ETag "\"$sn_tag\"";
    add_header Vary Accept-Encoding;
    add_header Content-Encoding $sn_encoding;
    add_header Cache-Control "{cc}";
    if ($sn_not_modified) {{ return 304; }}
    try_files $uri$sn_gz_ext =404;
}}
"#,
            cc = crate::distribute::head::IMMUTABLE,
        );
    }
    history_locations(&mut o);
    o.push_str(
        "location = /signing-certificate.pem {\n    default_type application/x-pem-file;\n    types { }\n    add_header Last-Modified \"\";\n}\n",
    );
    o
}
