//! End-to-end: the real server on a loopback port, serving the demo registry.

mod common;
use common::*;
use std::path::Path;

/// (query, list, expected schema version) for every release the issue names.
fn expected_version(query: &str, list: &str) -> &'static str {
    let r = match query {
        "" | "?release=1.1.1" => "1.1.1",
        "?release=1.1.2" | "?api=1" => "1.1.2",
        "?api=2" | "?release=2.0.0" => "2.0.0",
        q => panic!("unexpected query {q}"),
    };
    match (r, list) {
        (_, "MedMij_Whitelist.xml") => "release2",
        (_, "MedMij_Gegevensdienstnamenlijst.xml") => "release1",
        ("1.1.1", _) => "release2",
        ("1.1.2", "MedMij_Zorgaanbiederslijst.xml") => "release2",
        ("1.1.2", _) => "release3",
        ("2.0.0", _) => "release3",
        _ => unreachable!(),
    }
}

fn schema_files(list: &str, version: &str) -> (String, Option<&'static str>) {
    let stem = list
        .trim_start_matches("MedMij_")
        .trim_end_matches(".xml")
        .to_ascii_lowercase();
    let official = match (stem.as_str(), version) {
        ("zorgaanbiederslijst", "release2") => Some("zorgaanbiederslijst-release2-fv5.xsd"),
        ("oauthclientlist", "release2") => Some("oauthclientlist-release2-fv5.xsd"),
        ("whitelist", "release2") => Some("whitelist-release2-fv9.xsd"),
        ("gegevensdienstnamenlijst", "release1") => {
            Some("gegevensdienstnamenlijst-release1-fv7.xsd")
        }
        _ => None,
    };
    (format!("{stem}-{version}.xsd"), official)
}

#[test]
fn every_list_in_every_release_is_schema_valid_and_signed() {
    let (dir, data) = demo();
    let server = Server::start(&data, &[]);
    let cert = dir.path().join("cert.pem");
    let c = server.get("/signing-certificate.pem");
    assert_eq!(c.status, 200);
    assert!(c.text().contains("BEGIN CERTIFICATE"));
    std::fs::write(&cert, &c.body).unwrap();

    for query in ["", "?release=1.1.1", "?release=1.1.2", "?api=1", "?api=2"] {
        for list in LISTS {
            let r = server.get(&format!("/{list}{query}"));
            assert_eq!(r.status, 200, "{list}{query}: {}", r.text());
            assert_eq!(
                r.header("content-type"),
                Some("application/xml"),
                "{list}{query}"
            );
            let body = r.text();
            assert!(
                body.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
                "{list}{query}"
            );
            let version = expected_version(query, list);
            assert!(
                body.contains(&format!("/{version}/\"")),
                "{list}{query} should be {version}: {}",
                &body[..200]
            );
            // Tijdstempel without fractions, UTC.
            let ts = body
                .split("<Tijdstempel>")
                .nth(1)
                .unwrap()
                .split('<')
                .next()
                .unwrap();
            assert_eq!(ts.len(), 20, "{ts}");
            assert!(ts.ends_with('Z'));

            let sub = dir
                .path()
                .join(format!("q{}", query.replace(['?', '=', '.'], "_")));
            std::fs::create_dir_all(&sub).unwrap();
            let doc = sub.join(list);
            std::fs::write(&doc, &r.body).unwrap();
            let (own, official) = schema_files(list, version);
            xmllint_valid(&project_xsd(&own), &doc)
                .unwrap_or_else(|e| panic!("{list}{query} vs {own}: {e}"));
            if let Some(o) = official {
                xmllint_valid(&official_xsd(o), &doc)
                    .unwrap_or_else(|e| panic!("{list}{query} vs official {o}: {e}"));
                assert!(!body.contains("Signature"), "official schemas are closed");
            } else {
                xmlsec1_verify(&cert, &doc, None)
                    .unwrap_or_else(|e| panic!("enveloped {list}{query}: {e}"));
            }

            let s = server.get(&format!("/{list}.sig{query}"));
            assert_eq!(s.status, 200);
            assert_eq!(s.header("content-type"), Some("application/xml"));
            let sig = sub.join(format!("{list}.sig"));
            std::fs::write(&sig, &s.body).unwrap();
            xmlsec1_verify(&cert, &sig, Some((list, &doc)))
                .unwrap_or_else(|e| panic!("detached {list}{query}: {e}"));

            let url = format!("http://{}/{list}{query}", server.addr);
            let v = cli(&data, &["verify", &url, "--cert", cert.to_str().unwrap()]);
            assert!(
                v.status.success(),
                "verify {url}: {}",
                String::from_utf8_lossy(&v.stderr)
            );
            let out = String::from_utf8_lossy(&v.stdout);
            assert!(
                out.contains("detached signature") && out.contains("pinned"),
                "{out}"
            );
        }
    }
}

