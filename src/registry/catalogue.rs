//! The release catalogue: which afsprakenstelsel releases exist, their status, which schema
//! version of each list they use, and how a request's `release`/`api` parameter selects one.

use crate::registry::model::{Aanbiedertype, ListKind, SchemaVersion};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// The catalogue shipped in `data/releases.toml`; `init` copies it into the registry.
pub const DEFAULT_CATALOGUE: &str = include_str!("../../data/releases.toml");

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Optioneel,
    Verplicht,
    Verouderd,
    Ingetrokken,
}

impl Status {
    /// Position in the lifecycle; a release only moves to a higher rank.
    pub fn rank(self) -> u8 {
        match self {
            Status::Optioneel => 0,
            Status::Verplicht => 1,
            Status::Verouderd => 2,
            Status::Ingetrokken => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Optioneel => "optioneel",
            Status::Verplicht => "verplicht",
            Status::Verouderd => "verouderd",
            Status::Ingetrokken => "ingetrokken",
        }
    }
}

impl std::str::FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "optioneel" => Ok(Status::Optioneel),
            "verplicht" => Ok(Status::Verplicht),
            "verouderd" => Ok(Status::Verouderd),
            "ingetrokken" => Ok(Status::Ingetrokken),
            _ => Err(format!(
                "status '{s}' is not one of optioneel, verplicht, verouderd, ingetrokken"
            )),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub id: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated_since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sunset: Option<String>,
    pub interfaceversie: String,
    pub zorgaanbiederslijst: SchemaVersion,
    pub oauthclientlist: SchemaVersion,
    pub whitelist: SchemaVersion,
    pub gegevensdienstnamenlijst: SchemaVersion,
    /// Aanbiedertypen in force for this release's Zorgaanbiederslijst (release3 shows them).
    #[serde(default = "aanbiedertypen_in_force")]
    pub aanbiedertypen: Vec<Aanbiedertype>,
}

/// ZA and BAZB are in force; APD is planned (FACTS.md §3.2) and refused by consumers, so a
/// release has to name it explicitly.
pub fn aanbiedertypen_in_force() -> Vec<Aanbiedertype> {
    vec![Aanbiedertype::ZA, Aanbiedertype::BAZB]
}

impl Release {
    pub fn schema_version(&self, list: ListKind) -> SchemaVersion {
        match list {
            ListKind::Zorgaanbiederslijst => self.zorgaanbiederslijst,
            ListKind::OAuthclientlist => self.oauthclientlist,
            ListKind::Whitelist => self.whitelist,
            ListKind::Gegevensdienstnamenlijst => self.gegevensdienstnamenlijst,
        }
    }

    pub fn major(&self) -> &str {
        self.id.split('.').next().unwrap_or("")
    }

    fn version_key(&self) -> Vec<u32> {
        self.id.split('.').map(|p| p.parse().unwrap_or(0)).collect()
    }

    /// The document this release serves for `list`.
    pub fn rendition(&self, list: ListKind) -> Rendition {
        let version = self.schema_version(list);
        // Only the release2 ZAL lacks Interfaceversies and so depends on the release's one.
        let interfaceversie = (list == ListKind::Zorgaanbiederslijst
            && version == SchemaVersion::Release2)
            .then(|| self.interfaceversie.clone());
        Rendition {
            list,
            version,
            interfaceversie,
        }
    }
}

/// One distinct document: a list in a schema version, for the release2 ZAL also the
/// Interfaceversie it shows. Several releases can share one rendition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Rendition {
    pub list: ListKind,
    pub version: SchemaVersion,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaceversie: Option<String>,
}

impl fmt::Display for Rendition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.list, self.version)?;
        if let Some(iv) = &self.interfaceversie {
            write!(f, " (Interfaceversie {iv})")?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    pub default: String,
    #[serde(rename = "release")]
    pub releases: Vec<Release>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("release catalogue is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("release catalogue: {0}")]
    Invalid(String),
}

/// Why a request's release selection failed, with the HTTP status it maps to.
#[derive(Debug, PartialEq, Eq)]
pub enum SelectError {
    BadRequest(String),
    NotFound(String),
    Gone(String),
}

pub fn parse_date(field: &str, s: &str) -> Result<time::Date, String> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &fmt)
        .map_err(|_| format!("{field} '{s}' is not a date of the form YYYY-MM-DD"))
}

