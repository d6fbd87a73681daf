//! Edits of the registry's entities: Zorgaanbieders (with their offerings), OAuth clients,
//! Whitelist nodes and Gegevensdiensten. Each edit is one store transaction that checks the
//! whole result against the rules and journals the edit with operator and reason.

use super::{json, not_found, Ctx};
use crate::registry::model::{
    Aanbiedertype, Abonneren, Gegevensdienst, Gegevensdienstnaam, Interfaceversie, OAuthclient,
    Systeemrol, Zorgaanbieder,
};
use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Add a keyed entity that must not exist yet.
fn insert_new<T>(
    map: &mut BTreeMap<String, T>,
    kind: &str,
    key: &str,
    command: &str,
    value: T,
) -> Result<(), String> {
    if map.contains_key(key) {
        return Err(format!(
            "{kind} '{}' already exists; use `{command} update`",
            crate::clip::clip(key)
        ));
    }
    map.insert(key.to_string(), value);
    Ok(())
}

fn existing<'a, T>(
    map: &'a mut BTreeMap<String, T>,
    kind: &str,
    key: &str,
) -> Result<&'a mut T, String> {
    map.get_mut(key).ok_or_else(|| not_found(kind, key))
}

fn remove<T>(map: &mut BTreeMap<String, T>, kind: &str, key: &str) -> Result<T, String> {
    map.remove(key).ok_or_else(|| not_found(kind, key))
}

fn show<T: Serialize>(map: &BTreeMap<String, T>, kind: &str, key: &str) -> Result<String> {
    json(map.get(key).ok_or_else(|| anyhow!(not_found(kind, key)))?)
}

/// One Gegevensdienst offered in one Interfaceversie, as given on the command line.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Offering {
    pub interfaceversie: Option<String>,
    pub gegevensdienst: Option<String>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    /// `CODE=URI`
    pub systeemrol: Vec<String>,
    pub abonneren_duur: Option<u32>,
    pub subscription_endpoint: Option<String>,
}

impl Offering {
    fn given(&self) -> bool {
        self.interfaceversie.is_some()
            || self.gegevensdienst.is_some()
            || self.authorization_endpoint.is_some()
            || self.token_endpoint.is_some()
            || !self.systeemrol.is_empty()
            || self.abonneren_duur.is_some()
    }

    pub fn systeemrollen(systeemrol: &[String]) -> Result<Vec<Systeemrol>, String> {
        systeemrol
            .iter()
            .map(|s| {
                s.split_once('=')
                    .map(|(c, u)| Systeemrol {
                        systeemrolcode: c.to_string(),
                        resource_endpointuri: u.to_string(),
                    })
                    .ok_or_else(|| {
                        format!(
                            "--systeemrol '{}' must have the form CODE=URI",
                            crate::clip::clip(s)
                        )
                    })
            })
            .collect()
    }

