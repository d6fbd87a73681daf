//! What `sync` keeps in the directory it fills: the lists under their official file names,
//! and, in `.stelselnode-sync/`, what it last accepted (per list the Volgnummer and the
//! SHA-256 of its bytes, the head and its session). Every file is replaced atomically:
//! written beside its final name, synced, renamed over it.

use super::Failure;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const STATE_DIR: &str = ".stelselnode-sync";
const STATE_FILE: &str = "state.json";
pub const HEAD_FILE: &str = "head.xml";

/// One list as last accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub volgnummer: u64,
    pub sha256: String,
    pub size: u64,
    pub sig_sha256: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub release: String,
    pub session: String,
    pub publication: u64,
    /// The accepted head's ETag (for If-None-Match) and expiry.
    pub head_etag: Option<String>,
    pub head_expires: String,
    /// By list key (`zorgaanbiederslijst`, …).
    pub lists: BTreeMap<String, Held>,
    /// Unix time of the last successful sync.
    pub last_success: i64,
    /// The signing keys trusted (certificates, base64 DER), in chain order: from the
    /// newest key that signed an accepted head on, with any newer key its chain announced.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Fingerprints of keys trusted before and left behind as the chain moved on (the
    /// pinned `--cert` may be one of them).
    #[serde(default)]
    pub followed_from: Vec<String>,
}

pub fn state_dir(dir: &Path) -> PathBuf {
    dir.join(STATE_DIR)
}

/// The state kept in `dir`; `None` on a first run.
pub fn load(dir: &Path) -> Result<Option<State>, Failure> {
    let p = state_dir(dir).join(STATE_FILE);
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            Failure::Local(format!(
                "{}: {e}; it was written by sync: restore it or remove the directory to start again",
                p.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Failure::Local(format!("{}: {e}", p.display()))),
    }
}

pub fn save(dir: &Path, s: &State) -> Result<(), Failure> {
    let json = serde_json::to_vec_pretty(s).map_err(|e| Failure::Local(e.to_string()))?;
    write_atomic(&state_dir(dir), STATE_FILE, &json)
}

/// Replace `dir/name` with `bytes` atomically.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), Failure> {
    let local = |what: &str, p: &Path, e: std::io::Error| {
        Failure::Local(format!("{what} {}: {e}", p.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| local("creating", dir, e))?;
    let fin = dir.join(name);
    let tmp = dir.join(format!(".{name}.partial"));
    let mut f = std::fs::File::create(&tmp).map_err(|e| local("writing", &tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| local("writing", &tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, &fin).map_err(|e| local("renaming to", &fin, e))?;
    // The rename itself survives a crash once the directory is synced.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A large new document written beside the state as it is put together, renamed over
/// its official name only when every check passed; removed otherwise.
pub struct Staged {
    path: PathBuf,
    out: Option<std::io::BufWriter<std::fs::File>>,
    done: std::sync::atomic::AtomicBool,
}

impl Staged {
    pub fn create(dir: &Path, name: &str) -> Result<Staged, Failure> {
        let d = state_dir(dir);
        std::fs::create_dir_all(&d)
            .map_err(|e| Failure::Local(format!("creating {}: {e}", d.display())))?;
        let path = d.join(format!(".incoming-{name}"));
        let f = std::fs::File::create(&path)
            .map_err(|e| Failure::Local(format!("writing {}: {e}", path.display())))?;
        Ok(Staged {
            out: Some(std::io::BufWriter::with_capacity(1 << 20, f)),
            path,
            done: Default::default(),
        })
    }

    pub fn write(&mut self, piece: &[u8]) -> std::io::Result<()> {
        match &mut self.out {
            Some(w) => w.write_all(piece),
            None => Err(std::io::Error::other("the staged file is finished")),
        }
    }

    /// Everything written and synced to the disk.
    pub fn finish(&mut self) -> Result<(), Failure> {
        let local =
            |e: std::io::Error| Failure::Local(format!("writing {}: {e}", self.path.display()));
        if let Some(w) = self.out.take() {
            let f = w.into_inner().map_err(|e| local(e.into_error()))?;
            f.sync_all().map_err(local)?;
        }
        Ok(())
    }

    /// Rename it over `dest` (in the same file system), atomically.
    pub fn commit(&self, dest: &Path) -> Result<(), Failure> {
        std::fs::rename(&self.path, dest)
            .map_err(|e| Failure::Local(format!("renaming to {}: {e}", dest.display())))?;
        self.done.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(d) = dest.parent().and_then(|p| std::fs::File::open(p).ok()) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.done.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
