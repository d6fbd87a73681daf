//! Gecontroleerde livegang: `livegang start | list | show | end | promote`. Start, end and
//! promote are edits in the change set; the expiry at `--until` is the Publisher's.

use super::{json, Ctx};
use crate::registry::livegang::{self as lg, Start};
use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum LivegangOp {
    Start(Start),
    List,
    Show { id: String },
    End { id: String },
    Promote { id: String },
}

impl LivegangOp {
    pub fn apply(self, ctx: &Ctx) -> Result<String> {
        let msg = match self {
            LivegangOp::Start(start) => {
                let cat = ctx.store.catalogue()?;
                let operator = ctx.who.operator.clone();
                ctx.store.update(&ctx.who, |reg| {
                    lg::start(reg, &cat, start, &operator, time::OffsetDateTime::now_utc())
                })?
            }
            LivegangOp::List => {
                let l = ctx.store.livegangen()?;
                if l.is_empty() {
                    "no gecontroleerde livegang".to_string()
                } else {
                    l.values()
                        .map(|l| {
                            format!(
                                "{:<6} copy of {:<4} release {} until {}  Zorgaanbieders: {}  OAuthclients: {}",
                                l.copy_id,
                                l.gegevensdienst_id,
                                l.release,
                                l.until,
                                l.zorgaanbieders.join(","),
                                l.oauthclients.join(",")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                }
            }
            LivegangOp::Show { id } => {
                json(ctx.store.livegangen()?.get(&id).ok_or_else(|| {
                    anyhow!("no gecontroleerde livegang '{}'", crate::clip::clip(&id))
                })?)?
            }
            LivegangOp::End { id } => ctx.store.update(&ctx.who, |reg| lg::end(reg, &id))?,
            LivegangOp::Promote { id } => {
                ctx.store.update(&ctx.who, |reg| lg::promote(reg, &id))?
            }
        };
        Ok(format!("{msg}\n"))
    }
}
