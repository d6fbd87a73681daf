//! Field rules (FACTS.md §2 and §10) and registry-wide integrity. Every write to the
//! registry passes [`check`] on the complete resulting registry; a non-empty result means
//! nothing is written.

use crate::registry::model::{Gegevensdienst, Registry, Zorgaanbieder};
use crate::terminal::is_bidi_control;
use std::collections::BTreeSet;
use std::fmt;

/// One broken rule: which entity, which field, the offending value and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub entity: String,
    pub field: &'static str,
    pub value: String,
    pub rule: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} '{}' is invalid: {}",
            crate::clip::clip(&self.entity),
            self.field,
            crate::clip::clip(&self.value),
            self.rule
        )
    }
}

/// How many violations an error lists one by one.
pub const SHOWN_VIOLATIONS: usize = 50;

/// All violations of a failed write, reported together.
#[derive(Debug, Clone, thiserror::Error)]
pub struct Violations(pub Vec<Violation>);

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} rule violation(s); nothing was written:",
            self.0.len()
        )?;
        // All are counted; a registry-wide problem is not printed 100,000 times.
        for v in self.0.iter().take(SHOWN_VIOLATIONS) {
            writeln!(f, "  - {v}")?;
        }
        if self.0.len() > SHOWN_VIOLATIONS {
            writeln!(f, "  - … and {} more", self.0.len() - SHOWN_VIOLATIONS)?;
        }
        Ok(())
    }
}

/// A field rule: `Err` says which rule the value breaks.
type Rule = fn(&str) -> Result<(), String>;

struct Checker {
    out: Vec<Violation>,
}

impl Checker {
    fn fail(&mut self, entity: &str, field: &'static str, value: &str, rule: impl Into<String>) {
        self.out.push(Violation {
            entity: entity.to_string(),
            field,
            value: value.to_string(),
            rule: rule.into(),
        });
    }

    fn check(&mut self, entity: &str, field: &'static str, value: &str, r: Result<(), String>) {
        if let Err(rule) = r {
            self.fail(entity, field, value, rule);
        }
    }

    /// Check each field of an entity against its rule.
    fn fields(&mut self, entity: &str, fields: &[(&'static str, &str, Rule)]) {
        for (field, value, rule) in fields {
            self.check(entity, field, value, rule(value));
        }
    }
}

fn len_between(v: &str, min: usize, max: usize) -> Result<(), String> {
    let n = v.chars().count();
    if n < min || n > max {
        return Err(format!("must be {min} to {max} characters long (is {n})"));
    }
    Ok(())
}

fn no_bidi(v: &str) -> Result<(), String> {
    match v.chars().find(|c| is_bidi_control(*c)) {
        Some(c) => Err(format!(
            "must not contain bidirectional-text control characters (found U+{:04X})",
            c as u32
        )),
        None => Ok(()),
    }
}

fn printable(v: &str) -> Result<(), String> {
    if v.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters (tabs, newlines)".into());
    }
    no_bidi(v)?;
    if v.trim() != v {
        return Err("must not start or end with white space".into());
    }
    Ok(())
}

pub fn zorgaanbiedernaam(v: &str) -> Result<(), String> {
    let rule = "must match ([a-z])+@medmij: lowercase letters a-z only, then '@medmij', 10 to 57 characters";
    let Some(local) = v.strip_suffix("@medmij") else {
        return Err(rule.into());
    };
    if local.is_empty() || !local.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(rule.into());
    }
    len_between(v, 10, 57).map_err(|e| format!("{e}; {rule}"))
}

