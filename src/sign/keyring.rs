//! The operator's signing keys through a rollover, in the timing of RFC 7583: the next
//! key is announced (`key next`: a chain link signed by the active key, named by every
//! head) and may sign only once the announcement has been out for `--announce-for`;
//! from `key activate` both keys sign every document until `--retire-after` has passed;
//! `key retire` then leaves the new key alone. Key states and links are kept in two tables
//! this module owns; private keys stay files in the data directory (`keys/`), never in the
//! registry file (which backups copy).

use super::chain::{self, Link};
use super::{SignError, Signers, SigningKey};
use crate::datadir::{CERT_FILE, KEY_FILE};
use crate::registry::store::{open_or_empty, RowError, Store, StoreError};
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// Keys added by `key next`: `keys/<fingerprint>.key.pem` and `.cert.pem`.
pub const KEY_DIR: &str = "keys";

/// By certificate fingerprint: the key's record (JSON).
const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("signing_keys");
/// By Sequence: the signed link document.
const LINKS: TableDefinition<u64, &[u8]> = TableDefinition::new("key_links");

/// `key status` and the metrics warn this long before the active certificate expires.
pub const EXPIRY_WARNING: time::Duration = time::Duration::days(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Announced, not yet signing.
    Next,
    /// Signs everything.
    Active,
    /// Replaced, still signing beside the active key until it is retired.
    Outgoing,
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Outgoing => "outgoing",
            KeyState::Retired => "retired",
        }
    }
}

/// One key as the keyring keeps it. Times are Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Order of arrival: 0 for the first key.
    pub order: u64,
    pub fingerprint: String,
    pub state: KeyState,
    pub cert_pem: String,
    pub announced: Option<i64>,
    /// When a next key may be activated, an outgoing one retired.
    pub activate_from: Option<i64>,
    pub retire_from: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Files(String),
}

fn refused(m: impl Into<String>) -> KeyringError {
    KeyringError::Refused(m.into())
}

/// Every key recorded, in order of arrival (empty until the first `key next`: the data
/// directory's first key is then the only one).
pub fn records(store: &Store) -> Result<Vec<KeyRecord>, StoreError> {
    let mut out: Vec<KeyRecord> = store.records(KEYS)?.into_values().collect();
    out.sort_by_key(|r| r.order);
    Ok(out)
}

/// Every chain link, in Sequence order.
pub fn links(store: &Store) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    store.read(|tx| {
        let Some(t) = open_or_empty(tx.open_table(LINKS))? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    })
}

/// Write `records` (replacing those with the same fingerprint) and `link`, which must be
/// new: a link once made is never replaced (consumers may have followed it).
fn save(
    tx: &redb::WriteTransaction,
    records: &[KeyRecord],
    link: Option<(u64, &[u8])>,
) -> Result<(), RowError> {
    let mut t = tx.open_table(KEYS)?;
    for r in records {
        let v = serde_json::to_vec(r).map_err(|e| RowError::Encode(e.to_string()))?;
        t.insert(r.fingerprint.as_str(), v.as_slice())?;
    }
    if let Some((seq, bytes)) = link {
        let mut links = tx.open_table(LINKS)?;
        if links.get(seq)?.is_some() {
            return Err(RowError::Decode {
                table: "key_links".into(),
                key: seq.to_string(),
                reason: "a key link with this Sequence exists already; links are never replaced"
                    .into(),
            });
        }
        links.insert(seq, bytes)?;
    }
    Ok(())
}

fn key_paths(data: &Path, fingerprint: &str) -> (PathBuf, PathBuf) {
    let dir = data.join(KEY_DIR);
    (
        dir.join(format!("{fingerprint}.key.pem")),
        dir.join(format!("{fingerprint}.cert.pem")),
    )
}

fn read(p: &Path) -> Result<String, KeyringError> {
    std::fs::read_to_string(p)
        .map_err(|e| KeyringError::Files(format!("reading {}: {e}", p.display())))
}

