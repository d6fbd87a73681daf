//! Import complete official or project lists into the registry: detect list and schema
//! version from root and namespace, validate against the XSD, read with quick-xml, then
//! replace that list's content in the registry (the caller's transaction checks every rule).

use crate::registry::model::{
    Aanbiedertype, Abonneren, Gegevensdienst, Gegevensdienstnaam, Interfaceversie, ListKind,
    OAuthclient, Registry, SchemaVersion, Systeemrol, Zorgaanbieder,
};
use crate::xml::schema::{self, SchemaDef};
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Unsupported(String),
    #[error("not valid against {xsd}: {errors}")]
    Schema {
        xsd: String,
        errors: schema::SchemaErrors,
    },
    #[error("not well-formed XML: {0}")]
    Xml(String),
    #[error("duplicate entry: {0}")]
    Duplicate(String),
}

/// A minimal element tree: lists are data-only XML (no attributes, no mixed content). Kept
/// small, since a list of hundreds of MB becomes millions of these: names are interned (a
/// validated list uses only the names of its schema) and containers keep no text.
#[derive(Debug, Default)]
struct El {
    name: &'static str,
    text: String,
    children: Vec<El>,
}

/// The element names of every supported schema; anything else (impossible after XSD
/// validation) is "?".
fn intern(local: &str) -> &'static str {
    const NAMES: &[&str] = &[
        "Zorgaanbiederslijst",
        "OAuthclientlist",
        "Whitelist",
        "Gegevensdienstnamenlijst",
        "Tijdstempel",
        "Volgnummer",
        "Zorgaanbieders",
        "Zorgaanbieder",
        "Zorgaanbiedernaam",
        "Aanbiedertype",
        "Interfaceversies",
        "Interfaceversie",
        "InterfaceversieId",
        "Gegevensdiensten",
        "Gegevensdienst",
        "GegevensdienstId",
        "AuthorizationEndpoint",
        "AuthorizationEndpointuri",
        "TokenEndpoint",
        "TokenEndpointuri",
        "Abonneren",
        "MaximaleDuur",
        "SubscriptionEndpointuri",
        "Systeemrollen",
        "Systeemrol",
        "Systeemrolcode",
        "ResourceEndpoint",
        "ResourceEndpointuri",
        "OAuthclients",
        "OAuthclient",
        "Hostname",
        "OAuthclientOrganisatienaam",
        "MedMijNodes",
        "MedMijNode",
        "Weergavenaam",
        "Signature",
    ];
    NAMES.iter().find(|n| **n == local).copied().unwrap_or("?")
}

impl El {
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a El> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
    fn first(&self, name: &str) -> Option<&El> {
        self.children.iter().find(|c| c.name == name)
    }
    fn child(&self, name: &str) -> Result<&El, ImportError> {
        self.first(name)
            .ok_or_else(|| ImportError::Xml(format!("element {} has no {name}", self.name)))
    }
    fn text_of(&self, name: &str) -> Result<String, ImportError> {
        Ok(self.child(name)?.text.trim().to_string())
    }
    /// `<Outer><Inner>text</Inner></Outer>`
    fn nested(&self, outer: &str, inner: &str) -> Result<String, ImportError> {
        self.child(outer)?.text_of(inner)
    }
}

fn predefined(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => None,
    }
}

/// Root element's local name and namespace.
pub fn detect_root(bytes: &[u8]) -> Result<(String, String), ImportError> {
    let mut r = NsReader::from_reader(bytes);
    loop {
        match r.read_resolved_event() {
            Ok((ns, Event::Start(e))) | Ok((ns, Event::Empty(e))) => {
                let ns = match ns {
                    ResolveResult::Bound(n) => n.as_ref().to_string(),
                    _ => String::new(),
                };
                let local = e.local_name().as_ref().to_string();
                return Ok((local, ns));
            }
            Ok((_, Event::Eof)) => {
                return Err(ImportError::Xml("document has no root element".into()))
            }
            Ok(_) => {}
            Err(e) => {
                return Err(ImportError::Xml(format!(
                    "at byte {}: {e}",
                    r.error_position()
                )))
            }
        }
    }
}