impl Catalogue {
    pub fn parse(text: &str) -> Result<Catalogue, CatalogueError> {
        let c: Catalogue = toml::from_str(text)?;
        c.validate().map_err(CatalogueError::Invalid)?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), String> {
        let mut ids = BTreeSet::new();
        for r in &self.releases {
            crate::registry::rules::interfaceversie_id(&r.id)
                .map_err(|e| format!("release id '{}' {e}", r.id))?;
            if !ids.insert(r.id.as_str()) {
                return Err(format!("release id '{}' appears twice", r.id));
            }
            crate::registry::rules::interfaceversie_id(&r.interfaceversie).map_err(|e| {
                format!(
                    "release {}: interfaceversie '{}' {e}",
                    r.id, r.interfaceversie
                )
            })?;
            for list in ListKind::ALL {
                let v = r.schema_version(list);
                if !list.versions().contains(&v) {
                    let supported: Vec<&str> = list.versions().iter().map(|v| v.as_str()).collect();
                    return Err(format!(
                        "release {}: {} schema version '{v}' is not supported (supported: {})",
                        r.id,
                        list.key(),
                        supported.join(", ")
                    ));
                }
            }
            if let Some(d) = &r.deprecated_since {
                parse_date("deprecated_since", d).map_err(|e| format!("release {}: {e}", r.id))?;
            }
            if let Some(d) = &r.sunset {
                parse_date("sunset", d).map_err(|e| format!("release {}: {e}", r.id))?;
            }
            if r.status == Status::Verouderd && (r.sunset.is_none() || r.deprecated_since.is_none())
            {
                return Err(format!(
                    "release {}: status verouderd needs both deprecated_since and sunset dates",
                    r.id
                ));
            }
        }
        match self.get(&self.default) {
            None => {
                return Err(format!(
                    "default release '{}' is not in the catalogue",
                    self.default
                ))
            }
            Some(r) if r.status == Status::Ingetrokken => {
                return Err(format!("default release '{}' is ingetrokken", self.default))
            }
            _ => {}
        }
        let verplicht: Vec<&str> = self
            .releases
            .iter()
            .filter(|r| r.status == Status::Verplicht)
            .map(|r| r.id.as_str())
            .collect();
        if verplicht.len() > 1 {
            return Err(format!(
                "releases {} are all verplicht; one release is verplicht at a time",
                verplicht.join(", ")
            ));
        }
        Ok(())
    }

    /// The lifecycle rules between a stored catalogue and the one replacing it, enforced by
    /// the store on every write: releases are never removed and their status only moves
    /// forward (optioneel → verplicht → verouderd → ingetrokken); the result is valid.
    pub fn check_transition(&self, next: &Catalogue) -> Result<(), String> {
        next.validate()?;
        for old in &self.releases {
            let Some(new) = next.get(&old.id) else {
                return Err(format!(
                    "release '{}' would be removed from the catalogue; releases are never removed (withdraw it: ingetrokken)",
                    old.id
                ));
            };
            if new.status.rank() < old.status.rank() {
                return Err(format!(
                    "release '{}' is {}; a release only moves forward: optioneel -> verplicht -> verouderd -> ingetrokken",
                    old.id,
                    old.status.as_str()
                ));
            }
        }
        Ok(())
    }

    /// Add a release (status optioneel). Returns what changed, for the log.
    pub fn add_release(&mut self, r: Release) -> Result<String, String> {
        if self.get(&r.id).is_some() {
            return Err(format!("release '{}' already exists", r.id));
        }
        crate::registry::rules::release_id(&r.id)
            .map_err(|e| format!("release id '{}' {e}", crate::clip::clip(&r.id)))?;
        let id = r.id.clone();
        let mut next = self.clone();
        next.releases.push(Release {
            status: Status::Optioneel,
            ..r
        });
        self.check_transition(&next)?;
        *self = next;
        Ok(format!("release {id} added (optioneel)"))
    }

