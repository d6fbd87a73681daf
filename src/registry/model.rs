//! The registry's domain model: what the stelsel operator administers, independent of any
//! list or schema version. Renderers turn a [`Registry`] into documents; importers turn
//! documents back into one.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The four lists the Stelselnode publishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListKind {
    Zorgaanbiederslijst,
    #[serde(rename = "oauthclientlist")]
    OAuthclientlist,
    Whitelist,
    Gegevensdienstnamenlijst,
}

impl ListKind {
    pub const ALL: [ListKind; 4] = [
        ListKind::Zorgaanbiederslijst,
        ListKind::OAuthclientlist,
        ListKind::Whitelist,
        ListKind::Gegevensdienstnamenlijst,
    ];

    /// Lower-case key used in the release catalogue, namespaces and storage keys.
    pub fn key(self) -> &'static str {
        match self {
            ListKind::Zorgaanbiederslijst => "zorgaanbiederslijst",
            ListKind::OAuthclientlist => "oauthclientlist",
            ListKind::Whitelist => "whitelist",
            ListKind::Gegevensdienstnamenlijst => "gegevensdienstnamenlijst",
        }
    }

    /// The root element name, which is also the name in `MedMij_<name>.xml`.
    pub fn root(self) -> &'static str {
        match self {
            ListKind::Zorgaanbiederslijst => "Zorgaanbiederslijst",
            ListKind::OAuthclientlist => "OAuthclientlist",
            ListKind::Whitelist => "Whitelist",
            ListKind::Gegevensdienstnamenlijst => "Gegevensdienstnamenlijst",
        }
    }

    /// The file name under which the list is served (FACTS.md §1).
    pub fn file_name(self) -> &'static str {
        match self {
            ListKind::Zorgaanbiederslijst => "MedMij_Zorgaanbiederslijst.xml",
            ListKind::OAuthclientlist => "MedMij_OAuthclientlist.xml",
            ListKind::Whitelist => "MedMij_Whitelist.xml",
            ListKind::Gegevensdienstnamenlijst => "MedMij_Gegevensdienstnamenlijst.xml",
        }
    }

    pub fn from_key(key: &str) -> Option<ListKind> {
        let lower = key.to_ascii_lowercase();
        ListKind::ALL.into_iter().find(|l| {
            l.key() == lower
                || matches!(
                    (l, lower.as_str()),
                    (ListKind::Zorgaanbiederslijst, "zal")
                        | (ListKind::OAuthclientlist, "ocl")
                        | (ListKind::Gegevensdienstnamenlijst, "gnl")
                )
        })
    }

    pub fn from_file_name(name: &str) -> Option<ListKind> {
        ListKind::ALL.into_iter().find(|l| l.file_name() == name)
    }
}

impl ListKind {
    /// The schema versions this Stelselnode renders and reads for the list.
    pub fn versions(self) -> &'static [SchemaVersion] {
        match self {
            ListKind::Zorgaanbiederslijst | ListKind::OAuthclientlist => {
                &[SchemaVersion::Release2, SchemaVersion::Release3]
            }
            ListKind::Whitelist => &[SchemaVersion::Release2],
            ListKind::Gegevensdienstnamenlijst => &[SchemaVersion::Release1],
        }
    }
}

/// A schema version of a list, as the namespaces and the release catalogue name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaVersion {
    Release1,
    Release2,
    Release3,
}

impl SchemaVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaVersion::Release1 => "release1",
            SchemaVersion::Release2 => "release2",
            SchemaVersion::Release3 => "release3",
        }
    }
}

impl std::str::FromStr for SchemaVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "release1" => Ok(SchemaVersion::Release1),
            "release2" => Ok(SchemaVersion::Release2),
            "release3" => Ok(SchemaVersion::Release3),
            _ => Err(format!(
                "schema version '{}' is not one of release1, release2, release3",
                crate::clip::clip(s)
            )),
        }
    }
}

