//! Shared helpers for the integration tests: the real binary, real redb files in temp
//! dirs, a real server on a loopback port, and a minimal HTTP/1.1 client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_stelselnode");

pub fn reference() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/medmij")
}

pub fn example(name: &str) -> PathBuf {
    reference().join("examples").join(name)
}

pub fn official_xsd(name: &str) -> PathBuf {
    reference().join("xsd").join(name)
}

pub fn project_xsd(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(name)
}

/// Start the CLI in the background (for commands that run while the test does more).
pub fn spawn_cli(data: &Path, args: &[&str]) -> Child {
    Command::new(BIN)
        .arg("--data")
        .arg(data)
        .args(args)
        .env("STELSELNODE_OPERATOR", "test-operator")
        .env_remove("STELSELNODE_DATA")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run stelselnode")
}

/// Run the CLI against a data directory.
pub fn cli(data: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data")
        .arg(data)
        .args(args)
        .env("STELSELNODE_OPERATOR", "test-operator")
        .env_remove("STELSELNODE_DATA")
        .output()
        .expect("run stelselnode")
}

pub fn ok(data: &Path, args: &[&str]) -> String {
    let o = cli(data, args);
    assert!(
        o.status.success(),
        "stelselnode {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Expect failure; returns stderr.
pub fn fails(data: &Path, args: &[&str]) -> String {
    let o = cli(data, args);
    assert!(
        !o.status.success(),
        "stelselnode {args:?} should have failed: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub struct Server {
    pub child: Child,
    pub addr: String,
    pub data: PathBuf,
    /// Lines the server wrote to stderr (only with `start_env`).
    pub stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// `host:port` of the metrics listener, with `--metrics-listen`.
    pub metrics: Option<String>,
}

impl Server {
    /// Start `serve` on a free loopback port and wait until it listens.
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        Server::start_env(data, extra, &[])
    }

    /// `start` with extra environment (e.g. `STELSELNODE_FAILPOINTS`); stderr is kept.
    /// Plain HTTP unless `extra` asks for TLS.
    pub fn start_env(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let tls = extra.contains(&"--tls-cert") || extra.contains(&"--https");
        let extra: Vec<&str> = extra.iter().copied().filter(|a| *a != "--https").collect();
        let mut child = Command::new(BIN)
            .arg("--data")
            .arg(data)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(if tls {
                &[][..]
            } else {
                &["--insecure-http"][..]
            })
            .args(&extra)
            .env("STELSELNODE_OPERATOR", "test-operator")
            .env_remove("STELSELNODE_DATA")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start server");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let err_pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err_pipe).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut metrics = None;
        let addr = loop {
            assert!(Instant::now() < deadline, "server did not start");
            let line = lines
                .next()
                .expect("server exited early")
                .expect("read stdout");
            if let Some(m) = line.strip_prefix("stelselnode metrics on http://") {
                metrics = Some(m.trim_end_matches("/metrics").to_string());
            }
            if let Some(rest) = line
                .strip_prefix("stelselnode listening on http://")
                .or_else(|| line.strip_prefix("stelselnode listening on https://"))
            {
                break rest.trim_end_matches('/').to_string();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            addr,
            data: data.to_path_buf(),
            stderr,
            metrics,
        }
    }

    pub fn get(&self, target: &str) -> Response {
        request(&self.addr, "GET", target, &[])
    }

    /// The stderr lines the server wrote so far that contain `needle`.
    pub fn stderr_lines(&self, needle: &str) -> Vec<String> {
        let lines = self.stderr.lock().unwrap();
        lines
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    /// Wait until the server wrote a stderr line containing `needle`.
    pub fn wait_stderr(&self, needle: &str, secs: u64) -> bool {
        self.wait_stderr_n(needle, 1, secs)
    }

    /// Wait until the server wrote `n` stderr lines containing `needle`.
    pub fn wait_stderr_n(&self, needle: &str, n: usize, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.stderr_lines(needle).len() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Kill the server at once (SIGKILL) and wait for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request with `Connection: close`; reads until EOF.
pub fn request(addr: &str, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
    request_on(
        TcpStream::connect(addr).expect("connect"),
        addr,
        method,
        target,
        headers,
    )
}

/// A connection to `addr` from the loopback address `from` (another client, as far as the
/// server's per-address accounting goes), with a receive buffer of `rcvbuf` bytes if given.
pub fn connect_from(from: &str, addr: &str, rcvbuf: Option<u32>) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(n) = rcvbuf {
            sock.set_recv_buffer_size(n).unwrap();
        }
        sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
        sock.connect(addr.parse().unwrap()).await.unwrap()
    });
    let s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s
}

/// `request` on a connection already made.
pub fn request_on(
    mut s: TcpStream,
    addr: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Response {
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v): &(String, String)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

/// The payload of a chunked body (the chunk sizes are each sender's own).
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let end = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let line = std::str::from_utf8(&b[..end]).unwrap();
        let size =
            usize::from_str_radix(line.split(';').next().unwrap().trim(), 16).expect("chunk size");
        b = &b[end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// `xmllint --schema`: independent XSD validation.
pub fn xmllint_valid(xsd: &Path, doc: &Path) -> Result<(), String> {
    let o = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(xsd)
        .arg(doc)
        .output()
        .expect("xmllint installed (libxml2-utils)");
    if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

/// `xmlsec1 --verify`: independent signature verification with the certificate as trust
/// anchor. `detached` maps the Reference URI to the document file.
pub fn xmlsec1_verify(
    cert: &Path,
    sig_doc: &Path,
    detached: Option<(&str, &Path)>,
) -> Result<(), String> {
    let mut c = Command::new("xmlsec1");
    c.args(["--verify", "--pubkey-cert-pem"]).arg(cert);
    if let Some((uri, file)) = detached {
        c.arg(format!("--url-map:{uri}")).arg(file);
    }
    let o = c.arg(sig_doc).output().expect("xmlsec1 installed");
    if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

/// A data directory initialised with the demo registry (published once).
pub fn demo() -> (tempfile::TempDir, PathBuf) {
    let dir = tempdir();
    let data = dir.path().join("data");
    ok(&data, &["init", "--demo"]);
    (dir, data)
}

/// `demo` with a server running on it.
pub fn demo_server() -> (tempfile::TempDir, PathBuf, Server) {
    let (dir, data) = demo();
    let server = Server::start(&data, &[]);
    (dir, data, server)
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("stelselnode-test")
        .tempdir()
        .expect("tempdir")
}

pub const LISTS: [&str; 4] = [
    "MedMij_Zorgaanbiederslijst.xml",
    "MedMij_OAuthclientlist.xml",
    "MedMij_Whitelist.xml",
    "MedMij_Gegevensdienstnamenlijst.xml",
];

/// The Volgnummer of a served list.
pub fn volgnummer(body: &str) -> u64 {
    body.split("<Volgnummer>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .and_then(|v| v.parse().ok())
        .expect("document has a Volgnummer")
}

/// A self-signed RSA key and certificate made by openssl, as an operator would make them.
pub fn openssl_rsa(dir: &Path, bits: u32, name: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key.pem"));
    let cert = dir.join(format!("{name}.cert.pem"));
    let o = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            &format!("rsa:{bits}"),
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-days",
            "30",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl installed");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (key, cert)
}

/// `publish -m REASON` with the publisher's debug log (its phases) on stderr, whatever the
/// outcome.
pub fn publish_debug(data: &Path, reason: &str) -> Output {
    Command::new(BIN)
        .env("RUST_LOG", "stelselnode=debug")
        .args(["--data", data.to_str().unwrap(), "publish", "-m", reason])
        .output()
        .unwrap()
}

/// `publish_debug` that must succeed: (stdout, stderr).
pub fn publish_logged(data: &Path, reason: &str) -> (String, String) {
    let out = publish_debug(data, reason);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    (String::from_utf8_lossy(&out.stdout).to_string(), err)
}

/// Fill an initialised registry with a Whitelist node, seven Gegevensdiensten and `n`
/// Zorgaanbieders (every third also in Interfaceversie 1.1.0): a ZAL of about 2.4 KB per
/// Zorgaanbieder in release3, large enough to be made in parts above a few thousand.
pub fn add_zorgaanbieders(data: &Path, n: u32) {
    use stelselnode::registry::model::{
        Aanbiedertype, Gegevensdienst, Gegevensdienstnaam, Interfaceversie, Systeemrol,
        Zorgaanbieder,
    };
    let store = stelselnode::registry::store::Store::open(&data.join("registry.redb")).unwrap();
    let who = stelselnode::registry::store::Who {
        operator: "test".into(),
        reason: None,
    };
    store
        .update(&who, |reg| {
            reg.whitelist.insert("node.voorbeeld.nl".into());
            for i in 1..=7 {
                reg.gegevensdiensten.insert(
                    i.to_string(),
                    Gegevensdienstnaam {
                        gegevensdienst_id: i.to_string(),
                        weergavenaam: format!("Gegevensdienst {i}"),
                    },
                );
            }
            for i in 0..n {
                // Letters only: a..z in base 26.
                let mut n = i + 26 * 26 * 26;
                let mut name = String::new();
                while n > 0 {
                    name.insert(0, (b'a' + (n % 26) as u8) as char);
                    n /= 26;
                }
                let host = format!("medmij.{name}.nl");
                let g = |id: &str, v: &str| Gegevensdienst {
                    gegevensdienst_id: id.into(),
                    authorization_endpointuri: format!("https://{host}/{v}/authorize"),
                    token_endpointuri: format!("https://{host}/{v}/token"),
                    abonneren: None,
                    systeemrollen: vec![Systeemrol {
                        systeemrolcode: "MM-2.1-BZB-FHIR".into(),
                        resource_endpointuri: format!("https://{host}/{v}/fhir"),
                    }],
                };
                // Only every third one in 1.1.0: release2 parts differ in size.
                let mut ivs = vec![Interfaceversie {
                    interfaceversie_id: "2.0.0".into(),
                    gegevensdiensten: vec![g("1", "v2"), g("4", "v2")],
                }];
                if i % 3 == 0 {
                    ivs.push(Interfaceversie {
                        interfaceversie_id: "1.1.0".into(),
                        gegevensdiensten: vec![g("1", "v1")],
                    });
                }
                let naam = format!("{name}@medmij");
                reg.zorgaanbieders.insert(
                    naam.clone(),
                    Zorgaanbieder {
                        zorgaanbiedernaam: naam,
                        aanbiedertype: Aanbiedertype::ZA,
                        interfaceversies: ivs,
                    },
                );
            }
            Ok(String::new())
        })
        .unwrap();
}
