//! Command-line interface. Commands that touch the registry run through [`execute`], either
//! in this process (no server running) or inside the server via the admin socket, so both
//! paths behave identically.

use crate::consume::read::{self, Release2Mapping};
use crate::datadir;
use crate::publish;
use crate::registry::catalogue::Catalogue;
use crate::registry::model::{
    Aanbiedertype, Abonneren, Gegevensdienst, Gegevensdienstnaam, Interfaceversie, ListKind,
    OAuthclient, Systeemrol, Zorgaanbieder,
};
use crate::registry::store::{document_key, Store};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Parser, Debug)]
#[command(
    name = "stelselnode",
    version,
    about = "Stelselnode of the MedMij network: publishes the signed Zorgaanbiederslijst, OAuthclientlist, Whitelist and Gegevensdienstnamenlijst",
    long_about = "Stelselnode of the MedMij network.\n\nKeeps the registry (Zorgaanbieders, OAuth clients, Whitelist, Gegevensdienstnamen) in a redb file, publishes every list in every schema version the release catalogue needs (XSD-validated and signed), and serves them over HTTP. While `serve` runs, the other commands are executed by the server through its admin socket (DATA/admin.sock)."
)]
pub struct Cli {
    /// Data directory holding registry.redb, the signing key and the admin socket.
    #[arg(long, global = true, env = "STELSELNODE_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Name recorded as the operator of changes (default: the OS user).
    #[arg(long, global = true, env = "STELSELNODE_OPERATOR", value_name = "NAME")]
    pub operator: Option<String>,
    /// Why this edit is made; recorded with the change (the publication's reason otherwise).
    #[arg(long, global = true, value_name = "REASON")]
    pub reason: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create the data directory: empty registry, release catalogue, signing key.
    Init(InitArgs),
    /// Serve the published lists over HTTP (and the admin socket for the CLI).
    Serve(ServeArgs),
    /// Import complete lists (any supported list and schema version); each replaces that
    /// list's content in the registry. All files are applied in one transaction.
    Import(ImportArgs),
    /// Write the published lists of one release, with signatures and certificate, to a directory.
    Export(ExportArgs),
    /// Render, validate, sign and publish every list in every schema version in use.
    Publish(PublishArgs),
    /// Check a list file or URL: XSD validity and its signatures.
    Verify(VerifyArgs),
    /// Show what is published and the release catalogue.
    Status,
    /// Print the whole working registry as JSON (backups, reviews, diffs).
    Dump,
    /// Show the pending change set: per list and schema version, the entries the next
    /// publish would add, remove or change, and the edits with operator and reason.
    Diff,
    /// Drop the pending change set: the working registry returns to what is published.
    Discard,
    /// Zorgaanbieders and the Gegevensdiensten they offer per Interfaceversie.
    #[command(subcommand)]
    Zorgaanbieder(ZorgaanbiederCmd),
    /// OAuth clients (PGO servers) for the OAuthclientlist.
    #[command(subcommand)]
    Oauthclient(OAuthclientCmd),
    /// MedMij nodes on the Whitelist.
    #[command(subcommand)]
    Whitelist(WhitelistCmd),
    /// Gegevensdiensten and their display names (Gegevensdienstnamenlijst).
    #[command(subcommand)]
    Gegevensdienst(GegevensdienstCmd),
    /// The release catalogue: add releases, move them through their lifecycle, pick the
    /// default. Every change is published at once.
    #[command(subcommand)]
    Release(ReleaseCmd),
    /// Publication history and audit exports.
    #[command(subcommand)]
    History(HistoryCmd),
    /// Gecontroleerde livegang: a temporary copy of a Gegevensdienst for named participants.
    #[command(subcommand)]
    Livegang(LivegangCmd),
}