#[test]
fn release2_zal_shows_only_the_releases_interfaceversie() {
    let (_dir, data) = demo();
    let server = Server::start(&data, &[]);
    let r2 = server
        .get("/MedMij_Zorgaanbiederslijst.xml?release=1.1.2")
        .text();
    let r3 = server.get("/MedMij_Zorgaanbiederslijst.xml?api=2").text();
    // thuismetingenvitaal offers only in Interfaceversie 2.0.0.
    assert!(!r2.contains("thuismetingenvitaal@medmij"));
    assert!(r3.contains("thuismetingenvitaal@medmij"));
    // The release2 document carries the 1.1.0 endpoints only.
    assert!(r2.contains("/oauth/v1/") && !r2.contains("/oauth/v2/"));
    assert!(r3.contains("<InterfaceversieId>1.1.0</InterfaceversieId>"));
    assert!(r3.contains("<InterfaceversieId>2.0.0</InterfaceversieId>"));
    // APD is planned, not in force: the demo (and a default catalogue) has none.
    assert!(r3.contains("<Aanbiedertype>BAZB</Aanbiedertype>"));
    assert!(!r3.contains("<Aanbiedertype>APD</Aanbiedertype>"));
    assert!(r3.contains("<Abonneren>"));
}

#[test]
fn http_semantics() {
    let (_dir, data) = demo();
    let server = Server::start(&data, &[]);
    let a = &server.addr;

    let r = server.get("/MedMij_Whitelist.xml");
    let etag = r.header("etag").unwrap().to_string();
    assert!(etag.starts_with('"') && etag.len() > 10);
    assert!(r.header("last-modified").unwrap().ends_with("GMT"));
    assert!(r.header("cache-control").unwrap().contains("max-age"));
    assert_eq!(r.header("medmij-release"), Some("1.1.1"));
    // The default release 1.1.1 is verouderd.
    assert!(r.header("deprecation").unwrap().starts_with('@'));
    assert!(r.header("sunset").unwrap().ends_with("GMT"));
    let r112 = server.get("/MedMij_Whitelist.xml?release=1.1.2");
    assert!(r112.header("deprecation").is_none() && r112.header("sunset").is_none());

    let nm = request(
        a,
        "GET",
        "/MedMij_Whitelist.xml",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(nm.status, 304);
    assert!(nm.body.is_empty());
    let weak = format!("\"x\", W/{etag}");
    assert_eq!(
        request(
            a,
            "GET",
            "/MedMij_Whitelist.xml",
            &[("If-None-Match", &weak)]
        )
        .status,
        304
    );
    let other = request(
        a,
        "GET",
        "/MedMij_Whitelist.xml",
        &[("If-None-Match", "\"nope\"")],
    );
    assert_eq!(other.status, 200);

    let head = request(a, "HEAD", "/MedMij_Whitelist.xml", &[]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length").unwrap(),
        r.body.len().to_string()
    );
    assert_eq!(head.header("etag"), Some(etag.as_str()));

    let bad = |target: &str, status: u16, needle: &str| {
        let r = server.get(target);
        assert_eq!(r.status, status, "{target}: {}", r.text());
        assert!(
            r.header("content-type").unwrap().starts_with("text/plain"),
            "{target}"
        );
        assert!(r.text().contains(needle), "{target}: {}", r.text());
        assert!(
            !r.text().contains("<?xml"),
            "an error must never look like a list"
        );
    };
    bad("/MedMij_Whitelist.xml?release=9.9.9", 404, "1.1.2");
    bad("/MedMij_Whitelist.xml?api=7", 404, "api=");
    bad("/MedMij_Whitelist.xml?release=1.1.2&api=2", 400, "together");
    bad("/MedMij_Whitelist.xml?api=two", 400, "api");
    bad(
        "/MedMij_Whitelist.xml?release=1.1.2&release=2.0.0",
        400,
        "more than once",
    );
    bad(
        "/MedMij_Onbekend.xml",
        404,
        "MedMij_Zorgaanbiederslijst.xml",
    );
    bad(
        "/MedMij_Whitelist.xml?release=abc",
        400,
        "MAJOR.MINOR.PATCH",
    );
    bad("/MedMij_Whitelist.xml?release=1.1", 400, "release");
    bad("/MedMij_Whitelist.xml?api=02", 400, "api");
    bad("/", 404, "not found");
    // One spelling per document: release and api are not given together, even agreeing.
    bad("/MedMij_Whitelist.xml?release=2.0.0&api=2", 400, "together");

    let post = request(
        a,
        "POST",
        "/MedMij_Whitelist.xml",
        &[("Content-Length", "0")],
    );
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));

    let health = server.get("/health");
    assert_eq!(health.status, 200);
    assert!(health.text().contains("\"status\":\"ok\""));

    // Withdraw 2.0.0 through the running server: 410 at once.
    ok(&data, &["release", "set-status", "2.0.0", "ingetrokken"]);
    bad("/MedMij_Whitelist.xml?release=2.0.0", 410, "ingetrokken");
    bad("/MedMij_Whitelist.xml?api=2", 410, "ingetrokken");
    assert_eq!(
        server.get("/MedMij_Whitelist.xml?release=1.1.2").status,
        200
    );
}

