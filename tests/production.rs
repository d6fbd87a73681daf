//! Production serving: TLS with real handshakes (openssl s_client, rustls), client
//! certificates per path, SIGHUP reload, gzip, connection limits, graceful shutdown and
//! the atomic swap of the served set under load. Real binary, loopback ports.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn save(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// A CA (PEM cert, issuer) from rcgen.
struct Ca {
    pem: String,
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        Ca {
            pem: issuer.pem(),
            issuer,
        }
    }

    /// A leaf for `names` (server) or for an organisation (client): (cert PEM, key PEM).
    fn leaf(&self, names: &[&str], org: Option<&str>) -> (String, String) {
        use rcgen::{CertificateParams, DnType, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        if let Some(o) = org {
            p.distinguished_name.push(DnType::OrganizationName, o);
            p.distinguished_name
                .push(DnType::CommonName, format!("{o} client"));
        }
        let c = p.signed_by(&key, &self.issuer).unwrap();
        (c.pem(), key.serialize_pem())
    }
}

/// A TLS data directory: the demo registry, a server certificate for localhost from `ca`.
fn tls_demo(ca: &Ca) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let (dir, data) = demo();
    let (cert, key) = ca.leaf(&["localhost"], None);
    let cert = save(dir.path(), "server.pem", cert.as_bytes());
    let key = save(dir.path(), "server.key", key.as_bytes());
    (dir, data, cert, key)
}

