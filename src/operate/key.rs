//! `key status|next|activate|retire`: the signing key rollover (see `sign::keyring`).
//! Each step that changes what signs is published at once, as its own publication of what
//! is published, so the history records it and every document carries the new
//! signatures.

use super::Ctx;
use crate::sign::keyring::{self, KeyringError, Step};
use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

#[derive(Serialize, Deserialize, Clone, PartialEq)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum KeyOp {
    Status,
    Next {
        key_pem: String,
        cert_pem: String,
        announce_for_secs: u64,
    },
    Activate {
        retire_after_secs: u64,
    },
    Retire,
}

// By hand: the private key never reaches a log line.
impl std::fmt::Debug for KeyOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyOp::Status => write!(f, "KeyOp::Status"),
            KeyOp::Next {
                announce_for_secs, ..
            } => write!(
                f,
                "KeyOp::Next {{ announce_for_secs: {announce_for_secs}, .. }}"
            ),
            KeyOp::Activate { retire_after_secs } => {
                write!(
                    f,
                    "KeyOp::Activate {{ retire_after_secs: {retire_after_secs} }}"
                )
            }
            KeyOp::Retire => write!(f, "KeyOp::Retire"),
        }
    }
}

impl KeyOp {
    pub fn changes(&self) -> bool {
        !matches!(self, KeyOp::Status)
    }

    pub fn apply(self, ctx: &Ctx) -> Result<String> {
        let now = time::OffsetDateTime::now_utc();
        let secs = std::time::Duration::from_secs;
        let (store, data) = (ctx.store.as_ref(), ctx.data);
        // A step is decided under the publication lock, by the publisher.
        let decide: Box<dyn FnOnce() -> Result<Step, KeyringError>> = match self {
            KeyOp::Status => return status(ctx, now),
            KeyOp::Next {
                key_pem,
                cert_pem,
                announce_for_secs,
            } => Box::new(move || {
                keyring::next(
                    store,
                    data,
                    &key_pem,
                    &cert_pem,
                    secs(announce_for_secs),
                    now,
                )
            }),
            KeyOp::Activate { retire_after_secs } => {
                Box::new(move || keyring::activate(store, data, secs(retire_after_secs), now))
            }
            KeyOp::Retire => Box::new(move || keyring::retire(store, data, now)),
        };
        publish(ctx, now, decide)
    }
}

fn refusal(e: KeyringError) -> anyhow::Error {
    anyhow!("{e}")
}

fn publish(
    ctx: &Ctx,
    now: time::OffsetDateTime,
    decide: impl FnOnce() -> Result<Step, KeyringError>,
) -> Result<String> {
    let (step, published) = ctx
        .publisher()?
        .key_step(&ctx.who.operator, now, decide)
        .map_err(|e| match e {
            crate::publish::PublishError::Refused(m) => anyhow!("{m}"),
            e => anyhow!("{e}; the key step was not recorded"),
        })?;
    let mut out = format!("{}\n", step.summary);
    match published {
        Some(p) => writeln!(
            out,
            "published #{} at {}: every list under a new Volgnummer, signed by {}",
            p.entry.seq,
            p.entry.time,
            match step.signers.outgoing {
                Some(_) => "both keys",
                None => "the active key",
            }
        )?,
        None => writeln!(out, "recorded; nothing is published yet")?,
    }
    Ok(out)
}

fn when(t: time::OffsetDateTime) -> String {
    crate::registry::model::tijdstempel(t)
}

fn status(ctx: &Ctx, now: time::OffsetDateTime) -> Result<String> {
    let (keys, warning) = keyring::status(ctx.store, ctx.data, now).map_err(refusal)?;
    let mut out = String::new();
    for k in keys {
        writeln!(
            out,
            "{:<8} {}  valid {} .. {}  \"{}\"{}",
            k.state.as_str(),
            k.fingerprint,
            when(k.not_before),
            when(k.not_after),
            k.subject,
            match k.next_step {
                Some((step, at)) if at <= now =>
                    format!("  (`key {step}` allowed since {})", when(at)),
                Some((step, at)) => format!(
                    "  (`key {step}` from {}, in {} s)",
                    when(at),
                    (at - now).whole_seconds()
                ),
                None => String::new(),
            }
        )?;
    }
    if let Some(w) = warning {
        writeln!(out, "{w}")?;
    }
    Ok(out)
}