#[test]
fn publication_changes_only_the_lists_whose_content_changed() {
    let (_dir, data) = demo();
    let server = Server::start(&data, &[]);
    let before: Vec<_> = LISTS
        .iter()
        .map(|l| server.get(&format!("/{l}?release=1.1.2")))
        .collect();
    assert!(before.iter().all(|r| volgnummer(&r.text()) == 1));

    // Edits go through the running server's admin socket.
    ok(&data, &["whitelist", "add", "nieuw.knooppunt.nl"]);
    // Not yet published: still the old bytes.
    assert_eq!(
        server.get("/MedMij_Whitelist.xml?release=1.1.2").body,
        before[2].body
    );
    let out = ok(&data, &["publish", "-m", "nieuwe node"]);
    assert!(out.contains("published #2"), "{out}");

    for (i, l) in LISTS.iter().enumerate() {
        for q in ["", "?release=1.1.2", "?api=2"] {
            let r = server.get(&format!("/{l}{q}"));
            if *l == "MedMij_Whitelist.xml" {
                assert_eq!(volgnummer(&r.text()), 2, "{l}{q}");
                assert!(r.text().contains("nieuw.knooppunt.nl"));
            } else {
                assert_eq!(volgnummer(&r.text()), 1, "{l}{q}");
            }
        }
        let now = server.get(&format!("/{l}?release=1.1.2"));
        if i != 2 {
            assert_eq!(now.body, before[i].body, "{l} must keep its bytes");
            assert_eq!(now.header("etag"), before[i].header("etag"));
        }
    }
    let again = ok(&data, &["publish", "-m", "niets"]);
    assert!(again.contains("nothing changed"), "{again}");
}

#[test]
fn a_failed_publication_keeps_the_previous_set() {
    let (dir, data) = demo();
    let server = Server::start(&data, &[]);
    let before = server.get("/MedMij_Whitelist.xml").body;
    ok(&data, &["whitelist", "add", "nieuw.knooppunt.nl"]);
    // Replace the certificate with one of another key: signing must refuse.
    let cert = data.join("signing-cert.pem");
    let good = std::fs::read(&cert).unwrap();
    let other = tempdir();
    ok(&other.path().join("d"), &["init"]);
    std::fs::write(
        &cert,
        std::fs::read(other.path().join("d/signing-cert.pem")).unwrap(),
    )
    .unwrap();
    let err = fails(&data, &["publish", "-m", "should fail"]);
    assert!(err.contains("does not belong"), "{err}");
    assert_eq!(server.get("/MedMij_Whitelist.xml").body, before);
    std::fs::write(&cert, good).unwrap();
    ok(&data, &["publish", "-m", "now it works"]);
    assert_ne!(server.get("/MedMij_Whitelist.xml").body, before);
    drop(dir);
}