impl fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for ListKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.root())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Aanbiedertype {
    /// Zorgaanbieder
    ZA,
    /// Bron als zelfstandige beheerder (release3 example)
    BAZB,
    /// Aanbieder in het persoonsdomein (planned 2025, FACTS.md §3.2)
    APD,
}

impl Aanbiedertype {
    pub fn as_str(self) -> &'static str {
        match self {
            Aanbiedertype::ZA => "ZA",
            Aanbiedertype::BAZB => "BAZB",
            Aanbiedertype::APD => "APD",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ZA" => Some(Self::ZA),
            "BAZB" => Some(Self::BAZB),
            "APD" => Some(Self::APD),
            _ => None,
        }
    }
}

impl std::str::FromStr for Aanbiedertype {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s).ok_or_else(|| format!("Aanbiedertype '{s}' is not one of ZA, BAZB, APD"))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Systeemrol {
    pub systeemrolcode: String,
    pub resource_endpointuri: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Abonneren {
    /// Days.
    pub maximale_duur: u32,
    pub subscription_endpointuri: String,
}

/// One Gegevensdienst as a Zorgaanbieder offers it in one Interfaceversie.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gegevensdienst {
    pub gegevensdienst_id: String,
    pub authorization_endpointuri: String,
    pub token_endpointuri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abonneren: Option<Abonneren>,
    pub systeemrollen: Vec<Systeemrol>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interfaceversie {
    pub interfaceversie_id: String,
    pub gegevensdiensten: Vec<Gegevensdienst>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Zorgaanbieder {
    pub zorgaanbiedernaam: String,
    pub aanbiedertype: Aanbiedertype,
    pub interfaceversies: Vec<Interfaceversie>,
}

impl Zorgaanbieder {
    pub fn interfaceversie(&self, id: &str) -> Option<&Interfaceversie> {
        self.interfaceversies
            .iter()
            .find(|i| i.interfaceversie_id == id)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthclient {
    pub hostname: String,
    pub oauthclient_organisatienaam: String,
    /// The Gegevensdiensten this PGO server is recognised for (OCL release3).
    #[serde(default)]
    pub gegevensdiensten: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gegevensdienstnaam {
    pub gegevensdienst_id: String,
    pub weergavenaam: String,
}

/// A gecontroleerde livegang: a temporary administrative copy (`copy_id`) of a valid
/// Gegevensdienst, offered only by `zorgaanbieders` and listed only for `oauthclients`.
/// Its entries are materialised in the registry like any other; this record says why they
/// exist and when they end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Livegang {
    pub copy_id: String,
    pub gegevensdienst_id: String,
    /// The release that was verplicht when it started, and its Interfaceversie.
    pub release: String,
    pub interfaceversie: String,
    pub zorgaanbieders: Vec<String>,
    pub oauthclients: Vec<String>,
    /// RFC 3339 UTC moment at which the copy ends by itself.
    pub until: String,
    pub started: String,
    pub operator: String,
}

/// Everything the operator administers. Top-level collections are keyed (and so ordered)
/// by their identifying field; nested collections are kept in one canonical order (see
/// [`Registry::canonicalize`]), so equal content is equal data whatever order an edit or an
/// imported file used.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    pub zorgaanbieders: BTreeMap<String, Zorgaanbieder>,
    pub oauthclients: BTreeMap<String, OAuthclient>,
    pub whitelist: BTreeSet<String>,
    pub gegevensdiensten: BTreeMap<String, Gegevensdienstnaam>,
    #[serde(default)]
    pub livegangen: BTreeMap<String, Livegang>,
}

impl Registry {
    /// Put every nested collection in its canonical order: Interfaceversies by version
    /// number, Gegevensdiensten by numeric id, Systeemrollen by code, a client's
    /// Gegevensdiensten by numeric id. Every write and every publication applies it, so an
    /// export imported again changes nothing.
    pub fn canonicalize(&mut self) {
        for z in self.zorgaanbieders.values_mut() {
            z.interfaceversies
                .sort_by(|a, b| version_order(&a.interfaceversie_id, &b.interfaceversie_id));
            for iv in &mut z.interfaceversies {
                iv.gegevensdiensten
                    .sort_by(|a, b| id_order(&a.gegevensdienst_id, &b.gegevensdienst_id));
                for g in &mut iv.gegevensdiensten {
                    g.systeemrollen
                        .sort_by(|a, b| a.systeemrolcode.cmp(&b.systeemrolcode));
                }
            }
        }
        for c in self.oauthclients.values_mut() {
            c.gegevensdiensten.sort_by(|a, b| id_order(a, b));
        }
        for l in self.livegangen.values_mut() {
            l.zorgaanbieders.sort();
            l.oauthclients.sort();
        }
    }

    /// The Gegevensdienstnamen in numeric order (ids are numeric by rule, so shorter first).
    pub fn gegevensdiensten_ordered(&self) -> Vec<&Gegevensdienstnaam> {
        let mut v: Vec<_> = self.gegevensdiensten.values().collect();
        v.sort_by(|a, b| id_order(&a.gegevensdienst_id, &b.gegevensdienst_id));
        v
    }

    /// SHA-256 (hex) of the canonical serialisation of the part of the registry one list
    /// shows: it decides whether a publication changes that list. Streamed into the hash: at 100,000 Zorgaanbieders the serialisation is hundreds
    /// of MB that need not exist at once.
    pub fn list_content_sha256(&self, list: ListKind) -> Result<String, serde_json::Error> {
        struct Hashing(ring::digest::Context);
        impl std::io::Write for Hashing {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.update(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut h = std::io::BufWriter::with_capacity(
            64 << 10,
            Hashing(ring::digest::Context::new(&ring::digest::SHA256)),
        );
        self.write_list_content(list, &mut h)?;
        let h = h
            .into_inner()
            .map_err(|e| serde_json::Error::io(e.into_error()))?;
        Ok(crate::digest::hex(h.0.finish().as_ref()))
    }

    fn write_list_content(
        &self,
        list: ListKind,
        w: &mut impl std::io::Write,
    ) -> Result<(), serde_json::Error> {
        match list {
            ListKind::Zorgaanbiederslijst => serde_json::to_writer(w, &self.zorgaanbieders),
            ListKind::OAuthclientlist => serde_json::to_writer(w, &self.oauthclients),
            ListKind::Whitelist => serde_json::to_writer(w, &self.whitelist),
            ListKind::Gegevensdienstnamenlijst => serde_json::to_writer(w, &self.gegevensdiensten),
        }
    }
}

/// A Tijdstempel as the lists write it: UTC, seconds, `Z`.
pub fn tijdstempel(t: time::OffsetDateTime) -> String {
    // Callers bound their times to years 1..9999 (see `livegang::parse_until`).
    let t = t.checked_to_offset(time::UtcOffset::UTC).unwrap_or(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Order `MAJOR.MINOR.PATCH` numerically part by part ("1.10.0" after "1.9.0"); ties and
/// anything else by bytes, so the order is total.
pub fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |s: &str| -> Vec<(usize, String)> {
        s.split('.').map(|p| (p.len(), p.to_string())).collect()
    };
    parts(a).cmp(&parts(b)).then_with(|| a.cmp(b))
}

/// Order numeric-looking ids numerically ("2" before "10"), anything else by bytes.
pub fn id_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_streamed_content_hash_is_the_hash_of_the_content() {
        let reg = crate::consume::read::demo_registry();
        let sha = |b: Vec<u8>| crate::digest::sha256_hex(&b);
        let whole = [
            sha(serde_json::to_vec(&reg.zorgaanbieders).unwrap()),
            sha(serde_json::to_vec(&reg.oauthclients).unwrap()),
            sha(serde_json::to_vec(&reg.whitelist).unwrap()),
            sha(serde_json::to_vec(&reg.gegevensdiensten).unwrap()),
        ];
        let streamed: Vec<String> = ListKind::ALL
            .iter()
            .map(|l| reg.list_content_sha256(*l).unwrap())
            .collect();
        assert_eq!(streamed, whole);
    }
}
