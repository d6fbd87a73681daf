//! `publish -m REASON`: the pending change set becomes public.

use super::changeset::volgnummer_table;
use super::Ctx;
use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Publish {
    pub message: String,
}

impl Publish {
    pub fn apply(self, ctx: &Ctx) -> Result<String> {
        if self.message.trim().is_empty() {
            bail!("publish: --message must give a reason");
        }
        crate::registry::store::check_recorded(&ctx.who.operator, Some(&self.message))
            .map_err(|e| anyhow!("publish: {e}; nothing was published"))?;
        let outcome = ctx.publisher()?.publish(
            &ctx.who.operator,
            &self.message,
            time::OffsetDateTime::now_utc(),
        )?;
        let mut out = String::new();
        if !outcome.expired.is_empty() {
            writeln!(
                out,
                "gecontroleerde livegang {} expired; its end was published first",
                outcome.expired.join(", ")
            )?;
        }
        match outcome.published {
            None => writeln!(out, "nothing changed since publication; nothing published")?,
            Some(p) => {
                writeln!(
                    out,
                    "published #{} at {} by {}",
                    p.entry.seq, p.entry.time, p.entry.operator
                )?;
                out.push_str(&volgnummer_table(&p.index.lists, |l, _| {
                    if p.entry.changed.contains(&l) {
                        "changed".into()
                    } else {
                        "unchanged".into()
                    }
                }));
            }
        }
        Ok(out)
    }
}