/// The document as a tree, except the entries `stream` names (collection, entry): each is
/// handed to `take` when complete and left out of the tree. A tree holds about six bytes
/// per byte of XML: a 100k Zorgaanbiederslijst as one would not fit in 1 GiB.
fn parse_tree(
    bytes: &[u8],
    stream: Option<(&str, &str)>,
    take: &mut dyn FnMut(El) -> Result<(), ImportError>,
) -> Result<El, ImportError> {
    let streamed = |stack: &[El], el: &El| match (stream, stack) {
        (Some((collection, entry)), [_, _, top]) => top.name == collection && el.name == entry,
        _ => false,
    };
    let mut r = NsReader::from_reader(bytes);
    let mut stack: Vec<El> = vec![El::default()];
    let err = |r: &NsReader<&[u8]>, e: &dyn std::fmt::Display| {
        ImportError::Xml(format!("at byte {}: {e}", r.error_position()))
    };
    loop {
        let ev = r.read_event().map_err(|e| err(&r, &e))?;
        match ev {
            Event::Start(e) => stack.push(El {
                name: intern(e.local_name().as_ref()),
                ..Default::default()
            }),
            Event::Empty(e) => {
                let el = El {
                    name: intern(e.local_name().as_ref()),
                    ..Default::default()
                };
                if streamed(&stack, &el) {
                    take(el)?;
                    if let Some(top) = stack.last_mut() {
                        top.text.clear();
                    }
                } else if let Some(top) = stack.last_mut() {
                    top.text = String::new();
                    top.children.push(el);
                }
            }
            Event::End(_) => {
                let mut done = stack
                    .pop()
                    .ok_or_else(|| ImportError::Xml("unbalanced end tag".into()))?;
                done.children.shrink_to_fit();
                if !done.children.is_empty() {
                    // Indentation between children: no list has mixed content.
                    done.text = String::new();
                }
                if streamed(&stack, &done) {
                    take(done)?;
                    // The white space between streamed entries is not kept either.
                    if let Some(top) = stack.last_mut() {
                        top.text.clear();
                    }
                    continue;
                }
                match stack.last_mut() {
                    Some(top) => top.children.push(done),
                    None => return Err(ImportError::Xml("unbalanced end tag".into())),
                }
            }
            Event::DocType(_) | Event::PI(_) => {
                return Err(ImportError::Unsupported(
                    "DTDs and processing instructions are not allowed in MedMij lists".into(),
                ))
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(g) => {
                let c = if g.is_char_ref() {
                    g.resolve_char_ref().map_err(|e| err(&r, &e))?
                } else {
                    predefined(&g)
                };
                let c = c.ok_or_else(|| ImportError::Xml(format!("unknown entity &{};", &*g)))?;
                if let Some(top) = stack.last_mut() {
                    top.text.push(c);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let mut doc = stack
        .pop()
        .ok_or_else(|| ImportError::Xml("empty document".into()))?;
    if !stack.is_empty() || doc.children.len() != 1 {
        return Err(ImportError::Xml(
            "document is truncated or has several roots".into(),
        ));
    }
    Ok(doc.children.remove(0))
}

pub const MAX_VOLGNUMMER: u64 = 1_000_000_000_000;

/// A list read from a file, not yet applied.
#[derive(Debug, Clone)]
pub struct ImportedList {
    pub schema: &'static SchemaDef,
    pub volgnummer: u64,
    content: Content,
}

#[derive(Debug, Clone)]
enum Content {
    /// release2: per Zorgaanbieder its Gegevensdiensten, without Interfaceversie.
    ZalRelease2(Vec<(String, Vec<Gegevensdienst>)>),
    ZalRelease3(Vec<Zorgaanbieder>),
    Ocl {
        clients: Vec<OAuthclient>,
        with_gegevensdiensten: bool,
    },
    Whitelist(Vec<String>),
    Gnl(Vec<Gegevensdienstnaam>),
}

impl ImportedList {
    pub fn describe(&self) -> String {
        let n = match &self.content {
            Content::ZalRelease2(v) => v.len(),
            Content::ZalRelease3(v) => v.len(),
            Content::Ocl { clients, .. } => clients.len(),
            Content::Whitelist(v) => v.len(),
            Content::Gnl(v) => v.len(),
        };
        describe(self.schema, self.volgnummer, n)
    }
}

/// Where a list keeps its entries: collection, entry and key element names.
fn entry_path(list: ListKind) -> (&'static str, &'static str, &'static str) {
    match list {
        ListKind::Zorgaanbiederslijst => ("Zorgaanbieders", "Zorgaanbieder", "Zorgaanbiedernaam"),
        ListKind::OAuthclientlist => ("OAuthclients", "OAuthclient", "Hostname"),
        ListKind::Whitelist => ("MedMijNodes", "MedMijNode", "Hostname"),
        ListKind::Gegevensdienstnamenlijst => {
            ("Gegevensdiensten", "Gegevensdienst", "GegevensdienstId")
        }
    }
}

fn describe(def: &SchemaDef, volgnummer: u64, entries: usize) -> String {
    format!(
        "{} {} (Volgnummer {volgnummer}), {entries} {}s",
        def.list,
        def.version,
        entry_path(def.list).1
    )
}

/// Where a stream of events is among a list's entries: the depth, and the key of the
/// entry being read (its identifying field: Zorgaanbiedernaam, Hostname,
/// GegevensdienstId). What `entry_digests` and `select_entries` share.
struct Entries {
    entry: &'static str,
    key_field: &'static str,
    depth: usize,
    /// The entry being read: its key so far, and whether the key is being read.
    current: Option<(String, bool)>,
}

/// What an event was, for [`Entries::see`].
enum Seen {
    Outside,
    Inside,
    /// The end of an entry, with its key.
    Ended(String),
}

impl Entries {
    fn new(list: ListKind) -> Entries {
        let (_, entry, key_field) = entry_path(list);
        Entries {
            entry,
            key_field,
            depth: 0,
            current: None,
        }
    }

    fn see(&mut self, ev: &Event) -> Result<Seen, ImportError> {
        match ev {
            Event::Start(e) => {
                self.depth += 1;
                if self.depth == 3 && e.local_name().as_ref() == self.entry {
                    self.current = Some((String::new(), false));
                }
                let depth = self.depth;
                if let Some((key, reading)) = self.current.as_mut() {
                    *reading =
                        depth == 4 && key.is_empty() && e.local_name().as_ref() == self.key_field;
                }
            }
            Event::End(_) => {
                if let Some(c) = self.current.as_mut() {
                    c.1 = false;
                }
            }
            Event::Text(t) => {
                if let Some((key, true)) = self.current.as_mut() {
                    key.push_str(&t[..]);
                }
            }
            Event::GeneralRef(g) => {
                if let Some((key, true)) = self.current.as_mut() {
                    key.push_str(&format!("&{};", &g[..]));
                }
            }
            Event::DocType(_) | Event::PI(_) => {
                return Err(ImportError::Unsupported(
                    "DTDs and processing instructions are not allowed in MedMij lists".into(),
                ))
            }
            _ => {}
        }
        let seen = match (ev, self.depth, self.current.is_some()) {
            (Event::End(_), 3, true) => {
                Seen::Ended(self.current.take().map(|c| c.0).unwrap_or_default())
            }
            (_, _, true) => Seen::Inside,
            _ => Seen::Outside,
        };
        if let Event::End(_) = ev {
            self.depth = self.depth.saturating_sub(1);
        }
        Ok(seen)
    }
}

/// Every event of a list document with where it is among the entries, read as a stream.
fn walk_entries(
    input: impl std::io::BufRead,
    list: ListKind,
    mut each: impl FnMut(&Event, Seen) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let mut r = quick_xml::Reader::from_reader(input);
    let mut buf = Vec::new();
    let mut at = Entries::new(list);
    loop {
        let ev = r
            .read_event_into(&mut buf)
            .map_err(|e| ImportError::Xml(format!("at byte {}: {e}", r.error_position())))?;
        if let Event::Eof = ev {
            return Ok(());
        }
        let seen = at.see(&ev)?;
        each(&ev, seen)?;
        buf.clear();
    }
}

/// The document with only the entries whose key is in `keep`, everything outside the
/// entries as it is, and how many were kept: what `history diff` reads into registries
/// instead of two whole lists when a few entries changed. Read as a stream.
pub fn select_entries(
    input: impl std::io::BufRead,
    list: ListKind,
    keep: &std::collections::BTreeSet<String>,
) -> Result<(Vec<u8>, usize), ImportError> {
    let mut out = quick_xml::Writer::new(Vec::new());
    // The entry being read, written aside until its key decides.
    let mut held = quick_xml::Writer::new(Vec::new());
    let mut kept = 0usize;
    let write_err = |e: std::io::Error| ImportError::Xml(e.to_string());
    walk_entries(input, list, |ev, seen| {
        let w = match seen {
            Seen::Outside => &mut out,
            _ => &mut held,
        };
        w.write_event(ev.borrow()).map_err(write_err)?;
        if let Seen::Ended(key) = seen {
            if keep.contains(&key) {
                out.get_mut().extend_from_slice(held.get_ref());
                kept += 1;
            }
            held.get_mut().clear();
        }
        Ok(())
    })?;
    Ok((out.into_inner(), kept))
}

/// A list checked (input rules, root, XSD) and counted, without reading its content into
/// memory: what `verify` needs.
pub struct Inspected {
    pub schema: &'static SchemaDef,
    pub volgnummer: u64,
    pub entries: usize,
}

impl Inspected {
    pub fn describe(&self) -> String {
        describe(self.schema, self.volgnummer, self.entries)
    }
}

/// Every entry of a list document, keyed by its identifying field (Zorgaanbiedernaam,
/// Hostname, GegevensdienstId), with the SHA-256 of its markup: read as a stream, so a
/// 400 MB Zorgaanbiederslijst costs a map of keys and hashes, not a registry. Documents are
/// rendered in one canonical form, so equal markup is equal content. For documents this
/// node published (the history); a document another node made could differ in form only.
pub fn entry_digests(
    input: impl std::io::BufRead,
    list: ListKind,
) -> Result<std::collections::BTreeMap<String, [u8; 32]>, ImportError> {
    let (_, entry, _) = entry_path(list);
    let mut out = std::collections::BTreeMap::new();
    // The hash of the entry being read, so far.
    let mut hash: Option<ring::digest::Context> = None;
    walk_entries(input, list, |ev, seen| {
        if let Seen::Outside = seen {
            return Ok(());
        }
        let h = hash.get_or_insert_with(|| ring::digest::Context::new(&ring::digest::SHA256));
        // Each event's kind and raw bytes: the entry's markup, unambiguously.
        let (kind, raw): (u8, &[u8]) = match ev {
            Event::Start(e) => (b'<', e[..].as_bytes()),
            Event::End(e) => (b'/', e[..].as_bytes()),
            Event::Empty(e) => (b'^', e[..].as_bytes()),
            Event::Text(t) => (b'"', t[..].as_bytes()),
            Event::CData(t) => (b'[', t[..].as_bytes()),
            Event::GeneralRef(g) => (b'&', g[..].as_bytes()),
            _ => (b'?', &[]),
        };
        h.update(&[kind]);
        h.update(&(raw.len() as u64).to_le_bytes());
        h.update(raw);
        if let Seen::Ended(key) = seen {
            let mut d = [0u8; 32];
            if let Some(h) = hash.take() {
                d.copy_from_slice(h.finish().as_ref());
            }
            if out.insert(key.clone(), d).is_some() {
                return Err(ImportError::Xml(format!(
                    "{entry} '{}' appears twice",
                    crate::clip::clip(&key)
                )));
            }
        }
        Ok(())
    })?;
    Ok(out)
}

pub fn inspect(bytes: &[u8]) -> Result<Inspected, ImportError> {
    let def = checked_schema(bytes)?;
    let (_, entry, _) = entry_path(def.list);
    let mut r = quick_xml::Reader::from_reader(bytes);
    let mut depth = 0usize;
    let mut in_volgnummer = false;
    let mut volgnummer = String::new();
    let mut entries = 0usize;
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) => {
                depth += 1;
                in_volgnummer = depth == 2 && e.local_name().as_ref() == "Volgnummer";
                if depth == 3 && e.local_name().as_ref() == entry {
                    entries += 1;
                }
            }
            Ok(Event::Empty(e)) => {
                if depth == 2 && e.local_name().as_ref() == entry {
                    entries += 1;
                }
            }
            Ok(Event::End(_)) => {
                depth = depth.saturating_sub(1);
                in_volgnummer = false;
            }
            Ok(Event::Text(t)) if in_volgnummer => volgnummer.push_str(&t.xml10_content()),
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => {
                return Err(ImportError::Xml(format!(
                    "at byte {}: {e}",
                    r.error_position()
                )))
            }
        }
    }
    Ok(Inspected {
        schema: def,
        volgnummer: parse_volgnummer(&volgnummer)?,
        entries,
    })
}

fn parse_volgnummer(v: &str) -> Result<u64, ImportError> {
    // Bounded so that numbering can always continue above an imported list.
    v.trim()
        .parse::<u64>()
        .ok()
        .filter(|v| *v <= MAX_VOLGNUMMER)
        .ok_or_else(|| ImportError::Xml(format!("Volgnummer is larger than {MAX_VOLGNUMMER}")))
}

/// Keys of one list must be unique after white space is trimmed (the XSD compares the
/// untrimmed strings, so `1` and ` 1 ` pass it): a duplicate would silently replace an entry.
fn unique_keys(tree: &El, list: ListKind) -> Result<(), ImportError> {
    let (collection, entry, key) = entry_path(list);
    let raws = tree
        .child(collection)?
        .all(entry)
        .map(|e| Ok(e.child(key)?.text.as_str()))
        .collect::<Result<Vec<_>, ImportError>>()?;
    unique(list, raws)
}

/// Every entry's key (as written) unique after white space is trimmed.
fn unique<'a>(list: ListKind, raws: impl IntoIterator<Item = &'a str>) -> Result<(), ImportError> {
    let (_, entry, key) = entry_path(list);
    let mut seen: std::collections::HashMap<&str, (usize, &str)> = std::collections::HashMap::new();
    for (i, raw) in raws.into_iter().enumerate() {
        if let Some((j, first)) = seen.insert(raw.trim(), (i + 1, raw)) {
            return Err(ImportError::Duplicate(format!(
                "{entry} {j} and {entry} {}: {key} '{}' and '{}' are the same after white space is trimmed; a {key} must be unique",
                i + 1,
                crate::clip::clip(first),
                crate::clip::clip(raw)
            )));
        }
    }
    Ok(())
}

fn flat_whitelist(bytes: &[u8]) -> bool {
    // fv2 layout: <MedMijNode>host</MedMijNode> with no Hostname child.
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(1 << 16)]);
    s.contains("<MedMijNode>") && !s.contains("<Hostname>")
}