    /// Move a release to `status`. Verouderd needs a sunset date; `since` defaults to
    /// `today`.
    pub fn set_status(
        &mut self,
        id: &str,
        status: Status,
        sunset: Option<String>,
        since: Option<String>,
        today: time::Date,
    ) -> Result<String, String> {
        let mut next = self.clone();
        if status == Status::Verplicht {
            if let Some(other) = next
                .releases
                .iter()
                .find(|r| r.status == Status::Verplicht && r.id != id)
            {
                return Err(format!(
                    "release '{}' is verplicht; set it to verouderd first (one verplicht release at a time)",
                    other.id
                ));
            }
        }
        if status == Status::Ingetrokken && next.default == id {
            return Err(format!("release '{id}' is the default; choose another default (`release set-default`) before withdrawing it"));
        }
        let r = next
            .releases
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or_else(|| format!("release '{id}' does not exist"))?;
        if status.rank() <= r.status.rank() {
            return Err(format!(
                "release '{id}' is {}; a release only moves forward: optioneel -> verplicht -> verouderd -> ingetrokken",
                r.status.as_str()
            ));
        }
        if status == Status::Verouderd {
            let sunset = sunset.ok_or("status verouderd needs --sunset YYYY-MM-DD")?;
            parse_date("--sunset", &sunset)?;
            let since = since.unwrap_or_else(|| {
                format!(
                    "{:04}-{:02}-{:02}",
                    today.year(),
                    today.month() as u8,
                    today.day()
                )
            });
            parse_date("--deprecated-since", &since)?;
            r.sunset = Some(sunset);
            r.deprecated_since = Some(since);
        } else if sunset.is_some() || since.is_some() {
            return Err("--sunset and --deprecated-since apply to status verouderd only".into());
        }
        let old = std::mem::replace(&mut r.status, status);
        self.check_transition(&next)?;
        *self = next;
        Ok(format!(
            "release {id}: {} -> {}",
            old.as_str(),
            status.as_str()
        ))
    }

    /// Choose the release served without `?release=`/`?api=`.
    pub fn set_default(&mut self, id: &str) -> Result<String, String> {
        match self.get(id) {
            None => return Err(format!("release '{id}' does not exist")),
            Some(r) if r.status == Status::Ingetrokken => {
                return Err(format!(
                    "release '{id}' is ingetrokken; it cannot be the default"
                ))
            }
            _ => {}
        }
        let mut next = self.clone();
        let old = std::mem::replace(&mut next.default, id.to_string());
        self.check_transition(&next)?;
        *self = next;
        Ok(format!("default release {old} -> {id}"))
    }

    pub fn get(&self, id: &str) -> Option<&Release> {
        self.releases.iter().find(|r| r.id == id)
    }

    /// Releases still served (everything but `ingetrokken`).
    pub fn served(&self) -> impl Iterator<Item = &Release> {
        self.releases
            .iter()
            .filter(|r| r.status != Status::Ingetrokken)
    }

    /// Every distinct document the served releases need.
    pub fn renditions(&self) -> BTreeSet<Rendition> {
        self.served()
            .flat_map(|r| ListKind::ALL.into_iter().map(move |l| r.rendition(l)))
            .collect()
    }

    fn valid_values(&self) -> String {
        let served: Vec<&str> = self.served().map(|r| r.id.as_str()).collect();
        let majors: BTreeSet<&str> = self.served().map(|r| r.major()).collect();
        format!(
            "valid values: release={} or api={} (no parameter: release {})",
            served.join("|"),
            majors.into_iter().collect::<Vec<_>>().join("|"),
            self.default
        )
    }

