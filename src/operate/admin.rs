//! The local admin channel: a Unix socket (mode 0600, in the 0700 data directory) through
//! which operations run inside the server, because redb allows only one process to open
//! the registry. One JSON line carries one [`Operation`] and who asks; one JSON line
//! answers. It is never bound to the public listener.

use super::Operation;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

pub const SOCKET_FILE: &str = "admin.sock";
const MAX_REQUEST: u64 = 1 << 20;

#[derive(Serialize, Deserialize, Debug)]
pub struct Request {
    /// What to run; `None`: only answer with the number of the latest publication, so a
    /// CLI that lost its connection during a publication can tell whether it committed.
    pub op: Option<Operation>,
    pub operator: String,
    pub reason: Option<String>,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct Response {
    pub code: i32,
    pub out: String,
    pub err: String,
}

impl Response {
    /// A refusal, printed by the CLI as every error is: `error: …` and a newline.
    pub fn failed(code: i32, msg: impl std::fmt::Display) -> Response {
        Response {
            code,
            out: String::new(),
            err: format!("error: {msg}\n"),
        }
    }
}

pub fn socket_path(data: &Path) -> PathBuf {
    data.join(SOCKET_FILE)
}

/// Send a command to a running server. `None` when no server listens on the socket.
pub fn forward(data: &Path, req: &Request) -> Option<std::io::Result<Response>> {
    let mut stream = UnixStream::connect(socket_path(data)).ok()?;
    Some((|| {
        let mut line = serde_json::to_vec(req)?;
        // Refused here, where the answer can still be read: the server stops reading there.
        if line.len() as u64 > MAX_REQUEST {
            return Ok(Response::failed(
                2,
                format_args!("the command is too long for the admin socket (over {MAX_REQUEST} bytes); nothing was sent"),
            ));
        }
        line.push(b'\n');
        stream.write_all(&line)?;
        stream.shutdown(std::net::Shutdown::Write)?;
        let mut resp = String::new();
        BufReader::new(stream).read_line(&mut resp)?;
        serde_json::from_str(&resp).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad reply from server: {e}"),
            )
        })
    })())
}

/// The latest publication number as a running server reports it: `Some(None)` before the
/// first publication, `None` when no server answers.
pub fn published_seq(data: &Path) -> Option<Option<u64>> {
    let req = Request {
        op: None,
        operator: String::new(),
        reason: None,
    };
    let resp = forward(data, &req)?.ok()?;
    if resp.code != 0 {
        return None;
    }
    Some(resp.out.trim().parse().ok())
}

pub type Handler = Arc<dyn Fn(Request) -> Response + Send + Sync>;

/// Bind the socket. A socket file left by a crashed server is replaced; one with a live
/// server behind it is not.
pub fn bind(data: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(data);
    if path.exists() {
        if UnixStream::connect(&path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("another server already serves {}", path.display()),
            ));
        }
        std::fs::remove_file(&path)?;
    }
    let l = tokio::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

pub async fn run(listener: tokio::net::UnixListener, handler: Handler) {
    // SAFETY-free check of who connects: only our own user (or root) may administer.
    let me = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .ok();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors and the like: back off instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let peer = stream.peer_cred().ok().map(|c| c.uid());
            let (rd, mut wr) = stream.into_split();
            let reply = if peer.is_none() || (peer != me && peer != Some(0)) {
                Response::failed(1, "admin socket: permission denied (not the server's user)")
            } else {
                let mut line = Vec::new();
                let mut rd =
                    tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(rd, MAX_REQUEST + 1));
                let read = tokio::time::timeout(
                    std::time::Duration::from_secs(30),
                    rd.read_until(b'\n', &mut line),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no request within 30 s",
                    ))
                });
                match read {
                    Err(e) => Response::failed(1, format_args!("admin socket: {e}")),
                    Ok(n) if n as u64 > MAX_REQUEST && line.last() != Some(&b'\n') => {
                        Response::failed(
                            2,
                            format_args!(
                            "admin socket: request too long (over {MAX_REQUEST} bytes in one line)"
                        ),
                        )
                    }
                    Ok(_) => match serde_json::from_slice::<Request>(&line) {
                        Err(e) => Response::failed(
                            2,
                            format_args!("admin socket: malformed request: {e}"),
                        ),
                        Ok(req) => tokio::task::spawn_blocking(move || {
                            let r = handler(req);
                            crate::os::release_memory();
                            r
                        })
                        .await
                        .unwrap_or_else(|e| {
                            Response::failed(1, format_args!("admin command failed: {e}"))
                        }),
                    },
                }
            };
            let mut bytes = serde_json::to_vec(&reply).unwrap_or_default();
            bytes.push(b'\n');
            let _ = wr.write_all(&bytes).await;
        });
    }
}
