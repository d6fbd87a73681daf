//! Trust: verification that fails closed, input that is checked and bounded, and no
//! publication or edit that is silently lost. Every test runs the real binary.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn save(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn fingerprint(cert_pem: &Path) -> String {
    let der =
        stelselnode::sign::cert_der_from_pem(&std::fs::read_to_string(cert_pem).unwrap()).unwrap();
    stelselnode::digest::sha256_hex(&der)
}

// ---------------------------------------------------------------------------------------
// 1. Verification fails closed

#[test]
fn verify_refuses_a_signature_whose_certificate_is_not_pinned() {
    let (dir, data, operator) = demo_server();
    let operator_cert = save(
        dir.path(),
        "operator.pem",
        &operator.get("/signing-certificate.pem").body,
    );
    // An attacker's Stelselnode: same lists, its own key, certificate in KeyInfo.
    let attacker_data = dir.path().join("attacker");
    ok(&attacker_data, &["init", "--demo"]);
    let attacker = Server::start(&attacker_data, &[]);
    let attacker_cert = attacker_data.join("signing-cert.pem");
    let doc = save(
        dir.path(),
        "MedMij_Whitelist.xml",
        &attacker.get("/MedMij_Whitelist.xml").body,
    );
    save(
        dir.path(),
        "MedMij_Whitelist.xml.sig",
        &attacker.get("/MedMij_Whitelist.xml.sig").body,
    );
    let zal3 = save(
        dir.path(),
        "MedMij_Zorgaanbiederslijst.xml",
        &attacker.get("/MedMij_Zorgaanbiederslijst.xml?api=2").body,
    );
    save(
        dir.path(),
        "MedMij_Zorgaanbiederslijst.xml.sig",
        &attacker
            .get("/MedMij_Zorgaanbiederslijst.xml.sig?api=2")
            .body,
    );
    let url = format!("http://{}/MedMij_Whitelist.xml", attacker.addr);
    for target in [doc.to_str().unwrap(), zal3.to_str().unwrap(), url.as_str()] {
        // Without a pinned certificate: refused, naming the certificate and how to pin.
        let err = fails(&data, &["verify", target]);
        assert!(err.contains("not pinned"), "{err}");
        assert!(err.contains(&fingerprint(&attacker_cert)), "{err}");
        assert!(err.contains("--cert PEM"), "{err}");
        // Pinned to the operator's certificate: the attacker's signature fails.
        let err = fails(
            &data,
            &["verify", target, "--cert", operator_cert.to_str().unwrap()],
        );
        assert!(err.contains("SignatureValue"), "{err}");
        // Trusting the embedded certificate is possible, but only when asked for.
        let out = ok(&data, &["verify", target, "--trust-embedded-cert"]);
        assert!(out.contains("NOT pinned"), "{out}");
    }
    // Pinning and trusting at once is a contradiction.
    let o = cli(
        &data,
        &[
            "verify",
            doc.to_str().unwrap(),
            "--cert",
            operator_cert.to_str().unwrap(),
            "--trust-embedded-cert",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
}

/// IBM037 (EBCDIC) bytes for the printable ASCII in `s`, through iconv as another tool
/// would write them.
fn ebcdic(s: &str) -> Vec<u8> {
    let mut child = std::process::Command::new("iconv")
        .args(["-f", "UTF-8", "-t", "IBM037"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("iconv (libc-bin)");
    child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn non_utf8_declared_encodings_dtds_and_processing_instructions_are_refused_everywhere() {
    let (dir, data, server) = demo_server();
    let cert = save(
        dir.path(),
        "cert.pem",
        &server.get("/signing-certificate.pem").body,
    );
    let doc_bytes = server.get("/MedMij_Whitelist.xml").body;
    let doc = save(dir.path(), "MedMij_Whitelist.xml", &doc_bytes);
    let sig = server.get("/MedMij_Whitelist.xml.sig").text();
    let sig_body = sig.split_once("?>").unwrap().1;
    // A signature file in EBCDIC with a DTD: a byte scan for "<!DOCTYPE" finds nothing.
    let evil = ebcdic(&format!(
        "<?xml version=\"1.0\" encoding=\"IBM037\"?><!DOCTYPE x [<!ENTITY e \"x\">]>{sig_body}"
    ));
    assert!(!evil.windows(9).any(|w| w == b"<!DOCTYPE"));
    let evil_sig = save(dir.path(), "evil.sig", &evil);
    let err = fails(
        &data,
        &[
            "verify",
            doc.to_str().unwrap(),
            "--sig",
            evil_sig.to_str().unwrap(),
            "--cert",
            cert.to_str().unwrap(),
        ],
    );
    assert!(err.contains("not UTF-8"), "{err}");
    // The same list in EBCDIC is not imported either.
    let text = String::from_utf8(doc_bytes.clone()).unwrap();
    let body = text.split_once("?>").unwrap().1;
    let list = save(
        dir.path(),
        "ebcdic.xml",
        &ebcdic(&format!(
            "<?xml version=\"1.0\" encoding=\"IBM037\"?>{body}"
        )),
    );
    let dump = ok(&data, &["dump"]);
    let err = fails(&data, &["import", list.to_str().unwrap()]);
    assert!(err.contains("not UTF-8"), "{err}");
    // UTF-8 bytes that declare another encoding, a DTD, a processing instruction.
    for (name, bytes, needle) in [
        (
            "declared.xml",
            text.replacen("encoding=\"UTF-8\"", "encoding=\"UTF-16\"", 1),
            "declares encoding 'UTF-16'",
        ),
        (
            "dtd.xml",
            text.replacen("?>", "?><!DOCTYPE Whitelist>", 1),
            "<!DOCTYPE>",
        ),
        (
            "pi.xml",
            text.replacen("<MedMijNodes>", "<?evil data?><MedMijNodes>", 1),
            "processing instruction",
        ),
    ] {
        let f = save(dir.path(), name, bytes.as_bytes());
        let err = fails(&data, &["import", f.to_str().unwrap()]);
        assert!(err.contains(needle), "{name}: {err}");
        let err = fails(
            &data,
            &[
                "verify",
                f.to_str().unwrap(),
                "--cert",
                cert.to_str().unwrap(),
            ],
        );
        assert!(err.contains(needle), "{name}: {err}");
    }
    assert_eq!(ok(&data, &["dump"]), dump, "nothing was written");
}

/// A plain-HTTP server on loopback that answers every connection with `respond`.
fn raw_server(respond: fn(std::net::TcpStream)) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || respond(s));
        }
    });
    addr
}

