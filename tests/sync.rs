//! `stelselnode sync` against the real server, directly and through a tampering proxy:
//! it follows publications by deltas, and refuses rollback, equivocation, an expired head
//! (a frozen mirror), another key, changed bytes, oversize bodies, redirects and TLS
//! failures, leaving its directory exactly as it was, with the documented exit codes.

mod common;

use common::*;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the proxy does with one upstream answer: the raw response, given the request
/// target; returns the raw response to send.
type Tamper = Box<dyn FnMut(&str, Vec<u8>) -> Vec<u8> + Send>;

/// A proxy between `sync` and the server that can change what passes, replay what it
/// recorded, or answer by itself.
struct Proxy {
    addr: String,
    tamper: Arc<Mutex<Option<Tamper>>>,
    /// Every answer that passed, by request target (the first one kept).
    recorded: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    replay: Arc<Mutex<bool>>,
}

fn split_response(raw: &[u8]) -> (String, Vec<u8>) {
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    (
        String::from_utf8_lossy(&raw[..at]).into_owned(),
        raw[at + 4..].to_vec(),
    )
}

/// A response with `body` and the head's other headers, Content-Length set to `len`.
fn with_body(head: &str, body: &[u8], len: usize) -> Vec<u8> {
    let mut out: Vec<String> = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("content-length:"))
        .map(str::to_string)
        .collect();
    out.push(format!("content-length: {len}"));
    let mut raw = out.join("\r\n").into_bytes();
    raw.extend_from_slice(b"\r\n\r\n");
    raw.extend_from_slice(body);
    raw
}

impl Proxy {
    fn start(upstream: &str) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let tamper: Arc<Mutex<Option<Tamper>>> = Arc::new(Mutex::new(None));
        let recorded: Arc<Mutex<HashMap<String, Vec<u8>>>> = Default::default();
        let replay = Arc::new(Mutex::new(false));
        let (t, rec, rep, up) = (
            tamper.clone(),
            recorded.clone(),
            replay.clone(),
            upstream.to_string(),
        );
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { continue };
                let mut req = Vec::new();
                let mut b = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut b) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&b[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req).into_owned();
                let target = text.split(' ').nth(1).unwrap_or("/").to_string();
                let raw = if *rep.lock().unwrap() && rec.lock().unwrap().contains_key(&target) {
                    rec.lock().unwrap()[&target].clone()
                } else {
                    let mut u = TcpStream::connect(&up).unwrap();
                    let head_end = text.find("\r\n\r\n").unwrap_or(text.len());
                    let fwd = format!("{}\r\nConnection: close\r\n\r\n", &text[..head_end]);
                    u.write_all(fwd.as_bytes()).unwrap();
                    let mut raw = Vec::new();
                    let _ = u.read_to_end(&mut raw);
                    rec.lock()
                        .unwrap()
                        .entry(target.clone())
                        .or_insert_with(|| raw.clone());
                    raw
                };
                let raw = match t.lock().unwrap().as_mut() {
                    Some(f) => f(&target, raw),
                    None => raw,
                };
                let _ = c.write_all(&raw);
            }
        });
        Proxy {
            addr,
            tamper,
            recorded,
            replay,
        }
    }

    fn set(&self, f: impl FnMut(&str, Vec<u8>) -> Vec<u8> + Send + 'static) {
        *self.tamper.lock().unwrap() = Some(Box::new(f));
    }

    fn pass(&self) {
        *self.tamper.lock().unwrap() = None;
        *self.replay.lock().unwrap() = false;
    }

    fn forget(&self) {
        self.recorded.lock().unwrap().clear();
    }
}

/// Every file under `dir`, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn sync(base: &str, out: &Path, cert: &Path, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args(["sync", base, "--once", "--out"])
        .arg(out)
        .arg("--cert")
        .arg(cert)
        .args(extra)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `sync` must fail with `code`, name `reason`, and leave `out` exactly as it was.
fn refused(base: &str, out: &Path, cert: &Path, code: i32, reason: &str) {
    refused_with(base, out, cert, &[], code, reason)
}

fn refused_with(base: &str, out: &Path, cert: &Path, extra: &[&str], code: i32, reason: &str) {
    let before = snapshot(out);
    let o = sync(base, out, cert, extra);
    assert_eq!(o.status.code(), Some(code), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("refused ({reason})")),
        "{reason}: {}",
        text(&o)
    );
    assert!(snapshot(out) == before, "{reason}: the directory changed");
}