/// The data directory's first key (`init`'s).
pub fn first_key(data: &Path) -> Result<SigningKey, KeyringError> {
    let (kp, cp) = (data.join(KEY_FILE), data.join(CERT_FILE));
    if !kp.exists() || !cp.exists() {
        return Err(KeyringError::Files(format!(
            "no signing key in {}: expected {KEY_FILE} and {CERT_FILE} (run `stelselnode init`)",
            data.display()
        )));
    }
    SigningKey::from_pem(&read(&kp)?, &read(&cp)?).map_err(|e| {
        KeyringError::Files(format!(
            "loading {} with {}: {e}",
            kp.display(),
            cp.display()
        ))
    })
}

/// The private key of a recorded key: its file under `keys/`, or the first key's.
fn load(data: &Path, r: &KeyRecord) -> Result<SigningKey, KeyringError> {
    let (kp, cp) = key_paths(data, &r.fingerprint);
    let key = if kp.exists() {
        SigningKey::from_pem(&read(&kp)?, &read(&cp)?)?
    } else {
        first_key(data)?
    };
    if chain::fingerprint(&key.cert_der) != r.fingerprint {
        return Err(KeyringError::Files(format!(
            "the {} key {} has no key file in {} (expected {})",
            r.state.as_str(),
            r.fingerprint,
            data.display(),
            kp.display()
        )));
    }
    Ok(key)
}

/// The keys that sign now: the active one, and the outgoing one during an overlap.
pub fn signers(store: &Store, data: &Path) -> Result<Signers, KeyringError> {
    let recs = records(store)?;
    let Some(active) = recs.iter().find(|r| r.state == KeyState::Active) else {
        return Ok(Signers::one(first_key(data)?));
    };
    Ok(Signers {
        active: load(data, active)?,
        outgoing: recs
            .iter()
            .find(|r| r.state == KeyState::Outgoing)
            .map(|r| load(data, r))
            .transpose()?,
    })
}

/// The records, with the first key recorded as active if nothing is yet.
fn current(store: &Store, data: &Path) -> Result<Vec<KeyRecord>, KeyringError> {
    let recs = records(store)?;
    if !recs.is_empty() {
        return Ok(recs);
    }
    let first = first_key(data)?;
    Ok(vec![KeyRecord {
        order: 0,
        fingerprint: chain::fingerprint(&first.cert_der),
        state: KeyState::Active,
        cert_pem: first.cert_pem.clone(),
        announced: None,
        activate_from: None,
        retire_from: None,
    }])
}

fn utc(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .map(crate::registry::model::tijdstempel)
        .unwrap_or_else(|_| t.to_string())
}

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// A key step, decided but not yet recorded: the publication that shows it writes it in
/// its own transaction (`write`), or, before the first publication, `commit` alone.
pub struct Step {
    pub records: Vec<KeyRecord>,
    pub link: Option<(u64, Vec<u8>)>,
    /// What happened, for the publication's reason and the operator.
    pub summary: String,
    /// The keys that sign from this step on.
    pub signers: Signers,
}

impl Step {
    /// Record the step in `tx` (a publication's transaction).
    pub fn write(&self, tx: &redb::WriteTransaction) -> Result<(), RowError> {
        save(
            tx,
            &self.records,
            self.link.as_ref().map(|(s, b)| (*s, b.as_slice())),
        )
    }

    /// Record the step on its own (nothing is published yet).
    pub fn commit(&self, store: &Store) -> Result<(), StoreError> {
        store.write(|tx| self.write(tx))
    }
}