/// The XSD Hostname pattern `(([a-z0-9])([a-z0-9-])*(\.))+([a-z0-9])([a-z0-9-])*([a-z0-9])`,
/// plus DNS length limits (labels ≤ 63, name ≤ 253).
pub fn hostname(v: &str) -> Result<(), String> {
    let rule = "must be a lowercase DNS name with at least one dot (pattern (([a-z0-9])([a-z0-9-])*(\\.))+([a-z0-9])([a-z0-9-])*([a-z0-9])), no port, no trailing dot";
    if v.len() > 253 {
        return Err(format!(
            "is {} characters; a hostname has at most 253",
            v.len()
        ));
    }
    let labels = memchr::memchr_iter(b'.', v.as_bytes()).count() + 1;
    if labels < 2 {
        return Err(rule.into());
    }
    if let Some(long) = v.split('.').find(|l| l.len() > 63) {
        return Err(format!(
            "has a label of {} characters ('{}'); a DNS label has at most 63",
            long.len(),
            crate::clip::clip(long)
        ));
    }
    let ok_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    for (i, l) in v.split('.').enumerate() {
        let b = l.as_bytes();
        // (Longer labels were refused above, with their own message.)
        if b.is_empty() || !ok_char(b[0]) {
            return Err(rule.into());
        }
        if !b.iter().all(|&c| ok_char(c) || c == b'-') {
            return Err(rule.into());
        }
        let last = i == labels - 1;
        if last && (b.len() < 2 || !ok_char(b[b.len() - 1])) {
            return Err(rule.into());
        }
    }
    Ok(())
}

/// Shared part of the front- and back-channel URI rules: https, a valid host, optional
/// port, path segments without '?', '#' or '/' and no trailing slash.
fn endpoint(v: &str, front_channel: bool) -> Result<(), String> {
    let Some(rest) = v.strip_prefix("https://") else {
        return Err("must start with https:// (only https endpoints are allowed)".into());
    };
    // Checked for every endpoint of every publication (800,000 at 100k Zorgaanbieders), so
    // on bytes where that is the same thing: in ASCII, white space and control characters
    // are the bytes up to ' ' and DEL, and there are no bidi controls.
    let b = rest.as_bytes();
    if memchr::memchr2(b'?', b'#', b).is_some() {
        return Err("must not contain a query ('?') or fragment ('#')".into());
    }
    let ascii = rest.is_ascii();
    let blank = match ascii {
        true => b.iter().any(|&c| c <= b' ' || c == 0x7f),
        false => rest.chars().any(|c| c.is_whitespace() || c.is_control()),
    };
    if blank {
        return Err("must not contain white space or control characters".into());
    }
    if !ascii {
        no_bidi(rest)?;
    }
    if b.windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'2' && w[2].eq_ignore_ascii_case(&b'e'))
    {
        return Err(
            "must not contain a percent-encoded dot (%2e): it can hide a '..' path segment".into(),
        );
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = match authority.split_once(':') {
        None => authority,
        Some((host, port)) => {
            if front_channel {
                return Err(
                    "must not contain a port (front-channel endpoint, FACTS.md §10)".into(),
                );
            }
            if port != "443" {
                return Err(format!(
                    "port {port} is not allowed: a back-channel port, where given, must be 443 (release 1.1.2)"
                ));
            }
            host
        }
    };
    hostname(host).map_err(|e| format!("host '{host}' {e}"))?;
    if path.ends_with('/') {
        return Err("must not end with a slash".into());
    }
    if path.split('/').skip(1).any(|seg| seg.is_empty()) {
        return Err("must not contain empty path segments ('//')".into());
    }
    if path.contains("..") || path.split('/').any(|seg| seg == ".") {
        return Err("must not contain '..' or a '.' path segment".into());
    }
    Ok(())
}

pub fn frontchanneluri(v: &str) -> Result<(), String> {
    endpoint(v, true)
}

pub fn backchanneluri(v: &str) -> Result<(), String> {
    endpoint(v, false)
}

pub fn gegevensdienst_id(v: &str) -> Result<(), String> {
    len_between(v, 1, 30)?;
    if !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(
            "must be numeric (digits only): deployed consumers map it to an integer".into(),
        );
    }
    if v.len() > 1 && v.starts_with('0') {
        return Err("must not have leading zeros".into());
    }
    Ok(())
}

pub fn systeemrolcode(v: &str) -> Result<(), String> {
    len_between(v, 1, 30)?;
    if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain white space".into());
    }
    Ok(())
}

pub fn weergavenaam(v: &str) -> Result<(), String> {
    len_between(v, 3, 50)?;
    printable(v)
}

