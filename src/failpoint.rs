//! Named points in the publication path where tests make faults happen on purpose: an
//! error inside rendering or inside the commit, a pause long enough to kill the process
//! there, an abort. Inactive unless the environment variable `STELSELNODE_FAILPOINTS` is
//! set, e.g. `publish.commit=sleep(3000)` or `publish.render=error;publish.committed=abort`
//! (points: publish.snapshot, publish.render, publish.staged, publish.commit,
//! publish.committed).
//! Only the test suite sets it, and only test builds have it: without the cargo feature
//! `failpoints` (which `cargo test` turns on through the dev-dependency on this crate)
//! every point is a no-op, so the variable cannot make a release binary abort.

#[derive(Clone, Debug, PartialEq)]
// Without the feature no action is ever parsed, so none is constructed.
#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
enum Action {
    Error,
    Sleep(u64),
    Abort,
}

#[cfg(feature = "failpoints")]
fn config() -> &'static [(String, Action)] {
    use std::sync::OnceLock;
    static CONFIG: OnceLock<Vec<(String, Action)>> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let Ok(spec) = std::env::var("STELSELNODE_FAILPOINTS") else {
            return Vec::new();
        };
        spec.split(';')
            .filter_map(|item| {
                let (name, action) = item.split_once('=')?;
                let action = match action.trim() {
                    "error" => Action::Error,
                    "abort" => Action::Abort,
                    a => Action::Sleep(a.strip_prefix("sleep(")?.strip_suffix(')')?.parse().ok()?),
                };
                Some((name.trim().to_string(), action))
            })
            .collect()
    })
}

#[cfg(not(feature = "failpoints"))]
fn config() -> &'static [(String, Action)] {
    &[]
}

/// Pass the failpoint `name`: `Err` when it is set to `error`. Every hit is logged (on
/// stderr), so a test knows the process is there now.
pub fn hit(name: &str) -> Result<(), String> {
    let Some((_, action)) = config().iter().find(|(n, _)| n == name) else {
        return Ok(());
    };
    tracing::warn!("failpoint {name}: {action:?}");
    match action {
        Action::Error => Err(format!("failpoint {name}: injected failure")),
        Action::Sleep(ms) => {
            std::thread::sleep(std::time::Duration::from_millis(*ms));
            Ok(())
        }
        Action::Abort => std::process::abort(),
    }
}
