//! Gecontroleerde livegang (controlled go-live): a temporary administrative copy of one
//! valid Gegevensdienst under its own GegevensdienstId, offered in the ZAL only by the
//! participating Zorgaanbieders and listed in the OCL (release3) only for the participating
//! OAuth clients. Allowed only on the Interfaceversie of the verplicht release (FACTS.md §9).

use crate::registry::catalogue::{Catalogue, Status};
use crate::registry::model::tijdstempel;
use crate::registry::model::{
    Gegevensdienst, Gegevensdienstnaam, Interfaceversie, Livegang, Registry,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Endpoints for the copy; when absent, each Zorgaanbieder's offering of the original
/// Gegevensdienst in that Interfaceversie is copied.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Endpoints {
    pub authorization_endpointuri: String,
    pub token_endpointuri: String,
    pub systeemrollen: Vec<crate::registry::model::Systeemrol>,
}

/// A gecontroleerde livegang to start.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Start {
    pub gegevensdienst: String,
    pub zorgaanbieders: Vec<String>,
    pub oauthclients: Vec<String>,
    pub until: String,
    pub copy_id: Option<String>,
    pub release: Option<String>,
    pub endpoints: Option<Endpoints>,
}

/// `YYYY-MM-DD` means through the end of that day (UTC); an RFC 3339 time means that moment.
pub fn parse_until(s: &str) -> Result<OffsetDateTime, String> {
    if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return t
            .checked_to_offset(time::UtcOffset::UTC)
            .filter(|u| u.year() <= 9999)
            .ok_or_else(|| format!("--until '{s}' is out of range"));
    }
    let d = crate::registry::catalogue::parse_date("--until", s)
        .map_err(|_| format!("--until '{s}' is neither a date YYYY-MM-DD nor an RFC 3339 time"))?;
    let next = d
        .next_day()
        .ok_or_else(|| format!("--until '{s}' is out of range"))?;
    Ok(next.midnight().assume_utc())
}