pub fn organisatienaam(v: &str) -> Result<(), String> {
    len_between(v, 3, 50)?;
    printable(v)
}

pub fn interfaceversie_id(v: &str) -> Result<(), String> {
    let parts: Vec<&str> = v.split('.').collect();
    if parts.len() != 3
        || parts
            .iter()
            .any(|p| p.is_empty() || p.len() > 4 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("must be a release number MAJOR.MINOR.PATCH such as 1.4.0".into());
    }
    Ok(())
}

/// A release id as requests name it (`?release=`, and `?api=` its major): canonical, so
/// that one release has one spelling. MAJOR.MINOR.PATCH, each part 1–4 digits without
/// leading zeros, MAJOR at least 1 (`?api=0` selects nothing).
pub fn release_id(v: &str) -> Result<(), String> {
    interfaceversie_id(v)?;
    if v.split('.').any(|p| p.len() > 1 && p.starts_with('0')) {
        return Err(
            "must not have leading zeros (one release, one spelling: 1.1.3, not 1.1.03)".into(),
        );
    }
    if v.starts_with("0.") {
        return Err("must have a major version of at least 1 (?api=0 selects nothing)".into());
    }
    Ok(())
}

/// Operator names and reasons are recorded and shown line by line (`diff`, `history show`,
/// the audit CSV): no control characters (a newline would forge a line), no bidi controls.
pub fn recorded_text(field: &str, v: &str, max: usize) -> Result<(), String> {
    let n = v.chars().count();
    if n > max {
        return Err(format!(
            "{field} '{}' is {n} characters; at most {max} are recorded",
            crate::clip::clip(v)
        ));
    }
    if let Some(c) = v.chars().find(|c| c.is_control() || is_bidi_control(*c)) {
        return Err(format!(
            "{field} '{}' contains the control character U+{:04X}; newlines and other control characters are not allowed (they could forge lines in diff and history)",
            crate::clip::clip(&v.escape_debug().to_string()),
            c as u32
        ));
    }
    Ok(())
}

pub fn maximale_duur(v: u32) -> Result<(), String> {
    if v == 0 {
        return Err("must be a positive number of days".into());
    }
    Ok(())
}

fn check_gegevensdienst(c: &mut Checker, entity: &str, g: &Gegevensdienst, reg: &Registry) {
    let ent = format!("{entity} > Gegevensdienst {}", g.gegevensdienst_id);
    c.fields(
        &ent,
        &[
            ("GegevensdienstId", &g.gegevensdienst_id, gegevensdienst_id),
            (
                "AuthorizationEndpointuri",
                &g.authorization_endpointuri,
                frontchanneluri,
            ),
            ("TokenEndpointuri", &g.token_endpointuri, backchanneluri),
        ],
    );
    // All a Zorgaanbieder's rules read of the rest of the registry: which
    // GegevensdienstIds exist (see `gegevensdienst_ids`, which a rule reading more must
    // widen).
    if !reg.gegevensdiensten.contains_key(&g.gegevensdienst_id) {
        c.fail(
            &ent,
            "GegevensdienstId",
            &g.gegevensdienst_id,
            "must exist in the Gegevensdienstnamenlijst (referential integrity)",
        );
    }
    if let Some(a) = &g.abonneren {
        c.check(
            &ent,
            "MaximaleDuur",
            &a.maximale_duur.to_string(),
            maximale_duur(a.maximale_duur),
        );
        c.fields(
            &ent,
            &[(
                "SubscriptionEndpointuri",
                &a.subscription_endpointuri,
                backchanneluri,
            )],
        );
    }
    if g.systeemrollen.is_empty() {
        c.fail(
            &ent,
            "Systeemrollen",
            "",
            "must contain at least one Systeemrol",
        );
    }
    let mut seen = BTreeSet::new();
    for s in &g.systeemrollen {
        let sent = format!("{ent} > Systeemrol {}", s.systeemrolcode);
        c.fields(
            &sent,
            &[
                ("Systeemrolcode", &s.systeemrolcode, systeemrolcode),
                (
                    "ResourceEndpointuri",
                    &s.resource_endpointuri,
                    backchanneluri,
                ),
            ],
        );
        if !seen.insert(s.systeemrolcode.as_str()) {
            c.fail(
                &sent,
                "Systeemrolcode",
                &s.systeemrolcode,
                "must be unique within one Gegevensdienst",
            );
        }
    }
}