fn read_head(s: &mut impl Read) {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
        buf.push(b[0]);
    }
}

#[test]
fn verify_url_has_a_total_deadline_and_a_size_cap() {
    let dir = tempdir();
    let data = dir.path().join("data");
    // Headers at once, then one byte every 100 ms: a header timeout never fires.
    let drip = raw_server(|mut s| {
        read_head(&mut s);
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: 100000\r\n\r\n<",
        );
        for _ in 0..600 {
            std::thread::sleep(Duration::from_millis(100));
            if s.write_all(b" ").is_err() {
                return;
            }
        }
    });
    let t = Instant::now();
    let err = fails(
        &data,
        &[
            "verify",
            &format!("http://{drip}/MedMij_Whitelist.xml"),
            "--timeout",
            "2",
            "--trust-embedded-cert",
        ],
    );
    assert!(err.contains("within 2 s"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());

    // A 3 GiB body is refused from its Content-Length, without downloading it.
    let huge = raw_server(|mut s| {
        read_head(&mut s);
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: 3221225472\r\n\r\n",
        );
        let zeros = vec![b' '; 1 << 16];
        while s.write_all(&zeros).is_ok() {}
    });
    let err = fails(
        &data,
        &[
            "verify",
            &format!("http://{huge}/MedMij_Whitelist.xml"),
            "--trust-embedded-cert",
        ],
    );
    assert!(err.contains("announces 3221225472 bytes"), "{err}");

    // Without a length (chunked, endless): refused once it passes --max-size.
    let endless = raw_server(|mut s| {
        read_head(&mut s);
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
        for _ in 0..100_000 {
            if s.write_all(chunk.as_bytes()).is_err() {
                return;
            }
        }
    });
    let t = Instant::now();
    let err = fails(
        &data,
        &[
            "verify",
            &format!("http://{endless}/MedMij_Whitelist.xml"),
            "--max-size",
            "1MiB",
            "--trust-embedded-cert",
        ],
    );
    assert!(
        err.contains("larger than the maximum of 1048576 bytes"),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
}

/// A test CA and a server certificate for `localhost` signed by it (PEM).
fn test_ca() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "stelselnode test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    (ca.pem(), leaf.pem(), leaf_key.serialize_pem())
}

