//! Static edges: the real nginx, configured with the repo's deploy/nginx/nginx.conf on the
//! export that `serve --export-static` keeps current, answers every canonical URL with the
//! same bytes and headers as `serve`, also after publications and a withdrawn release.

mod common;

use common::*;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

struct Nginx {
    child: Child,
    addr: String,
    conf: PathBuf,
}

impl Nginx {
    fn start(export: &Path, run: &Path) -> Nginx {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let template = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx/nginx.conf"),
        )
        .unwrap();
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        let conf = run.join("nginx.conf");
        std::fs::create_dir_all(run).unwrap();
        std::fs::write(
            &conf,
            template
                .replace("@EXPORT@", export.to_str().unwrap())
                .replace("@LISTEN@", &addr)
                .replace("@RUN@", run.to_str().unwrap())
                .replace("@USER@", &user),
        )
        .unwrap();
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(run)
            .args(["-g", "daemon off;"])
            // Workers inherit these; they must not hold the test's output open.
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nginx installed (.ci/deps installs nginx-light)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                std::fs::read_to_string(run.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx { child, addr, conf }
    }

    /// `nginx -s reload` and wait until the new workers answer with `expect` in `path`.
    fn reload(&self, run: &Path, path: &str, expect: &str) {
        let st = Command::new("nginx")
            .arg("-c")
            .arg(&self.conf)
            .arg("-p")
            .arg(run)
            .args(["-s", "reload"])
            .status()
            .unwrap();
        assert!(st.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        // Old workers stop accepting soon after the signal: wait for several new answers.
        while !(0..5).all(|_| {
            request(&self.addr, "GET", path, &[])
                .text()
                .contains(expect)
        }) {
            assert!(Instant::now() < deadline, "reload not effective");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers too (SIGKILL would orphan them).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const COMPARED: [&str; 11] = [
    "content-type",
    "content-length",
    "etag",
    "cache-control",
    "last-modified",
    "medmij-release",
    "deprecation",
    "sunset",
    "vary",
    "content-encoding",
    "x-content-type-options",
];

/// Every canonical URL, identity and gzip, plain and conditional: same status, body and
/// headers from both.
fn compare(serve: &str, edge: &str) -> usize {
    let mut n = 0;
    for list in LISTS {
        for file in [list.to_string(), format!("{list}.sig")] {
            for q in [
                "",
                "?release=1.1.1",
                "?release=1.1.2",
                "?release=2.0.0",
                "?api=1",
                "?api=2",
            ] {
                let target = format!("/{file}{q}");
                for enc in [None, Some("gzip")] {
                    let (h, a, b) = both(serve, edge, &target, enc);
                    assert_eq!(a.status, b.status, "{target} {enc:?}");
                    if a.status == 200 {
                        same_200(serve, edge, &target, &h, &a, &b);
                        n += 1;
                    }
                }
            }
        }
    }
    // Errors: the same status (bodies are each server's own words).
    for q in [
        "?release=9.9.9",
        "?api=7",
        "?foo=1",
        "?Release=1.1.2",
        "?release=1.1.2&api=2",
        "?release=1.1.2&volgnummer=1",
    ] {
        let target = format!("/MedMij_Whitelist.xml{q}");
        let a = request(serve, "GET", &target, &[]).status;
        let b = request(edge, "GET", &target, &[]).status;
        assert_eq!(a, b, "{target}");
    }
    n += compare_distribution(serve, edge);
    let a = request(serve, "GET", "/signing-certificate.pem", &[]);
    let b = request(edge, "GET", "/signing-certificate.pem", &[]);
    assert_eq!((a.status, &a.body), (b.status, &b.body));
    assert_eq!(a.header("content-type"), b.header("content-type"));
    n
}

/// `target` from both, with `Accept-Encoding: enc` if given: the headers sent, and the
/// two answers.
fn both<'a>(
    serve: &str,
    edge: &str,
    target: &str,
    enc: Option<&'a str>,
) -> (Vec<(&'static str, &'a str)>, Response, Response) {
    let h: Vec<(&str, &str)> = enc.map(|e| ("Accept-Encoding", e)).into_iter().collect();
    let a = request(serve, "GET", target, &h);
    let b = request(edge, "GET", target, &h);
    (h, a, b)
}

/// Two 200 answers to `target` with headers `h`: the same bytes and headers, and their
/// ETag gets 304 from both with the same validators.
fn same_200(serve: &str, edge: &str, target: &str, h: &[(&str, &str)], a: &Response, b: &Response) {
    assert!(a.body == b.body, "{target} {h:?}: bodies differ");
    for k in COMPARED {
        assert_eq!(a.header(k), b.header(k), "{target} {h:?}: {k}");
    }
    let etag = a.header("etag").unwrap().to_string();
    let mut hc = h.to_vec();
    hc.push(("If-None-Match", &etag));
    let (c, d) = (
        request(serve, "GET", target, &hc),
        request(edge, "GET", target, &hc),
    );
    assert_eq!((c.status, d.status), (304, 304), "{target} {h:?}");
    for k in [
        "etag",
        "cache-control",
        "medmij-release",
        "vary",
        "deprecation",
    ] {
        assert_eq!(c.header(k), d.header(k), "{target} {h:?} 304: {k}");
    }
}

/// The query grammar (README, "Query grammar") from both: every form in the table, for
/// every list and signature, identity and gzip. The status is the same (and for the
/// Whitelist, which has a historic Volgnummer 1, the one the table gives); a 200 has the
/// same bytes and headers, and its ETag gets 304 from both. Error bodies are each
/// server's own words.
fn query_forms(serve: &str, edge: &str) -> usize {
    let table: &[(&str, u16)] = &[
        ("", 200),
        ("?", 200),
        ("?release=1.1.2", 200),
        ("?api=2", 200),
        ("?api=1", 200),
        ("?release=1.1.2&volgnummer=1", 200),
        ("?release=1.1.2&volgnummer=2", 200),
        ("?volgnummer=1", 200),
        ("?api=2&volgnummer=1", 200),
        ("?release=2.0.0&volgnummer=1", 200),
        ("?volgnummer=99", 404),
        ("?release=9.9.9", 404),
        ("?api=7", 404),
        ("?release=9.9.9&volgnummer=1", 404),
        // Percent-encoding, in names and values.
        ("?rel%65ase=1.1.2", 400),
        ("?release=1%2E1%2E2", 400),
        ("?api=2%26volgnummer=1", 400),
        // Empty parameters and values.
        ("?release=1.1.2&", 400),
        ("?&api=2", 400),
        ("?&", 400),
        ("?api=2&&volgnummer=1", 400),
        ("?release=", 400),
        ("?api=", 400),
        ("?release", 400),
        ("?=1", 400),
        ("?volgnummer=", 400),
        // Repeated and combined keys, order.
        ("?release=1.1.2&api=1", 400),
        ("?release=1.1.2&api=2", 400),
        ("?release=1.1.2&release=1.1.2", 400),
        ("?api=2&api=2", 400),
        ("?api=2&volgnummer=1&volgnummer=1", 400),
        ("?volgnummer=1&api=2", 400),
        ("?api=2;volgnummer=1", 400),
        // Case.
        ("?Release=1.1.2", 400),
        ("?API=2", 400),
        ("?api=2&Volgnummer=1", 400),
        // Numbers: leading zeros, zero, too long, not numbers.
        ("?api=0", 400),
        ("?api=02", 400),
        ("?api=12345", 400),
        ("?release=01.1.2", 400),
        ("?release=0.1.2", 400),
        ("?release=1.1.2.3", 400),
        ("?volgnummer=0", 400),
        ("?volgnummer=01", 400),
        ("?volgnummer=99999999999999999999", 400),
        ("?volgnummer=-1", 400),
        ("?foo=1", 400),
        ("?api=2&foo=1", 400),
    ];
    let mut n = 0;
    for list in LISTS {
        for file in [list.to_string(), format!("{list}.sig")] {
            for &(q, want) in table {
                let target = format!("/{file}{q}");
                for enc in [None, Some("gzip")] {
                    let (h, a, b) = both(serve, edge, &target, enc);
                    assert_eq!(a.status, b.status, "{target} {enc:?}: {}", b.text());
                    if list.contains("Whitelist") {
                        assert_eq!(a.status, want, "{target} {enc:?}: {}", a.text());
                    }
                    if a.status == 200 {
                        same_200(serve, edge, &target, &h, &a, &b);
                        n += 1;
                    }
                }
            }
        }
    }
    n
}

/// One target from both, identity and gzip, plain and conditional: same status, bytes
/// and headers.
fn same(serve: &str, edge: &str, target: &str) -> Response {
    let mut first = None;
    for enc in [None, Some("gzip")] {
        let mut h: Vec<(&str, &str)> = Vec::new();
        if let Some(e) = enc {
            h.push(("Accept-Encoding", e));
        }
        let a = request(serve, "GET", target, &h);
        let b = request(edge, "GET", target, &h);
        assert_eq!(a.status, b.status, "{target} {enc:?}: {}", b.text());
        if a.status == 200 {
            same_200(serve, edge, target, &h, &a, &b);
        } else {
            assert!(a.body == b.body, "{target} {enc:?}: bodies differ");
            for k in COMPARED {
                assert_eq!(a.header(k), b.header(k), "{target} {enc:?}: {k}");
            }
        }
        first.get_or_insert(a);
    }
    first.unwrap()
}

/// The signed heads of every release form and every file they name (documents,
/// signatures, delta indexes and deltas), from both.
fn compare_distribution(serve: &str, edge: &str) -> usize {
    let mut n = 0;
    for q in [
        "",
        "?release=1.1.1",
        "?release=1.1.2",
        "?release=2.0.0",
        "?api=1",
        "?api=2",
    ] {
        same(serve, edge, &format!("/stelselnode/head.xml.sig{q}"));
        let head = same(serve, edge, &format!("/stelselnode/head.xml{q}"));
        assert_eq!(head.status, 200, "head{q}");
        let text = head.text();
        for href in text
            .split("href=\"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
        {
            let r = same(serve, edge, &format!("/stelselnode/{href}"));
            assert_eq!(r.status, 200, "{href}");
            n += 1;
            if let Some(index) = href.strip_prefix("deltas/") {
                assert_eq!(index.len(), 64);
                for line in r.text().lines().skip(2) {
                    let sha = line.split(' ').nth(2).unwrap();
                    assert_eq!(
                        same(serve, edge, &format!("/stelselnode/delta/{sha}")).status,
                        200
                    );
                    n += 1;
                }
            }
        }
    }
    // Unknown addresses and queries on content addresses: the same status.
    for target in [
        format!("/stelselnode/doc/{}", "0".repeat(64)),
        format!("/stelselnode/delta/{}", "0".repeat(64)),
        "/stelselnode/head.xml?volgnummer=1".to_string(),
        "/stelselnode/head.xml?api=7".to_string(),
    ] {
        let a = request(serve, "GET", &target, &[]).status;
        let b = request(edge, "GET", &target, &[]).status;
        assert_eq!(a, b, "{target}");
    }
    assert!(n > 0);
    n
}

#[test]
fn nginx_on_the_export_answers_as_serve_does() {
    let (dir, data) = demo();
    let export = dir.path().join("export");
    let run = dir.path().join("nginx-run");
    let server = Server::start(&data, &["--export-static", export.to_str().unwrap()]);
    assert!(export.join("nginx/maps.conf").exists(), "exported at start");
    let nginx = Nginx::start(&export, &run);
    let n = compare(&server.addr, &nginx.addr);
    assert!(n > 4 * 2 * 6 * 2, "every combination compared");

    // A publication: the server re-exports; after a reload nginx serves it too.
    ok(&data, &["whitelist", "add", "edge.example.nl"]);
    ok(&data, &["publish", "-m", "new whitelist"]);
    nginx.reload(&run, "/MedMij_Whitelist.xml", "edge.example.nl");
    compare(&server.addr, &nginx.addr);
    // Every query form, with the Whitelist's Volgnummer 1 now historic.
    let n = query_forms(&server.addr, &nginx.addr);
    assert!(n > 4 * 2 * 2 * 8, "every 200 form compared: {n}");
    let old = request(
        &nginx.addr,
        "GET",
        "/MedMij_Whitelist.xml?volgnummer=1",
        &[],
    );
    assert!(!old.text().contains("edge.example.nl"), "the historic list");

    // A signing key announced: every head names its link, and the edge serves it as
    // `serve` does (compared with everything else the heads name).
    let (key, cert) = openssl_rsa(dir.path(), 2048, "next-signing-key");
    ok(
        &data,
        &[
            "key",
            "next",
            "--key",
            key.to_str().unwrap(),
            "--cert",
            cert.to_str().unwrap(),
        ],
    );
    nginx.reload(&run, "/stelselnode/head.xml", "<KeyLink href=\"keys/");
    compare(&server.addr, &nginx.addr);

    // A withdrawn release: 410 from both.
    ok(&data, &["release", "set-status", "2.0.0", "ingetrokken"]);
    nginx.reload(&run, "/MedMij_Whitelist.xml", "edge.example.nl");
    // Old workers finish their connections after a reload; wait until only new ones answer.
    let deadline = Instant::now() + Duration::from_secs(10);
    let gone = |q: &str| {
        request(
            &nginx.addr,
            "GET",
            &format!("/MedMij_Whitelist.xml{q}"),
            &[],
        )
        .status
            == 410
    };
    while !(0..5).all(|_| gone("?api=2") && gone("?release=2.0.0")) {
        assert!(Instant::now() < deadline, "withdrawal not at the edge");
        std::thread::sleep(Duration::from_millis(50));
    }
    for q in ["?api=2", "?release=2.0.0"] {
        let target = format!("/MedMij_Whitelist.xml{q}");
        assert_eq!(request(&server.addr, "GET", &target, &[]).status, 410);
        assert_eq!(request(&nginx.addr, "GET", &target, &[]).status, 410);
    }
    // Only the last two generations are kept.
    let gens = std::fs::read_dir(&export)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("nginx-")
        })
        .count();
    assert_eq!(gens, 2);
}

#[test]
fn export_static_without_a_server() {
    let (dir, data) = demo();
    let out = dir.path().join("out");
    let msg = ok(&data, &["export-static", out.to_str().unwrap()]);
    assert!(msg.contains("exported publication #1"), "{msg}");
    for f in [
        "nginx/maps.conf",
        "nginx/locations.conf",
        "signing-certificate.pem",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    // Content-addressed documents with their gzip variant.
    let docs: Vec<String> = std::fs::read_dir(out.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(docs.iter().any(|d| d.ends_with(".xml.gz")));
    assert_eq!(
        docs.iter().filter(|d| d.ends_with(".xml")).count(),
        docs.iter().filter(|d| d.ends_with(".xml.gz")).count()
    );
}

/// The export directory becomes nginx's `root`, where `$host` would be expanded per
/// request: such a directory is refused, by `export-static` and by `serve
/// --export-static`, before anything is written.
#[test]
fn an_export_directory_nginx_would_expand_is_refused() {
    let (dir, data) = demo();
    let out = dir.path().join("ex$host");
    let err = fails(&data, &["export-static", out.to_str().unwrap()]);
    assert!(err.contains("'$'") && err.contains("ex$host"), "{err}");
    assert!(!out.exists());
    let o = std::process::Command::new(BIN)
        .arg("--data")
        .arg(&data)
        .args(["serve", "--insecure-http", "--listen", "127.0.0.1:0"])
        .arg("--export-static")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("--export-static"),
        "{err}"
    );
    assert!(!out.exists());
}