/// One HTTPS request with rustls: status, headers and body, or the TLS/IO error.
fn https(
    addr: &str,
    path: &str,
    ca_pem: &str,
    client: Option<(&str, &str)>,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let cfg = match client {
        None => b.with_no_client_auth(),
        Some((cert, key)) => b
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .map(|c| c.unwrap())
                    .collect(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    let conn =
        rustls::ClientConnection::new(Arc::new(cfg), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    tls.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // Servers may close without close_notify after Connection: close.
        Err(e) if !raw.is_empty() && e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(e.to_string()),
    }
    parse_response(&raw).ok_or_else(|| "no HTTP response".into())
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some(Response {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}

/// `openssl s_client` with the given options: did the handshake succeed?
fn s_client(addr: &str, opts: &[&str]) -> bool {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            addr,
            "-servername",
            "localhost",
            "-ign_eof",
        ])
        .args(opts)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl");
    let _ = child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.contains("HTTP/1.1 200")
}

#[test]
fn tls_12_and_13_with_goed_suites_only() {
    let dir = tempdir();
    let data = dir.path().join("data");
    ok(&data, &["init", "--demo"]);
    // An RSA certificate, so that RSA key exchange and CBC suites could be offered at all.
    let (key, cert) = openssl_rsa(dir.path(), 2048, "localhost");
    let server = Server::start(
        &data,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let a = server.addr.as_str();
    assert!(s_client(a, &["-tls1_3"]), "TLS 1.3");
    assert!(
        s_client(a, &["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"]),
        "TLS 1.2 ECDHE AES-GCM"
    );
    assert!(
        s_client(a, &["-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305"]),
        "TLS 1.2 ECDHE ChaCha20"
    );
    for (what, opts) in [
        ("TLS 1.1", &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"][..]),
        (
            "CBC",
            &["-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA256"][..],
        ),
        (
            "CBC SHA1",
            &["-tls1_2", "-cipher", "ECDHE-RSA-AES256-SHA"][..],
        ),
        (
            "RSA key exchange",
            &["-tls1_2", "-cipher", "AES128-GCM-SHA256"][..],
        ),
        (
            "DHE",
            &["-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256"][..],
        ),
    ] {
        assert!(!s_client(a, opts), "{what} must be refused");
    }
}

#[test]
fn client_certificates_are_required_where_configured() {
    let server_ca = Ca::new("test server CA");
    let client_ca = Ca::new("test PKIoverheid-like client CA");
    let other_ca = Ca::new("someone else's CA");
    let (dir, data, cert, key) = tls_demo(&server_ca);
    let client_ca_file = save(dir.path(), "client-ca.pem", client_ca.pem.as_bytes());
    // A server with the client CA and `policy`.
    let start = |data: &Path, cert: &Path, key: &Path, policy: &[&str]| {
        let mut args = vec![
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--client-ca",
            client_ca_file.to_str().unwrap(),
        ];
        args.extend_from_slice(policy);
        Server::start(data, &args)
    };
    let server = start(
        &data,
        &cert,
        &key,
        &[
            "--client-auth-path",
            "/MedMij_OAuthclientlist.xml=required",
            "--client-auth-path",
            "/health=required",
        ],
    );
    let (good_cert, good_key) = client_ca.leaf(&[], Some("Ministerie van VWS"));
    let (bad_cert, bad_key) = other_ca.leaf(&[], Some("Mallory BV"));
    let get = |path: &str, client: Option<(&str, &str)>| {
        https(&server.addr, path, &server_ca.pem, client, &[])
    };
    // Optional elsewhere: anonymous and certified clients are served.
    assert_eq!(get("/MedMij_Whitelist.xml", None).unwrap().status, 200);
    assert_eq!(
        get("/MedMij_Whitelist.xml", Some((&good_cert, &good_key)))
            .unwrap()
            .status,
        200
    );
    // Required on the OCL.
    let r = get("/MedMij_OAuthclientlist.xml", None).unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    let r = get("/MedMij_OAuthclientlist.xml", Some((&good_cert, &good_key))).unwrap();
    assert_eq!(r.status, 200);
    // A certificate from another CA does not get through the handshake.
    assert!(get("/MedMij_OAuthclientlist.xml", Some((&bad_cert, &bad_key))).is_err());
    assert!(get("/MedMij_Whitelist.xml", Some((&bad_cert, &bad_key))).is_err());
    // An explicit path policy for /health is obeyed.
    assert_eq!(get("/health", None).unwrap().status, 403);
    assert_eq!(
        get("/health", Some((&good_cert, &good_key)))
            .unwrap()
            .status,
        200
    );
    // `--client-auth required` for all paths leaves /health to load balancers' probes.
    let (_dir2, data2, cert, key) = tls_demo(&server_ca);
    let all = start(&data2, &cert, &key, &["--client-auth", "required"]);
    let get = |path: &str| https(&all.addr, path, &server_ca.pem, None, &[]).unwrap();
    assert_eq!(get("/MedMij_Whitelist.xml").status, 403);
    assert_eq!(get("/health").status, 200);
}

#[test]
fn sighup_loads_a_new_certificate_and_open_connections_go_on() {
    let ca1 = Ca::new("first CA");
    let ca2 = Ca::new("second CA");
    let (dir, data, cert, key) = tls_demo(&ca1);
    let server = Server::start(
        &data,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(
        https(&server.addr, "/health", &ca1.pem, None, &[])
            .unwrap()
            .status,
        200
    );
    // An open keep-alive connection made with the first certificate.
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::{pem::PemObject, CertificateDer};
    for c in CertificateDer::pem_slice_iter(ca1.pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn = rustls::ClientConnection::new(
        Arc::new(cfg),
        rustls_pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let tcp = TcpStream::connect(&server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut old = rustls::StreamOwned::new(conn, tcp);
    let ask = b"GET /MedMij_Zorgaanbiederslijst.xml?api=2 HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let read_one = |s: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>| {
        let mut buf = Vec::new();
        let mut b = [0u8; 8192];
        loop {
            let n = s.read(&mut b).unwrap();
            assert!(n > 0, "connection closed");
            buf.extend_from_slice(&b[..n]);
            if buf.ends_with(b"</Zorgaanbiederslijst>\n") {
                return buf;
            }
        }
    };
    old.write_all(ask).unwrap();
    assert!(read_one(&mut old).starts_with(b"HTTP/1.1 200"));
    // New files, SIGHUP.
    let (c2, k2) = ca2.leaf(&["localhost"], None);
    std::fs::write(&cert, c2).unwrap();
    std::fs::write(&key, k2).unwrap();
    let st = Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while https(&server.addr, "/health", &ca2.pem, None, &[]).is_err() {
        assert!(Instant::now() < deadline, "new certificate not served");
        std::thread::sleep(Duration::from_millis(100));
    }
    // New connections get the new certificate only.
    assert!(https(&server.addr, "/health", &ca1.pem, None, &[]).is_err());
    // The connection opened before goes on.
    old.write_all(ask).unwrap();
    assert!(read_one(&mut old).starts_with(b"HTTP/1.1 200"));
    drop(dir);
}

#[test]
fn serve_demo_speaks_https_with_a_development_ca() {
    let dir = tempdir();
    let data = dir.path().join("fresh");
    let server = Server::start(&data, &["--demo", "--https"]);
    let ca = std::fs::read_to_string(data.join("dev-tls-ca.pem")).unwrap();
    let r = https(&server.addr, "/MedMij_Whitelist.xml", &ca, None, &[]).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("<Whitelist"));
    // Without --tls-cert, --demo or --insecure-http, serve refuses to start.
    let o = cli(&data, &["serve", "--listen", "127.0.0.1:0"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--insecure-http"));
}

#[test]
fn gzip_variants_are_served_when_accepted() {
    let (_dir, _data, server) = demo_server();
    let plain = server.get("/MedMij_Zorgaanbiederslijst.xml?api=2");
    let gz = request(
        &server.addr,
        "GET",
        "/MedMij_Zorgaanbiederslijst.xml?api=2",
        &[("Accept-Encoding", "gzip, br")],
    );
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gz.header("vary"), Some("Accept-Encoding"));
    assert!(gz.body.len() < plain.body.len() / 2, "compressed");
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(&gz.body[..])
        .read_to_end(&mut text)
        .unwrap();
    assert_eq!(text, plain.body, "the same bytes, byte for byte");
    let etag = gz.header("etag").unwrap().to_string();
    assert_ne!(Some(etag.as_str()), plain.header("etag"));
    let r = request(
        &server.addr,
        "GET",
        "/MedMij_Zorgaanbiederslijst.xml?api=2",
        &[("Accept-Encoding", "gzip"), ("If-None-Match", &etag)],
    );
    assert_eq!(r.status, 304);
    let r = request(
        &server.addr,
        "GET",
        "/MedMij_Zorgaanbiederslijst.xml?api=2",
        &[("Accept-Encoding", "gzip;q=0")],
    );
    assert!(r.header("content-encoding").is_none());
}

#[test]
fn clients_over_their_limit_get_503_with_retry_after() {
    let (_dir, data) = demo();
    let server = Server::start(
        &data,
        &["--max-connections-per-client", "3", "--idle-timeout", "2"],
    );
    // Three idle connections hold this client's places.
    let held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(&server.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let r = server.get("/MedMij_Whitelist.xml");
    assert_eq!(r.status, 503, "{}", r.text());
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    // Idle connections are closed after --idle-timeout; then there is room again.
    for mut c in held {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 1];
        assert_eq!(c.read(&mut b).unwrap_or(0), 0, "idle connection closed");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.get("/MedMij_Whitelist.xml").status, 200);
    // Nothing published yet: 503 with Retry-After too.
    let empty = tempdir();
    let d = empty.path().join("d");
    ok(&d, &["init"]);
    let s = Server::start(&d, &[]);
    let r = s.get("/MedMij_Whitelist.xml");
    assert_eq!(r.status, 503);
    assert!(r.header("retry-after").is_some());
}

/// Clients that request the large ZAL and never read fill the connection limit. The send
/// timeout (between two writes, as nginx's) closes them, so a client from another address
/// is served again within it, and the closes are counted.
#[test]
fn slow_readers_are_closed_by_the_send_timeout() {
    let dir = tempdir();
    let data = dir.path().join("data");
    ok(&data, &["init"]);
    add_zorgaanbieders(&data, 3000);
    ok(
        &data,
        &["publish", "-m", "a ZAL larger than the socket buffers"],
    );
    let server = Server::start_env(
        &data,
        &[
            "--max-connections",
            "6",
            "--send-timeout",
            "2",
            "--idle-timeout",
            "60",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    let zal = b"GET /MedMij_Zorgaanbiederslijst.xml?release=2.0.0 HTTP/1.1\r\nHost: x\r\n\r\n";
    let slow: Vec<TcpStream> = (0..6)
        .map(|_| {
            let mut s = connect_from("127.0.0.1", &server.addr, Some(4096));
            s.write_all(zal).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let other = || {
        request_on(
            connect_from("127.0.0.2", &server.addr, None),
            &server.addr,
            "GET",
            "/MedMij_Whitelist.xml",
            &[],
        )
    };
    assert_eq!(other().status, 503, "the slow readers hold every place");
    let t = Instant::now();
    while other().status != 200 {
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "not served within the send timeout: {}",
            server.stderr.lock().unwrap().join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
    // Each slow connection got part of the ZAL, then was closed.
    for mut s in slow {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        assert!(got.starts_with(b"HTTP/1.1 200"), "{}", got.len());
        let length: usize = String::from_utf8_lossy(&got)
            .lines()
            .find_map(|l| {
                l.strip_prefix("content-length: ")
                    .map(|v| v.trim().to_string())
            })
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            got.len() < length,
            "{} of {length} bytes: not cut off",
            got.len()
        );
    }
    let m = server.metrics.clone().unwrap();
    let text = request(&m, "GET", "/metrics", &[]).text();
    assert!(text.contains("stelselnode_send_timeouts_total 6"), "{text}");
    assert!(server.wait_stderr("the client read nothing for 2 s", 5));
}

#[test]
fn sigterm_stops_accepting_finishes_and_exits_zero() {
    let (_dir, data) = demo();
    let mut server = Server::start(&data, &["--shutdown-grace", "5"]);
    let pid = server.child.id().to_string();
    // Handlers are installed before the "listening" line (CI once saw a SIGTERM sent right
    // after it kill the process); SIGHUP on plain HTTP is a no-op, not the default kill.
    let st = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(st.success());
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(server.get("/health").status, 200, "SIGHUP must not stop it");
    // Access-log lines are written by a thread of their own, in batches: every request's
    // line is out by the time the process has exited.
    for _ in 0..300 {
        assert_eq!(server.get("/MedMij_Whitelist.xml").status, 200);
    }
    // An idle keep-alive connection must not hold the shutdown up.
    let _idle = TcpStream::connect(&server.addr).unwrap();
    let t = Instant::now();
    let st = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(st.success());
    let code = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "still running");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(code.success(), "{code:?}");
    assert!(
        TcpStream::connect(&server.addr).is_err(),
        "no longer accepting"
    );
    assert!(server.wait_stderr("stelselnode::app: stopped", 5));
    let lines = server.stderr.lock().unwrap();
    let logged = lines
        .iter()
        .filter(|l| l.contains("stelselnode::access:"))
        .count();
    assert_eq!(logged, 301, "one access-log line per request, all flushed");
}

#[test]
fn publications_swap_the_served_set_atomically_under_load() {
    let (_dir, data, server) = demo_server();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let addr = server.addr.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = request(&addr, "GET", "/MedMij_Whitelist.xml", &[]);
                    assert_eq!(r.status, 200, "{}", r.text());
                    let text = r.text();
                    assert!(text.ends_with("</Whitelist>\n"), "complete document");
                    assert_eq!(text.matches("<Volgnummer>").count(), 1);
                    assert_eq!(
                        r.header("content-length").and_then(|l| l.parse().ok()),
                        Some(r.body.len())
                    );
                    seen.push(volgnummer(&text));
                }
                seen
            })
        })
        .collect();
    for i in 0..5 {
        ok(
            &data,
            &["whitelist", "add", &format!("node{i}.load.example.nl")],
        );
        ok(&data, &["publish", "-m", &format!("load {i}")]);
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut all = Vec::new();
    for c in clients {
        let seen = c.join().expect("a client saw a broken answer");
        // Each client sees Volgnummers only rise.
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
        all.extend(seen);
    }
    assert!(
        all.contains(&1) && all.contains(&6),
        "saw {:?}..",
        all.first()
    );
}

#[test]
fn metrics_count_requests_publications_and_certificates() {
    let (_dir, data) = demo();
    let server = Server::start(&data, &["--metrics-listen", "127.0.0.1:0"]);
    let m = server.metrics.clone().expect("metrics address printed");
    let r = server.get("/MedMij_Whitelist.xml");
    let etag = r.header("etag").unwrap().to_string();
    let r304 = request(
        &server.addr,
        "GET",
        "/MedMij_Whitelist.xml",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(r304.status, 304);
    assert_eq!(
        server.get("/MedMij_Whitelist.xml?release=9.9.9").status,
        404
    );
    ok(&data, &["whitelist", "add", "metrics.example.nl"]);
    ok(&data, &["publish", "-m", "for the metrics"]);
    let text = request(&m, "GET", "/metrics", &[]).text();
    for needle in [
        "stelselnode_requests_total{list=\"whitelist\",release=\"1.1.1\",status=\"200\"} 1",
        "stelselnode_requests_total{list=\"whitelist\",release=\"1.1.1\",status=\"304\"} 1",
        "status=\"404\"} 1",
        "stelselnode_publications_total 1",
        "stelselnode_publication_duration_seconds_count 1",
        "stelselnode_volgnummer{list=\"whitelist\"} 2",
        "stelselnode_volgnummer{list=\"zorgaanbiederslijst\"} 1",
        "stelselnode_seconds_since_last_publication",
        "stelselnode_certificate_expiry_seconds{certificate=\"signing\"}",
        "stelselnode_clients{release=\"1.1.1\"} 1",
        "stelselnode_response_bytes_total{list=\"whitelist\"}",
    ] {
        assert!(text.contains(needle), "{needle} missing in:\n{text}");
    }
    // Connections open, per serving thread: an idle keep-alive connection is one of them
    // until it closes.
    let open_connections = || {
        request(&m, "GET", "/metrics", &[])
            .text()
            .lines()
            .filter(|l| l.starts_with("stelselnode_connections_open{worker=\"serve-"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum::<u64>()
    };
    let wait_for = |n: u64| {
        let t = Instant::now();
        while open_connections() != n {
            assert!(t.elapsed() < Duration::from_secs(5), "never {n} open");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for(0);
    let idle = TcpStream::connect(&server.addr).unwrap();
    wait_for(1);
    drop(idle);
    wait_for(0);
    // Only on a loopback address.
    let o = cli(
        &tempdir().path().join("x"),
        &[
            "serve",
            "--demo",
            "--insecure-http",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "0.0.0.0:0",
        ],
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("loopback"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn status_clients_shows_who_uses_which_release_and_survives_a_restart() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let (dir, data, cert, key) = tls_demo(&server_ca);
    let client_ca_file = save(dir.path(), "client-ca.pem", client_ca.pem.as_bytes());
    let args = [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--client-ca",
        client_ca_file.to_str().unwrap(),
    ];
    let mut server = Server::start(&data, &args);
    let (a_cert, a_key) = client_ca.leaf(&[], Some("PGO Alfa"));
    let (b_cert, b_key) = client_ca.leaf(&[], Some("PGO Beta"));
    for l in LISTS {
        let r = https(
            &server.addr,
            &format!("/{l}"),
            &server_ca.pem,
            Some((&a_cert, &a_key)),
            &[],
        );
        assert_eq!(r.unwrap().status, 200);
    }
    let r = https(
        &server.addr,
        "/MedMij_Zorgaanbiederslijst.xml?api=2",
        &server_ca.pem,
        Some((&b_cert, &b_key)),
        &[],
    );
    assert_eq!(r.unwrap().status, 200);
    // The access log says who fetched what, in plain text when stderr is not a terminal
    // (a journal or a file must not fill with colour codes).
    assert!(server.wait_stderr("cert_o=\"PGO Beta\"", 5));
    {
        let lines = server.stderr.lock().unwrap();
        assert!(
            lines.iter().all(|l| !l.contains('\u{1b}')),
            "colour codes in a log that is not a terminal: {lines:?}"
        );
        let line = lines
            .iter()
            .find(|l| l.contains("stelselnode::access") && l.contains("PGO Beta"))
            .unwrap();
        for field in [
            "method=GET",
            "path=\"/MedMij_Zorgaanbiederslijst.xml\"",
            "list=\"zorgaanbiederslijst\"",
            "release=\"2.0.0\"",
            "status=200",
        ] {
            assert!(line.contains(field), "{field} in {line}");
        }
    }
    // A new Whitelist: Alfa now holds an older Volgnummer.
    ok(&data, &["whitelist", "add", "nieuw.example.nl"]);
    ok(&data, &["publish", "-m", "new whitelist"]);
    let check = |text: &str| {
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let clients = v["clients"].as_array().unwrap();
        let find = |org: &str| {
            clients
                .iter()
                .find(|c| c["client"].as_str().unwrap().starts_with(org))
                .unwrap_or_else(|| panic!("{org} in {text}"))
                .clone()
        };
        let a = find("PGO Alfa #");
        assert_eq!(a["releases_24h"], serde_json::json!(["1.1.1"]));
        assert_eq!(a["lists"]["whitelist"]["volgnummer"], 1);
        assert_eq!(a["lists"]["whitelist"]["outdated"], true);
        assert_eq!(a["lists"]["zorgaanbiederslijst"]["outdated"], false);
        let b = find("PGO Beta #");
        assert_eq!(b["releases_30d"], serde_json::json!(["2.0.0"]));
        assert!(b["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "never fetched whitelist"));
        assert_eq!(v["releases"]["1.1.1"].as_array().unwrap().len(), 1);
        assert_eq!(v["releases"]["2.0.0"].as_array().unwrap().len(), 1);
        // Each release's use in all, kept apart from the (bounded) client records.
        assert!(v["release_use"]["2.0.0"]["requests"].as_u64().unwrap() >= 1);
        assert!(v["release_use"]["2.0.0"]["last_used_identified"].is_string());
    };
    check(&ok(&data, &["status", "--clients", "--json"]));
    let text = ok(&data, &["status", "--clients"]);
    assert!(
        text.contains("OUTDATED") && text.contains("release 1.1.1: 1 client(s)"),
        "{text}"
    );
    // Kept across a restart (and readable without a server).
    server.kill();
    check(&ok(&data, &["status", "--clients", "--json"]));
    let _server = Server::start(&data, &args);
    check(&ok(&data, &["status", "--clients", "--json"]));
}
