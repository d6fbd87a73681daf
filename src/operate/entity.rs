//! What the entity edits share: keyed add/update/remove/show on the registry's maps, and
//! an offering as the command line gives it. Each entity's operation has its own file
//! (`zorgaanbieder`, `oauthclient`, `whitelist`, `gegevensdienst`); each edit is one store
//! transaction that reads the rows it touches (`Scope`), checks them after the edit against
//! the rules and journals the edit.

use super::{json, not_found};
use crate::registry::model::{Abonneren, Gegevensdienst, Systeemrol};
use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Add a keyed entity that must not exist yet.
pub(super) fn insert_new<T>(
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

pub(super) fn existing<'a, T>(
    map: &'a mut BTreeMap<String, T>,
    kind: &str,
    key: &str,
) -> Result<&'a mut T, String> {
    map.get_mut(key).ok_or_else(|| not_found(kind, key))
}

pub(super) fn remove<T>(map: &mut BTreeMap<String, T>, kind: &str, key: &str) -> Result<T, String> {
    map.remove(key).ok_or_else(|| not_found(kind, key))
}

pub(super) fn show<T: Serialize>(
    map: &BTreeMap<String, T>,
    kind: &str,
    key: &str,
) -> Result<String> {
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
    pub(super) fn given(&self) -> bool {
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

    pub(super) fn build(&self) -> Result<(String, Gegevensdienst), String> {
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