/// Input rules, supported root and namespace, XSD validity: the schema the bytes follow.
fn checked_schema(bytes: &[u8]) -> Result<&'static SchemaDef, ImportError> {
    crate::xml::input::check_xml(bytes).map_err(|e| ImportError::Unsupported(e.0))?;
    let (root, ns) = detect_root(bytes)?;
    let def = schema::by_root(&root, &ns).ok_or_else(|| {
        let supported: Vec<String> = schema::SCHEMAS
            .iter()
            .map(|s| format!("{} in {}", s.list.root(), s.namespace))
            .collect();
        ImportError::Unsupported(format!(
            "root element '{}' in namespace '{}' is not a supported list; supported: {}",
            crate::clip::clip(&root),
            crate::clip::clip(&ns),
            supported.join(", ")
        ))
    })?;
    if let Err(errors) = schema::validate(def, bytes) {
        if def.list == ListKind::Whitelist && flat_whitelist(bytes) {
            return Err(ImportError::Unsupported(
                "this is a Whitelist in the flat 1.0 layout (file version 2, <MedMijNode>host</MedMijNode>); only the MedMijNode/Hostname layout (file version 9 and later) is supported: wrap each host in <Hostname>".into(),
            ));
        }
        return Err(ImportError::Schema {
            xsd: def.xsd_file.to_string(),
            errors,
        });
    }
    Ok(def)
}