/// An https server on loopback that passes every GET on to `upstream` (plain http).
fn tls_proxy(upstream: String, cert_pem: &str, key_pem: &str) -> u16 {
    use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let cfg = std::sync::Arc::new(cfg);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in l.incoming().flatten() {
            let cfg = cfg.clone();
            let upstream = upstream.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(cfg).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match tls.read(&mut b) {
                        Ok(1) => head.push(b[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = head.split(' ').nth(1).unwrap_or("/").to_string();
                let r = request(&upstream, "GET", &target, &[]);
                let mut out = format!(
                    "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    r.status,
                    r.header("content-type").unwrap_or(""),
                    r.body.len()
                )
                .into_bytes();
                out.extend_from_slice(&r.body);
                let _ = tls.write_all(&out);
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    port
}

#[test]
fn verify_fetches_over_https_with_the_operators_ca() {
    let (dir, data, server) = demo_server();
    let cert = save(
        dir.path(),
        "signing.pem",
        &server.get("/signing-certificate.pem").body,
    );
    let (ca, leaf, key) = test_ca();
    let ca_file = save(dir.path(), "ca.pem", ca.as_bytes());
    let port = tls_proxy(server.addr.clone(), &leaf, &key);
    let url = format!("https://localhost:{port}/MedMij_Whitelist.xml?release=1.1.2");
    let out = ok(
        &data,
        &[
            "verify",
            &url,
            "--ca",
            ca_file.to_str().unwrap(),
            "--cert",
            cert.to_str().unwrap(),
        ],
    );
    assert!(
        out.contains("XSD: valid") && out.contains("pinned certificate"),
        "{out}"
    );
    // The system roots do not know the test CA: the TLS handshake fails, nothing verified.
    let err = fails(&data, &["verify", &url, "--cert", cert.to_str().unwrap()]);
    assert!(err.contains("TLS") || err.contains("certificate"), "{err}");
}

/// Write tar entries in the export's canonical form (sorted, fixed metadata).
fn canonical_tar(entries: &std::collections::BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn an_audit_archive_with_an_unreferenced_certificate_is_refused() {
    let (dir, data, server) = demo_server();
    let cert = save(
        dir.path(),
        "cert.pem",
        &server.get("/signing-certificate.pem").body,
    );
    let archive = dir.path().join("audit.tar");
    ok(
        &data,
        &["history", "export", "--out", archive.to_str().unwrap()],
    );
    let bytes = std::fs::read(&archive).unwrap();
    let mut entries = std::collections::BTreeMap::new();
    for e in tar::Archive::new(bytes.as_slice()).entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().to_string_lossy().into_owned();
        let mut v = Vec::new();
        e.read_to_end(&mut v).unwrap();
        entries.insert(p, v);
    }
    assert_eq!(
        canonical_tar(&entries),
        bytes,
        "the test writes the canonical form"
    );
    // Another valid certificate, named as the format names certificates.
    let other = dir.path().join("other");
    ok(&other, &["init"]);
    let pem = std::fs::read(other.join("signing-cert.pem")).unwrap();
    let der = stelselnode::sign::cert_der_from_pem(&String::from_utf8_lossy(&pem)).unwrap();
    let hash = stelselnode::digest::sha256_hex(&der);
    let norm = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        let mut s = String::from("-----BEGIN CERTIFICATE-----\n");
        for c in b64.as_bytes().chunks(64) {
            s.push_str(std::str::from_utf8(c).unwrap());
            s.push('\n');
        }
        s + "-----END CERTIFICATE-----\n"
    };
    entries.insert(
        format!("certificates/{}.pem", &hash[..16]),
        norm.into_bytes(),
    );
    let extra = save(dir.path(), "extra.tar", &canonical_tar(&entries));
    let err = fails(
        &data,
        &[
            "history",
            "verify",
            extra.to_str().unwrap(),
            "--cert",
            cert.to_str().unwrap(),
        ],
    );
    assert!(err.contains("carried by no signature"), "{err}");
    entries.remove(&format!("certificates/{}.pem", &hash[..16]));
    // The archive's own certificate once more under another name, or any file the format
    // does not define: refused, before its bytes are read.
    let (own_name, own_pem) = entries
        .iter()
        .find(|(p, _)| p.starts_with("certificates/"))
        .map(|(p, v)| (p.clone(), v.clone()))
        .unwrap();
    for extra_path in [
        format!("{own_name}.old"),
        own_name.replace("certificates/", "certificates/copy-"),
        "zz/0".to_string(),
    ] {
        let mut more = entries.clone();
        more.insert(extra_path.clone(), own_pem.clone());
        let f = save(dir.path(), "more.tar", &canonical_tar(&more));
        let err = fails(
            &data,
            &[
                "history",
                "verify",
                f.to_str().unwrap(),
                "--cert",
                cert.to_str().unwrap(),
            ],
        );
        assert!(
            err.contains(&extra_path) && err.contains("not a file an audit archive holds"),
            "{extra_path}: {err}"
        );
    }
    ok(
        &data,
        &[
            "history",
            "verify",
            archive.to_str().unwrap(),
            "--cert",
            cert.to_str().unwrap(),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// 2. Imports are idempotent and exact

#[test]
fn exporting_and_importing_a_release_changes_nothing() {
    let (dir, data, server) = demo_server();
    // An offering added in an older Interfaceversie after a newer one, and Systeemrollen
    // given out of order: the registry keeps one canonical order.
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
            "https://thuis.example.nl/oauth/authorize",
            "--token-endpoint",
            "https://thuis.example.nl/oauth/token",
            "--systeemrol",
            "ZZ-LAST=https://thuis.example.nl/fhir/z",
            "--systeemrol",
            "AA-FIRST=https://thuis.example.nl/fhir/a",
        ],
    );
    ok(&data, &["publish", "-m", "older interfaceversie"]);
    let seq = |s: &Server| -> serde_json::Value {
        let h: serde_json::Value = serde_json::from_slice(&s.get("/health").body).unwrap();
        h["lists"].clone()
    };
    let before = seq(&server);
    for release in ["1.1.1", "1.1.2", "2.0.0"] {
        let out = dir.path().join(format!("export-{release}"));
        ok(
            &data,
            &[
                "export",
                "--release",
                release,
                "--out",
                out.to_str().unwrap(),
            ],
        );
        let files: Vec<String> = LISTS
            .iter()
            .map(|l| out.join(l).to_str().unwrap().to_string())
            .collect();
        let mut args = vec!["import"];
        args.extend(files.iter().map(|s| s.as_str()));
        let mut dry = args.clone();
        dry.push("--dry-run");
        let d = ok(&data, &dry);
        assert!(d.contains("the import changes nothing"), "{release}: {d}");
        ok(&data, &args);
        let diff = ok(&data, &["diff"]);
        assert!(diff.contains("no pending changes"), "{release}: {diff}");
        let p = ok(&data, &["publish", "-m", "reimport"]);
        assert!(p.contains("nothing changed"), "{release}: {p}");
    }
    assert_eq!(seq(&server), before, "no Volgnummer rose");
}

#[test]
fn keys_that_are_equal_after_trimming_are_an_error_naming_both() {
    let dir = tempdir();
    let data = dir.path().join("data");
    ok(&data, &["init"]);
    let gnl =
        std::fs::read_to_string(example("gegevensdienstnamenlijst-release1-example.xml")).unwrap();
    // The second entry gets id " 1 ": another string to the XSD, the same id trimmed.
    let first = gnl.find("<GegevensdienstId>").unwrap();
    let second = first + 1 + gnl[first + 1..].find("<GegevensdienstId>").unwrap();
    let end = second + gnl[second..].find("</GegevensdienstId>").unwrap();
    let mut doubled = gnl.clone();
    doubled.replace_range(second..end, "<GegevensdienstId> 1 ");
    assert!(doubled.contains("<GegevensdienstId>1</GegevensdienstId>"));
    let f = save(dir.path(), "gnl.xml", doubled.as_bytes());
    let err = fails(&data, &["import", f.to_str().unwrap()]);
    assert!(
        err.contains("'1'") && err.contains("' 1 '") && err.contains("white space"),
        "{err}"
    );
    assert!(ok(&data, &["gegevensdienst", "list"]).trim().is_empty());
}

#[test]
fn offending_values_are_clipped_and_dns_labels_name_their_rule() {
    let (dir, data, _server) = demo_server();
    let long = format!("{}.nl", "a".repeat(100_000));
    let err = fails(&data, &["whitelist", "add", &long]);
    assert!(
        err.contains("(100003 characters)"),
        "{}",
        &err[..err.len().min(500)]
    );
    assert!(err.len() < 2_000, "{} bytes of error", err.len());
    let label = format!("{}.nl", "b".repeat(64));
    let err = fails(&data, &["whitelist", "add", &label]);
    assert!(
        err.contains("label of 64 characters") && err.contains("at most 63"),
        "{err}"
    );
    // Through an imported file, where libxml2's message quotes the value.
    let wl = std::fs::read_to_string(example("whitelist-release2-fv5-example.xml")).unwrap();
    let i = wl.find("<Hostname>").unwrap() + "<Hostname>".len();
    let mut big = wl.clone();
    big.insert_str(i, &"X".repeat(1_000_000));
    let f = save(dir.path(), "big.xml", big.as_bytes());
    let err = fails(&data, &["import", f.to_str().unwrap()]);
    assert!(err.contains("XXXX"), "{}", &err[..err.len().min(500)]);
    assert!(err.len() < 5_000, "{} bytes of error", err.len());
}

#[test]
fn hostile_endpoints_names_operators_and_reasons_are_refused() {
    let (_dir, data, _server) = demo_server();
    let dump = ok(&data, &["dump"]);
    let offer = |auth: &str, rol: &str| -> Vec<String> {
        [
            "zorgaanbieder",
            "add",
            "ziekenhuisnieuw@medmij",
            "--aanbiedertype",
            "ZA",
            "--interfaceversie",
            "1.1.0",
            "--gegevensdienst",
            "4",
            "--authorization-endpoint",
            auth,
            "--token-endpoint",
            "https://nieuw.example.nl/oauth/token",
            "--systeemrol",
            rol,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    for (auth, rol, needle) in [
        (
            "https://nieuw.example.nl/oauth/../admin",
            "MM-X=https://nieuw.example.nl/fhir",
            "'..'",
        ),
        (
            "https://nieuw.example.nl/oauth/authorize",
            "MM-X=https://nieuw.example.nl/fhir/%2e%2e/x",
            "%2e",
        ),
        (
            "https://nieuw.example.nl/oauth/author\u{202E}ezi",
            "MM-X=https://nieuw.example.nl/fhir",
            "U+202E",
        ),
    ] {
        let args = offer(auth, rol);
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let err = fails(&data, &args);
        assert!(err.contains(needle), "{needle}: {err}");
    }
    let err = fails(
        &data,
        &[
            "gegevensdienst",
            "add",
            "77",
            "--weergavenaam",
            "Medicatie\u{2066}gegevens",
        ],
    );
    assert!(err.contains("U+2066"), "{err}");
    let err = fails(
        &data,
        &[
            "oauthclient",
            "add",
            "pgo.example.nl",
            "--organisatienaam",
            "PGO \u{202B}B.V.",
        ],
    );
    assert!(err.contains("U+202B"), "{err}");
    // A newline in a reason or an operator name would forge a line in diff/history.
    let o = cli(
        &data,
        &[
            "--reason",
            "ok\nedit 2026 by admin: forged",
            "whitelist",
            "add",
            "x.example.nl",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("control character"));
    let o = cli(
        &data,
        &[
            "--operator",
            "mallory\nadmin",
            "whitelist",
            "add",
            "x.example.nl",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = fails(&data, &["publish", "-m", "first line\nsecond line"]);
    assert!(err.contains("control character"), "{err}");
    assert_eq!(ok(&data, &["dump"]), dump, "nothing was written");
}

#[test]
fn a_publication_with_an_empty_whitelist_is_refused() {
    let dir = tempdir();
    let data = dir.path().join("data");
    ok(&data, &["init"]);
    ok(
        &data,
        &[
            "gegevensdienst",
            "add",
            "1",
            "--weergavenaam",
            "Basisgegevens",
        ],
    );
    let err = fails(&data, &["publish", "-m", "first"]);
    assert!(err.contains("Whitelist would be empty"), "{err}");
    assert!(ok(&data, &["history", "list"]).contains("no publications"));
    ok(&data, &["whitelist", "add", "node.example.nl"]);
    ok(&data, &["publish", "-m", "first"]);
}

// ---------------------------------------------------------------------------------------
// 3. Bounded input

#[test]
fn import_refuses_fifos_devices_and_oversize_files_at_once() {
    let (dir, data, _server) = demo_server();
    let fifo = dir.path().join("fifo.xml");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success());
    for target in [fifo.to_str().unwrap(), "/dev/zero"] {
        let t = Instant::now();
        let err = fails(&data, &["import", target]);
        assert!(err.contains("not a regular file"), "{err}");
        let err = fails(&data, &["verify", target, "--trust-embedded-cert"]);
        assert!(err.contains("not a regular file"), "{err}");
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{target} took {:?}",
            t.elapsed()
        );
    }
    let wl = example("whitelist-release2-fv5-example.xml");
    let size = std::fs::metadata(&wl).unwrap().len();
    let err = fails(
        &data,
        &["import", wl.to_str().unwrap(), "--max-size", "100"],
    );
    assert!(
        err.contains(&format!(
            "is {size} bytes, more than the maximum of 100 bytes"
        )),
        "{err}"
    );
    let err = fails(
        &data,
        &["import", wl.to_str().unwrap(), "--max-size", "lots"],
    );
    assert!(err.contains("--max-size"), "{err}");
}

#[test]
fn historic_documents_are_answered_from_the_logged_hash() {
    let (_dir, data, server) = demo_server();
    ok(&data, &["whitelist", "add", "nieuw.example.nl"]);
    ok(&data, &["publish", "-m", "second whitelist"]);
    let show = ok(&data, &["history", "show", "1"]);
    let line = show
        .lines()
        .find(|l| l.contains("Whitelist release2 #1"))
        .expect("logged document");
    let sha = line.rsplit(' ').next().unwrap();
    let old = server.get("/MedMij_Whitelist.xml?volgnummer=1");
    assert_eq!(old.status, 200);
    assert_eq!(stelselnode::digest::sha256_hex(&old.body), sha);
    // Kept only gzipped, it is inflated as it is sent: chunked, with a weak validator (as
    // nginx's gunzip answers on an edge); a HEAD is told its length.
    assert_eq!(old.header("content-length"), None);
    assert_eq!(old.header("transfer-encoding"), Some("chunked"));
    let head = request(
        &server.addr,
        "HEAD",
        "/MedMij_Whitelist.xml?volgnummer=1",
        &[],
    );
    assert_eq!(head.status, 200);
    let len = old.body.len().to_string();
    assert_eq!(head.header("content-length"), Some(len.as_str()));
    assert!(head.body.is_empty());
    let etag = format!("W/\"{}\"", &sha[..32]);
    assert_eq!(old.header("etag"), Some(etag.as_str()));
    assert_eq!(head.header("etag"), Some(etag.as_str()));
    let r = request(
        &server.addr,
        "GET",
        "/MedMij_Whitelist.xml?volgnummer=1",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(r.status, 304);
    // A client that accepts gzip gets the stored history file as it is: its own ETag, and
    // it decompresses to the logged document.
    let gz = request(
        &server.addr,
        "GET",
        "/MedMij_Whitelist.xml?volgnummer=1",
        &[("Accept-Encoding", "gzip")],
    );
    assert_eq!(gz.status, 200);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gz.header("vary"), Some("Accept-Encoding"));
    let etag_gz = format!("\"{}-gzip\"", &sha[..32]);
    assert_eq!(gz.header("etag"), Some(etag_gz.as_str()));
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz.body[..]), &mut plain)
        .unwrap();
    assert_eq!(stelselnode::digest::sha256_hex(&plain), sha);
    let r = request(
        &server.addr,
        "GET",
        "/MedMij_Whitelist.xml?volgnummer=1",
        &[("Accept-Encoding", "gzip"), ("If-None-Match", &etag_gz)],
    );
    assert_eq!(r.status, 304);
    let sig = server.get("/MedMij_Whitelist.xml.sig?volgnummer=1");
    assert_eq!(sig.status, 200);
    assert_eq!(
        sig.header("etag"),
        Some(format!("\"{}-sig\"", &sha[..32]).as_str())
    );
    assert_eq!(
        server.get("/MedMij_Whitelist.xml?volgnummer=99").status,
        404
    );
}

// ---------------------------------------------------------------------------------------
// 4. No change is lost or silently reverted

#[test]
fn a_catalogue_change_during_a_publication_is_not_reverted_and_publications_queue() {
    let dir = tempdir();
    let data = dir.path().join("data");
    ok(&data, &["init", "--demo"]);
    // Every publish pauses 1.5 s right after its snapshot.
    let server = Server::start_env(
        &data,
        &[],
        &[("STELSELNODE_FAILPOINTS", "publish.snapshot=sleep(1500)")],
    );
    ok(&data, &["whitelist", "add", "nieuw.example.nl"]);
    let publish = spawn_cli(&data, &["publish", "-m", "slow"]);
    assert!(server.wait_stderr("failpoint publish.snapshot", 20));
    // Committed while the publish renders: before the fix the publish's catalogue write
    // reverted it.
    ok(&data, &["release", "set-default", "1.1.2"]);
    let p = publish.wait_with_output().unwrap();
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
    let status = ok(&data, &["status"]);
    assert!(status.contains("releases (default 1.1.2)"), "{status}");
    assert!(server
        .get("/health")
        .text()
        .contains("\"default_release\":\"1.1.2\""));
    assert_eq!(
        server.get("/MedMij_Whitelist.xml").header("medmij-release"),
        Some("1.1.2")
    );
    // Two publications at once: the second waits for the first, neither fails.
    ok(&data, &["whitelist", "add", "nog.example.nl"]);
    let a = spawn_cli(&data, &["publish", "-m", "a"]);
    let b = spawn_cli(&data, &["publish", "-m", "b"]);
    for c in [a, b] {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert!(ok(&data, &["diff"]).contains("no pending changes"));
}

/// Served bytes of every list, to compare before and after a failed publication.
fn served(server: &Server) -> Vec<Vec<u8>> {
    LISTS
        .iter()
        .flat_map(|l| {
            ["", "?api=2"]
                .iter()
                .map(|q| server.get(&format!("/{l}{q}")).body)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_failure_inside_render_or_commit_changes_nothing() {
    for point in ["publish.render", "publish.staged", "publish.commit"] {
        let dir = tempdir();
        let data = dir.path().join("data");
        ok(&data, &["init", "--demo"]);
        let spec = format!("{point}=error");
        let mut server =
            Server::start_env(&data, &[], &[("STELSELNODE_FAILPOINTS", spec.as_str())]);
        ok(&data, &["whitelist", "add", "nieuw.example.nl"]);
        let before = served(&server);
        let health = server.get("/health").text();
        let history = ok(&data, &["history", "list"]);
        let err = fails(&data, &["publish", "-m", "will fail"]);
        assert!(err.contains("injected failure"), "{point}: {err}");
        assert!(server.wait_stderr(&format!("failpoint {point}"), 5));
        assert_eq!(served(&server), before, "{point}: served set unchanged");
        assert_eq!(server.get("/health").text(), health, "{point}");
        assert_eq!(ok(&data, &["history", "list"]), history, "{point}");
        assert!(
            ok(&data, &["diff"]).contains("nieuw.example.nl"),
            "still pending"
        );
        // A document written under a temporary name before the failure is gone again.
        let tmp: Vec<_> = std::fs::read_dir(data.join("documents"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with(".tmp"))
            .collect();
        assert!(tmp.is_empty(), "{point}: {tmp:?}");
        // Without the fault the same change publishes.
        server.kill();
        let server = Server::start(&data, &[]);
        ok(&data, &["publish", "-m", "now"]);
        assert!(server
            .get("/MedMij_Whitelist.xml")
            .text()
            .contains("nieuw.example.nl"));
    }
}

#[test]
fn sigkill_inside_commit_publication_and_the_cli_says_it_did_not_commit() {
    let dir = tempdir();
    let data = dir.path().join("data");
    ok(&data, &["init", "--demo"]);
    let cert = data.join("signing-cert.pem");
    let mut server = Server::start_env(
        &data,
        &[],
        &[("STELSELNODE_FAILPOINTS", "publish.commit=sleep(5000)")],
    );
    ok(&data, &["whitelist", "add", "nieuw.example.nl"]);
    let before = served(&server);
    let publish = spawn_cli(&data, &["publish", "-m", "killed"]);
    // Every table of the publication is written, the commit not yet done: kill now.
    assert!(server.wait_stderr("failpoint publish.commit", 20));
    server.kill();
    let o = publish.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("connection to the server was lost"), "{err}");
    assert!(
        err.contains("did NOT commit") && err.contains("#1"),
        "{err}"
    );
    // The store restarts consistent and serves the last committed set, verifiably.
    let server = Server::start(&data, &[]);
    assert_eq!(served(&server), before);
    for l in LISTS {
        let url = format!("http://{}/{l}?api=2", server.addr);
        ok(&data, &["verify", &url, "--cert", cert.to_str().unwrap()]);
    }
    let p = ok(&data, &["publish", "-m", "again"]);
    assert!(p.contains("published #2"), "{p}");
}

#[test]
fn a_lost_connection_after_the_commit_is_reported_as_committed() {
    let dir = tempdir();
    let data = dir.path().join("data");
    ok(&data, &["init", "--demo"]);
    let _server = Server::start_env(
        &data,
        &[],
        &[("STELSELNODE_FAILPOINTS", "publish.committed=abort")],
    );
    ok(&data, &["whitelist", "add", "nieuw.example.nl"]);
    let o = cli(&data, &["publish", "-m", "committed, then the server died"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("COMMITTED") && err.contains("#2"), "{err}");
    let server = Server::start(&data, &[]);
    assert!(server
        .get("/MedMij_Whitelist.xml")
        .text()
        .contains("nieuw.example.nl"));
}

/// Right after a crash: a command that finds the registry held by another command (here a
/// publication still running) waits for it, saying so, instead of failing; and a command
/// whose server went away before answering reads the registry itself instead of advising
/// the operator to run `status`.
#[test]
fn commands_right_after_a_crash_wait_for_the_registry_or_read_it_themselves() {
    let dir = tempdir();
    let data = dir.path().join("data");
    ok(&data, &["init", "--demo"]);
    ok(&data, &["whitelist", "add", "nieuw.example.nl"]);
    let publish = std::process::Command::new(BIN)
        .arg("--data")
        .arg(&data)
        .args(["publish", "-m", "holds the registry for a while"])
        .env("STELSELNODE_OPERATOR", "test-operator")
        .env("STELSELNODE_FAILPOINTS", "publish.commit=sleep(3000)")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let refused = fails(&data, &["--lock-wait", "0", "status"]);
    assert!(refused.contains("in use by another process"), "{refused}");
    let t = Instant::now();
    let o = cli(&data, &["status"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("waiting up to 30 s"), "{err}");
    assert!(
        t.elapsed() > Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert!(publish.wait_with_output().unwrap().status.success());
    // A server that accepts the command and dies before it answers.
    let socket = stelselnode::operate::admin::socket_path(&data);
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        for c in listener.incoming() {
            drop(c);
        }
    });
    let o = cli(&data, &["status"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("reading the registry here instead"), "{err}");
    let status = String::from_utf8_lossy(&o.stdout);
    assert!(status.contains("published: publication #2"), "{status}");
    // A change is not made twice behind the operator's back: it says how to tell.
    let err = fails(&data, &["whitelist", "add", "ander.example.nl"]);
    assert!(err.contains("went away before it answered"), "{err}");
    assert!(!err.contains("run `stelselnode status`"), "{err}");
}

// ---------------------------------------------------------------------------------------
// 5. Recovery after a full disk

/// A small tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).ok()?;
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        st.success().then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_disk_is_reported_and_recovered_without_a_restart() {
    let dir = tempdir();
    let Some(fs) = Tmpfs::mount(&dir.path().join("small"), "24m") else {
        eprintln!("SKIPPED a_full_disk_is_reported_and_recovered_without_a_restart: mounting a tmpfs needs root");
        return;
    };
    let data = fs.0.join("data");
    ok(&data, &["init", "--demo"]);
    let mut server = Server::start(&data, &[]);
    ok(&data, &["whitelist", "add", "nieuw.example.nl"]);
    let before = served(&server);
    // Fill the file system to the last byte.
    let filler = fs.0.join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let small = [0u8; 512];
        while f.write_all(&small).is_ok() {}
        let _ = f.sync_all();
    }
    let err = fails(&data, &["publish", "-m", "disk full"]);
    assert!(err.contains("No space left"), "{err}");
    eprintln!("publish on a full disk: {err}");
    let health = server.get("/health");
    assert_eq!(health.status, 200);
    assert!(
        health.text().contains("\"status\":\"degraded\"") && health.text().contains("No space"),
        "{}",
        health.text()
    );
    assert_eq!(
        served(&server),
        before,
        "the last good set is served throughout"
    );
    // Space freed: the next publication succeeds in the same server process.
    std::fs::remove_file(&filler).unwrap();
    let p = ok(&data, &["publish", "-m", "space again"]);
    assert!(p.contains("published #2"), "{p}");
    assert!(server.get("/health").text().contains("\"status\":\"ok\""));
    assert!(server
        .get("/MedMij_Whitelist.xml")
        .text()
        .contains("nieuw.example.nl"));
    server.kill();
    drop(server);
}

// ---------------------------------------------------------------------------------------
// 6. Query semantics, 7. demo data

#[test]
fn queries_outside_the_grammar_are_refused_naming_the_canonical_form() {
    let (_dir, _data, server) = demo_server();
    for (q, needle) in [
        ("rel%65ase=1.1.2", "percent-encoding"),
        ("release=1%2E1%2E2", "percent-encoding"),
        ("release=1.1.2&", "empty parameter"),
        ("release=1.1.2&api=1", "together"),
        ("foo=1", "'foo'"),
        ("Release=1.1.2", "'Release'"),
        ("release=1.1.%ZZ", "percent-encoding"),
    ] {
        let r = server.get(&format!("/MedMij_Whitelist.xml?{q}"));
        assert_eq!(r.status, 400, "{q}");
        assert!(r.text().contains(needle), "{q}: {}", r.text());
        assert!(
            r.text()
                .contains("?release=MAJOR.MINOR.PATCH or ?api=MAJOR"),
            "{q}: {}",
            r.text()
        );
    }
    let r = server.get("/MedMij_Whitelist.xml?release=1.1.2");
    assert_eq!(r.header("medmij-release"), Some("1.1.2"));
}

#[test]
fn apd_is_not_in_force_unless_the_catalogue_says_so() {
    let (_dir, data, server) = demo_server();
    assert!(!server
        .get("/MedMij_Zorgaanbiederslijst.xml?api=2")
        .text()
        .contains(">APD<"));
    let dump = ok(&data, &["dump"]);
    let err = fails(
        &data,
        &[
            "zorgaanbieder",
            "update",
            "thuismetingenvitaal@medmij",
            "--aanbiedertype",
            "APD",
        ],
    );
    assert!(err.contains("not in force in release 2.0.0"), "{err}");
    assert_eq!(ok(&data, &["dump"]), dump);
}

fn rss_kb(pid: u32) -> u64 {
    status_kb(pid, "VmRSS:")
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_large_dry_run_through_the_server_gives_its_memory_back() {
    let (dir, data, server) = demo_server();
    // A Whitelist of 200,000 nodes, about 16 MB.
    let mut wl = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Whitelist xmlns=\"xmlns://afsprakenstelsel.medmij.nl/whitelist/release2/\"><Tijdstempel>2026-01-01T00:00:00Z</Tijdstempel><Volgnummer>5</Volgnummer><MedMijNodes>");
    for i in 0..200_000 {
        wl.push_str(&format!(
            "<MedMijNode><Hostname>node{i}.voorbeeld.nl</Hostname></MedMijNode>"
        ));
    }
    wl.push_str("</MedMijNodes></Whitelist>\n");
    let f = save(dir.path(), "big-whitelist.xml", wl.as_bytes());
    let before = rss_kb(server.child.id());
    let out = ok(&data, &["import", f.to_str().unwrap(), "--dry-run"]);
    assert!(
        out.contains("200000 added") && out.contains("and 199900 more"),
        "{out}"
    );
    // The lowest of a few samples: a worker thread may still be giving memory back.
    let after = (0..10)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            rss_kb(server.child.id())
        })
        .min()
        .unwrap();
    // Most of what the dry run took is given back (without malloc_trim about 80 % stays).
    let peak = status_kb(server.child.id(), "VmHWM:");
    assert!(
        after.saturating_sub(before) < peak.saturating_sub(before) / 2,
        "server grew from {before} kB to {after} kB (peak {peak} kB) after a dry run of {} bytes",
        wl.len()
    );
}
