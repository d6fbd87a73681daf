//! `zorgaanbieder add | update | withdraw | remove | show | list`: Zorgaanbieders and the
//! Gegevensdiensten they offer per Interfaceversie.

use super::entity::{existing, insert_new, remove, show, Offering};
use super::Ctx;
use crate::registry::model::{Aanbiedertype, Interfaceversie, Zorgaanbieder};
use crate::registry::store::Scope;
use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum ZorgaanbiederOp {
    Add {
        naam: String,
        aanbiedertype: Aanbiedertype,
        offering: Offering,
    },
    Update {
        naam: String,
        aanbiedertype: Option<Aanbiedertype>,
        offering: Offering,
    },
    Withdraw {
        naam: String,
        interfaceversie: String,
        gegevensdienst: String,
    },
    Remove {
        naam: String,
    },
    Show {
        naam: String,
    },
    List,
}

impl ZorgaanbiederOp {
    pub fn apply(self, ctx: &Ctx) -> Result<String> {
        const KIND: &str = "Zorgaanbieder";
        let msg = match self {
            ZorgaanbiederOp::Add {
                naam,
                aanbiedertype,
                offering,
            } => {
                let (iv, g) = offering
                    .build()
                    .map_err(|e| anyhow!("zorgaanbieder add {naam}: {e}"))?;
                ctx.store.update_rows(&ctx.who, &Scope::zorgaanbieder(&naam), |reg| {
                    let z = Zorgaanbieder {
                        zorgaanbiedernaam: naam.clone(),
                        aanbiedertype,
                        interfaceversies: vec![Interfaceversie {
                            interfaceversie_id: iv,
                            gegevensdiensten: vec![g],
                        }],
                    };
                    insert_new(&mut reg.zorgaanbieders, KIND, &naam, "zorgaanbieder", z)?;
                    Ok(format!("added Zorgaanbieder {naam}"))
                })?
            }
            ZorgaanbiederOp::Update {
                naam,
                aanbiedertype,
                offering,
            } => {
                let offer = if offering.given() {
                    Some(
                        offering
                            .build()
                            .map_err(|e| anyhow!("zorgaanbieder update {naam}: {e}"))?,
                    )
                } else {
                    None
                };
                if offer.is_none() && aanbiedertype.is_none() {
                    bail!("zorgaanbieder update {naam}: nothing to change (give --aanbiedertype and/or an offering)");
                }
                ctx.store.update_rows(&ctx.who, &Scope::zorgaanbieder(&naam), |reg| {
                    let z = existing(&mut reg.zorgaanbieders, KIND, &naam)?;
                    if let Some(t) = aanbiedertype {
                        z.aanbiedertype = t;
                    }
                    if let Some((iv, g)) = offer {
                        let gid = g.gegevensdienst_id.clone();
                        match z
                            .interfaceversies
                            .iter_mut()
                            .find(|i| i.interfaceversie_id == iv)
                        {
                            Some(i) => match i
                                .gegevensdiensten
                                .iter_mut()
                                .find(|x| x.gegevensdienst_id == gid)
                            {
                                Some(existing) => *existing = g,
                                None => i.gegevensdiensten.push(g),
                            },
                            None => z.interfaceversies.push(Interfaceversie {
                                interfaceversie_id: iv,
                                gegevensdiensten: vec![g],
                            }),
                        }
                    }
                    Ok(format!("updated Zorgaanbieder {naam}"))
                })?
            }
            ZorgaanbiederOp::Withdraw {
                naam,
                interfaceversie,
                gegevensdienst,
            } => ctx.store.update_rows(&ctx.who, &Scope::zorgaanbieder(&naam), |reg| {
                let z = existing(&mut reg.zorgaanbieders, KIND, &naam)?;
                let i = z
                    .interfaceversies
                    .iter_mut()
                    .find(|i| i.interfaceversie_id == interfaceversie)
                    .ok_or_else(|| {
                        format!("Zorgaanbieder '{naam}' offers nothing in Interfaceversie {interfaceversie}")
                    })?;
                let before = i.gegevensdiensten.len();
                i.gegevensdiensten
                    .retain(|g| g.gegevensdienst_id != gegevensdienst);
                if i.gegevensdiensten.len() == before {
                    return Err(format!(
                        "Zorgaanbieder '{naam}' does not offer Gegevensdienst {gegevensdienst} in Interfaceversie {interfaceversie}"
                    ));
                }
                z.interfaceversies.retain(|i| !i.gegevensdiensten.is_empty());
                if z.interfaceversies.is_empty() {
                    return Err(format!(
                        "that is the last offering of Zorgaanbieder '{naam}'; use `zorgaanbieder remove {naam}`"
                    ));
                }
                Ok(format!(
                    "withdrew Gegevensdienst {gegevensdienst} (Interfaceversie {interfaceversie}) from {naam}"
                ))
            })?,
            ZorgaanbiederOp::Remove { naam } => ctx.store.update_rows(&ctx.who, &Scope::zorgaanbieder(&naam), |reg| {
                remove(&mut reg.zorgaanbieders, KIND, &naam)?;
                Ok(format!("removed Zorgaanbieder {naam}"))
            })?,
            ZorgaanbiederOp::Show { naam } => show(&ctx.store.rows(&Scope::zorgaanbieder(&naam))?.zorgaanbieders, KIND, &naam)?,
            ZorgaanbiederOp::List => {
                let reg = ctx.store.registry()?;
                let mut s = String::new();
                for z in reg.zorgaanbieders.values() {
                    let offers: Vec<String> = z
                        .interfaceversies
                        .iter()
                        .map(|i| {
                            let ids: Vec<&str> = i
                                .gegevensdiensten
                                .iter()
                                .map(|g| g.gegevensdienst_id.as_str())
                                .collect();
                            format!("{}: {}", i.interfaceversie_id, ids.join(","))
                        })
                        .collect();
                    let _ = writeln!(
                        s,
                        "{:<40} {:<5} {}",
                        z.zorgaanbiedernaam,
                        z.aanbiedertype.as_str(),
                        offers.join("; ")
                    );
                }
                s.trim_end().to_string()
            }
        };
        Ok(format!("{msg}\n"))
    }
}