#[test]
fn tampered_documents_fail_verification() {
    let (dir, data) = demo();
    let server = Server::start(&data, &[]);
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, server.get("/signing-certificate.pem").body).unwrap();
    for (list, q) in [
        ("MedMij_Zorgaanbiederslijst.xml", "?api=2"),
        ("MedMij_Whitelist.xml", ""),
    ] {
        let doc = server.get(&format!("/{list}{q}")).text();
        let sig = server.get(&format!("/{list}.sig{q}")).body;
        let t = dir.path().join("t");
        std::fs::create_dir_all(&t).unwrap();
        let good = t.join(list);
        let sig_path = t.join(format!("{list}.sig"));
        std::fs::write(&good, &doc).unwrap();
        std::fs::write(&sig_path, &sig).unwrap();
        xmlsec1_verify(&cert, &sig_path, Some((list, &good))).unwrap();
        ok(
            &data,
            &[
                "verify",
                good.to_str().unwrap(),
                "--cert",
                cert.to_str().unwrap(),
            ],
        );

        // One character of an endpoint or hostname changed.
        let tampered = doc.replacen("rcf-rso.nl", "rcf-rsa.nl", 1);
        assert_ne!(tampered, doc);
        std::fs::write(&good, &tampered).unwrap();
        assert!(xmlsec1_verify(&cert, &sig_path, Some((list, &good))).is_err());
        if q == "?api=2" {
            assert!(
                xmlsec1_verify(&cert, &good, None).is_err(),
                "enveloped signature must fail"
            );
        }
        let err = fails(
            &data,
            &[
                "verify",
                good.to_str().unwrap(),
                "--cert",
                cert.to_str().unwrap(),
            ],
        );
        assert!(err.contains("DigestValue does not match"), "{err}");
    }
    // A signature checked against another certificate fails too.
    let other = tempdir();
    ok(&other.path().join("d"), &["init"]);
    let doc = dir.path().join("t/MedMij_Whitelist.xml");
    std::fs::write(&doc, server.get("/MedMij_Whitelist.xml").body).unwrap();
    let err = fails(
        &data,
        &[
            "verify",
            doc.to_str().unwrap(),
            "--cert",
            other.path().join("d/signing-cert.pem").to_str().unwrap(),
        ],
    );
    assert!(err.contains("SignatureValue"), "{err}");
    let _ = Path::new("");
}