/// `key next`: announce `key_pem`/`cert_pem` as the next key, activatable after
/// `announce_for`. Its files are written to `keys/` now (they are needed to sign).
pub fn next(
    store: &Store,
    data: &Path,
    key_pem: &str,
    cert_pem: &str,
    announce_for: std::time::Duration,
    now: OffsetDateTime,
) -> Result<Step, KeyringError> {
    let new = SigningKey::from_pem(key_pem, cert_pem).map_err(|e| {
        refused(format!(
            "key next: --key and --cert: {e}; nothing was changed"
        ))
    })?;
    let fp = chain::fingerprint(&new.cert_der);
    let mut recs = current(store, data)?;
    if let Some(r) = recs.iter().find(|r| r.state == KeyState::Next) {
        return Err(refused(format!(
            "key next: key {} is already announced as the next key; activate it first (`key activate`, from {})",
            r.fingerprint,
            r.activate_from.map(utc).unwrap_or_default()
        )));
    }
    if let Some(r) = recs.iter().find(|r| r.state == KeyState::Outgoing) {
        return Err(refused(format!(
            "key next: key {} still signs beside the active key; retire it first (`key retire`, from {})",
            r.fingerprint,
            r.retire_from.map(utc).unwrap_or_default()
        )));
    }
    if let Some(r) = recs.iter().find(|r| r.fingerprint == fp) {
        return Err(refused(format!(
            "key next: certificate {fp} is already in the keyring ({}); a next key must be new",
            r.state.as_str()
        )));
    }
    let (_, _, not_after) = validity(&new.cert_der)?;
    if not_after <= now + announce_for {
        return Err(refused(format!(
            "key next: --cert expires at {} (certificate validity), before it could sign; nothing was changed",
            utc(not_after.unix_timestamp())
        )));
    }
    let active_rec = recs
        .iter()
        .find(|r| r.state == KeyState::Active)
        .cloned()
        .ok_or_else(|| refused("key next: no active key recorded"))?;
    let active = load(data, &active_rec)?;
    let sequence = links(store)?.last().map(|(s, _)| s + 1).unwrap_or(1);
    let (at, from) = (
        now.unix_timestamp(),
        now.unix_timestamp() + secs(announce_for),
    );
    let link = Link {
        sequence,
        previous: active_rec.fingerprint.clone(),
        next: new.cert_der.clone(),
        announced: utc(at),
        activation_from: utc(from),
    }
    .render_signed(&active)?;
    write_key_files(data, &fp, key_pem, cert_pem)?;
    recs.push(KeyRecord {
        order: recs.iter().map(|r| r.order + 1).max().unwrap_or(0),
        fingerprint: fp.clone(),
        state: KeyState::Next,
        cert_pem: new.cert_pem.clone(),
        announced: Some(at),
        activate_from: Some(from),
        retire_from: None,
    });
    Ok(Step {
        records: recs,
        link: Some((sequence, link)),
        summary: format!(
            "signing key {fp} announced as the next key (key link {sequence}, signed by {}); it may be activated from {}",
            active_rec.fingerprint,
            utc(from)
        ),
        signers: Signers::one(active),
    })
}

/// The key in `state`, else a refusal saying `missing`.
fn position(recs: &[KeyRecord], state: KeyState, missing: &str) -> Result<usize, KeyringError> {
    recs.iter()
        .position(|r| r.state == state)
        .ok_or_else(|| refused(missing))
}

/// A step allowed `from` on (none recorded: never), else a refusal saying until when and
/// `why`.
fn not_before(
    step: &str,
    from: Option<i64>,
    now: OffsetDateTime,
    why: String,
) -> Result<(), KeyringError> {
    let from = from.unwrap_or(i64::MAX);
    match now.unix_timestamp() < from {
        true => Err(refused(format!(
            "{step}: refused until {} ({} s from now): {why}",
            utc(from),
            from.saturating_sub(now.unix_timestamp())
        ))),
        false => Ok(()),
    }
}

