//! The schema versions this Stelselnode can render and import, their XSDs (embedded from
//! `schemas/`), and XSD validation (libxml2's streaming validator, in `libxml`).

use crate::registry::model::{ListKind, SchemaVersion};

/// One list in one schema version.
#[derive(Debug)]
pub struct SchemaDef {
    pub list: ListKind,
    pub version: SchemaVersion,
    pub namespace: &'static str,
    pub xsd: &'static str,
    /// Official MedMij schema: closed, so signatures are detached only. Project-authored
    /// schemas allow an enveloped `ds:Signature` as the last child of the root.
    pub official: bool,
    /// File name of the project's XSD in `schemas/`.
    pub xsd_file: &'static str,
}

pub const SCHEMAS: &[SchemaDef] = &[
    SchemaDef {
        list: ListKind::Zorgaanbiederslijst,
        version: SchemaVersion::Release2,
        namespace: "xmlns://afsprakenstelsel.medmij.nl/zorgaanbiederslijst/release2/",
        xsd: include_str!("../../schemas/zorgaanbiederslijst-release2.xsd"),
        official: true,
        xsd_file: "zorgaanbiederslijst-release2.xsd",
    },
    SchemaDef {
        list: ListKind::Zorgaanbiederslijst,
        version: SchemaVersion::Release3,
        namespace: "xmlns://afsprakenstelsel.medmij.nl/zorgaanbiederslijst/release3/",
        xsd: include_str!("../../schemas/zorgaanbiederslijst-release3.xsd"),
        official: false,
        xsd_file: "zorgaanbiederslijst-release3.xsd",
    },
    SchemaDef {
        list: ListKind::OAuthclientlist,
        version: SchemaVersion::Release2,
        namespace: "xmlns://afsprakenstelsel.medmij.nl/oauthclientlist/release2/",
        xsd: include_str!("../../schemas/oauthclientlist-release2.xsd"),
        official: true,
        xsd_file: "oauthclientlist-release2.xsd",
    },
    SchemaDef {
        list: ListKind::OAuthclientlist,
        version: SchemaVersion::Release3,
        namespace: "xmlns://afsprakenstelsel.medmij.nl/oauthclientlist/release3/",
        xsd: include_str!("../../schemas/oauthclientlist-release3.xsd"),
        official: false,
        xsd_file: "oauthclientlist-release3.xsd",
    },
    SchemaDef {
        list: ListKind::Whitelist,
        version: SchemaVersion::Release2,
        namespace: "xmlns://afsprakenstelsel.medmij.nl/whitelist/release2/",
        xsd: include_str!("../../schemas/whitelist-release2.xsd"),
        official: true,
        xsd_file: "whitelist-release2.xsd",
    },
    SchemaDef {
        list: ListKind::Gegevensdienstnamenlijst,
        version: SchemaVersion::Release1,
        namespace: "xmlns://afsprakenstelsel.medmij.nl/gegevensdienstnamenlijst/release1/",
        xsd: include_str!("../../schemas/gegevensdienstnamenlijst-release1.xsd"),
        official: true,
        xsd_file: "gegevensdienstnamenlijst-release1.xsd",
    },
];

pub fn find(list: ListKind, version: SchemaVersion) -> Option<&'static SchemaDef> {
    SCHEMAS
        .iter()
        .find(|s| s.list == list && s.version == version)
}

/// The schema of a list in a schema version; an error (never another schema) if this
/// Stelselnode has none.
pub fn def(list: ListKind, version: SchemaVersion) -> Result<&'static SchemaDef, SchemaErrors> {
    find(list, version).ok_or_else(|| {
        SchemaErrors(vec![format!(
            "no schema for {list} {version} (this Stelselnode has {})",
            list.versions()
                .iter()
                .map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )])
    })
}

pub fn by_root(root: &str, namespace: &str) -> Option<&'static SchemaDef> {
    SCHEMAS
        .iter()
        .find(|s| s.list.root() == root && s.namespace == namespace)
}

/// XSD validation failed: the messages libxml2 gave, with line numbers.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct SchemaErrors(pub Vec<String>);

/// Validate against the project's XSD for this schema version.
pub fn validate(def: &SchemaDef, bytes: &[u8]) -> Result<(), SchemaErrors> {
    super::libxml::validate_stream(def.xsd, bytes)
}

#[cfg(test)]
mod tests {
    use super::super::libxml::compile;
    use super::*;

    #[test]
    fn every_schema_compiles_and_every_version_has_one() {
        for s in SCHEMAS {
            compile(s.xsd).unwrap_or_else(|e| panic!("{}: {e}", s.xsd_file));
        }
        for l in ListKind::ALL {
            for v in l.versions() {
                assert_eq!(def(l, *v).unwrap().version, *v);
            }
        }
        assert!(def(ListKind::Whitelist, SchemaVersion::Release3).is_err());
    }

    #[test]
    fn stream_validation_reports_errors() {
        let def = find(ListKind::Whitelist, SchemaVersion::Release2).unwrap();
        let good = br#"<?xml version="1.0" encoding="UTF-8"?>
<Whitelist xmlns="xmlns://afsprakenstelsel.medmij.nl/whitelist/release2/"><Tijdstempel>2020-01-01T00:00:00Z</Tijdstempel><Volgnummer>1</Volgnummer><MedMijNodes><MedMijNode><Hostname>a.nl</Hostname></MedMijNode></MedMijNodes></Whitelist>"#;
        validate(def, good).unwrap();
        let bad = String::from_utf8_lossy(good).replace("a.nl", "A.nl");
        let e = validate(def, bad.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("A.nl"), "{e}");
        let broken = &good[..good.len() - 5];
        assert!(validate(def, broken).is_err());
        assert!(validate(def, b"<!DOCTYPE x><x/>").is_err());
        // A rejected value is quoted, but not whole.
        let huge =
            String::from_utf8_lossy(good).replace("a.nl", &format!("{}.nl", "A".repeat(100_000)));
        let e = validate(def, huge.as_bytes()).unwrap_err().to_string();
        assert!(e.len() < 2_000, "{} bytes of error", e.len());
        // libxml2 reads a document a chunk at a time: one of many chunks, valid to the
        // end, and one whose last host breaks a rule on its last line.
        let nodes: String = (0..50_000)
            .map(|i| format!("\n<MedMijNode><Hostname>h{i}.nl</Hostname></MedMijNode>"))
            .collect();
        let many = String::from_utf8_lossy(good)
            .replace("<MedMijNode><Hostname>a.nl</Hostname></MedMijNode>", &nodes);
        assert!(many.len() > 2_000_000);
        validate(def, many.as_bytes()).unwrap();
        let last = many.replace("h49999.nl", "H49999.nl");
        let e = validate(def, last.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("line 50002") && e.contains("H49999.nl"), "{e}");
    }
}