/// Read and validate one list file.
pub fn read_list(bytes: &[u8]) -> Result<ImportedList, ImportError> {
    let def = checked_schema(bytes)?;
    // The entries of the lists that can be large (a Zorgaanbiederslijst, a Whitelist) are
    // read as they are parsed (see `parse_tree`).
    let (collection, entry, key) = entry_path(def.list);
    let streamed = matches!(
        def.list,
        ListKind::Zorgaanbiederslijst | ListKind::Whitelist
    );
    let mut keys = Vec::new();
    let mut release2 = Vec::new();
    let mut release3 = Vec::new();
    let mut hosts = Vec::new();
    let mut take = |z: El| -> Result<(), ImportError> {
        keys.push(z.child(key)?.text.clone());
        match (def.list, def.version) {
            (ListKind::Whitelist, _) => hosts.push(z.text_of("Hostname")?),
            (_, SchemaVersion::Release2) => {
                let gds = z
                    .child("Gegevensdiensten")?
                    .all("Gegevensdienst")
                    .map(gegevensdienst)
                    .collect::<Result<Vec<_>, _>>()?;
                release2.push((z.text_of("Zorgaanbiedernaam")?, gds));
            }
            _ => release3.push(zorgaanbieder_release3(&z)?),
        }
        Ok(())
    };
    let tree = parse_tree(bytes, streamed.then_some((collection, entry)), &mut take)?;
    let volgnummer = parse_volgnummer(&tree.child("Volgnummer")?.text)?;
    match streamed {
        true => unique(def.list, keys.iter().map(String::as_str))?,
        false => unique_keys(&tree, def.list)?,
    }
    let content = match (def.list, def.version) {
        (ListKind::Zorgaanbiederslijst, SchemaVersion::Release2) => Content::ZalRelease2(release2),
        (ListKind::Zorgaanbiederslijst, _) => Content::ZalRelease3(release3),
        (ListKind::OAuthclientlist, version) => {
            let with_gegevensdiensten = version != SchemaVersion::Release2;
            Content::Ocl {
                clients: tree
                    .child("OAuthclients")?
                    .all("OAuthclient")
                    .map(|c| {
                        let gegevensdiensten = match c.all("Gegevensdiensten").next() {
                            Some(g) => g
                                .all("Gegevensdienst")
                                .map(|g| g.text_of("GegevensdienstId"))
                                .collect::<Result<_, _>>()?,
                            None => Vec::new(),
                        };
                        Ok(OAuthclient {
                            hostname: c.text_of("Hostname")?,
                            oauthclient_organisatienaam: c.text_of("OAuthclientOrganisatienaam")?,
                            gegevensdiensten,
                        })
                    })
                    .collect::<Result<_, ImportError>>()?,
                with_gegevensdiensten,
            }
        }
        (ListKind::Whitelist, _) => Content::Whitelist(hosts),
        (ListKind::Gegevensdienstnamenlijst, _) => Content::Gnl(
            tree.child("Gegevensdiensten")?
                .all("Gegevensdienst")
                .map(|g| {
                    Ok(Gegevensdienstnaam {
                        gegevensdienst_id: g.text_of("GegevensdienstId")?,
                        weergavenaam: g.text_of("Weergavenaam")?,
                    })
                })
                .collect::<Result<_, ImportError>>()?,
        ),
    };
    Ok(ImportedList {
        schema: def,
        volgnummer,
        content,
    })
}