fn next_free_id(reg: &Registry) -> Result<String, String> {
    let max = reg
        .gegevensdiensten
        .keys()
        .filter_map(|k| k.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    max.checked_add(1)
        .map(|n| n.to_string())
        .ok_or_else(|| "no free GegevensdienstId above the highest one; give --copy-id".into())
}

fn copy_name(original: &str) -> String {
    let suffix = " (gecontroleerde livegang)";
    let room = 50 - suffix.chars().count();
    let base: String = if original.chars().count() > room {
        original.chars().take(room - 1).collect::<String>() + "…"
    } else {
        original.to_string()
    };
    format!("{base}{suffix}")
}

pub fn start(
    reg: &mut Registry,
    cat: &Catalogue,
    a: Start,
    operator: &str,
    now: OffsetDateTime,
) -> Result<String, String> {
    let release = match &a.release {
        Some(id) => cat
            .get(id)
            .ok_or_else(|| format!("release '{id}' does not exist"))?,
        None => cat
            .releases
            .iter()
            .find(|r| r.status == Status::Verplicht)
            .ok_or(
                "no release is verplicht; a gecontroleerde livegang needs the verplicht release",
            )?,
    };
    if release.status != Status::Verplicht {
        return Err(format!(
            "release {} is {}; a gecontroleerde livegang is only allowed on the Interfaceversie of the verplicht release (FACTS.md §9)",
            release.id,
            release.status.as_str()
        ));
    }
    let original = reg
        .gegevensdiensten
        .get(&a.gegevensdienst)
        .ok_or_else(|| {
            format!(
                "Gegevensdienst '{}' does not exist in the Gegevensdienstnamenlijst",
                a.gegevensdienst
            )
        })?
        .clone();
    if reg.livegangen.contains_key(&a.gegevensdienst) {
        return Err(format!(
            "Gegevensdienst '{}' is itself a gecontroleerde livegang copy",
            a.gegevensdienst
        ));
    }
    if a.zorgaanbieders.is_empty() || a.oauthclients.is_empty() {
        return Err(
            "a gecontroleerde livegang needs at least one --zorgaanbieder and one --oauthclient"
                .into(),
        );
    }
    for z in &a.zorgaanbieders {
        if !reg.zorgaanbieders.contains_key(z) {
            return Err(format!("Zorgaanbieder '{z}' does not exist"));
        }
    }
    for c in &a.oauthclients {
        if !reg.oauthclients.contains_key(c) {
            return Err(format!("OAuthclient '{c}' does not exist"));
        }
    }
    let until = parse_until(&a.until)?;
    if until <= now {
        return Err(format!("--until '{}' is not in the future", a.until));
    }
    let copy_id = match a.copy_id {
        Some(id) => {
            if reg.gegevensdiensten.contains_key(&id) {
                return Err(format!("--copy-id '{id}' is already a GegevensdienstId"));
            }
            id
        }
        None => next_free_id(reg)?,
    };
    let iv = release.interfaceversie.clone();
    for naam in &a.zorgaanbieders {
        let z = reg
            .zorgaanbieders
            .get_mut(naam)
            .ok_or_else(|| format!("Zorgaanbieder '{naam}' does not exist"))?;
        let offer = match &a.endpoints {
            Some(e) => Gegevensdienst {
                gegevensdienst_id: copy_id.clone(),
                authorization_endpointuri: e.authorization_endpointuri.clone(),
                token_endpointuri: e.token_endpointuri.clone(),
                abonneren: None,
                systeemrollen: e.systeemrollen.clone(),
            },
            None => {
                let existing = z
                    .interfaceversie(&iv)
                    .and_then(|i| i.gegevensdiensten.iter().find(|g| g.gegevensdienst_id == a.gegevensdienst))
                    .ok_or_else(|| {
                        format!(
                            "Zorgaanbieder '{naam}' offers no Gegevensdienst {} in Interfaceversie {iv} to take endpoints from; give --authorization-endpoint, --token-endpoint and --systeemrol",
                            a.gegevensdienst
                        )
                    })?;
                Gegevensdienst {
                    gegevensdienst_id: copy_id.clone(),
                    ..existing.clone()
                }
            }
        };
        match z
            .interfaceversies
            .iter_mut()
            .find(|i| i.interfaceversie_id == iv)
        {
            Some(i) => i.gegevensdiensten.push(offer),
            None => z.interfaceversies.push(Interfaceversie {
                interfaceversie_id: iv.clone(),
                gegevensdiensten: vec![offer],
            }),
        }
    }
    for host in &a.oauthclients {
        if let Some(c) = reg.oauthclients.get_mut(host) {
            c.gegevensdiensten.push(copy_id.clone());
        }
    }
    reg.gegevensdiensten.insert(
        copy_id.clone(),
        Gegevensdienstnaam {
            gegevensdienst_id: copy_id.clone(),
            weergavenaam: copy_name(&original.weergavenaam),
        },
    );
    reg.livegangen.insert(
        copy_id.clone(),
        Livegang {
            copy_id: copy_id.clone(),
            gegevensdienst_id: a.gegevensdienst.clone(),
            release: release.id.clone(),
            interfaceversie: iv,
            zorgaanbieders: a.zorgaanbieders,
            oauthclients: a.oauthclients,
            until: tijdstempel(until),
            started: tijdstempel(now),
            operator: operator.to_string(),
        },
    );
    Ok(format!(
        "gecontroleerde livegang {copy_id} of Gegevensdienst {} started, until {}",
        a.gegevensdienst,
        tijdstempel(until)
    ))
}

/// Remove the copy from every list. A Zorgaanbieder that offered nothing but the copy
/// leaves the ZAL with it.
pub fn end(reg: &mut Registry, id: &str) -> Result<String, String> {
    let l = reg
        .livegangen
        .remove(id)
        .ok_or_else(|| format!("no gecontroleerde livegang '{id}'"))?;
    reg.gegevensdiensten.remove(&l.copy_id);
    for z in reg.zorgaanbieders.values_mut() {
        for i in &mut z.interfaceversies {
            i.gegevensdiensten
                .retain(|g| g.gegevensdienst_id != l.copy_id);
        }
        z.interfaceversies
            .retain(|i| !i.gegevensdiensten.is_empty());
    }
    reg.zorgaanbieders
        .retain(|_, z| !z.interfaceversies.is_empty());
    for c in reg.oauthclients.values_mut() {
        c.gegevensdiensten.retain(|g| g != &l.copy_id);
    }
    Ok(format!(
        "gecontroleerde livegang {id} ended; the copy is removed from all lists"
    ))
}

/// The participants go live on the original Gegevensdienst with the copy's endpoints.
pub fn promote(reg: &mut Registry, id: &str) -> Result<String, String> {
    let l = reg
        .livegangen
        .get(id)
        .cloned()
        .ok_or_else(|| format!("no gecontroleerde livegang '{id}'"))?;
    for naam in &l.zorgaanbieders {
        let Some(z) = reg.zorgaanbieders.get_mut(naam) else {
            continue;
        };
        for i in &mut z.interfaceversies {
            let Some(copy) = i
                .gegevensdiensten
                .iter()
                .find(|g| g.gegevensdienst_id == l.copy_id)
                .cloned()
            else {
                continue;
            };
            i.gegevensdiensten
                .retain(|g| g.gegevensdienst_id != l.gegevensdienst_id);
            i.gegevensdiensten.push(Gegevensdienst {
                gegevensdienst_id: l.gegevensdienst_id.clone(),
                ..copy
            });
        }
    }
    for host in &l.oauthclients {
        if let Some(c) = reg.oauthclients.get_mut(host) {
            if !c.gegevensdiensten.contains(&l.gegevensdienst_id) {
                c.gegevensdiensten.push(l.gegevensdienst_id.clone());
            }
        }
    }
    end(reg, id)?;
    Ok(format!(
        "gecontroleerde livegang {id} promoted: {} live on Gegevensdienst {}",
        l.zorgaanbieders.join(", "),
        l.gegevensdienst_id
    ))
}

/// Ids of livegangen whose `until` has passed.
pub fn due(
    livegangen: &std::collections::BTreeMap<String, Livegang>,
    now: OffsetDateTime,
) -> Vec<String> {
    livegangen
        .values()
        .filter(|l| parse_until(&l.until).map(|u| u <= now).unwrap_or(false))
        .map(|l| l.copy_id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consume::read::demo_registry as demo;
    use crate::registry::catalogue::DEFAULT_CATALOGUE;

    fn start_of(copy: Option<&str>) -> Start {
        Start {
            gegevensdienst: "4".into(),
            zorgaanbieders: vec!["labnoord@medmij".into()],
            oauthclients: vec!["app.gezondheidskluis.nl".into()],
            until: "2099-12-31".into(),
            copy_id: copy.map(str::to_string),
            release: None,
            endpoints: None,
        }
    }

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-12-01 12:00 UTC)
    }

    #[test]
    fn start_end_and_promote_are_pure_registry_edits() {
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        let before = demo();
        let mut reg = before.clone();
        start(&mut reg, &cat, start_of(Some("104")), "op", now()).unwrap();
        assert!(crate::registry::rules::check(&reg).is_empty());
        let l = &reg.livegangen["104"];
        assert_eq!(
            (l.interfaceversie.as_str(), l.release.as_str()),
            ("1.1.0", "1.1.2")
        );
        assert!(reg.gegevensdiensten["104"]
            .weergavenaam
            .ends_with("(gecontroleerde livegang)"));
        assert!(reg.oauthclients["app.gezondheidskluis.nl"]
            .gegevensdiensten
            .contains(&"104".to_string()));
        let offers = |r: &Registry, id: &str| {
            r.zorgaanbieders["labnoord@medmij"]
                .interfaceversie("1.1.0")
                .map(|i| i.gegevensdiensten.iter().any(|g| g.gegevensdienst_id == id))
                .unwrap_or(false)
        };
        assert!(offers(&reg, "104"));
        // Ending removes every trace of the copy.
        let mut ended = reg.clone();
        end(&mut ended, "104").unwrap();
        ended.canonicalize();
        assert_eq!(ended, before);
        // Promoting keeps the original with the copy's endpoints, and no copy.
        let mut promoted = reg.clone();
        promote(&mut promoted, "104").unwrap();
        assert!(offers(&promoted, "4") && !offers(&promoted, "104"));
        assert!(promoted.livegangen.is_empty() && !promoted.gegevensdiensten.contains_key("104"));
        // Refused: a copy id in use, a date in the past, an unknown participant.
        let mut r = before.clone();
        assert!(start(&mut r, &cat, start_of(Some("4")), "op", now()).is_err());
        let mut past = start_of(None);
        past.until = "2020-01-01".into();
        assert!(start(&mut r, &cat, past, "op", now()).is_err());
        let mut unknown = start_of(None);
        unknown.oauthclients = vec!["nobody.example.nl".into()];
        assert!(start(&mut r, &cat, unknown, "op", now()).is_err());
        assert_eq!(r, before, "refused starts change nothing");
    }

    #[test]
    fn due_and_until() {
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        let mut reg = demo();
        start(&mut reg, &cat, start_of(None), "op", now()).unwrap();
        assert!(due(&reg.livegangen, now()).is_empty());
        let after = time::macros::datetime!(2100-01-01 00:00 UTC);
        assert_eq!(due(&reg.livegangen, after).len(), 1);
        // A date means through that day (UTC).
        assert_eq!(
            parse_until("2099-12-31").unwrap(),
            time::macros::datetime!(2100-01-01 00:00 UTC)
        );
        assert!(parse_until("31-12-2099").is_err());
    }
}