fn check_zorgaanbieder(c: &mut Checker, key: &str, z: &Zorgaanbieder, reg: &Registry) {
    let entity = format!("Zorgaanbieder {}", z.zorgaanbiedernaam);
    c.fields(
        &entity,
        &[("Zorgaanbiedernaam", &z.zorgaanbiedernaam, zorgaanbiedernaam)],
    );
    if key != z.zorgaanbiedernaam {
        c.fail(
            &entity,
            "Zorgaanbiedernaam",
            key,
            "registry key differs from the name",
        );
    }
    if z.interfaceversies.is_empty() {
        c.fail(
            &entity,
            "Interfaceversies",
            "",
            "must offer at least one Gegevensdienst in at least one Interfaceversie",
        );
    }
    let mut ivs = BTreeSet::new();
    for iv in &z.interfaceversies {
        let ient = format!("{entity} > Interfaceversie {}", iv.interfaceversie_id);
        c.fields(
            &ient,
            &[(
                "InterfaceversieId",
                &iv.interfaceversie_id,
                interfaceversie_id,
            )],
        );
        if !ivs.insert(iv.interfaceversie_id.as_str()) {
            c.fail(
                &ient,
                "InterfaceversieId",
                &iv.interfaceversie_id,
                "must be unique within one Zorgaanbieder",
            );
        }
        if iv.gegevensdiensten.is_empty() {
            c.fail(
                &ient,
                "Gegevensdiensten",
                "",
                "must contain at least one Gegevensdienst",
            );
        }
        let mut gds = BTreeSet::new();
        for g in &iv.gegevensdiensten {
            if !gds.insert(g.gegevensdienst_id.as_str()) {
                c.fail(
                    &ient,
                    "GegevensdienstId",
                    &g.gegevensdienst_id,
                    "must be unique within one Interfaceversie of a Zorgaanbieder (one Bron per Zorgaanbieder and Gegevensdienst)",
                );
            }
            check_gegevensdienst(c, &ient, g, reg);
        }
    }
}

/// Check the whole registry. Returns every violation, in a stable order.
pub fn check(reg: &Registry) -> Vec<Violation> {
    check_some(reg, None)
}

/// [`check`], of the Zorgaanbieders only those in `only` (when given).
fn check_some(reg: &Registry, only: Option<&BTreeSet<String>>) -> Vec<Violation> {
    let mut c = Checker { out: Vec::new() };
    for (id, g) in &reg.gegevensdiensten {
        let entity = format!("Gegevensdienst {id}");
        c.fields(
            &entity,
            &[
                ("GegevensdienstId", &g.gegevensdienst_id, gegevensdienst_id),
                ("Weergavenaam", &g.weergavenaam, weergavenaam),
            ],
        );
        if id != &g.gegevensdienst_id {
            c.fail(
                &entity,
                "GegevensdienstId",
                id,
                "registry key differs from the id",
            );
        }
    }
    match only {
        None => {
            for (key, z) in &reg.zorgaanbieders {
                check_zorgaanbieder(&mut c, key, z, reg);
            }
        }
        Some(keys) => {
            for (key, z) in keys
                .iter()
                .filter_map(|k| reg.zorgaanbieders.get_key_value(k))
            {
                check_zorgaanbieder(&mut c, key, z, reg);
            }
        }
    }
    for (host, o) in &reg.oauthclients {
        let entity = format!("OAuthclient {host}");
        c.fields(
            &entity,
            &[
                ("Hostname", &o.hostname, hostname),
                (
                    "OAuthclientOrganisatienaam",
                    &o.oauthclient_organisatienaam,
                    organisatienaam,
                ),
            ],
        );
        if host != &o.hostname {
            c.fail(
                &entity,
                "Hostname",
                host,
                "registry key differs from the hostname",
            );
        }

        let mut seen = BTreeSet::new();
        for id in &o.gegevensdiensten {
            if !seen.insert(id.as_str()) {
                c.fail(
                    &entity,
                    "GegevensdienstId",
                    id,
                    "must be listed once per OAuthclient",
                );
            }
            if !reg.gegevensdiensten.contains_key(id) {
                c.fail(
                    &entity,
                    "GegevensdienstId",
                    id,
                    "must exist in the Gegevensdienstnamenlijst (referential integrity)",
                );
            }
        }
    }
    for (id, l) in &reg.livegangen {
        let entity = format!("Gecontroleerde livegang {id}");
        if !reg.gegevensdiensten.contains_key(&l.copy_id) {
            c.fail(
                &entity,
                "GegevensdienstId",
                &l.copy_id,
                "the copy must exist in the Gegevensdienstnamenlijst",
            );
        }
        if !reg.gegevensdiensten.contains_key(&l.gegevensdienst_id) {
            c.fail(
                &entity,
                "GegevensdienstId",
                &l.gegevensdienst_id,
                "the original Gegevensdienst must exist while a gecontroleerde livegang of it runs",
            );
        }
    }
    for host in &reg.whitelist {
        c.fields("Whitelist MedMijNode", &[("Hostname", host, hostname)]);
    }
    c.out
}