fn gegevensdienst(g: &El) -> Result<Gegevensdienst, ImportError> {
    let abonneren = match g.all("Abonneren").next() {
        Some(a) => Some(Abonneren {
            maximale_duur: a
                .text_of("MaximaleDuur")?
                .parse()
                .map_err(|_| ImportError::Xml("MaximaleDuur is not a number below 2^32".into()))?,
            subscription_endpointuri: a.text_of("SubscriptionEndpointuri")?,
        }),
        None => None,
    };
    Ok(Gegevensdienst {
        gegevensdienst_id: g.text_of("GegevensdienstId")?,
        authorization_endpointuri: g.nested("AuthorizationEndpoint", "AuthorizationEndpointuri")?,
        token_endpointuri: g.nested("TokenEndpoint", "TokenEndpointuri")?,
        abonneren,
        systeemrollen: g
            .child("Systeemrollen")?
            .all("Systeemrol")
            .map(|s| {
                Ok(Systeemrol {
                    systeemrolcode: s.text_of("Systeemrolcode")?,
                    resource_endpointuri: s.nested("ResourceEndpoint", "ResourceEndpointuri")?,
                })
            })
            .collect::<Result<_, ImportError>>()?,
    })
}

fn zorgaanbieder_release3(z: &El) -> Result<Zorgaanbieder, ImportError> {
    let t = z.text_of("Aanbiedertype")?;
    Ok(Zorgaanbieder {
        zorgaanbiedernaam: z.text_of("Zorgaanbiedernaam")?,
        aanbiedertype: Aanbiedertype::parse(&t).ok_or_else(|| {
            ImportError::Xml(format!("Aanbiedertype '{t}' is not ZA, BAZB or APD"))
        })?,
        interfaceversies: z
            .child("Interfaceversies")?
            .all("Interfaceversie")
            .map(|iv| {
                Ok(Interfaceversie {
                    interfaceversie_id: iv.text_of("InterfaceversieId")?,
                    gegevensdiensten: iv
                        .child("Gegevensdiensten")?
                        .all("Gegevensdienst")
                        .map(gegevensdienst)
                        .collect::<Result<_, _>>()?,
                })
            })
            .collect::<Result<_, ImportError>>()?,
    })
}

