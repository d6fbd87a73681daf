//! The data directory: registry file, signing key and certificate, admin socket.

use anyhow::{Context, Result};
use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const REGISTRY_FILE: &str = "registry.redb";
/// The first signing key (`init`'s); keys added by `key next` are under `keys/` (see
/// `sign::keyring`).
pub const KEY_FILE: &str = "signing-key.pem";
pub const CERT_FILE: &str = "signing-cert.pem";

/// `$STELSELNODE_DATA` is handled by clap; this is the fallback.
pub fn default_dir() -> PathBuf {
    match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x).join("stelselnode"),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(h) => PathBuf::from(h).join(".local/share/stelselnode"),
            None => PathBuf::from("stelselnode-data"),
        },
    }
}

pub fn registry_path(dir: &Path) -> PathBuf {
    dir.join(REGISTRY_FILE)
}

pub fn is_initialised(dir: &Path) -> bool {
    registry_path(dir).exists()
}

/// Create the directory readable by the owner only: it holds the signing key and the admin
/// socket.
pub fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting permissions of {}", dir.display()))?;
    Ok(())
}

pub fn write_private(path: &Path, content: &str) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut f, content.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    f.sync_all()?;
    Ok(())
}

/// The operator recorded with a change: `--operator`, else the OS user.
pub fn os_user() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(u) = std::env::var(var) {
            if !u.is_empty() {
                return u;
            }
        }
    }
    use std::os::unix::fs::MetadataExt;
    let Ok(uid) = fs::metadata("/proc/self").map(|m| m.uid()) else {
        return "unknown".into();
    };
    // The account name from /etc/passwd ("name:x:uid:..."), else the number.
    fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                (f.nth(1)? == uid.to_string()).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}
