//! `oauthclient add | update | remove | show | list`: the PGO servers of the
//! OAuthclientlist.

use super::entity::{existing, insert_new, remove, show};
use super::Ctx;
use crate::registry::model::OAuthclient;
use crate::registry::store::Scope;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum OAuthclientOp {
    Add {
        hostname: String,
        organisatienaam: String,
        gegevensdienst: Vec<String>,
    },
    Update {
        hostname: String,
        organisatienaam: Option<String>,
        gegevensdienst: Vec<String>,
        no_gegevensdiensten: bool,
    },
    Remove {
        hostname: String,
    },
    Show {
        hostname: String,
    },
    List,
}

impl OAuthclientOp {
    pub fn apply(self, ctx: &Ctx) -> Result<String> {
        const KIND: &str = "OAuthclient";
        let msg = match self {
            OAuthclientOp::Add {
                hostname,
                organisatienaam,
                gegevensdienst,
            } => ctx
                .store
                .update_rows(&ctx.who, &Scope::oauthclient(&hostname), |reg| {
                    let c = OAuthclient {
                        hostname: hostname.clone(),
                        oauthclient_organisatienaam: organisatienaam,
                        gegevensdiensten: gegevensdienst,
                    };
                    insert_new(&mut reg.oauthclients, KIND, &hostname, "oauthclient", c)?;
                    Ok(format!("added OAuthclient {hostname}"))
                })?,
            OAuthclientOp::Update {
                hostname,
                organisatienaam,
                gegevensdienst,
                no_gegevensdiensten,
            } => {
                if organisatienaam.is_none() && gegevensdienst.is_empty() && !no_gegevensdiensten {
                    bail!("oauthclient update {hostname}: nothing to change");
                }
                ctx.store
                    .update_rows(&ctx.who, &Scope::oauthclient(&hostname), |reg| {
                        let c = existing(&mut reg.oauthclients, KIND, &hostname)?;
                        if let Some(n) = organisatienaam {
                            c.oauthclient_organisatienaam = n;
                        }
                        if !gegevensdienst.is_empty() || no_gegevensdiensten {
                            c.gegevensdiensten = gegevensdienst;
                        }
                        Ok(format!("updated OAuthclient {hostname}"))
                    })?
            }
            OAuthclientOp::Remove { hostname } => {
                ctx.store
                    .update_rows(&ctx.who, &Scope::oauthclient(&hostname), |reg| {
                        remove(&mut reg.oauthclients, KIND, &hostname)?;
                        Ok(format!("removed OAuthclient {hostname}"))
                    })?
            }
            OAuthclientOp::Show { hostname } => show(
                &ctx.store.rows(&Scope::oauthclient(&hostname))?.oauthclients,
                KIND,
                &hostname,
            )?,
            OAuthclientOp::List => ctx
                .store
                .registry()?
                .oauthclients
                .values()
                .map(|c| {
                    format!(
                        "{:<45} {:<35} {}",
                        c.hostname,
                        c.oauthclient_organisatienaam,
                        c.gegevensdiensten.join(",")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
        };
        Ok(format!("{msg}\n"))
    }
}