/// How a release2 Zorgaanbiederslijst, which has no Interfaceversies and no Aanbiedertype,
/// maps into the registry.
pub struct Release2Mapping {
    pub interfaceversie: String,
    pub aanbiedertype: Aanbiedertype,
}

/// Replace the content of the imported list in `reg`.
impl ImportedList {
    /// Whether [`apply`] replaces every Zorgaanbieder (a release3 ZAL carries all of their
    /// Interfaceversies; a release2 one only its own).
    pub fn replaces_zorgaanbieders(&self) -> bool {
        matches!(self.content, Content::ZalRelease3(_))
    }
}

pub fn apply(reg: &mut Registry, list: ImportedList, map: &Release2Mapping) {
    match list.content {
        Content::ZalRelease3(zs) => {
            reg.zorgaanbieders = zs
                .into_iter()
                .map(|z| (z.zorgaanbiedernaam.clone(), z))
                .collect();
        }
        Content::ZalRelease2(entries) => {
            let iv = &map.interfaceversie;
            // Replace exactly the offerings of this Interfaceversie; keep Abonneren that a
            // release2 document cannot carry.
            let mut old = std::mem::take(&mut reg.zorgaanbieders);
            for (naam, mut gds) in entries {
                let mut z = old.remove(&naam).unwrap_or_else(|| Zorgaanbieder {
                    zorgaanbiedernaam: naam.clone(),
                    aanbiedertype: map.aanbiedertype,
                    interfaceversies: Vec::new(),
                });
                if let Some(prev) = z.interfaceversie(iv) {
                    for g in &mut gds {
                        g.abonneren = prev
                            .gegevensdiensten
                            .iter()
                            .find(|p| p.gegevensdienst_id == g.gegevensdienst_id)
                            .and_then(|p| p.abonneren.clone());
                    }
                }
                z.interfaceversies.retain(|i| &i.interfaceversie_id != iv);
                z.interfaceversies.push(Interfaceversie {
                    interfaceversie_id: iv.clone(),
                    gegevensdiensten: gds,
                });
                reg.zorgaanbieders.insert(naam, z);
            }
            // Zorgaanbieders not in the file lose this Interfaceversie.
            for (naam, mut z) in old {
                z.interfaceversies.retain(|i| &i.interfaceversie_id != iv);
                if !z.interfaceversies.is_empty() {
                    reg.zorgaanbieders.insert(naam, z);
                }
            }
        }
        Content::Ocl {
            clients,
            with_gegevensdiensten,
        } => {
            let old = std::mem::take(&mut reg.oauthclients);
            for mut c in clients {
                if !with_gegevensdiensten {
                    // release2 has no Gegevensdiensten: keep what the registry knew.
                    c.gegevensdiensten = old
                        .get(&c.hostname)
                        .map(|o| o.gegevensdiensten.clone())
                        .unwrap_or_default();
                }
                reg.oauthclients.insert(c.hostname.clone(), c);
            }
        }
        Content::Whitelist(hosts) => reg.whitelist = hosts.into_iter().collect(),
        Content::Gnl(gs) => {
            reg.gegevensdiensten = gs
                .into_iter()
                .map(|g| (g.gegevensdienst_id.clone(), g))
                .collect();
        }
    }
}

/// Read a published document back into a registry holding just that list's content.
pub fn registry_of_document(
    bytes: &[u8],
    r: &crate::registry::catalogue::Rendition,
) -> Result<Registry, ImportError> {
    let mut reg = Registry::default();
    let l = read_list(bytes)?;
    apply(
        &mut reg,
        l,
        &Release2Mapping {
            interfaceversie: r.interfaceversie.clone().unwrap_or_else(|| "0.0.0".into()),
            aanbiedertype: Aanbiedertype::ZA,
        },
    );
    reg.canonicalize();
    Ok(reg)
}

/// The demo registry (the embedded demo lists read back), for in-process tests.
#[cfg(test)]
pub fn demo_registry() -> Registry {
    let mut reg = Registry::default();
    for (name, bytes) in crate::demo::DEMO_LISTS {
        let l = read_list(bytes).unwrap_or_else(|e| panic!("demo {name}: {e}"));
        let map = Release2Mapping {
            interfaceversie: "1.1.0".into(),
            aanbiedertype: Aanbiedertype::ZA,
        };
        apply(&mut reg, l, &map);
    }
    reg.canonicalize();
    reg
}

#[cfg(test)]
mod tests;
