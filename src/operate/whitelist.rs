//! `whitelist add | remove | show | list`: the MedMij nodes on the Whitelist.

use super::{not_found, Ctx};
use crate::registry::store::Scope;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum WhitelistOp {
    Add { hostnames: Vec<String> },
    Remove { hostnames: Vec<String> },
    Show { hostname: String },
    List,
}

impl WhitelistOp {
    pub fn apply(self, ctx: &Ctx) -> Result<String> {
        let msg = match self {
            WhitelistOp::Add { hostnames } => {
                let scope = Scope::whitelist(&hostnames);
                ctx.store.update_rows(&ctx.who, &scope, |reg| {
                    for h in &hostnames {
                        if !reg.whitelist.insert(h.clone()) {
                            return Err(format!(
                                "MedMijNode '{}' is already on the Whitelist",
                                crate::clip::clip(h)
                            ));
                        }
                    }
                    Ok(format!("added {} to the Whitelist", hostnames.join(", ")))
                })?
            }
            WhitelistOp::Remove { hostnames } => {
                let scope = Scope::whitelist(&hostnames);
                ctx.store.update_rows(&ctx.who, &scope, |reg| {
                    for h in &hostnames {
                        if !reg.whitelist.remove(h) {
                            return Err(not_found("MedMijNode", h));
                        }
                    }
                    Ok(format!(
                        "removed {} from the Whitelist",
                        hostnames.join(", ")
                    ))
                })?
            }
            WhitelistOp::Show { hostname } => {
                let scope = Scope::whitelist(std::slice::from_ref(&hostname));
                if !ctx.store.rows(&scope)?.whitelist.contains(&hostname) {
                    bail!(not_found("MedMijNode", &hostname));
                }
                format!("{hostname} is on the Whitelist")
            }
            WhitelistOp::List => {
                let reg = ctx.store.registry()?;
                reg.whitelist.iter().cloned().collect::<Vec<_>>().join("\n")
            }
        };
        Ok(format!("{msg}\n"))
    }
}
