//! The systemd unit in deploy/systemd/: `systemd-analyze verify` accepts it (with the
//! binary this build made in place of the installed one), its offline security exposure
//! stays low, and it has the hardening and lifecycle an operator relies on.

use std::path::Path;
use std::process::Command;

fn unit_text() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd/stelselnode.service"),
    )
    .unwrap()
}

/// The unit as installed, but starting this build's binary (`verify` checks that the
/// command exists and is executable).
fn installed_copy(dir: &Path) -> std::path::PathBuf {
    let unit = unit_text().replace(
        "/usr/local/bin/stelselnode",
        env!("CARGO_BIN_EXE_stelselnode"),
    );
    let path = dir.join("stelselnode.service");
    std::fs::write(&path, unit).unwrap();
    path
}

fn systemd_analyze(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("systemd-analyze installed (Debian's systemd package)")
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let dir = tempfile::tempdir().unwrap();
    installed_copy(dir.path());
    let o = systemd_analyze(&["verify", "./stelselnode.service"], dir.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // Warnings are printed with the unit's name and do not fail `verify`: none allowed.
    assert!(
        !err.lines().any(|l| l.contains("stelselnode.service")),
        "{err}"
    );
}

#[test]
fn the_unit_is_hardened_and_reloads_with_sighup() {
    let dir = tempfile::tempdir().unwrap();
    installed_copy(dir.path());
    let o = systemd_analyze(
        &["security", "--offline=true", "./stelselnode.service"],
        dir.path(),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let level: f64 = out
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for stelselnode.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in\n{out}"));
    assert!(
        level <= 2.0,
        "exposure {level} (systemd's scale: 0 best, 10 worst)\n{out}"
    );
    let unit = unit_text();
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for required in [
        "User=stelselnode",
        "StateDirectory=stelselnode",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillSignal=SIGTERM",
        "Restart=on-failure",
        "Environment=STELSELNODE_DATA=/var/lib/stelselnode",
    ] {
        assert!(lines.contains(&required), "{required} missing");
    }
    // The stop timeout leaves room for the server's own shutdown grace (30 s).
    assert!(lines.contains(&"TimeoutStopSec=45s"));
}

#[test]
fn the_units_command_line_is_one_the_binary_accepts() {
    let unit = unit_text();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let mut args: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(args.remove(0), "/usr/local/bin/stelselnode");
    // The same arguments with --help appended: clap checks every flag and value name
    // before it prints the help, and fails on an unknown one.
    args.push("--help");
    let o = Command::new(env!("CARGO_BIN_EXE_stelselnode"))
        .args(&args)
        .env("STELSELNODE_DATA", "/nonexistent")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