    /// Pick the release for a request. `release` selects an exact release, `api` the newest
    /// served release of a major version, neither the default.
    pub fn select(
        &self,
        release: Option<&str>,
        api: Option<&str>,
    ) -> Result<&Release, SelectError> {
        let by_release = match release {
            None => None,
            Some(id) => match self.get(id) {
                None => {
                    return Err(SelectError::NotFound(format!(
                        "unknown release '{id}'; {}",
                        self.valid_values()
                    )))
                }
                Some(r) if r.status == Status::Ingetrokken => {
                    return Err(SelectError::Gone(format!(
                        "release '{id}' is ingetrokken (withdrawn); {}",
                        self.valid_values()
                    )))
                }
                Some(r) => Some(r),
            },
        };
        let by_api = match api {
            None => None,
            Some(major) => {
                // Canonical, as release ids are: no leading zeros, at least 1.
                if major.is_empty()
                    || major.len() > 4
                    || !major.bytes().all(|b| b.is_ascii_digit())
                    || major.starts_with('0')
                {
                    return Err(SelectError::BadRequest(format!(
                        "api '{major}' is not a major version number (1 to 9999, without leading zeros); {}",
                        self.valid_values()
                    )));
                }
                let all: Vec<&Release> = self
                    .releases
                    .iter()
                    .filter(|r| r.major() == major)
                    .collect();
                if all.is_empty() {
                    return Err(SelectError::NotFound(format!(
                        "no release with major version {major}; {}",
                        self.valid_values()
                    )));
                }
                match all
                    .into_iter()
                    .filter(|r| r.status != Status::Ingetrokken)
                    .max_by_key(|r| r.version_key())
                {
                    None => {
                        return Err(SelectError::Gone(format!(
                            "every release of major version {major} is ingetrokken; {}",
                            self.valid_values()
                        )))
                    }
                    Some(r) => Some(r),
                }
            }
        };
        match (by_release, by_api) {
            (Some(r), Some(_)) if api != Some(r.major()) => Err(SelectError::BadRequest(format!(
                "release '{}' and api '{}' contradict each other; give one of them; {}",
                r.id,
                api.unwrap_or(""),
                self.valid_values()
            ))),
            (Some(r), _) => Ok(r),
            (None, Some(r)) => Ok(r),
            (None, None) => self
                .get(&self.default)
                .ok_or_else(|| SelectError::NotFound("no default release".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> Catalogue {
        Catalogue::parse(DEFAULT_CATALOGUE).unwrap()
    }

    #[test]
    fn shipped_catalogue_parses() {
        let c = cat();
        assert_eq!(c.default, "1.1.1");
        assert_eq!(c.get("1.1.2").unwrap().status, Status::Verplicht);
        // 1.1.1 and 1.1.2 share every rendition but the OCL.
        assert_eq!(c.renditions().len(), 6);
    }

    #[test]
    fn selection() {
        let mut c = cat();
        assert_eq!(c.select(None, None).unwrap().id, "1.1.1");
        assert_eq!(c.select(Some("1.1.2"), None).unwrap().id, "1.1.2");
        assert_eq!(c.select(None, Some("2")).unwrap().id, "2.0.0");
        assert_eq!(c.select(None, Some("1")).unwrap().id, "1.1.2");
        assert_eq!(c.select(Some("2.0.0"), Some("2")).unwrap().id, "2.0.0");
        assert!(matches!(
            c.select(Some("1.1.2"), Some("2")),
            Err(SelectError::BadRequest(_))
        ));
        assert!(matches!(
            c.select(Some("9.9.9"), None),
            Err(SelectError::NotFound(_))
        ));
        assert!(matches!(
            c.select(None, Some("x")),
            Err(SelectError::BadRequest(_))
        ));
        assert!(matches!(
            c.select(None, Some("7")),
            Err(SelectError::NotFound(_))
        ));
        // One spelling per major version, as the edges' configuration accepts it.
        for api in ["0", "01", "0000", "02"] {
            assert!(
                matches!(c.select(None, Some(api)), Err(SelectError::BadRequest(_))),
                "{api}"
            );
        }
        c.releases[2].status = Status::Ingetrokken;
        assert!(matches!(
            c.select(Some("2.0.0"), None),
            Err(SelectError::Gone(_))
        ));
        assert!(matches!(
            c.select(None, Some("2")),
            Err(SelectError::Gone(_))
        ));
    }

    #[test]
    fn lifecycle_rules_hold_for_every_transition() {
        let today = time::macros::date!(2026 - 12 - 01);
        let c = cat();
        // Backwards, removal, two verplicht: refused whoever writes the catalogue.
        let mut back = c.clone();
        back.releases[0].status = Status::Verplicht;
        back.releases[1].status = Status::Verouderd;
        back.releases[1].sunset = Some("2027-01-01".into());
        back.releases[1].deprecated_since = Some("2026-12-01".into());
        assert!(c
            .check_transition(&back)
            .unwrap_err()
            .contains("only moves forward"));
        let mut removed = c.clone();
        removed.releases.pop();
        assert!(c
            .check_transition(&removed)
            .unwrap_err()
            .contains("never removed"));
        let mut two = c.clone();
        two.releases[2].status = Status::Verplicht;
        assert!(c
            .check_transition(&two)
            .unwrap_err()
            .contains("one release is verplicht"));
        let mut gone_default = c.clone();
        gone_default.releases[0].status = Status::Ingetrokken;
        assert!(c.check_transition(&gone_default).is_err());

        let mut m = c.clone();
        assert!(m
            .set_status("1.1.1", Status::Optioneel, None, None, today)
            .is_err());
        assert!(m
            .set_status("2.0.0", Status::Verplicht, None, None, today)
            .is_err());
        assert!(m
            .set_status("1.1.1", Status::Ingetrokken, None, None, today)
            .is_err());
        assert!(m
            .set_status("1.1.2", Status::Verouderd, None, None, today)
            .is_err());
        assert_eq!(m, c, "refused changes leave the catalogue as it was");
        m.set_status(
            "1.1.2",
            Status::Verouderd,
            Some("2027-12-31".into()),
            None,
            today,
        )
        .unwrap();
        assert_eq!(
            m.get("1.1.2").unwrap().deprecated_since.as_deref(),
            Some("2026-12-01")
        );
        m.set_status("2.0.0", Status::Verplicht, None, None, today)
            .unwrap();
        m.set_default("2.0.0").unwrap();
        m.set_status("1.1.1", Status::Ingetrokken, None, None, today)
            .unwrap();
        assert!(m.set_default("1.1.1").is_err());
        c.check_transition(&m).unwrap();
    }

    /// One release, one spelling: `?api=1` must not pick a `1.1.03` beside 1.1.2.
    #[test]
    fn new_release_ids_are_canonical() {
        let mut c = cat();
        let template = c.get("2.0.0").unwrap().clone();
        let like = |id: &str| Release {
            id: id.into(),
            ..template.clone()
        };
        for id in [
            "1.1.03",
            "0.0.0",
            "0000.0000.0000",
            "01.2.0",
            "0.9.0",
            "1.1",
            "1.x.0",
        ] {
            let before = c.clone();
            let e = c.clone().add_release(like(id)).unwrap_err();
            assert!(e.contains(&format!("'{id}'")), "{id}: {e}");
            assert_eq!(c, before);
        }
        for id in ["1.10.0", "3.0.0", "2.0.10"] {
            c.add_release(like(id))
                .unwrap_or_else(|e| panic!("{id}: {e}"));
        }
    }

    #[test]
    fn invalid_catalogues_are_refused() {
        let bad = DEFAULT_CATALOGUE.replace(
            "oauthclientlist = \"release3\"",
            "oauthclientlist = \"release9\"",
        );
        assert!(Catalogue::parse(&bad)
            .unwrap_err()
            .to_string()
            .contains("release9"));
        let bad = DEFAULT_CATALOGUE.replace("default = \"1.1.1\"", "default = \"3.0.0\"");
        assert!(Catalogue::parse(&bad).is_err());
        let bad = DEFAULT_CATALOGUE.replace("sunset = \"2027-06-30\"", "sunset = \"30-06-2027\"");
        assert!(Catalogue::parse(&bad).is_err());
    }
}
