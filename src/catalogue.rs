//! The release catalogue: which afsprakenstelsel releases exist, their status, which schema
//! version of each list they use, and how a request's `release`/`api` parameter selects one.

use crate::model::ListKind;
use crate::schema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// The catalogue shipped in `data/releases.toml`; `init` copies it into the registry.
pub const DEFAULT_CATALOGUE: &str = include_str!("../data/releases.toml");

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Optioneel,
    Verplicht,
    Verouderd,
    Ingetrokken,
}

impl Status {
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
    pub zorgaanbiederslijst: String,
    pub oauthclientlist: String,
    pub whitelist: String,
    pub gegevensdienstnamenlijst: String,
}

impl Release {
    pub fn schema_version(&self, list: ListKind) -> &str {
        match list {
            ListKind::Zorgaanbiederslijst => &self.zorgaanbiederslijst,
            ListKind::OAuthclientlist => &self.oauthclientlist,
            ListKind::Whitelist => &self.whitelist,
            ListKind::Gegevensdienstnamenlijst => &self.gegevensdienstnamenlijst,
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
        let version = self.schema_version(list).to_string();
        // Only the release2 ZAL lacks Interfaceversies and so depends on the release's one.
        let interfaceversie = (list == ListKind::Zorgaanbiederslijst && version == "release2")
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
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaceversie: Option<String>,
}

impl Rendition {
    pub fn schema(&self) -> &'static schema::SchemaDef {
        // Catalogue validation guarantees the schema version exists.
        schema::find(self.list, &self.version).unwrap_or(&schema::SCHEMAS[0])
    }
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
            crate::rules::interfaceversie_id(&r.id)
                .map_err(|e| format!("release id '{}' {e}", r.id))?;
            if !ids.insert(r.id.as_str()) {
                return Err(format!("release id '{}' appears twice", r.id));
            }
            crate::rules::interfaceversie_id(&r.interfaceversie).map_err(|e| {
                format!(
                    "release {}: interfaceversie '{}' {e}",
                    r.id, r.interfaceversie
                )
            })?;
            for list in ListKind::ALL {
                let v = r.schema_version(list);
                if schema::find(list, v).is_none() {
                    return Err(format!(
                        "release {}: {} schema version '{v}' is not supported (supported: {})",
                        r.id,
                        list.key(),
                        schema::versions_of(list).join(", ")
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
        Ok(())
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
                if major.is_empty() || major.len() > 4 || !major.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(SelectError::BadRequest(format!(
                        "api '{major}' is not a major version number; {}",
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