/// What the release catalogue decides about the registry: an Aanbiedertype appears in a
/// release3 Zorgaanbiederslijst only if every served release that renders one has it in
/// force (`aanbiedertypen`; APD is planned, not in force, and consumers refuse it).
pub fn check_catalogue(
    reg: &Registry,
    cat: &crate::registry::catalogue::Catalogue,
) -> Vec<Violation> {
    let mut c = Checker { out: Vec::new() };
    let releases: Vec<&crate::registry::catalogue::Release> = cat
        .served()
        .filter(|r| {
            r.schema_version(crate::registry::model::ListKind::Zorgaanbiederslijst)
                != crate::registry::model::SchemaVersion::Release2
        })
        .collect();
    for z in reg.zorgaanbieders.values() {
        for r in &releases {
            if !r.aanbiedertypen.contains(&z.aanbiedertype) {
                let allowed: Vec<&str> = r.aanbiedertypen.iter().map(|t| t.as_str()).collect();
                c.fail(
                    &format!("Zorgaanbieder {}", z.zorgaanbiedernaam),
                    "Aanbiedertype",
                    z.aanbiedertype.as_str(),
                    format!(
                        "is not in force in release {} (its catalogue entry allows {})",
                        r.id,
                        allowed.join(", ")
                    ),
                );
                break;
            }
        }
    }
    c.out
}

/// `check` and `check_catalogue` as a `Result`, for callers that write.
pub fn ensure_valid(
    reg: &Registry,
    cat: &crate::registry::catalogue::Catalogue,
) -> Result<(), Violations> {
    ensure_valid_changed(reg, cat, None)
}

/// [`ensure_valid`] for a registry whose Zorgaanbieders outside `changed` (when given)
/// were found valid before, by these rules ([`fingerprint`]) and with the same
/// Gegevensdiensten: the field rules of those Zorgaanbieders are not checked again. Every
/// other table, and the catalogue's rule for every Zorgaanbieder, are.
pub fn ensure_valid_changed(
    reg: &Registry,
    cat: &crate::registry::catalogue::Catalogue,
    changed: Option<&BTreeSet<String>>,
) -> Result<(), Violations> {
    let mut v = check_some(reg, changed);
    v.extend(check_catalogue(reg, cat));
    if v.is_empty() {
        Ok(())
    } else {
        Err(Violations(v))
    }
}

/// What a Zorgaanbieder's rules read of the rest of the registry, as a SHA-256 (hex): the
/// GegevensdienstIds of the Gegevensdienstnamenlijst. Zorgaanbieders found valid against
/// the same ids are valid against it still, whatever else of it changed (a Weergavenaam).
/// (`None` if they cannot be serialised: then nothing is taken as checked.)
pub fn gegevensdienst_ids(reg: &Registry) -> Option<String> {
    // As a JSON array: unambiguous whatever an id holds.
    let ids: Vec<&str> = reg.gegevensdiensten.keys().map(String::as_str).collect();
    let json = serde_json::to_string(&ids).ok()?;
    Some(crate::digest::sha256_hex(json.as_bytes()))
}

