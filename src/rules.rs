//! Field rules (FACTS.md §2 and §10) and registry-wide integrity. Every write to the
//! registry passes [`check`] on the complete resulting registry; a non-empty result means
//! nothing is written.

use crate::model::{Gegevensdienst, Registry, Zorgaanbieder};
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
            self.entity, self.field, self.value, self.rule
        )
    }
}

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
        for v in &self.0 {
            writeln!(f, "  - {v}")?;
        }
        Ok(())
    }
}

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
}

fn len_between(v: &str, min: usize, max: usize) -> Result<(), String> {
    let n = v.chars().count();
    if n < min || n > max {
        return Err(format!("must be {min} to {max} characters long (is {n})"));
    }
    Ok(())
}

fn printable(v: &str) -> Result<(), String> {
    if v.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters (tabs, newlines)".into());
    }
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
    let labels: Vec<&str> = v.split('.').collect();
    if labels.len() < 2 {
        return Err(rule.into());
    }
    let ok_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    for (i, l) in labels.iter().enumerate() {
        let b = l.as_bytes();
        if b.is_empty() || b.len() > 63 || !ok_char(b[0]) {
            return Err(rule.into());
        }
        if !b.iter().all(|&c| ok_char(c) || c == b'-') {
            return Err(rule.into());
        }
        let last = i == labels.len() - 1;
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
    if rest.contains('?') || rest.contains('#') {
        return Err("must not contain a query ('?') or fragment ('#')".into());
    }
    if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain white space or control characters".into());
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

pub fn maximale_duur(v: u32) -> Result<(), String> {
    if v == 0 {
        return Err("must be a positive number of days".into());
    }
    Ok(())
}

fn check_gegevensdienst(c: &mut Checker, entity: &str, g: &Gegevensdienst, reg: &Registry) {
    let ent = format!("{entity} > Gegevensdienst {}", g.gegevensdienst_id);
    c.check(
        &ent,
        "GegevensdienstId",
        &g.gegevensdienst_id,
        gegevensdienst_id(&g.gegevensdienst_id),
    );
    if !reg.gegevensdiensten.contains_key(&g.gegevensdienst_id) {
        c.fail(
            &ent,
            "GegevensdienstId",
            &g.gegevensdienst_id,
            "must exist in the Gegevensdienstnamenlijst (referential integrity)",
        );
    }
    c.check(
        &ent,
        "AuthorizationEndpointuri",
        &g.authorization_endpointuri,
        frontchanneluri(&g.authorization_endpointuri),
    );
    c.check(
        &ent,
        "TokenEndpointuri",
        &g.token_endpointuri,
        backchanneluri(&g.token_endpointuri),
    );
    if let Some(a) = &g.abonneren {
        c.check(
            &ent,
            "MaximaleDuur",
            &a.maximale_duur.to_string(),
            maximale_duur(a.maximale_duur),
        );
        c.check(
            &ent,
            "SubscriptionEndpointuri",
            &a.subscription_endpointuri,
            backchanneluri(&a.subscription_endpointuri),
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
        c.check(
            &sent,
            "Systeemrolcode",
            &s.systeemrolcode,
            systeemrolcode(&s.systeemrolcode),
        );
        if !seen.insert(s.systeemrolcode.as_str()) {
            c.fail(
                &sent,
                "Systeemrolcode",
                &s.systeemrolcode,
                "must be unique within one Gegevensdienst",
            );
        }
        c.check(
            &sent,
            "ResourceEndpointuri",
            &s.resource_endpointuri,
            backchanneluri(&s.resource_endpointuri),
        );
    }
}

fn check_zorgaanbieder(c: &mut Checker, key: &str, z: &Zorgaanbieder, reg: &Registry) {
    let entity = format!("Zorgaanbieder {}", z.zorgaanbiedernaam);
    c.check(
        &entity,
        "Zorgaanbiedernaam",
        &z.zorgaanbiedernaam,
        zorgaanbiedernaam(&z.zorgaanbiedernaam),
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
        c.check(
            &ient,
            "InterfaceversieId",
            &iv.interfaceversie_id,
            interfaceversie_id(&iv.interfaceversie_id),
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
    let mut c = Checker { out: Vec::new() };
    for (id, g) in &reg.gegevensdiensten {
        let entity = format!("Gegevensdienst {id}");
        c.check(
            &entity,
            "GegevensdienstId",
            &g.gegevensdienst_id,
            gegevensdienst_id(&g.gegevensdienst_id),
        );
        if id != &g.gegevensdienst_id {
            c.fail(
                &entity,
                "GegevensdienstId",
                id,
                "registry key differs from the id",
            );
        }
        c.check(
            &entity,
            "Weergavenaam",
            &g.weergavenaam,
            weergavenaam(&g.weergavenaam),
        );
    }
    for (key, z) in &reg.zorgaanbieders {
        check_zorgaanbieder(&mut c, key, z, reg);
    }
    for (host, o) in &reg.oauthclients {
        let entity = format!("OAuthclient {host}");
        c.check(&entity, "Hostname", &o.hostname, hostname(&o.hostname));
        if host != &o.hostname {
            c.fail(
                &entity,
                "Hostname",
                host,
                "registry key differs from the hostname",
            );
        }
        c.check(
            &entity,
            "OAuthclientOrganisatienaam",
            &o.oauthclient_organisatienaam,
            organisatienaam(&o.oauthclient_organisatienaam),
        );
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
        c.check("Whitelist MedMijNode", "Hostname", host, hostname(host));
    }
    c.out
}

/// `check` as a `Result`, for callers that write.
pub fn ensure_valid(reg: &Registry) -> Result<(), Violations> {
    let v = check(reg);
    if v.is_empty() {
        Ok(())
    } else {
        Err(Violations(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