#[derive(Subcommand, Debug)]
pub enum LivegangCmd {
    /// Start a controlled go-live: a new GegevensdienstId copying --gegevensdienst, offered
    /// only by the named Zorgaanbieders and listed (OCL release3) only for the named clients.
    /// Part of the change set: publish to make it live.
    Start {
        /// The Gegevensdienst to copy (must exist in the Gegevensdienstnamenlijst).
        #[arg(long, value_name = "ID")]
        gegevensdienst: String,
        /// Participating Zorgaanbieder; repeat for several.
        #[arg(long, value_name = "NAME", required = true)]
        zorgaanbieder: Vec<String>,
        /// Participating OAuth client (DVP); repeat for several.
        #[arg(long, value_name = "HOST", required = true)]
        oauthclient: Vec<String>,
        /// End: YYYY-MM-DD (through that day, UTC) or an RFC 3339 time. It ends by itself then.
        #[arg(long, value_name = "DATE")]
        until: String,
        /// GegevensdienstId of the copy (default: the next free number).
        #[arg(long, value_name = "ID")]
        copy_id: Option<String>,
        /// The release (must be verplicht; default: the verplicht release).
        #[arg(long, value_name = "RELEASE")]
        release: Option<String>,
        /// Endpoints for the copy (default: each Zorgaanbieder's offering of the original).
        #[arg(long, value_name = "URI", requires_all = ["token_endpoint", "systeemrol"])]
        authorization_endpoint: Option<String>,
        /// TokenEndpointuri for the copy (with --authorization-endpoint).
        #[arg(long, value_name = "URI", requires = "authorization_endpoint")]
        token_endpoint: Option<String>,
        /// Systeemrol with its ResourceEndpointuri for the copy; repeat for several.
        #[arg(long, value_name = "CODE=URI", requires = "authorization_endpoint")]
        systeemrol: Vec<String>,
    },
    /// List running controlled go-lives.
    List,
    /// Show one (JSON).
    Show {
        /// GegevensdienstId of the livegang copy (see `livegang list`).
        id: String,
    },
    /// End it now: the copy leaves all lists (with the next publish).
    End {
        /// GegevensdienstId of the livegang copy (see `livegang list`).
        id: String,
    },
    /// The participating Zorgaanbieders go live on the original Gegevensdienst with the
    /// copy's endpoints; the copy leaves all lists (with the next publish).
    Promote {
        /// GegevensdienstId of the livegang copy (see `livegang list`).
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum HistoryCmd {
    /// List publications (newest last); `*` marks the lists each one changed.
    List {
        /// Only publications that changed this list (zal, ocl, whitelist, gnl or the full name).
        #[arg(long, value_parser = parse_list)]
        list: Option<ListKind>,
    },
    /// Show one publication: who, why, the edits, every document with its SHA-256.
    Show {
        /// Publication number (see `history list`).
        seq: u64,
    },
    /// Entry-level differences of one list between two Volgnummers.
    Diff {
        /// The list: zal, ocl, whitelist, gnl (or the full name).
        #[arg(long, value_parser = parse_list)]
        list: ListKind,
        /// Older Volgnummer.
        a: u64,
        /// Newer Volgnummer.
        b: u64,
    },
    /// Write a self-contained, verifiable audit archive (tar).
    Export {
        /// Path of the archive to write.
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
        /// First publication to include.
        #[arg(long, value_name = "SEQ")]
        from: Option<u64>,
        /// Last publication to include.
        #[arg(long, value_name = "SEQ")]
        to: Option<u64>,
    },
    /// Verify an audit archive offline: canonical form, hash chain, document hashes and
    /// signatures, CSV. Fails unless the operator's certificate is pinned (--cert).
    Verify {
        /// Path of the archive.
        path: PathBuf,
        /// Pin the operator's signing certificate (PEM). Required unless
        /// --trust-embedded-cert.
        #[arg(long, value_name = "PEM", conflicts_with = "trust_embedded_cert")]
        cert: Option<PathBuf>,
        /// Accept the certificates the archive carries (anyone can make an archive with
        /// certificates of their own): a check of integrity, not of origin.
        #[arg(long)]
        trust_embedded_cert: bool,
        /// Largest archive read (KiB, MiB, GiB).
        #[arg(long, value_name = "SIZE", default_value = "4GiB", value_parser = crate::xml::input::parse_size)]
        max_size: u64,
    },
}

fn parse_list(s: &str) -> Result<ListKind, String> {
    ListKind::from_key(s).ok_or_else(|| {
        format!("'{s}' is not a list; use zal, ocl, whitelist or gnl (or the full name)")
    })
}

#[derive(Subcommand, Debug)]
pub enum ReleaseCmd {
    /// List the releases with status and schema versions.
    List,
    /// Add a release mapping each list to an existing schema version (status optioneel).
    Add {
        /// Release id, e.g. 2.1.0
        id: String,
        /// Interfaceversie the release carries.
        #[arg(long, value_name = "ID")]
        interfaceversie: String,
        /// Schema version of the Zorgaanbiederslijst (e.g. release2 or release3).
        #[arg(long, value_name = "VERSION")]
        zorgaanbiederslijst: crate::registry::model::SchemaVersion,
        /// Schema version of the OAuthclientlist (e.g. release2 or release3).
        #[arg(long, value_name = "VERSION")]
        oauthclientlist: crate::registry::model::SchemaVersion,
        /// Schema version of the Whitelist (e.g. release2).
        #[arg(long, value_name = "VERSION")]
        whitelist: crate::registry::model::SchemaVersion,
        /// Schema version of the Gegevensdienstnamenlijst (e.g. release1).
        #[arg(long, value_name = "VERSION")]
        gegevensdienstnamenlijst: crate::registry::model::SchemaVersion,
    },
    /// Change a release's status (optioneel, verplicht, verouderd, ingetrokken).
    SetStatus {
        /// Release id, e.g. 1.1.2.
        id: String,
        /// New status: optioneel, verplicht, verouderd or ingetrokken.
        #[arg(value_name = "STATUS")]
        status: crate::registry::catalogue::Status,
        /// With verouderd: the sunset date (YYYY-MM-DD) sent in the Sunset header.
        #[arg(long, value_name = "DATE")]
        sunset: Option<String>,
        /// With verouderd: since when (YYYY-MM-DD; default today).
        #[arg(long, value_name = "DATE")]
        deprecated_since: Option<String>,
    },
    /// Choose the release served to requests without ?release= or ?api=.
    SetDefault {
        /// Release id, e.g. 1.1.2.
        id: String,
    },
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Fill the registry with the demo registry from data/demo and publish it.
    #[arg(long)]
    pub demo: bool,
    /// Operator's PEM private key (PKCS#8 RSA/EC P-256 or PKCS#1 RSA). Without it a
    /// DEVELOPMENT key and self-signed certificate are generated.
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,
    /// PEM certificate of --key.
    #[arg(long, value_name = "PEM", requires = "key")]
    pub cert: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: String,
    /// Initialise the data directory with the demo registry first, if it is empty.
    #[arg(long)]
    pub demo: bool,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// List files (ZAL, OCL, Whitelist, GNL; detected from root element and namespace).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Interfaceversie that a release2 Zorgaanbiederslijst's offerings belong to
    /// (default: the Interfaceversie of the default release).
    #[arg(long, value_name = "ID")]
    pub interfaceversie: Option<String>,
    /// Aanbiedertype for Zorgaanbieders first seen in a release2 Zorgaanbiederslijst.
    #[arg(long, default_value = "ZA", value_name = "ZA|BAZB|APD")]
    pub aanbiedertype: Aanbiedertype,
    /// Show the change set the import would make, and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Largest file imported (KiB, MiB, GiB); larger files are refused before parsing.
    #[arg(long, value_name = "SIZE", default_value = crate::xml::input::DEFAULT_MAX_LIST, value_parser = crate::xml::input::parse_size)]
    pub max_size: u64,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Release whose published lists to export, e.g. 1.1.2.
    #[arg(long, value_name = "RELEASE")]
    pub release: String,
    /// Directory to write the files to (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct PublishArgs {
    /// Why this publication is made (kept in the publication log).
    #[arg(short = 'm', long = "message", value_name = "REASON")]
    pub message: String,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// A list file, or an http:// or https:// URL of a served list.
    #[arg(value_name = "FILE|URL")]
    pub target: String,
    /// Detached signature (default: FILE.sig, or the URL's path plus .sig).
    #[arg(long, value_name = "FILE|URL")]
    pub sig: Option<String>,
    /// Pin the operator's signing certificate (PEM). Required unless --trust-embedded-cert.
    #[arg(long, value_name = "PEM", conflicts_with = "trust_embedded_cert")]
    pub cert: Option<PathBuf>,
    /// Accept the certificate the signature carries in KeyInfo (anyone can put one there):
    /// a check of integrity, not of origin.
    #[arg(long)]
    pub trust_embedded_cert: bool,
    /// CA certificates (PEM) to trust for https:// URLs (default: the system's roots).
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Deadline in seconds for each download as a whole (connect, headers and body).
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
    /// Largest document or signature accepted (KiB, MiB, GiB).
    #[arg(long, value_name = "SIZE", default_value = crate::xml::input::DEFAULT_MAX_LIST, value_parser = crate::xml::input::parse_size)]
    pub max_size: u64,
}

/// Flags describing one Gegevensdienst offered in one Interfaceversie.
#[derive(Args, Debug, Default)]
pub struct OfferingArgs {
    /// Interfaceversie of the offering, e.g. 1.1.0.
    #[arg(long, value_name = "ID")]
    pub interfaceversie: Option<String>,
    /// GegevensdienstId offered (must exist in the Gegevensdienstnamenlijst).
    #[arg(long, value_name = "ID")]
    pub gegevensdienst: Option<String>,
    /// AuthorizationEndpointuri (https, no port).
    #[arg(long, value_name = "URI")]
    pub authorization_endpoint: Option<String>,
    /// TokenEndpointuri (https, port 443 only if given).
    #[arg(long, value_name = "URI")]
    pub token_endpoint: Option<String>,
    /// A Systeemrol with its ResourceEndpointuri; repeat for several.
    #[arg(long, value_name = "CODE=URI")]
    pub systeemrol: Vec<String>,
    /// Abonneren: MaximaleDuur in days (with --subscription-endpoint).
    #[arg(long, value_name = "DAYS", requires = "subscription_endpoint")]
    pub abonneren_duur: Option<u32>,
    /// Abonneren: SubscriptionEndpointuri (with --abonneren-duur).
    #[arg(long, value_name = "URI", requires = "abonneren_duur")]
    pub subscription_endpoint: Option<String>,
}

impl OfferingArgs {
    fn given(&self) -> bool {
        self.interfaceversie.is_some()
            || self.gegevensdienst.is_some()
            || self.authorization_endpoint.is_some()
            || self.token_endpoint.is_some()
            || !self.systeemrol.is_empty()
            || self.abonneren_duur.is_some()
    }

    fn systeemrollen(&self) -> Result<Vec<Systeemrol>, String> {
        self.systeemrol
            .iter()
            .map(|s| {
                s.split_once('=')
                    .map(|(c, u)| Systeemrol {
                        systeemrolcode: c.to_string(),
                        resource_endpointuri: u.to_string(),
                    })
                    .ok_or_else(|| format!("--systeemrol '{s}' must have the form CODE=URI"))
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
        let systeemrollen = self.systeemrollen()?;
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
                systeemrollen,
            },
        ))
    }
}

#[derive(Subcommand, Debug)]
pub enum ZorgaanbiederCmd {
    /// Add a Zorgaanbieder with its first offering.
    Add {
        /// Zorgaanbiedernaam, e.g. umcharderwijk@medmij
        naam: String,
        /// Aanbiedertype: ZA, BAZB or APD.
        #[arg(long, value_name = "ZA|BAZB|APD")]
        aanbiedertype: Aanbiedertype,
        #[command(flatten)]
        offering: OfferingArgs,
    },
    /// Change the Aanbiedertype and/or add or replace one offering.
    Update {
        /// Zorgaanbiedernaam, e.g. umcharderwijk@medmij.
        naam: String,
        /// Aanbiedertype: ZA, BAZB or APD.
        #[arg(long, value_name = "ZA|BAZB|APD")]
        aanbiedertype: Option<Aanbiedertype>,
        #[command(flatten)]
        offering: OfferingArgs,
    },
    /// Stop offering one Gegevensdienst in one Interfaceversie.
    Withdraw {
        /// Zorgaanbiedernaam, e.g. umcharderwijk@medmij.
        naam: String,
        /// InterfaceversieId, e.g. 1.1.0.
        #[arg(long, value_name = "ID")]
        interfaceversie: String,
        /// GegevensdienstId.
        #[arg(long, value_name = "ID")]
        gegevensdienst: String,
    },
    /// Remove a Zorgaanbieder.
    Remove {
        /// Zorgaanbiedernaam, e.g. umcharderwijk@medmij.
        naam: String,
    },
    /// Show one Zorgaanbieder (JSON).
    Show {
        /// Zorgaanbiedernaam, e.g. umcharderwijk@medmij.
        naam: String,
    },
    /// List Zorgaanbieders.
    List,
}

#[derive(Subcommand, Debug)]
pub enum OAuthclientCmd {
    /// Add an OAuth client (PGO server).
    Add {
        /// Hostname (lowercase DNS name).
        hostname: String,
        /// OAuthclientOrganisatienaam shown in consent screens (3-50 characters).
        #[arg(long, value_name = "NAME")]
        organisatienaam: String,
        /// GegevensdienstId it is recognised for; repeat for several.
        #[arg(long, value_name = "ID")]
        gegevensdienst: Vec<String>,
    },
    /// Change the organisation name and/or the Gegevensdiensten (replaces the whole set).
    Update {
        /// Hostname (lowercase DNS name).
        hostname: String,
        /// OAuthclientOrganisatienaam shown in consent screens (3-50 characters).
        #[arg(long, value_name = "NAME")]
        organisatienaam: Option<String>,
        /// GegevensdienstId.
        #[arg(long, value_name = "ID")]
        gegevensdienst: Vec<String>,
        /// Recognise the client for no Gegevensdienst at all.
        #[arg(long, conflicts_with = "gegevensdienst")]
        no_gegevensdiensten: bool,
    },
    /// Remove an OAuth client.
    Remove {
        /// Hostname (lowercase DNS name).
        hostname: String,
    },
    /// Show one OAuth client (JSON).
    Show {
        /// Hostname (lowercase DNS name).
        hostname: String,
    },
    /// List OAuth clients with their Gegevensdiensten.
    List,
}

#[derive(Subcommand, Debug)]
pub enum WhitelistCmd {
    /// Add MedMij node hostnames.
    Add {
        /// Hostnames (lowercase DNS names).
        #[arg(required = true)]
        hostnames: Vec<String>,
    },
    /// Remove MedMij node hostnames.
    Remove {
        /// Hostnames (lowercase DNS names).
        #[arg(required = true)]
        hostnames: Vec<String>,
    },
    /// Show whether a hostname is on the Whitelist.
    Show {
        /// Hostname (lowercase DNS name).
        hostname: String,
    },
    /// List the Whitelist.
    List,
}

#[derive(Subcommand, Debug)]
pub enum GegevensdienstCmd {
    /// Add a Gegevensdienst (numeric id) with its Weergavenaam.
    Add {
        /// GegevensdienstId (numeric).
        id: String,
        /// Weergavenaam shown to users (3-50 characters).
        #[arg(long, value_name = "NAME")]
        weergavenaam: String,
    },
    /// Change a Gegevensdienst's Weergavenaam.
    Update {
        /// GegevensdienstId (numeric).
        id: String,
        /// Weergavenaam shown to users (3-50 characters).
        #[arg(long, value_name = "NAME")]
        weergavenaam: String,
    },
    /// Remove a Gegevensdienst (refused while a Zorgaanbieder or OAuth client uses it).
    Remove {
        /// GegevensdienstId (numeric).
        id: String,
    },
    /// Show one Gegevensdienst (JSON).
    Show {
        /// GegevensdienstId (numeric).
        id: String,
    },
    /// List the Gegevensdienstnamenlijst.
    List,
}

impl Command {
    /// Commands that must run in this process rather than in a running server.
    pub fn is_local_only(&self) -> bool {
        matches!(
            self,
            Command::Init(_) | Command::Serve(_) | Command::Verify(_)
        )
    }

