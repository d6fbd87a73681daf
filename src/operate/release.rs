//! The release catalogue: `release list | add | set-status | set-default`. Every change is
//! published at once by the Publisher; the lifecycle rules are the catalogue's own.

use super::changeset::releases;
use super::Ctx;
use crate::registry::catalogue::{aanbiedertypen_in_force, Catalogue, Release, Status};
use crate::registry::model::SchemaVersion;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseOp {
    List,
    Add {
        id: String,
        interfaceversie: String,
        zorgaanbiederslijst: SchemaVersion,
        oauthclientlist: SchemaVersion,
        whitelist: SchemaVersion,
        gegevensdienstnamenlijst: SchemaVersion,
    },
    SetStatus {
        id: String,
        status: Status,
        sunset: Option<String>,
        deprecated_since: Option<String>,
    },
    SetDefault {
        id: String,
    },
}

impl ReleaseOp {
    pub fn publishes(&self) -> bool {
        !matches!(self, ReleaseOp::List)
    }

    pub fn apply(self, ctx: &Ctx) -> Result<String> {
        let today = time::OffsetDateTime::now_utc();
        if self == ReleaseOp::List {
            return Ok(releases(&ctx.store.catalogue()?));
        }
        let change = move |cat: &mut Catalogue| match self {
            ReleaseOp::List => Ok(String::new()),
            ReleaseOp::Add {
                id,
                interfaceversie,
                zorgaanbiederslijst,
                oauthclientlist,
                whitelist,
                gegevensdienstnamenlijst,
            } => cat.add_release(Release {
                id,
                status: Status::Optioneel,
                deprecated_since: None,
                sunset: None,
                interfaceversie,
                zorgaanbiederslijst,
                oauthclientlist,
                whitelist,
                gegevensdienstnamenlijst,
                aanbiedertypen: aanbiedertypen_in_force(),
            }),
            ReleaseOp::SetStatus {
                id,
                status,
                sunset,
                deprecated_since,
            } => cat.set_status(&id, status, sunset, deprecated_since, today.date()),
            ReleaseOp::SetDefault { id } => cat.set_default(&id),
        };
        let c = ctx.publisher()?.change_catalogue(
            &ctx.who.operator,
            ctx.who.reason.as_deref(),
            today,
            change,
        )?;
        let mut out = String::new();
        if c.before_first_publication {
            writeln!(
                out,
                "{} (takes effect with the first publication)",
                c.reason
            )?;
            return Ok(out);
        }
        writeln!(out, "{}", c.reason)?;
        match c.published {
            Some(p) => writeln!(out, "published #{}", p.entry.seq)?,
            None => writeln!(out, "nothing to publish")?,
        }
        Ok(out)
    }
}