/// `key activate`: the next key signs from now on, the active one beside it until
/// `retire_after` has passed. Refused before the announcement's time is up.
pub fn activate(
    store: &Store,
    data: &Path,
    retire_after: std::time::Duration,
    now: OffsetDateTime,
) -> Result<Step, KeyringError> {
    let mut recs = current(store, data)?;
    let ni = position(
        &recs,
        KeyState::Next,
        "key activate: no next key is announced; announce one first (`key next --key PEM --cert PEM`)",
    )?;
    let n = &recs[ni];
    not_before(
        "key activate",
        n.activate_from,
        now,
        format!(
            "the announcement of {} (made {}) must be out for its --announce-for first, so every consumer has seen it",
            n.fingerprint,
            n.announced.map(utc).unwrap_or_default()
        ),
    )?;
    let (_, _, not_after) = validity(&super::cert_der_from_pem(&n.cert_pem)?)?;
    if not_after <= now {
        return Err(refused(format!(
            "key activate: the next key's certificate {} expired at {}; announce another (`key next`)",
            n.fingerprint,
            utc(not_after.unix_timestamp())
        )));
    }
    let ai = position(
        &recs,
        KeyState::Active,
        "key activate: no active key recorded",
    )?;
    let at = now.unix_timestamp();
    recs[ai].state = KeyState::Outgoing;
    recs[ai].retire_from = Some(at.saturating_add(secs(retire_after)));
    recs[ni].state = KeyState::Active;
    let signers = Signers {
        active: load(data, &recs[ni])?,
        outgoing: Some(load(data, &recs[ai])?),
    };
    Ok(Step {
        summary: format!(
            "signing key {} activated; {} signs beside it until it is retired (from {})",
            recs[ni].fingerprint,
            recs[ai].fingerprint,
            utc(at.saturating_add(secs(retire_after)))
        ),
        records: recs,
        link: None,
        signers,
    })
}

/// `key retire`: the outgoing key stops signing. Refused before the overlap has ended.
pub fn retire(store: &Store, data: &Path, now: OffsetDateTime) -> Result<Step, KeyringError> {
    let mut recs = current(store, data)?;
    let oi = position(
        &recs,
        KeyState::Outgoing,
        "key retire: no key is outgoing; `key activate` makes the active key outgoing",
    )?;
    not_before(
        "key retire",
        recs[oi].retire_from,
        now,
        format!(
            "key {} signs beside the new key until its --retire-after has passed",
            recs[oi].fingerprint
        ),
    )?;
    recs[oi].state = KeyState::Retired;
    let active = recs
        .iter()
        .find(|r| r.state == KeyState::Active)
        .ok_or_else(|| refused("key retire: no active key recorded"))?;
    let signers = Signers::one(load(data, active)?);
    Ok(Step {
        summary: format!(
            "signing key {} retired; {} alone signs from now on",
            recs[oi].fingerprint, active.fingerprint
        ),
        records: recs,
        link: None,
        signers,
    })
}

/// The key's files under `keys/`, readable by the owner only; the same files again are
/// accepted (a step retried after its publication failed), other content under that name
/// is not.
fn write_key_files(
    data: &Path,
    fp: &str,
    key_pem: &str,
    cert_pem: &str,
) -> Result<(), KeyringError> {
    let files = |e: anyhow::Error| KeyringError::Files(format!("{e:#}"));
    crate::datadir::create_dir(&data.join(KEY_DIR)).map_err(files)?;
    let (kp, cp) = key_paths(data, fp);
    for (p, content) in [(kp, key_pem), (cp, cert_pem)] {
        match std::fs::read_to_string(&p) {
            Ok(existing) if existing == content => {}
            Ok(_) => {
                return Err(KeyringError::Files(format!(
                    "{} exists with other content; nothing was changed",
                    p.display()
                )))
            }
            Err(_) => crate::datadir::write_private(&p, content).map_err(files)?,
        }
    }
    Ok(())
}

/// A certificate's subject and validity (not before, not after).
fn validity(der: &[u8]) -> Result<(String, OffsetDateTime, OffsetDateTime), KeyringError> {
    let (_, c) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| refused(format!("certificate: {e}")))?;
    let v = c.validity();
    Ok((
        crate::clip::clip(&c.subject().to_string()).into_owned(),
        v.not_before.to_datetime(),
        v.not_after.to_datetime(),
    ))
}

/// One key as `key status` and the metrics show it.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyStatus {
    pub state: KeyState,
    pub fingerprint: String,
    pub subject: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// The next step this key can take, and the earliest time for it.
    pub next_step: Option<(&'static str, OffsetDateTime)>,
}