#[test]
fn serve_demo_initialises_an_empty_data_directory() {
    let dir = tempdir();
    let data = dir.path().join("fresh");
    let server = Server::start(&data, &["--demo"]);
    assert_eq!(server.get("/MedMij_Zorgaanbiederslijst.xml").status, 200);
    assert!(data.join("registry.redb").exists());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("admin.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "admin socket must be private");
    let key_mode = std::fs::metadata(data.join("signing-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
}

#[test]
fn export_writes_the_published_lists_of_a_release() {
    let (dir, data) = demo();
    let out = dir.path().join("lists");
    ok(
        &data,
        &[
            "export",
            "--release",
            "1.1.2",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let server = Server::start(&data, &[]);
    let cert = out.join("signing-certificate.pem");
    for list in LISTS {
        let file = out.join(list);
        let served = server.get(&format!("/{list}?release=1.1.2")).body;
        assert_eq!(std::fs::read(&file).unwrap(), served, "{list}");
        let sig = out.join(format!("{list}.sig"));
        xmlsec1_verify(&cert, &sig, Some((list, &file))).unwrap();
    }
    let err = fails(
        &data,
        &[
            "export",
            "--release",
            "9.9.9",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(err.contains("9.9.9") && err.contains("1.1.2"), "{err}");
}

#[test]
fn an_operator_rsa_key_signs_and_xmlsec1_verifies() {
    let dir = tempdir();
    let (key, cert) = openssl_rsa(dir.path(), 3072, "operator");
    let data = dir.path().join("data");
    let out = ok(
        &data,
        &[
            "init",
            "--key",
            key.to_str().unwrap(),
            "--cert",
            cert.to_str().unwrap(),
        ],
    );
    assert!(!out.contains("DEVELOPMENT"), "{out}");
    for f in [
        "gegevensdienstnamenlijst-release1-example.xml",
        "whitelist-release2-fv5-example.xml",
    ] {
        ok(&data, &["import", example(f).to_str().unwrap()]);
    }
    ok(
        &data,
        &[
            "import",
            example("zorgaanbiederslijst-release3-fv8-example.xml")
                .to_str()
                .unwrap(),
        ],
    );
    ok(&data, &["publish", "-m", "rsa"]);
    let server = Server::start(&data, &[]);
    assert_eq!(
        server.get("/signing-certificate.pem").body,
        std::fs::read(&cert).unwrap()
    );
    for (list, q) in [
        ("MedMij_Zorgaanbiederslijst.xml", "?api=2"),
        ("MedMij_Whitelist.xml", ""),
    ] {
        let doc = dir.path().join(list);
        std::fs::write(&doc, server.get(&format!("/{list}{q}")).body).unwrap();
        let sig = dir.path().join(format!("{list}.sig"));
        let s = server.get(&format!("/{list}.sig{q}"));
        assert!(s.text().contains("xmldsig-more#rsa-sha256"));
        std::fs::write(&sig, &s.body).unwrap();
        xmlsec1_verify(&cert, &sig, Some((list, &doc))).unwrap();
        if q == "?api=2" {
            xmlsec1_verify(&cert, &doc, None).unwrap();
        }
    }
    // A key that does not match its certificate, or a too small RSA key, is refused.
    let other = tempdir();
    let (k2, c2) = openssl_rsa(other.path(), 1024, "small");
    let err = fails(
        &other.path().join("d"),
        &[
            "init",
            "--key",
            k2.to_str().unwrap(),
            "--cert",
            c2.to_str().unwrap(),
        ],
    );
    assert!(err.contains("2048"), "{err}");
    let err = fails(
        &other.path().join("e"),
        &[
            "init",
            "--key",
            key.to_str().unwrap(),
            "--cert",
            c2.to_str().unwrap(),
        ],
    );
    assert!(err.contains("does not belong"), "{err}");
    assert!(!other.path().join("e").join("registry.redb").exists());
}

/// The admin socket's refusals read like every other error (`error: …` and a newline), and
/// a line over the 1 MiB limit is called too long, not malformed.
#[test]
fn admin_socket_refusals_name_the_problem() {
    let (_dir, data, _server) = demo_server();
    let ask = |line: Vec<u8>| -> serde_json::Value {
        let s = std::os::unix::net::UnixStream::connect(data.join("admin.sock")).unwrap();
        let mut w = s.try_clone().unwrap();
        // The server stops reading at the limit: write beside the read, errors ignored.
        let writer = std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut w, &line);
            let _ = w.shutdown(std::net::Shutdown::Write);
        });
        let mut reply = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(s), &mut reply).unwrap();
        let _ = writer.join();
        serde_json::from_str(&reply).unwrap()
    };
    let mut long = vec![b'a'; 3 << 19];
    long.push(b'\n');
    for (line, says) in [
        (long, "request too long"),
        (b"not json\n".to_vec(), "malformed request"),
    ] {
        let r = ask(line);
        let err = r["err"].as_str().unwrap();
        assert!(
            err.starts_with("error: admin socket: ") && err.ends_with('\n'),
            "{err:?}"
        );
        assert!(err.contains(says), "{err:?}");
        assert_eq!(r["code"], 2);
    }
}

/// Requests hyper refuses before they reach the answering code (an ESC byte in the path,
/// a head over the buffer) get an access-log line like every other request.
#[test]
fn requests_hyper_refuses_are_in_the_access_log() {
    let (_dir, _data, server) = demo_server();
    let raw = |bytes: &[u8]| -> String {
        let mut s = std::net::TcpStream::connect(&server.addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        std::io::Write::write_all(&mut s, bytes).unwrap();
        let mut got = Vec::new();
        let _ = std::io::Read::read_to_end(&mut s, &mut got);
        String::from_utf8_lossy(&got).into_owned()
    };
    let r = raw(b"GET /MedMij_Whitelist.xml\x1b[31m HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert!(
        server.wait_stderr("status=400", 5),
        "no access-log line for the 400"
    );
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
        "a".repeat(256 * 1024)
    );
    let r = raw(big.as_bytes());
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");
    assert!(
        server.wait_stderr("status=431", 5),
        "no access-log line for the 431"
    );
    let lines = server.stderr.lock().unwrap();
    let line = lines.iter().find(|l| l.contains("status=400")).unwrap();
    assert!(
        line.contains("stelselnode::access") && line.contains("client=127.0.0.1:"),
        "{line}"
    );
    assert!(
        line.contains("rejected=\"invalid URI\"") || line.contains("rejected=invalid URI"),
        "{line}"
    );
}