    /// Commands that commit a publication.
    pub fn publishes(&self) -> bool {
        matches!(
            self,
            Command::Publish(_)
                | Command::Release(
                    ReleaseCmd::Add { .. }
                        | ReleaseCmd::SetStatus { .. }
                        | ReleaseCmd::SetDefault { .. }
                )
        )
    }

    /// Make relative paths absolute, for execution in another process (the server).
    pub fn absolutize(&mut self, cwd: &Path) {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = cwd.join(&*p);
            }
        };
        match self {
            Command::Import(a) => a.files.iter_mut().for_each(abs),
            Command::Export(a) => abs(&mut a.out),
            Command::History(HistoryCmd::Export { out, .. }) => abs(out),
            _ => {}
        }
    }
}

/// What a command needs to run against a registry.
pub struct Ctx<'a> {
    pub data: &'a Path,
    pub store: &'a Store,
    pub who: crate::registry::store::Who,
}

fn not_found(kind: &str, key: &str) -> String {
    format!("{kind} '{key}' does not exist")
}

/// Run a registry command; output goes to `out`.
pub fn execute(ctx: &Ctx, cmd: Command, out: &mut String) -> Result<()> {
    match cmd {
        Command::Init(_) | Command::Serve(_) | Command::Verify(_) => {
            bail!("this command cannot run through the admin socket")
        }
        Command::Status => status(ctx, out),
        Command::Diff => {
            let (reg, cat) = ctx.store.snapshot()?;
            let published = ctx.store.published_registry()?;
            if !write_diff(out, &published, &reg, &cat, &ListKind::ALL)? {
                writeln!(out, "no pending changes")?;
            }
            for c in ctx.store.journal()? {
                writeln!(out, "{}", c.describe())?;
            }
            Ok(())
        }
        Command::Discard => {
            let published = ctx.store.published_registry()?;
            let n = ctx.store.journal()?.len();
            ctx.store.restore(&published)?;
            writeln!(
                out,
                "discarded the pending change set ({n} edits); the registry is as published"
            )?;
            Ok(())
        }
        Command::Dump => {
            writeln!(out, "{}", json(&ctx.store.registry()?))?;
            Ok(())
        }
        Command::Publish(a) => {
            if a.message.trim().is_empty() {
                bail!("publish: --message must give a reason");
            }
            crate::registry::store::check_recorded(&ctx.who.operator, Some(&a.message))
                .map_err(|e| anyhow!("publish: {e}; nothing was published"))?;
            let key = datadir::load_signing_key(ctx.data)?;
            // A livegang past its date ends first, as its own publication, also when no
            // server runs to notice it.
            let expired = crate::registry::livegang::expire_due(
                ctx.store,
                &key,
                time::OffsetDateTime::now_utc(),
            )?;
            if !expired.is_empty() {
                writeln!(
                    out,
                    "gecontroleerde livegang {} expired; its end was published first",
                    expired.join(", ")
                )?;
            }
            match publish::publish(
                ctx.store,
                &key,
                &ctx.who.operator,
                &a.message,
                time::OffsetDateTime::now_utc(),
            )? {
                None => writeln!(out, "nothing changed since publication; nothing published")?,
                Some(p) => {
                    writeln!(
                        out,
                        "published #{} at {} by {}",
                        p.entry.seq, p.entry.time, p.entry.operator
                    )?;
                    for (l, v) in &p.index.lists {
                        let mark = if p.entry.changed.contains(l) {
                            "changed"
                        } else {
                            "unchanged"
                        };
                        writeln!(
                            out,
                            "  {:<26} Volgnummer {:>6}  {mark}",
                            l.to_string(),
                            v.volgnummer
                        )?;
                    }
                }
            }
            Ok(())
        }
        Command::Import(a) => import_files(ctx, a, out),
        Command::Export(a) => export(ctx, a, out),
        Command::Zorgaanbieder(c) => zorgaanbieder(ctx, c, out),
        Command::Oauthclient(c) => oauthclient(ctx, c, out),
        Command::Whitelist(c) => whitelist(ctx, c, out),
        Command::Gegevensdienst(c) => gegevensdienst(ctx, c, out),
        Command::Release(c) => release(ctx, c, out),
        Command::Livegang(c) => livegang(ctx, c, out),
        Command::History(c) => {
            let text = match c {
                HistoryCmd::List { list } => crate::operate::history::list(ctx.store, list)?,
                HistoryCmd::Show { seq } => crate::operate::history::show(ctx.store, seq)?,
                HistoryCmd::Diff { list, a, b } => {
                    crate::operate::history::diff_cmd(ctx.store, list, a, b)?
                }
                HistoryCmd::Export {
                    out: path,
                    from,
                    to,
                } => {
                    let key = datadir::load_signing_key(ctx.data)?;
                    crate::operate::history::export(ctx.store, &key, &path, from, to)?
                }
                HistoryCmd::Verify { .. } => bail!("history verify runs without a registry"),
            };
            out.push_str(&text);
            Ok(())
        }
    }
}