/// Every key, and a warning when the active certificate expires within 60 days.
pub fn status(
    store: &Store,
    data: &Path,
    now: OffsetDateTime,
) -> Result<(Vec<KeyStatus>, Option<String>), KeyringError> {
    let mut out = Vec::new();
    let mut warning = None;
    for r in current(store, data)? {
        let (subject, not_before, not_after) = validity(&super::cert_der_from_pem(&r.cert_pem)?)?;
        let at = |t: Option<i64>| t.and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok());
        let next_step = match r.state {
            KeyState::Next => at(r.activate_from).map(|t| ("activate", t)),
            KeyState::Outgoing => at(r.retire_from).map(|t| ("retire", t)),
            _ => None,
        };
        if r.state == KeyState::Active && not_after - now <= EXPIRY_WARNING {
            warning = Some(format!(
                "WARNING: the active signing certificate {} expires at {} ({} days from now): announce the next key now (`stelselnode key next --key PEM --cert PEM`)",
                r.fingerprint,
                utc(not_after.unix_timestamp()),
                (not_after - now).whole_days()
            ));
        }
        out.push(KeyStatus {
            state: r.state,
            fingerprint: r.fingerprint,
            subject,
            not_before,
            not_after,
            next_step,
        });
    }
    Ok((out, warning))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> (String, String) {
        SigningKey::generate_development().unwrap()
    }

    #[test]
    fn the_timeline_refuses_every_early_step_and_signs_with_both_keys_in_the_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        let (k0, c0) = dev();
        std::fs::write(data.join(KEY_FILE), &k0).unwrap();
        std::fs::write(data.join(CERT_FILE), &c0).unwrap();
        let cat = crate::registry::catalogue::Catalogue::parse(
            crate::registry::catalogue::DEFAULT_CATALOGUE,
        )
        .unwrap();
        let store = Store::create(&data.join("r.redb"), &cat).unwrap();
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let s = std::time::Duration::from_secs;
        assert!(signers(&store, data).unwrap().outgoing.is_none());
        assert!(
            activate(&store, data, s(10), t0).is_err(),
            "nothing announced"
        );
        assert!(retire(&store, data, t0).is_err(), "nothing outgoing");
        assert!(retire(&store, data, t0).is_err(), "nothing outgoing");
        let (k1, c1) = dev();
        let step = next(&store, data, &k1, &c1, s(30), t0).unwrap();
        step.commit(&store).unwrap();
        assert!(next(&store, data, &dev().0, &dev().1, s(30), t0).is_err());
        let e = activate(&store, data, s(20), t0 + s(29)).err().unwrap();
        assert!(e.to_string().contains("refused until"), "{e}");
        let step = activate(&store, data, s(20), t0 + s(30)).unwrap();
        step.commit(&store).unwrap();
        let both = signers(&store, data).unwrap();
        let fp1 = chain::fingerprint(&both.active.cert_der);
        assert_eq!(
            fp1,
            chain::fingerprint(&SigningKey::from_pem(&k1, &c1).unwrap().cert_der)
        );
        assert!(both.outgoing.is_some());
        assert!(retire(&store, data, t0 + s(49)).is_err());
        retire(&store, data, t0 + s(50))
            .unwrap()
            .commit(&store)
            .unwrap();
        let after = signers(&store, data).unwrap();
        assert!(after.outgoing.is_none());
        assert_eq!(chain::fingerprint(&after.active.cert_der), fp1);
        // The link the announcement made leads from the first key to the second.
        let links: Vec<Vec<u8>> = links(&store).unwrap().into_iter().map(|l| l.1).collect();
        let first = SigningKey::from_pem(&k0, &c0).unwrap();
        let walked = chain::follow(std::slice::from_ref(&first.cert_der), &links).unwrap();
        assert_eq!(walked.len(), 2);
        let (states, warning) = status(&store, data, t0 + s(60)).unwrap();
        let names: Vec<&str> = states.iter().map(|k| k.state.as_str()).collect();
        assert_eq!(names, ["retired", "active"]);
        assert!(warning.is_none());
        // Five years of validity: 60 days before the end, a warning.
        let late = states[1].not_after - time::Duration::days(59);
        assert!(status(&store, data, late)
            .unwrap()
            .1
            .unwrap()
            .contains("WARNING"));
    }
}