/// The rules' fingerprint: the SHA-256 of this file's text, of the terminal checks it
/// uses and of the crate's version, so any change to a rule (a new binary with other
/// rules) makes the next publication check every row again.
pub fn fingerprint() -> &'static str {
    static FINGERPRINT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    FINGERPRINT.get_or_init(|| {
        let mut text = String::from(env!("CARGO_PKG_VERSION"));
        text.push_str(include_str!("rules.rs"));
        text.push_str(include_str!("../terminal.rs"));
        crate::digest::sha256_hex(text.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gegevensdienst_ids_follow_the_ids_only() {
        let reg = crate::consume::read::demo_registry();
        let mut renamed = reg.clone();
        if let Some(g) = renamed.gegevensdiensten.values_mut().next() {
            g.weergavenaam = "Een andere naam".into();
        }
        assert_eq!(gegevensdienst_ids(&reg), gegevensdienst_ids(&renamed));
        assert!(gegevensdienst_ids(&reg).is_some());
        let mut fewer = reg.clone();
        let first = fewer.gegevensdiensten.keys().next().cloned().unwrap();
        fewer.gegevensdiensten.remove(&first);
        assert_ne!(gegevensdienst_ids(&reg), gegevensdienst_ids(&fewer));
    }

    #[test]
    fn names() {
        assert!(zorgaanbiedernaam("umcharderwijk@medmij").is_ok());
        assert!(zorgaanbiedernaam("oauthserver.local@medmij").is_err());
        assert!(zorgaanbiedernaam("ab@medmij").is_err()); // 9 chars
        assert!(zorgaanbiedernaam("abc@medmij").is_ok()); // 10 chars
        assert!(zorgaanbiedernaam("Abcdef@medmij").is_err());
        assert!(zorgaanbiedernaam(&format!("{}@medmij", "a".repeat(51))).is_err());
    }

    #[test]
    fn hostnames() {
        for ok in [
            "rcf-rso.nl",
            "78834.umcharderwijk.nl",
            "oauthclient.local",
            "a-.b.nl",
        ] {
            assert!(hostname(ok).is_ok(), "{ok}");
        }
        for bad in [
            "localhost",
            "Upper.nl",
            "a.b.",
            "a.b-",
            "a.b:443",
            "a..nl",
            "-a.nl",
            "a.n",
        ] {
            assert!(hostname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints() {
        assert!(frontchanneluri("https://medmij.za982.xisbridge.net/oauth/authorize").is_ok());
        assert!(frontchanneluri("https://a.nl").is_ok());
        assert!(frontchanneluri("https://a.nl:443/x").is_err());
        assert!(frontchanneluri("http://a.nl/x").is_err());
        assert!(backchanneluri("https://a.nl:443/x").is_ok());
        assert!(backchanneluri("https://a.nl:8099/x").is_err());
        assert!(backchanneluri("https://a.nl/x/").is_err());
        assert!(backchanneluri("https://a.nl/x?y=1").is_err());
        assert!(backchanneluri("https://a.nl/x#f").is_err());
        assert!(backchanneluri("https://a.nl//x").is_err());
    }

    #[test]
    fn hostile_values() {
        let label = "a".repeat(64);
        let e = hostname(&format!("{label}.nl")).unwrap_err();
        assert!(e.contains("at most 63"), "{e}");
        let huge = format!("{}.nl", "a".repeat(1_000_000));
        assert!(hostname(&huge).unwrap_err().len() < 300);
        for bad in [
            "https://a.nl/x/../y",
            "https://a.nl/..",
            "https://a.nl/x/./y",
            "https://a.nl/x/%2e%2e/y",
            "https://a.nl/x/%2E%2E/y",
            "https://a.nl/x\u{202E}y",
            "https://a.nl/x\u{2066}y",
            "https://a.nl/x/%2E./y",
            "https://a.nl/x y",
            "https://a.nl/x\ty",
            "https://a.nl/x\u{7f}y",
            "https://a.nl/x\u{85}y",
            "https://a.nl/x\u{a0}y",
            "https://a.nl/\u{e9}\u{202E}",
        ] {
            assert!(backchanneluri(bad).is_err(), "{bad}");
            assert!(frontchanneluri(bad).is_err(), "{bad}");
        }
        assert!(backchanneluri("https://a.nl/x..y").is_err());
        assert!(backchanneluri("https://a.nl/x.y/v1.2").is_ok());
        assert!(backchanneluri("https://a.nl/caf\u{e9}/%2f").is_ok());
        assert!(weergavenaam("Basis\u{202E}gegevens").is_err());
        assert!(organisatienaam("PGO \u{2067}B.V.").is_err());
        assert!(recorded_text("--reason", "RFC-1", 100).is_ok());
        assert!(recorded_text("--reason", "a\nedit by x", 100).is_err());
        assert!(recorded_text("--operator", "x\u{202E}y", 100).is_err());
        assert!(recorded_text("--operator", &"x".repeat(101), 100).is_err());
        let v = Violation {
            entity: "Whitelist".into(),
            field: "Hostname",
            value: "x".repeat(1_000_000),
            rule: "r".into(),
        };
        assert!(v.to_string().len() < 300);
    }

    #[test]
    fn a_check_of_the_changed_zorgaanbieders_still_checks_every_other_table() {
        use crate::registry::catalogue::{Catalogue, DEFAULT_CATALOGUE};
        let cat = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        let mut reg = crate::consume::read::demo_registry();
        ensure_valid(&reg, &cat).unwrap();
        let keys: Vec<String> = reg.zorgaanbieders.keys().take(2).cloned().collect();
        let (changed, unchanged) = (&keys[0], &keys[1]);
        for k in &keys {
            let z = reg.zorgaanbieders.get_mut(k).unwrap();
            z.interfaceversies[0].gegevensdiensten[0].token_endpointuri =
                "http://niet-https.voorbeeld.nl/token".into();
        }
        let only: BTreeSet<String> = [changed.clone()].into();
        let names = |r: Result<(), Violations>| r.unwrap_err().to_string();
        let all = names(ensure_valid(&reg, &cat));
        assert!(all.contains(changed) && all.contains(unchanged), "{all}");
        // The unchanged one was found valid before (by these rules): not checked again.
        let some = names(ensure_valid_changed(&reg, &cat, Some(&only)));
        assert!(
            some.contains(changed) && !some.contains(unchanged),
            "{some}"
        );
        let none = BTreeSet::new();
        ensure_valid_changed(&reg, &cat, Some(&none)).unwrap();
        // Every other table is checked whole, and the catalogue's rule for every
        // Zorgaanbieder.
        reg.whitelist.insert("Niet.Geldig".into());
        let e = names(ensure_valid_changed(&reg, &cat, Some(&none)));
        assert!(e.contains("Niet.Geldig"), "{e}");
        reg.whitelist.remove("Niet.Geldig");
        reg.zorgaanbieders.get_mut(unchanged).unwrap().aanbiedertype =
            crate::registry::model::Aanbiedertype::APD;
        let e = names(ensure_valid_changed(&reg, &cat, Some(&none)));
        assert!(e.contains(unchanged) && e.contains("Aanbiedertype"), "{e}");
    }

    #[test]
    fn ids() {
        assert!(gegevensdienst_id("51").is_ok());
        assert!(gegevensdienst_id("").is_err());
        assert!(gegevensdienst_id("x1").is_err());
        assert!(gegevensdienst_id("01").is_err());
        assert!(interfaceversie_id("1.4.0").is_ok());
        assert!(interfaceversie_id("1.4").is_err());
        assert!(systeemrolcode("MM-2.1-BZB-FHIR").is_ok());
        assert!(systeemrolcode(&"x".repeat(31)).is_err());
    }
}