    fn build(&self) -> Result<(String, Gegevensdienst), String> {
        let mut missing = Vec::new();
        for (v, flag) in [
            (&self.interfaceversie, "--interfaceversie"),
            (&self.gegevensdienst, "--gegevensdienst"),
            (&self.authorization_endpoint, "--authorization-endpoint"),
            (&self.token_endpoint, "--token-endpoint"),
        ] {
            if v.is_none() {
                missing.push(flag);
            }
        }
        if self.systeemrol.is_empty() {
            missing.push("--systeemrol CODE=URI");
        }
        if !missing.is_empty() {
            return Err(format!("an offering needs {}", missing.join(", ")));
        }
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        Ok((
            text(&self.interfaceversie),
            Gegevensdienst {
                gegevensdienst_id: text(&self.gegevensdienst),
                authorization_endpointuri: text(&self.authorization_endpoint),
                token_endpointuri: text(&self.token_endpoint),
                abonneren: match (&self.abonneren_duur, &self.subscription_endpoint) {
                    (Some(d), Some(u)) => Some(Abonneren {
                        maximale_duur: *d,
                        subscription_endpointuri: u.clone(),
                    }),
                    _ => None,
                },
                systeemrollen: Offering::systeemrollen(&self.systeemrol)?,
            },
        ))
    }
}

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
                ctx.store.update(&ctx.who, |reg| {
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
                ctx.store.update(&ctx.who, |reg| {
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
            } => ctx.store.update(&ctx.who, |reg| {
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
            ZorgaanbiederOp::Remove { naam } => ctx.store.update(&ctx.who, |reg| {
                remove(&mut reg.zorgaanbieders, KIND, &naam)?;
                Ok(format!("removed Zorgaanbieder {naam}"))
            })?,
            ZorgaanbiederOp::Show { naam } => show(&ctx.store.registry()?.zorgaanbieders, KIND, &naam)?,
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
            } => ctx.store.update(&ctx.who, |reg| {
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
                ctx.store.update(&ctx.who, |reg| {
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
            OAuthclientOp::Remove { hostname } => ctx.store.update(&ctx.who, |reg| {
                remove(&mut reg.oauthclients, KIND, &hostname)?;
                Ok(format!("removed OAuthclient {hostname}"))
            })?,
            OAuthclientOp::Show { hostname } => {
                show(&ctx.store.registry()?.oauthclients, KIND, &hostname)?
            }
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
            WhitelistOp::Add { hostnames } => ctx.store.update(&ctx.who, |reg| {
                for h in &hostnames {
                    if !reg.whitelist.insert(h.clone()) {
                        return Err(format!(
                            "MedMijNode '{}' is already on the Whitelist",
                            crate::clip::clip(h)
                        ));
                    }
                }
                Ok(format!("added {} to the Whitelist", hostnames.join(", ")))
            })?,
            WhitelistOp::Remove { hostnames } => ctx.store.update(&ctx.who, |reg| {
                for h in &hostnames {
                    if !reg.whitelist.remove(h) {
                        return Err(not_found("MedMijNode", h));
                    }
                }
                Ok(format!(
                    "removed {} from the Whitelist",
                    hostnames.join(", ")
                ))
            })?,
            WhitelistOp::Show { hostname } => {
                if !ctx.store.registry()?.whitelist.contains(&hostname) {
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

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum GegevensdienstOp {
    Add { id: String, weergavenaam: String },
    Update { id: String, weergavenaam: String },
    Remove { id: String },
    Show { id: String },
    List,
}

impl GegevensdienstOp {
    pub fn apply(self, ctx: &Ctx) -> Result<String> {
        const KIND: &str = "Gegevensdienst";
        let msg = match self {
            GegevensdienstOp::Add { id, weergavenaam } => ctx.store.update(&ctx.who, |reg| {
                let g = Gegevensdienstnaam {
                    gegevensdienst_id: id.clone(),
                    weergavenaam,
                };
                insert_new(&mut reg.gegevensdiensten, KIND, &id, "gegevensdienst", g)?;
                Ok(format!("added Gegevensdienst {id}"))
            })?,
            GegevensdienstOp::Update { id, weergavenaam } => ctx.store.update(&ctx.who, |reg| {
                existing(&mut reg.gegevensdiensten, KIND, &id)?.weergavenaam = weergavenaam;
                Ok(format!("updated Gegevensdienst {id}"))
            })?,
            GegevensdienstOp::Remove { id } => ctx.store.update(&ctx.who, |reg| {
                remove(&mut reg.gegevensdiensten, KIND, &id)?;
                Ok(format!("removed Gegevensdienst {id}"))
            })?,
            GegevensdienstOp::Show { id } => {
                show(&ctx.store.registry()?.gegevensdiensten, KIND, &id)?
            }
            GegevensdienstOp::List => ctx
                .store
                .registry()?
                .gegevensdiensten_ordered()
                .iter()
                .map(|g| format!("{:>4}  {}", g.gegevensdienst_id, g.weergavenaam))
                .collect::<Vec<_>>()
                .join("\n"),
        };
        Ok(format!("{msg}\n"))
    }
}