fn livegang(ctx: &Ctx, c: LivegangCmd, out: &mut String) -> Result<()> {
    use crate::registry::livegang as lg;
    let msg = match c {
        LivegangCmd::Start {
            gegevensdienst,
            zorgaanbieder,
            oauthclient,
            until,
            copy_id,
            release,
            authorization_endpoint,
            token_endpoint,
            systeemrol,
        } => {
            let endpoints = match (authorization_endpoint, token_endpoint) {
                (Some(a), Some(t)) => Some(lg::Endpoints {
                    authorization_endpointuri: a,
                    token_endpointuri: t,
                    systeemrollen: OfferingArgs {
                        systeemrol,
                        ..Default::default()
                    }
                    .systeemrollen()
                    .map_err(|e| anyhow!(e))?,
                }),
                _ => None,
            };
            let cat = ctx.store.catalogue()?;
            let start = lg::Start {
                gegevensdienst,
                zorgaanbieders: zorgaanbieder,
                oauthclients: oauthclient,
                until,
                copy_id,
                release,
                endpoints,
            };
            let operator = ctx.who.operator.clone();
            ctx.store.update(&ctx.who, |reg| {
                lg::start(reg, &cat, start, &operator, time::OffsetDateTime::now_utc())
            })?
        }
        LivegangCmd::List => {
            let l = ctx.store.livegangen()?;
            if l.is_empty() {
                "no gecontroleerde livegang".to_string()
            } else {
                l.values()
                    .map(|l| {
                        format!(
                            "{:<6} copy of {:<4} release {} until {}  Zorgaanbieders: {}  OAuthclients: {}",
                            l.copy_id,
                            l.gegevensdienst_id,
                            l.release,
                            l.until,
                            l.zorgaanbieders.join(","),
                            l.oauthclients.join(",")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
        LivegangCmd::Show { id } => json(
            ctx.store
                .livegangen()?
                .get(&id)
                .ok_or_else(|| anyhow!("no gecontroleerde livegang '{id}'"))?,
        ),
        LivegangCmd::End { id } => ctx.store.update(&ctx.who, |reg| lg::end(reg, &id))?,
        LivegangCmd::Promote { id } => ctx.store.update(&ctx.who, |reg| lg::promote(reg, &id))?,
    };
    writeln!(out, "{msg}")?;
    Ok(())
}

fn release(ctx: &Ctx, c: ReleaseCmd, out: &mut String) -> Result<()> {
    use crate::registry::catalogue::{Release, Status};
    // Held from reading the catalogue to committing its publication: no other publication
    // or catalogue change can come in between and be reverted by this one.
    let guard = ctx.store.lock_publications();
    let mut cat = ctx.store.catalogue()?;
    let reason = match c {
        ReleaseCmd::List => return write_releases(out, &cat),
        ReleaseCmd::Add {
            id,
            interfaceversie,
            zorgaanbiederslijst,
            oauthclientlist,
            whitelist,
            gegevensdienstnamenlijst,
        } => cat.add_release(Release {
            id,
            status: Status::Optioneel,
            deprecated_since: None,
            sunset: None,
            interfaceversie,
            zorgaanbiederslijst,
            oauthclientlist,
            whitelist,
            gegevensdienstnamenlijst,
            aanbiedertypen: crate::registry::catalogue::aanbiedertypen_in_force(),
        }),
        ReleaseCmd::SetStatus {
            id,
            status,
            sunset,
            deprecated_since,
        } => cat.set_status(
            &id,
            status,
            sunset,
            deprecated_since,
            time::OffsetDateTime::now_utc().date(),
        ),
        ReleaseCmd::SetDefault { id } => cat.set_default(&id),
    }
    .map_err(|e| anyhow!("{e}; nothing was changed"))?;

    let reason = match &ctx.who.reason {
        Some(r) => format!("{reason}: {r}"),
        None => reason,
    };
    if ctx.store.published()?.is_none() {
        ctx.store.set_catalogue(&guard, &cat)?;
        writeln!(out, "{reason} (takes effect with the first publication)")?;
        return Ok(());
    }
    let key = datadir::load_signing_key(ctx.data)?;
    let now = time::OffsetDateTime::now_utc();
    // A gecontroleerde livegang stops when its release stops being verplicht (FACTS.md §9).
    let old_cat = ctx.store.catalogue()?;
    let mut ending: Vec<String> = Vec::new();
    for livegangen in [ctx.store.livegangen()?, ctx.store.published_livegangen()?] {
        for l in livegangen.values() {
            let was = old_cat.get(&l.release).map(|r| r.status) == Some(Status::Verplicht);
            let is = cat.get(&l.release).map(|r| r.status) == Some(Status::Verplicht);
            if was && !is && !ending.contains(&l.copy_id) {
                ending.push(l.copy_id.clone());
            }
        }
    }
    let reason = if ending.is_empty() {
        reason
    } else {
        format!(
            "{reason}; gecontroleerde livegang {} ends with it",
            ending.join(", ")
        )
    };
    writeln!(out, "{reason}")?;
    // The catalogue change takes effect through its own publication of what is already
    // published (pending edits stay pending), so the server answers it at once (a
    // withdrawn release: 410) and the log records who did it and why. The catalogue is
    // stored by that publication's commit, so a failure changes nothing.
    let published = crate::registry::livegang::end_everywhere(
        ctx.store,
        &guard,
        &key,
        &ending,
        &ctx.who.operator,
        &reason,
        Some(&cat),
        now,
    )?;
    match published {
        Some(p) => writeln!(out, "published #{}", p.entry.seq)?,
        None => writeln!(out, "nothing to publish")?,
    }
    Ok(())
}

fn status(ctx: &Ctx, out: &mut String) -> Result<()> {
    let (reg, cat) = ctx.store.snapshot()?;
    writeln!(
        out,
        "registry: {} Zorgaanbieders, {} OAuth clients, {} Whitelist nodes, {} Gegevensdiensten",
        reg.zorgaanbieders.len(),
        reg.oauthclients.len(),
        reg.whitelist.len(),
        reg.gegevensdiensten.len()
    )?;
    match ctx.store.published()? {
        None => writeln!(out, "published: nothing yet")?,
        Some(p) => {
            writeln!(out, "published: publication #{}", p.seq)?;
            for (l, v) in &p.lists {
                let pending =
                    crate::registry::store::sha256_hex(&reg.list_content(*l)?) != v.content_sha256;
                writeln!(
                    out,
                    "  {:<26} Volgnummer {:>6}  {}{}",
                    l.to_string(),
                    v.volgnummer,
                    v.tijdstempel,
                    if pending {
                        "  (registry has unpublished changes)"
                    } else {
                        ""
                    }
                )?;
            }
        }
    }
    writeln!(out, "releases (default {}):", cat.default)?;
    write_releases(out, &cat)
}

fn write_releases(out: &mut String, cat: &Catalogue) -> Result<()> {
    for r in &cat.releases {
        let default = if r.id == cat.default {
            "  (default)"
        } else {
            ""
        };
        write!(
            out,
            "{:<8} {:<11} interfaceversie {}",
            r.id,
            r.status.as_str(),
            r.interfaceversie
        )?;
        if let Some(s) = &r.sunset {
            write!(out, "  sunset {s}")?;
        }
        writeln!(out, "{default}")?;
        for l in ListKind::ALL {
            writeln!(out, "    {:<26} {}", l.to_string(), r.schema_version(l))?;
        }
    }
    Ok(())
}

fn import_files(ctx: &Ctx, a: ImportArgs, out: &mut String) -> Result<()> {
    let cat = ctx.store.catalogue()?;
    let interfaceversie = match a.interfaceversie {
        Some(iv) => iv,
        None => default_interfaceversie(&cat)?,
    };
    crate::registry::rules::interfaceversie_id(&interfaceversie)
        .map_err(|e| anyhow!("--interfaceversie '{interfaceversie}' {e}"))?;
    let mut lists = Vec::new();
    for f in &a.files {
        let bytes = crate::xml::input::read_file(f, a.max_size)
            .map_err(|e| anyhow!("{e}; nothing was imported"))?;
        let l = read::read_list(&bytes)
            .map_err(|e| anyhow!("{}: {e}; nothing was imported", f.display()))?;
        lists.push((f.clone(), l));
    }
    let mut seen = BTreeMap::new();
    for (f, l) in &lists {
        if let Some(prev) = seen.insert(l.schema.list, f.clone()) {
            bail!(
                "{} and {} are both a {}; import one per list; nothing was imported",
                prev.display(),
                f.display(),
                l.schema.list
            );
        }
    }
    let map = Release2Mapping {
        interfaceversie,
        aanbiedertype: a.aanbiedertype,
    };
    let mut floors = BTreeMap::new();
    let mut descriptions = Vec::new();
    let mut touched = Vec::new();
    for (f, l) in &lists {
        floors.insert(l.schema.list, l.volgnummer);
        touched.push(l.schema.list);
        descriptions.push(format!("{}: {}", f.display(), l.describe()));
    }
    let (before, cat) = ctx.store.snapshot()?;
    let mut after = before.clone();
    for (_, l) in &lists {
        read::apply(&mut after, l.clone(), &map);
    }
    after.canonicalize();
    crate::registry::rules::ensure_valid(&after, &cat).map_err(|v| anyhow!("{v}"))?;
    if !write_diff(out, &before, &after, &cat, &touched)? {
        writeln!(out, "the import changes nothing")?;
    }
    // Peak memory: the preview's two registries go before the write makes its own two.
    drop((before, after));
    if a.dry_run {
        writeln!(out, "dry run: nothing was written")?;
        return Ok(());
    }
    let summary = descriptions.join("; ");
    // Applied to the latest registry inside the write transaction, so an edit that
    // arrived after the diff above is not lost.
    let imported: Vec<_> = lists.into_iter().map(|(_, l)| l).collect();
    ctx.store
        .update_with_floors(&ctx.who, &floors, move |reg| {
            for l in imported {
                read::apply(reg, l, &map);
            }
            Ok(format!("import {summary}"))
        })?;
    for d in descriptions {
        writeln!(out, "imported {d}")?;
    }
    writeln!(out, "run `stelselnode publish -m REASON` to publish")?;
    Ok(())
}

/// Write the entry-level differences of every rendition of `lists`; true if any.
fn write_diff(
    out: &mut String,
    old: &crate::registry::model::Registry,
    new: &crate::registry::model::Registry,
    cat: &Catalogue,
    lists: &[ListKind],
) -> Result<bool> {
    let mut any = false;
    for r in cat.renditions() {
        if !lists.contains(&r.list) {
            continue;
        }
        let d = crate::registry::diff::describe(&r, old, new);
        if !d.is_empty() {
            any = true;
            out.push_str(&d);
        }
    }
    Ok(any)
}

fn default_interfaceversie(cat: &Catalogue) -> Result<String> {
    cat.get(&cat.default)
        .map(|r| r.interfaceversie.clone())
        .ok_or_else(|| {
            anyhow!(
                "default release '{}' missing from the catalogue",
                cat.default
            )
        })
}

fn export(ctx: &Ctx, a: ExportArgs, out: &mut String) -> Result<()> {
    let index = ctx
        .store
        .published()?
        .ok_or_else(|| anyhow!("nothing has been published yet"))?;
    let release = index
        .catalogue
        .get(&a.release)
        .ok_or_else(|| {
            anyhow!(
                "release '{}' is not in the catalogue (known: {})",
                a.release,
                index
                    .catalogue
                    .releases
                    .iter()
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?
        .clone();
    if release.status == crate::registry::catalogue::Status::Ingetrokken {
        bail!(
            "release '{}' is ingetrokken; it has no served lists",
            release.id
        );
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    for list in ListKind::ALL {
        let r = release.rendition(list);
        let pr = index
            .renditions
            .iter()
            .find(|p| p.rendition == r)
            .ok_or_else(|| anyhow!("{r} is not published"))?;
        let key = document_key(&r, pr.volgnummer);
        let xml = ctx
            .store
            .document(&key)?
            .ok_or_else(|| anyhow!("{key} missing"))?;
        let sig = ctx
            .store
            .document(&format!("{key}.sig"))?
            .ok_or_else(|| anyhow!("{key}.sig missing"))?;
        let path = a.out.join(list.file_name());
        std::fs::write(&path, &xml).with_context(|| format!("writing {}", path.display()))?;
        let sig_path = a.out.join(format!("{}.sig", list.file_name()));
        std::fs::write(&sig_path, &sig)
            .with_context(|| format!("writing {}", sig_path.display()))?;
        writeln!(
            out,
            "wrote {} ({r}, Volgnummer {})",
            path.display(),
            pr.volgnummer
        )?;
    }
    let cert = datadir::certificate_pem(ctx.data)?;
    std::fs::write(a.out.join("signing-certificate.pem"), cert)?;
    Ok(())
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn zorgaanbieder(ctx: &Ctx, c: ZorgaanbiederCmd, out: &mut String) -> Result<()> {
    let msg = match c {
        ZorgaanbiederCmd::Add {
            naam,
            aanbiedertype,
            offering,
        } => {
            let (iv, g) = offering.build().map_err(|e| anyhow!("zorgaanbieder add {naam}: {e}"))?;
            ctx.store.update(&ctx.who, |reg| {
                if reg.zorgaanbieders.contains_key(&naam) {
                    return Err(format!("Zorgaanbieder '{naam}' already exists; use `zorgaanbieder update`"));
                }
                reg.zorgaanbieders.insert(
                    naam.clone(),
                    Zorgaanbieder {
                        zorgaanbiedernaam: naam.clone(),
                        aanbiedertype,
                        interfaceversies: vec![Interfaceversie {
                            interfaceversie_id: iv,
                            gegevensdiensten: vec![g],
                        }],
                    },
                );
                Ok(format!("added Zorgaanbieder {naam}"))
            })?
        }
        ZorgaanbiederCmd::Update {
            naam,
            aanbiedertype,
            offering,
        } => {
            let offer = if offering.given() {
                Some(offering.build().map_err(|e| anyhow!("zorgaanbieder update {naam}: {e}"))?)
            } else {
                None
            };
            if offer.is_none() && aanbiedertype.is_none() {
                bail!("zorgaanbieder update {naam}: nothing to change (give --aanbiedertype and/or an offering)");
            }
            ctx.store.update(&ctx.who, |reg| {
                let z = reg
                    .zorgaanbieders
                    .get_mut(&naam)
                    .ok_or_else(|| not_found("Zorgaanbieder", &naam))?;
                if let Some(t) = aanbiedertype {
                    z.aanbiedertype = t;
                }
                if let Some((iv, g)) = offer {
                    let gid = g.gegevensdienst_id.clone();
                    match z.interfaceversies.iter_mut().find(|i| i.interfaceversie_id == iv) {
                        Some(i) => match i.gegevensdiensten.iter_mut().find(|x| x.gegevensdienst_id == gid) {
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
        ZorgaanbiederCmd::Withdraw {
            naam,
            interfaceversie,
            gegevensdienst,
        } => ctx.store.update(&ctx.who, |reg| {
            let z = reg
                .zorgaanbieders
                .get_mut(&naam)
                .ok_or_else(|| not_found("Zorgaanbieder", &naam))?;
            let i = z
                .interfaceversies
                .iter_mut()
                .find(|i| i.interfaceversie_id == interfaceversie)
                .ok_or_else(|| format!("Zorgaanbieder '{naam}' offers nothing in Interfaceversie {interfaceversie}"))?;
            let before = i.gegevensdiensten.len();
            i.gegevensdiensten.retain(|g| g.gegevensdienst_id != gegevensdienst);
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
            Ok(format!("withdrew Gegevensdienst {gegevensdienst} (Interfaceversie {interfaceversie}) from {naam}"))
        })?,
        ZorgaanbiederCmd::Remove { naam } => ctx.store.update(&ctx.who, |reg| {
            reg.zorgaanbieders
                .remove(&naam)
                .ok_or_else(|| not_found("Zorgaanbieder", &naam))?;
            Ok(format!("removed Zorgaanbieder {naam}"))
        })?,
        ZorgaanbiederCmd::Show { naam } => {
            let reg = ctx.store.registry()?;
            let z = reg
                .zorgaanbieders
                .get(&naam)
                .ok_or_else(|| anyhow!(not_found("Zorgaanbieder", &naam)))?;
            json(z)
        }
        ZorgaanbiederCmd::List => {
            let reg = ctx.store.registry()?;
            let mut s = String::new();
            for z in reg.zorgaanbieders.values() {
                let offers: Vec<String> = z
                    .interfaceversies
                    .iter()
                    .map(|i| {
                        format!(
                            "{}: {}",
                            i.interfaceversie_id,
                            i.gegevensdiensten.iter().map(|g| g.gegevensdienst_id.as_str()).collect::<Vec<_>>().join(",")
                        )
                    })
                    .collect();
                let _ = writeln!(s, "{:<40} {:<5} {}", z.zorgaanbiedernaam, z.aanbiedertype.as_str(), offers.join("; "));
            }
            s.trim_end().to_string()
        }
    };
    writeln!(out, "{msg}")?;
    Ok(())
}

fn oauthclient(ctx: &Ctx, c: OAuthclientCmd, out: &mut String) -> Result<()> {
    let msg = match c {
        OAuthclientCmd::Add {
            hostname,
            organisatienaam,
            gegevensdienst,
        } => ctx.store.update(&ctx.who, |reg| {
            if reg.oauthclients.contains_key(&hostname) {
                return Err(format!(
                    "OAuthclient '{hostname}' already exists; use `oauthclient update`"
                ));
            }
            reg.oauthclients.insert(
                hostname.clone(),
                OAuthclient {
                    hostname: hostname.clone(),
                    oauthclient_organisatienaam: organisatienaam,
                    gegevensdiensten: gegevensdienst,
                },
            );
            Ok(format!("added OAuthclient {hostname}"))
        })?,
        OAuthclientCmd::Update {
            hostname,
            organisatienaam,
            gegevensdienst,
            no_gegevensdiensten,
        } => {
            if organisatienaam.is_none() && gegevensdienst.is_empty() && !no_gegevensdiensten {
                bail!("oauthclient update {hostname}: nothing to change");
            }
            ctx.store.update(&ctx.who, |reg| {
                let c = reg
                    .oauthclients
                    .get_mut(&hostname)
                    .ok_or_else(|| not_found("OAuthclient", &hostname))?;
                if let Some(n) = organisatienaam {
                    c.oauthclient_organisatienaam = n;
                }
                if !gegevensdienst.is_empty() || no_gegevensdiensten {
                    c.gegevensdiensten = gegevensdienst;
                }
                Ok(format!("updated OAuthclient {hostname}"))
            })?
        }
        OAuthclientCmd::Remove { hostname } => ctx.store.update(&ctx.who, |reg| {
            reg.oauthclients
                .remove(&hostname)
                .ok_or_else(|| not_found("OAuthclient", &hostname))?;
            Ok(format!("removed OAuthclient {hostname}"))
        })?,
        OAuthclientCmd::Show { hostname } => {
            let reg = ctx.store.registry()?;
            json(
                reg.oauthclients
                    .get(&hostname)
                    .ok_or_else(|| anyhow!(not_found("OAuthclient", &hostname)))?,
            )
        }
        OAuthclientCmd::List => {
            let reg = ctx.store.registry()?;
            reg.oauthclients
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
                .join("\n")
        }
    };
    writeln!(out, "{msg}")?;
    Ok(())
}

fn whitelist(ctx: &Ctx, c: WhitelistCmd, out: &mut String) -> Result<()> {
    let msg = match c {
        WhitelistCmd::Add { hostnames } => ctx.store.update(&ctx.who, |reg| {
            for h in &hostnames {
                if !reg.whitelist.insert(h.clone()) {
                    return Err(format!("MedMijNode '{h}' is already on the Whitelist"));
                }
            }
            Ok(format!("added {} to the Whitelist", hostnames.join(", ")))
        })?,
        WhitelistCmd::Remove { hostnames } => ctx.store.update(&ctx.who, |reg| {
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
        WhitelistCmd::Show { hostname } => {
            let reg = ctx.store.registry()?;
            if !reg.whitelist.contains(&hostname) {
                bail!(not_found("MedMijNode", &hostname));
            }
            format!("{hostname} is on the Whitelist")
        }
        WhitelistCmd::List => {
            let reg = ctx.store.registry()?;
            reg.whitelist.iter().cloned().collect::<Vec<_>>().join("\n")
        }
    };
    writeln!(out, "{msg}")?;
    Ok(())
}

fn gegevensdienst(ctx: &Ctx, c: GegevensdienstCmd, out: &mut String) -> Result<()> {
    let msg = match c {
        GegevensdienstCmd::Add { id, weergavenaam } => ctx.store.update(&ctx.who, |reg| {
            if reg.gegevensdiensten.contains_key(&id) {
                return Err(format!(
                    "Gegevensdienst '{id}' already exists; use `gegevensdienst update`"
                ));
            }
            reg.gegevensdiensten.insert(
                id.clone(),
                Gegevensdienstnaam {
                    gegevensdienst_id: id.clone(),
                    weergavenaam,
                },
            );
            Ok(format!("added Gegevensdienst {id}"))
        })?,
        GegevensdienstCmd::Update { id, weergavenaam } => ctx.store.update(&ctx.who, |reg| {
            let g = reg
                .gegevensdiensten
                .get_mut(&id)
                .ok_or_else(|| not_found("Gegevensdienst", &id))?;
            g.weergavenaam = weergavenaam;
            Ok(format!("updated Gegevensdienst {id}"))
        })?,
        GegevensdienstCmd::Remove { id } => ctx.store.update(&ctx.who, |reg| {
            reg.gegevensdiensten
                .remove(&id)
                .ok_or_else(|| not_found("Gegevensdienst", &id))?;
            Ok(format!("removed Gegevensdienst {id}"))
        })?,
        GegevensdienstCmd::Show { id } => {
            let reg = ctx.store.registry()?;
            json(
                reg.gegevensdiensten
                    .get(&id)
                    .ok_or_else(|| anyhow!(not_found("Gegevensdienst", &id)))?,
            )
        }
        GegevensdienstCmd::List => {
            let reg = ctx.store.registry()?;
            reg.gegevensdiensten_ordered()
                .iter()
                .map(|g| format!("{:>4}  {}", g.gegevensdienst_id, g.weergavenaam))
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    writeln!(out, "{msg}")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    fn walk(c: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for a in c.get_arguments() {
            let id = a.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            if a.get_help().is_none() && a.get_long_help().is_none() {
                missing.push(format!("{path} <{id}>"));
            }
        }
        for s in c.get_subcommands() {
            let p = format!("{path} {}", s.get_name());
            if s.get_about().is_none() {
                missing.push(p.clone());
            }
            walk(s, &p, missing);
        }
    }

    #[test]
    fn every_command_and_argument_has_help() {
        let mut missing = Vec::new();
        walk(&Cli::command(), "stelselnode", &mut missing);
        assert!(missing.is_empty(), "no --help text for: {missing:#?}");
    }
}