fn edit(data: &Path, host: &str) {
    ok(data, &["whitelist", "add", host]);
    ok(data, &["publish", "-m", host]);
}

/// The directory holds what the server serves, and xmlsec1 verifies every list.
fn matches_server(server: &Server, out: &Path, cert: &Path, release: &str) {
    for l in LISTS {
        let served = server.get(&format!("/{l}?release={release}")).body;
        assert_eq!(std::fs::read(out.join(l)).unwrap(), served, "{l}");
        xmlsec1_verify(cert, &out.join(format!("{l}.sig")), Some((l, &out.join(l))))
            .unwrap_or_else(|e| panic!("{l}: {e}"));
    }
}

#[test]
fn sync_follows_publications_by_deltas() {
    let (dir, data, server) = demo_server();
    let cert = data.join("signing-cert.pem");
    let out = dir.path().join("lists");
    let base = format!("http://{}/", server.addr);
    let o = sync(&base, &out, &cert, &["--release", "1.1.2"]);
    assert!(o.status.success(), "{}", text(&o));
    matches_server(&server, &out, &cert, "1.1.2");
    // Three publications later, one sync brings the Zorgaanbiederslijst three Volgnummers
    // on by its deltas, and the head of an unchanged set costs a 304.
    for host in ["een", "twee", "drie"] {
        ok(
            &data,
            &[
                "zorgaanbieder",
                "update",
                "thuismetingenvitaal@medmij",
                "--interfaceversie",
                "1.1.0",
                "--gegevensdienst",
                "4",
                "--authorization-endpoint",
                &format!("https://{host}.example.nl/oauth/authorize"),
                "--token-endpoint",
                &format!("https://{host}.example.nl/oauth/token"),
                "--systeemrol",
                &format!("AA-FIRST=https://{host}.example.nl/fhir/a"),
            ],
        );
        ok(&data, &["publish", "-m", host]);
    }
    let o = sync(&base, &out, &cert, &["--release", "1.1.2"]);
    assert!(o.status.success(), "{}", text(&o));
    for step in ["1 → 2", "2 → 3", "3 → 4"] {
        assert!(
            text(&o).contains(&format!("Zorgaanbiederslijst: delta {step} applied")),
            "{step}: {}",
            text(&o)
        );
    }
    assert!(
        text(&o).contains("updated to publication #4: Zorgaanbiederslijst"),
        "{}",
        text(&o)
    );
    matches_server(&server, &out, &cert, "1.1.2");
    let o = sync(&base, &out, &cert, &["--release", "1.1.2"]);
    assert!(
        text(&o).contains("nothing new (0 bytes fetched)"),
        "{}",
        text(&o)
    );
    // The head is independently verifiable: xmlsec1 checks its detached signature.
    let kept = out.join(".stelselnode-sync");
    xmlsec1_verify(
        &cert,
        &kept.join("head.xml.sig"),
        Some(("head.xml", &kept.join("head.xml"))),
    )
    .unwrap();
    // Without a pinned certificate there is no first run.
    let o = Command::new(BIN)
        .args(["sync", &base, "--once", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn sync_refuses_tampering_replay_and_redirects_and_keeps_the_last_good_copy() {
    let (dir, data, server) = demo_server();
    let cert = data.join("signing-cert.pem");
    let out = dir.path().join("lists");
    let proxy = Proxy::start(&server.addr);
    let base = format!("http://{}/", proxy.addr);
    let o = sync(&base, &out, &cert, &[]);
    assert!(o.status.success(), "{}", text(&o));
    // Recorded: the first publication's head and documents, for the replay below.
    let first = proxy.recorded.lock().unwrap().clone();
    proxy.forget();
    edit(&data, "een.example.nl");
    // One changed byte in what the head names (a delta or a document): hash.
    proxy.set(|target, raw| {
        if !target.contains("/delta/") && !target.contains("/doc/") {
            return raw;
        }
        let (head, mut body) = split_response(&raw);
        let i = body.len() / 2;
        body[i] ^= 0x20;
        with_body(&head, &body, body.len())
    });
    refused(&base, &out, &cert, 4, "hash");
    // More bytes than the head names: oversize.
    proxy.set(|target, raw| {
        if !target.contains("/delta/") && !target.contains("/doc/") {
            return raw;
        }
        let (head, mut body) = split_response(&raw);
        body.extend_from_slice(&[b' '; 64]);
        with_body(&head, &body, body.len())
    });
    refused(&base, &out, &cert, 4, "oversize");
    // A redirect is never followed.
    proxy.set(|target, raw| {
        if !target.contains("head.xml") {
            return raw;
        }
        b"HTTP/1.1 302 Found\r\nlocation: http://elders.example.nl/stelselnode/head.xml\r\ncontent-length: 0\r\n\r\n".to_vec()
    });
    refused(&base, &out, &cert, 4, "redirect");
    // Another key: the head's signature does not verify with the certificate given.
    proxy.pass();
    let (_, other) = openssl_rsa(dir.path(), 2048, "someone-else");
    let before = snapshot(&out);
    let o = sync(&base, &out, &other, &[]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("refused (key)"), "{}", text(&o));
    assert!(snapshot(&out) == before);
    // Untampered, it goes through.
    let o = sync(&base, &out, &cert, &[]);
    assert!(o.status.success(), "{}", text(&o));
    // The first publication's head and documents replayed (validly signed, not yet
    // expired): a rollback.
    *proxy.recorded.lock().unwrap() = first;
    *proxy.replay.lock().unwrap() = true;
    refused(&base, &out, &cert, 4, "rollback");
    proxy.pass();
    // Unavailable is not a refusal: exit 3, nothing changed.
    proxy.set(|_, _| {
        b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 30\r\ncontent-length: 0\r\n\r\n".to_vec()
    });
    let before = snapshot(&out);
    let o = sync(&base, &out, &cert, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(snapshot(&out) == before);
}

/// A copy of the data directory (a restored backup) publishes other bytes under a
/// Volgnummer the consumer already holds: equivocation, exit 5.
#[test]
fn sync_raises_the_alarm_on_two_documents_under_one_volgnummer() {
    let (dir, data) = demo();
    let cert = data.join("signing-cert.pem");
    let out = dir.path().join("lists");
    let copy = dir.path().join("copy");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&data)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(st.success());
    edit(&data, "een.example.nl");
    edit(&copy, "ander.example.nl");
    let mut server = Server::start(&data, &[]);
    let o = sync(&format!("http://{}/", server.addr), &out, &cert, &[]);
    assert!(o.status.success(), "{}", text(&o));
    server.kill();
    let forked = Server::start(&copy, &[]);
    refused(
        &format!("http://{}/", forked.addr),
        &out,
        &cert,
        5,
        "equivocation",
    );
}

/// A mirror that stopped: it keeps serving a head that was valid. Once that head
/// expires, it is refused; the last good copy stays.
#[test]
fn sync_refuses_an_expired_head() {
    let (dir, data) = demo();
    let server = Server::start(&data, &["--head-lifetime", "3", "--head-resign", "1"]);
    let cert = data.join("signing-cert.pem");
    let out = dir.path().join("lists");
    let proxy = Proxy::start(&server.addr);
    let base = format!("http://{}/", proxy.addr);
    let o = sync(&base, &out, &cert, &[]);
    assert!(o.status.success(), "{}", text(&o));
    *proxy.replay.lock().unwrap() = true;
    std::thread::sleep(Duration::from_millis(3500));
    refused(&base, &out, &cert, 4, "expired");
    // The live server signs fresh heads: straight to it, all is well.
    let o = sync(&format!("http://{}/", server.addr), &out, &cert, &[]);
    assert!(o.status.success(), "{}", text(&o));
}

/// Over TLS with the right CA it syncs; with another CA the handshake fails: refused.
#[test]
fn sync_over_tls_refuses_a_server_it_cannot_authenticate() {
    let (dir, data) = demo();
    let server = Server::start(&data, &["--demo", "--https"]);
    let cert = data.join("signing-cert.pem");
    let out = dir.path().join("lists");
    let port = server.addr.rsplit(':').next().unwrap();
    let base = format!("https://localhost:{port}/");
    let ca = data.join("dev-tls-ca.pem");
    let o = sync(&base, &out, &cert, &["--ca", ca.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    edit(&data, "een.example.nl");
    let before = snapshot(&out);
    // The signing certificate is no TLS CA of this server.
    let o = sync(&base, &out, &cert, &["--ca", cert.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("refused (tls)"), "{}", text(&o));
    assert!(snapshot(&out) == before);
}

/// As a daemon it honours Retry-After (here 1 s, against an interval of an hour) and
/// exposes its metrics.
#[test]
fn sync_daemon_honours_retry_after_and_reports_metrics() {
    let (dir, data, server) = demo_server();
    let cert = data.join("signing-cert.pem");
    let out = dir.path().join("lists");
    let proxy = Proxy::start(&server.addr);
    let mut first = true;
    proxy.set(move |_, raw| {
        if std::mem::take(&mut first) {
            return b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-length: 0\r\n\r\n".to_vec();
        }
        raw
    });
    let mut child = Command::new(BIN)
        .args(["sync", &format!("http://{}/", proxy.addr), "--out"])
        .arg(&out)
        .arg("--cert")
        .arg(&cert)
        .args(["--interval", "3600", "--metrics-listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let metrics = line
        .trim()
        .strip_prefix("stelselnode sync metrics on http://")
        .and_then(|s| s.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    let t = Instant::now();
    while !out.join("MedMij_Whitelist.xml").exists() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no sync after Retry-After"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    let m = request(&metrics, "GET", "/metrics", &[]).text();
    let _ = child.kill();
    let _ = child.wait();
    for needle in [
        "stelselnode_sync_unavailable_total 1",
        "stelselnode_sync_volgnummer{list=\"whitelist\"} 1",
        "stelselnode_sync_last_success_timestamp_seconds ",
        "stelselnode_sync_staleness_seconds ",
        "stelselnode_sync_fetched_bytes_total ",
    ] {
        assert!(m.contains(needle), "{needle} in\n{m}");
    }
}

/// A delta changed in transit does not fit: sync takes the whole document instead (which
/// the head's hash checks just the same), and the result is the served document.
#[test]
fn sync_falls_back_to_the_whole_document_when_a_delta_is_damaged() {
    let (dir, data, server) = demo_server();
    let cert = data.join("signing-cert.pem");
    let out = dir.path().join("lists");
    let proxy = Proxy::start(&server.addr);
    let base = format!("http://{}/", proxy.addr);
    assert!(sync(&base, &out, &cert, &[]).status.success());
    edit(&data, "een.example.nl");
    proxy.set(|target, raw| {
        if !target.contains("/delta/") {
            return raw;
        }
        let (head, mut body) = split_response(&raw);
        let i = body.len() - 20;
        body[i] ^= 0x01;
        with_body(&head, &body, body.len())
    });
    let o = sync(&base, &out, &cert, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("taking the whole document"),
        "{}",
        text(&o)
    );
    matches_server(&server, &out, &cert, "1.1.1");
}

/// A large document one Volgnummer behind is rebuilt straight into its file (hashed on the
/// way, its changed entries validated), and is the served document; a refused attempt
/// leaves no file behind.
#[test]
fn sync_streams_a_large_document_into_its_file() {
    let dir = tempdir();
    let data = dir.path().join("data");
    ok(&data, &["init"]);
    add_zorgaanbieders(&data, 1500);
    ok(&data, &["publish", "-m", "large"]);
    let server = Server::start(&data, &[]);
    let cert = data.join("signing-cert.pem");
    let out = dir.path().join("lists");
    let proxy = Proxy::start(&server.addr);
    let base = format!("http://{}/", proxy.addr);
    let o = sync(&base, &out, &cert, &["--api", "2"]);
    assert!(o.status.success(), "{}", text(&o));
    let zal = std::fs::metadata(out.join("MedMij_Zorgaanbiederslijst.xml"))
        .unwrap()
        .len();
    assert!(zal > 2 << 20, "{zal} bytes");
    ok(&data, &["zorgaanbieder", "remove", "baaa@medmij"]);
    ok(&data, &["publish", "-m", "one less"]);
    // A delta damaged in transit, and the whole document too: refused, nothing left.
    proxy.set(|target, raw| {
        if !target.contains("/delta/") && !target.contains("/doc/") {
            return raw;
        }
        let (head, mut body) = split_response(&raw);
        let i = body.len() / 2;
        body[i] ^= 0x20;
        with_body(&head, &body, body.len())
    });
    refused_with(&base, &out, &cert, &["--api", "2"], 4, "hash");
    proxy.pass();
    let o = sync(&base, &out, &cert, &["--api", "2"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("applied into its file"), "{}", text(&o));
    matches_server(&server, &out, &cert, "2.0.0");
    let left: Vec<_> = std::fs::read_dir(out.join(".stelselnode-sync"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".incoming"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// `xmlsec1` on the second signature of a detached signature document (the active key's,
/// inside the first one's ds:Object during a key rollover's overlap).
fn xmlsec1_verify_second(cert: &Path, sig: &Path, uri: &str, doc: &Path) -> Result<(), String> {
    let o = Command::new("xmlsec1")
        .args(["--verify", "--pubkey-cert-pem"])
        .arg(cert)
        .arg(format!("--url-map:{uri}"))
        .arg(doc)
        .args([
            "--node-xpath",
            "/*[local-name()='Signature']/*[local-name()='Object']/*[local-name()='Signature']",
        ])
        .arg(sig)
        .output()
        .expect("xmlsec1 installed");
    match o.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&o.stderr).into_owned()),
    }
}

/// Each list of release `release` as served now, checked with `verify --cert` for every
/// certificate in `ok` and refused for those in `refused`, and with xmlsec1: the detached
/// signature's first signature by `first`, its second (if any) by `second`, the enveloped
/// signature of a release3 list by `second` if given, else `first`; and the release's
/// head's detached signature as the lists'.
fn lists_verify(
    server: &Server,
    dir: &Path,
    release: &str,
    ok_with: &[&Path],
    refused_with: &[&Path],
    first: &Path,
    second: Option<&Path>,
) {
    let at = dir.join(format!("served-{release}"));
    std::fs::create_dir_all(&at).unwrap();
    for l in LISTS {
        let url = format!("http://{}/{l}?release={release}", server.addr);
        for cert in ok_with {
            let o = Command::new(BIN)
                .args(["verify", &url, "--cert"])
                .arg(cert)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{l} with {}: {}",
                cert.display(),
                text(&o)
            );
        }
        for cert in refused_with {
            let o = Command::new(BIN)
                .args(["verify", &url, "--cert"])
                .arg(cert)
                .output()
                .unwrap();
            assert!(!o.status.success(), "{l} verified with {}", cert.display());
        }
        let doc = at.join(l);
        let sig = at.join(format!("{l}.sig"));
        std::fs::write(&doc, server.get(&format!("/{l}?release={release}")).body).unwrap();
        std::fs::write(
            &sig,
            server.get(&format!("/{l}.sig?release={release}")).body,
        )
        .unwrap();
        xmlsec1_verify(first, &sig, Some((l, &doc))).unwrap_or_else(|e| panic!("{l}: {e}"));
        if let Some(second) = second {
            xmlsec1_verify_second(second, &sig, l, &doc).unwrap_or_else(|e| panic!("{l}: {e}"));
        }
        if std::fs::read_to_string(&doc)
            .unwrap()
            .contains("<ds:Signature")
        {
            xmlsec1_verify(second.unwrap_or(first), &doc, None)
                .unwrap_or_else(|e| panic!("{l} enveloped: {e}"));
        }
    }
    let (h, hs) = (at.join("head.xml"), at.join("head.xml.sig"));
    let q = format!("?release={release}");
    std::fs::write(&h, server.get(&format!("/stelselnode/head.xml{q}")).body).unwrap();
    std::fs::write(
        &hs,
        server.get(&format!("/stelselnode/head.xml.sig{q}")).body,
    )
    .unwrap();
    xmlsec1_verify(first, &hs, Some(("head.xml", &h))).unwrap();
    if let Some(second) = second {
        xmlsec1_verify_second(second, &hs, "head.xml", &h).unwrap();
    }
}

fn wait_until_allowed(data: &Path, args: &[&str], secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let o = cli(data, args);
        if o.status.success() {
            return String::from_utf8_lossy(&o.stdout).into_owned();
        }
        let t = text(&o);
        assert!(t.contains("refused until"), "{args:?}: {t}");
        assert!(Instant::now() < deadline, "{args:?} still refused: {t}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn metric(server: &Server, name: &str) -> Vec<String> {
    let addr = server.metrics.as_ref().unwrap();
    let body = request(addr, "GET", "/metrics", &[]).text();
    body.lines()
        .filter(|l| l.starts_with(name))
        .map(str::to_string)
        .collect()
}

/// The whole rollover with durations of seconds: announced, activated, retired. Early
/// steps are refused; during the overlap every list verifies with either key (and
/// xmlsec1 checks both signatures); a consumer that follows and one that was offline from
/// before the announcement until after the retirement both catch up, pinned to the old
/// key; every step is in the history, whose archive verifies against the old key.
#[test]
fn a_key_rollover_is_followed_by_every_consumer_without_a_failure() {
    let (dir, data) = demo();
    let server = Server::start(&data, &["--metrics-listen", "127.0.0.1:0"]);
    let old = dir.path().join("old-cert.pem");
    std::fs::copy(data.join("signing-cert.pem"), &old).unwrap();
    let (new_key, new) = openssl_rsa(dir.path(), 2048, "next-signing-key");
    let base = format!("http://{}/", server.addr);
    let (following, offline) = (dir.path().join("following"), dir.path().join("offline"));
    for out in [&following, &offline] {
        let o = sync(&base, out, &old, &["--release", "1.1.2"]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let status = ok(&data, &["key", "status"]);
    assert!(status.starts_with("active "), "{status}");
    assert!(fails(&data, &["key", "activate"]).contains("no next key"));
    assert!(fails(&data, &["key", "retire"]).contains("no key is outgoing"));
    let nk = new_key.to_str().unwrap();
    let nc = new.to_str().unwrap();
    // Announced: a link signed by the old key, named by every head.
    let out = ok(
        &data,
        &[
            "key",
            "next",
            "--key",
            nk,
            "--cert",
            nc,
            "--announce-for",
            "3s",
        ],
    );
    assert!(out.contains("announced as the next key"), "{out}");
    let status = ok(&data, &["key", "status"]);
    assert!(
        status.contains("next ") && status.contains("`key activate` from"),
        "{status}"
    );
    assert!(fails(&data, &["key", "next", "--key", nk, "--cert", nc]).contains("already announced"));
    let head = server.get("/stelselnode/head.xml").text();
    assert!(head.contains("<KeyLink href=\"keys/"), "{head}");
    // The link is the old key's statement: xmlsec1 verifies its enveloped signature.
    let at = head.find("<KeyLink href=\"keys/").unwrap() + 20;
    let link = dir.path().join("keylink.xml");
    let body = server
        .get(&format!("/stelselnode/keys/{}", &head[at..at + 64]))
        .body;
    std::fs::write(&link, body).unwrap();
    xmlsec1_verify(&old, &link, None).unwrap();
    assert!(xmlsec1_verify(&new, &link, None).is_err());
    assert!(metric(&server, "stelselnode_signing_key{")
        .iter()
        .any(|l| l.contains("state=\"next\"")));
    let o = sync(&base, &following, &old, &["--release", "1.1.2"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("is trusted from now on"), "{}", text(&o));
    // Too early: refused, with the time it is allowed from.
    let e = fails(&data, &["key", "activate", "--retire-after", "3s"]);
    assert!(e.contains("refused until"), "{e}");
    // Still one signature: the old key's.
    for release in ["1.1.2", "2.0.0"] {
        lists_verify(&server, dir.path(), release, &[&old], &[&new], &old, None);
    }
    let out = wait_until_allowed(&data, &["key", "activate", "--retire-after", "3s"], 10);
    assert!(out.contains("activated"), "{out}");
    // The overlap: both keys sign every list; the enveloped signature of a release3 list
    // is the new key's.
    for release in ["1.1.2", "2.0.0"] {
        lists_verify(
            &server,
            dir.path(),
            release,
            &[&old, &new],
            &[],
            &old,
            Some(&new),
        );
    }
    // `verify` checks the release3 Zorgaanbiederslijst's enveloped signature with the key
    // it is pinned to: the new one's.
    let zal3 = format!(
        "http://{}/MedMij_Zorgaanbiederslijst.xml?release=2.0.0",
        server.addr
    );
    let o = Command::new(BIN)
        .args(["verify", &zal3, "--cert"])
        .arg(&new)
        .output()
        .unwrap();
    assert!(
        text(&o).contains("enveloped signature: valid (")
            && text(&o).contains("pinned certificate)"),
        "{}",
        text(&o)
    );
    let status = ok(&data, &["key", "status"]);
    assert!(
        status.contains("outgoing ") && status.contains("`key retire` from"),
        "{status}"
    );
    // The new certificate is valid for 30 days: the expiry warning is due.
    assert!(
        status.contains("WARNING: the active signing certificate"),
        "{status}"
    );
    assert_eq!(
        metric(&server, "stelselnode_signing_key_expiry_warning "),
        ["stelselnode_signing_key_expiry_warning 1"]
    );
    let e = fails(&data, &["key", "retire"]);
    assert!(e.contains("refused until"), "{e}");
    let o = sync(&base, &following, &old, &["--release", "1.1.2"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = wait_until_allowed(&data, &["key", "retire"], 10);
    assert!(out.contains("retired"), "{out}");
    // After: only the new key signs.
    // `verify --cert OLD` follows the key chain the head names; a key outside the chain
    // verifies nothing.
    let (_, other) = openssl_rsa(dir.path(), 2048, "someone-else");
    lists_verify(
        &server,
        dir.path(),
        "2.0.0",
        &[&new, &old],
        &[&other],
        &new,
        None,
    );
    for out in [&following, &offline] {
        let o = sync(&base, out, &old, &["--release", "1.1.2"]);
        assert!(o.status.success(), "{}: {}", out.display(), text(&o));
        matches_server(&server, out, &new, "1.1.2");
    }
    let status = ok(&data, &["key", "status"]);
    assert!(status.starts_with("retired "), "{status}");
    // The history records every step, and its archive verifies against the old key.
    let list = ok(&data, &["history", "list"]);
    for step in ["announced as the next key", "activated", "retired"] {
        assert!(list.contains(step), "{step}: {list}");
    }
    let archive = dir.path().join("audit.tar");
    ok(
        &data,
        &["history", "export", "--out", archive.to_str().unwrap()],
    );
    let o = Command::new(BIN)
        .args(["history", "verify"])
        .arg(&archive)
        .arg("--cert")
        .arg(&old)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

/// A key link changed on the way (so no longer signed by the key it names) is refused,
/// even with the head rewritten to name it: the chain is walked before the head is
/// trusted, and the directory stays as it was.
#[test]
fn a_forged_key_link_is_refused() {
    let (dir, data, server) = demo_server();
    let old = data.join("signing-cert.pem");
    let (new_key, new) = openssl_rsa(dir.path(), 2048, "next-signing-key");
    let out = dir.path().join("lists");
    let proxy = Proxy::start(&server.addr);
    let base = format!("http://{}/", proxy.addr);
    let o = sync(&base, &out, &old, &[]);
    assert!(o.status.success(), "{}", text(&o));
    ok(
        &data,
        &[
            "key",
            "next",
            "--key",
            new_key.to_str().unwrap(),
            "--cert",
            new.to_str().unwrap(),
        ],
    );
    let head = server.get("/stelselnode/head.xml").text();
    let at = head.find("<KeyLink href=\"keys/").unwrap();
    let real_sha = head[at + 20..at + 84].to_string();
    let link = server.get(&format!("/stelselnode/keys/{real_sha}")).body;
    let link_text = String::from_utf8(link.clone()).unwrap();
    // The announcement's activation time moved a year back: the old key never signed that.
    let i = link_text.find("<ActivationFrom>").unwrap() + "<ActivationFrom>".len();
    let mut forged = link.clone();
    forged[i + 3] = if forged[i + 3] == b'5' { b'4' } else { b'5' };
    let forged_sha = stelselnode::digest::sha256_hex(&forged);
    let (real_size, forged_size) = (link.len(), forged.len());
    proxy.set(move |target, raw| {
        if target.contains(&format!("/keys/{forged_sha}")) {
            return with_body(
                "HTTP/1.1 200 OK\r\ncontent-type: application/xml",
                &forged,
                forged.len(),
            );
        }
        if !target.contains("head.xml") || target.contains(".sig") {
            return raw;
        }
        let (h, body) = split_response(&raw);
        let body = String::from_utf8(body).unwrap().replace(
            &format!("keys/{real_sha}\" sha256=\"{real_sha}\" size=\"{real_size}\""),
            &format!("keys/{forged_sha}\" sha256=\"{forged_sha}\" size=\"{forged_size}\""),
        );
        with_body(&h, body.as_bytes(), body.len())
    });
    let before = snapshot(&out);
    let o = sync(&base, &out, &old, &[]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(
        text(&o).contains("refused (key)") && text(&o).contains("forged"),
        "{}",
        text(&o)
    );
    assert!(snapshot(&out) == before);
    // Untampered, the same consumer follows the real link.
    proxy.pass();
    let o = sync(&base, &out, &old, &[]);
    assert!(o.status.success(), "{}", text(&o));
}
