//! Command-line interface: the clap definitions, and their translation into an
//! [`Operation`] (or, for the commands that need no registry, a [`Local`] command). The
//! only module that knows clap.

mod local;
pub use local::{InitArgs, ServeArgs, SyncArgs, VerifyArgs};

use crate::operate::entity::Offering;
use crate::operate::gegevensdienst::GegevensdienstOp;
use crate::operate::history::HistoryOp;
use crate::operate::livegang::LivegangOp;
use crate::operate::oauthclient::OAuthclientOp;
use crate::operate::release::ReleaseOp;
use crate::operate::whitelist::WhitelistOp;
use crate::operate::zorgaanbieder::ZorgaanbiederOp;
use crate::operate::{export::Export, import::Import, publish::Publish, Operation};
use crate::registry::livegang::{Endpoints, Start};
use crate::registry::model::{Aanbiedertype, ListKind};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

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
    /// Seconds a command waits for a registry that another command is using (e.g. a
    /// `publish` checking, after a crash, whether it committed) before it gives up.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub lock_wait: u64,
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
    /// Write every current document of every release (with signatures, gzip variants and
    /// the certificate) and a generated nginx configuration, for static edges.
    ExportStatic(ExportStaticArgs),
    /// Render, validate, sign and publish every list in every schema version in use.
    Publish(PublishArgs),
    /// Check a list file or URL: XSD validity and its signatures.
    Verify(VerifyArgs),
    /// Keep a directory of lists current from a Stelselnode, checked: the signed head
    /// against a pinned certificate, deltas or whole documents against its hashes, each
    /// list's signature and XSD; refuses rollback, equivocation, an expired head and
    /// tampering. Exit codes: 0 current, 1 local problem, 2 bad arguments, 3 server
    /// unavailable, 4 refused, 5 equivocation.
    Sync(SyncArgs),
    /// Show what is published and the release catalogue (or, with --clients, who fetched
    /// what).
    Status(StatusArgs),
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
    /// The signing key and its rollover: announce the next key, activate it (both keys sign
    /// during the overlap), retire the old one. Each step is published at once.
    #[command(subcommand)]
    Key(KeyCmd),
}

#[derive(Subcommand, Debug)]
pub enum KeyCmd {
    /// Every key: state, fingerprint, validity and the earliest time of its next step;
    /// warns 60 days before the active certificate expires.
    Status,
    /// Announce the next signing key: a chain link signed by the active key, named by every
    /// head from now on. It can be activated once the announcement has been out for
    /// --announce-for.
    Next {
        /// The next key (PEM: PKCS#8 RSA or EC P-256, or PKCS#1 RSA).
        #[arg(long, value_name = "PEM")]
        key: std::path::PathBuf,
        /// Its certificate (PEM).
        #[arg(long, value_name = "PEM")]
        cert: std::path::PathBuf,
        /// How long the announcement is out before `key activate` is allowed (e.g. 24h15m,
        /// 90s, 2d).
        #[arg(long, value_name = "DURATION", default_value = "24h15m", value_parser = parse_duration)]
        announce_for: u64,
    },
    /// The next key signs from now on; the active key signs beside it until it is retired,
    /// after --retire-after at the earliest.
    Activate {
        /// How long both keys sign (e.g. 7d, 36h, 30s).
        #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = parse_duration)]
        retire_after: u64,
    },
    /// The outgoing key stops signing (refused before its --retire-after has passed).
    Retire,
}

/// A duration in seconds from `90`, `90s`, `15m`, `24h`, `7d` or a sum such as `24h15m`.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "'{}' is not a duration: give numbers with units s, m, h or d (e.g. 24h15m, 90s, 7d)",
            crate::clip::clip(s)
        )
    };
    if s.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    let (mut total, mut digits) = (0u64, String::new());
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() || total > 10 * 365 * 86400 {
        return Err(format!("{}; at most 10 years", bad()));
    }
    Ok(total)
}

impl KeyCmd {
    fn into_op(self) -> Result<crate::operate::key::KeyOp, String> {
        use crate::operate::key::KeyOp;
        // A PEM file of a key or certificate: small, read here so the operation carries it
        // to a running server.
        let read = |flag: &str, p: &std::path::Path| -> Result<String, String> {
            let (f, _) = crate::xml::input::open_file(p, 1 << 20)
                .map_err(|e| format!("key next: {flag} {}: {e}", p.display()))?;
            let mut s = String::new();
            std::io::Read::read_to_string(&mut &f, &mut s)
                .map_err(|e| format!("key next: {flag} {}: {e}", p.display()))?;
            Ok(s)
        };
        Ok(match self {
            KeyCmd::Status => KeyOp::Status,
            KeyCmd::Next {
                key,
                cert,
                announce_for,
            } => KeyOp::Next {
                key_pem: read("--key", &key)?,
                cert_pem: read("--cert", &cert)?,
                announce_for_secs: announce_for,
            },
            KeyCmd::Activate { retire_after } => KeyOp::Activate {
                retire_after_secs: retire_after,
            },
            KeyCmd::Retire => KeyOp::Retire,
        })
    }
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
        /// Largest archive accepted (KiB, MiB, GiB). The archive is read as a stream in
        /// bounded memory, so this bounds the time a verification may take, not its memory.
        #[arg(long, value_name = "SIZE", default_value = "64GiB", value_parser = crate::xml::input::parse_size)]
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
pub struct StatusArgs {
    /// Per client: releases used in the last 24 h and 30 days, the Volgnummer last received
    /// per list; flags clients late (over 900 s) or on an older Volgnummer.
    #[arg(long)]
    pub clients: bool,
    /// With --clients: the same as JSON.
    #[arg(long, requires = "clients")]
    pub json: bool,
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
pub struct ExportStaticArgs {
    /// Directory to write to (created if missing); point nginx at DIR/nginx/*.conf.
    #[arg(value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct PublishArgs {
    /// Why this publication is made (kept in the publication log).
    #[arg(short = 'm', long = "message", value_name = "REASON")]
    pub message: String,
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

/// A command that runs in this process without the registry.
pub enum Local {
    Init(InitArgs),
    Serve(ServeArgs),
    Verify(VerifyArgs),
    Sync(SyncArgs),
    HistoryVerify {
        path: PathBuf,
        cert: Option<PathBuf>,
        trust_embedded_cert: bool,
        max_size: u64,
    },
}

impl From<OfferingArgs> for Offering {
    fn from(a: OfferingArgs) -> Offering {
        Offering {
            interfaceversie: a.interfaceversie,
            gegevensdienst: a.gegevensdienst,
            authorization_endpoint: a.authorization_endpoint,
            token_endpoint: a.token_endpoint,
            systeemrol: a.systeemrol,
            abonneren_duur: a.abonneren_duur,
            subscription_endpoint: a.subscription_endpoint,
        }
    }
}

impl ZorgaanbiederCmd {
    /// The operation this `zorgaanbieder` command asks for.
    fn into_op(self) -> ZorgaanbiederOp {
        match self {
            ZorgaanbiederCmd::Add {
                naam,
                aanbiedertype,
                offering,
            } => ZorgaanbiederOp::Add {
                naam,
                aanbiedertype,
                offering: offering.into(),
            },
            ZorgaanbiederCmd::Update {
                naam,
                aanbiedertype,
                offering,
            } => ZorgaanbiederOp::Update {
                naam,
                aanbiedertype,
                offering: offering.into(),
            },
            ZorgaanbiederCmd::Withdraw {
                naam,
                interfaceversie,
                gegevensdienst,
            } => ZorgaanbiederOp::Withdraw {
                naam,
                interfaceversie,
                gegevensdienst,
            },
            ZorgaanbiederCmd::Remove { naam } => ZorgaanbiederOp::Remove { naam },
            ZorgaanbiederCmd::Show { naam } => ZorgaanbiederOp::Show { naam },
            ZorgaanbiederCmd::List => ZorgaanbiederOp::List,
        }
    }
}

impl OAuthclientCmd {
    /// The operation this `oauthclient` command asks for.
    fn into_op(self) -> OAuthclientOp {
        match self {
            OAuthclientCmd::Add {
                hostname,
                organisatienaam,
                gegevensdienst,
            } => OAuthclientOp::Add {
                hostname,
                organisatienaam,
                gegevensdienst,
            },
            OAuthclientCmd::Update {
                hostname,
                organisatienaam,
                gegevensdienst,
                no_gegevensdiensten,
            } => OAuthclientOp::Update {
                hostname,
                organisatienaam,
                gegevensdienst,
                no_gegevensdiensten,
            },
            OAuthclientCmd::Remove { hostname } => OAuthclientOp::Remove { hostname },
            OAuthclientCmd::Show { hostname } => OAuthclientOp::Show { hostname },
            OAuthclientCmd::List => OAuthclientOp::List,
        }
    }
}

impl WhitelistCmd {
    /// The operation this `whitelist` command asks for.
    fn into_op(self) -> WhitelistOp {
        match self {
            WhitelistCmd::Add { hostnames } => WhitelistOp::Add { hostnames },
            WhitelistCmd::Remove { hostnames } => WhitelistOp::Remove { hostnames },
            WhitelistCmd::Show { hostname } => WhitelistOp::Show { hostname },
            WhitelistCmd::List => WhitelistOp::List,
        }
    }
}

impl GegevensdienstCmd {
    /// The operation this `gegevensdienst` command asks for.
    fn into_op(self) -> GegevensdienstOp {
        match self {
            GegevensdienstCmd::Add { id, weergavenaam } => {
                GegevensdienstOp::Add { id, weergavenaam }
            }
            GegevensdienstCmd::Update { id, weergavenaam } => {
                GegevensdienstOp::Update { id, weergavenaam }
            }
            GegevensdienstCmd::Remove { id } => GegevensdienstOp::Remove { id },
            GegevensdienstCmd::Show { id } => GegevensdienstOp::Show { id },
            GegevensdienstCmd::List => GegevensdienstOp::List,
        }
    }
}

impl ReleaseCmd {
    /// The operation this `release` command asks for.
    fn into_op(self) -> ReleaseOp {
        match self {
            ReleaseCmd::List => ReleaseOp::List,
            ReleaseCmd::Add {
                id,
                interfaceversie,
                zorgaanbiederslijst,
                oauthclientlist,
                whitelist,
                gegevensdienstnamenlijst,
            } => ReleaseOp::Add {
                id,
                interfaceversie,
                zorgaanbiederslijst,
                oauthclientlist,
                whitelist,
                gegevensdienstnamenlijst,
            },
            ReleaseCmd::SetStatus {
                id,
                status,
                sunset,
                deprecated_since,
            } => ReleaseOp::SetStatus {
                id,
                status,
                sunset,
                deprecated_since,
            },
            ReleaseCmd::SetDefault { id } => ReleaseOp::SetDefault { id },
        }
    }
}

impl LivegangCmd {
    /// The operation this `livegang` command asks for.
    fn into_op(self) -> Result<LivegangOp, String> {
        Ok(match self {
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
                    (Some(a), Some(t)) => Some(Endpoints {
                        authorization_endpointuri: a,
                        token_endpointuri: t,
                        systeemrollen: Offering::systeemrollen(&systeemrol)?,
                    }),
                    _ => None,
                };
                LivegangOp::Start(Start {
                    gegevensdienst,
                    zorgaanbieders: zorgaanbieder,
                    oauthclients: oauthclient,
                    until,
                    copy_id,
                    release,
                    endpoints,
                })
            }
            LivegangCmd::List => LivegangOp::List,
            LivegangCmd::Show { id } => LivegangOp::Show { id },
            LivegangCmd::End { id } => LivegangOp::End { id },
            LivegangCmd::Promote { id } => LivegangOp::Promote { id },
        })
    }
}

impl HistoryCmd {
    /// The operation this `history` command asks for.
    fn into_op(self) -> Result<HistoryOp, String> {
        Ok(match self {
            HistoryCmd::List { list } => HistoryOp::List { list },
            HistoryCmd::Show { seq } => HistoryOp::Show { seq },
            HistoryCmd::Diff { list, a, b } => HistoryOp::Diff { list, a, b },
            HistoryCmd::Export { out, from, to } => HistoryOp::Export { out, from, to },
            HistoryCmd::Verify { .. } => return Err("this command runs locally".into()),
        })
    }
}

/// The command line of this process (exits with clap's message on bad arguments).
pub fn parse() -> Cli {
    <Cli as clap::Parser>::parse()
}

impl Command {
    /// The operation this command asks for, or the local command it is.
    pub fn into_operation(self) -> Result<Operation, String> {
        Ok(match self {
            Command::Init(_) | Command::Serve(_) | Command::Verify(_) | Command::Sync(_) => {
                return Err("this command runs locally".into())
            }
            Command::Status(a) if a.clients => {
                Operation::Clients(crate::operate::clients::Clients { json: a.json })
            }
            Command::Status(_) => Operation::Status,
            Command::Dump => Operation::Dump,
            Command::Diff => Operation::Diff,
            Command::Discard => Operation::Discard,
            Command::Publish(a) => Operation::Publish(Publish { message: a.message }),
            Command::Import(a) => Operation::Import(Import {
                files: a.files,
                interfaceversie: a.interfaceversie,
                aanbiedertype: a.aanbiedertype,
                dry_run: a.dry_run,
                max_size: a.max_size,
            }),
            Command::Export(a) => Operation::Export(Export {
                release: a.release,
                out: a.out,
            }),
            Command::ExportStatic(a) => {
                Operation::ExportStatic(crate::operate::export_static::ExportStatic { out: a.out })
            }
            Command::Zorgaanbieder(c) => Operation::Zorgaanbieder(c.into_op()),
            Command::Oauthclient(c) => Operation::Oauthclient(c.into_op()),
            Command::Whitelist(c) => Operation::Whitelist(c.into_op()),
            Command::Gegevensdienst(c) => Operation::Gegevensdienst(c.into_op()),
            Command::Release(c) => Operation::Release(c.into_op()),
            Command::Livegang(c) => Operation::Livegang(c.into_op()?),
            Command::History(c) => Operation::History(c.into_op()?),
            Command::Key(c) => Operation::Key(c.into_op()?),
        })
    }

    /// Split off the commands that run locally.
    pub fn local(self) -> Result<Local, Box<Command>> {
        match self {
            Command::Init(a) => Ok(Local::Init(a)),
            Command::Serve(a) => Ok(Local::Serve(a)),
            Command::Verify(a) => Ok(Local::Verify(a)),
            Command::Sync(a) => Ok(Local::Sync(a)),
            Command::History(HistoryCmd::Verify {
                path,
                cert,
                trust_embedded_cert,
                max_size,
            }) => Ok(Local::HistoryVerify {
                path,
                cert,
                trust_embedded_cert,
                max_size,
            }),
            other => Err(Box::new(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Cli, Local};
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

    /// Every registry command becomes an operation that survives the admin socket's JSON.
    #[test]
    fn commands_become_operations_that_travel_as_json() {
        use crate::operate::Operation;
        use clap::Parser;
        let cases: &[&[&str]] = &[
            &["status"],
            &["diff"],
            &["publish", "-m", "why"],
            &[
                "import",
                "a.xml",
                "b.xml",
                "--dry-run",
                "--max-size",
                "2MiB",
            ],
            &["export", "--release", "1.1.2", "--out", "out"],
            &["whitelist", "add", "a.example.nl", "b.example.nl"],
            &["gegevensdienst", "update", "4", "--weergavenaam", "Lab"],
            &[
                "oauthclient",
                "update",
                "p.example.nl",
                "--no-gegevensdiensten",
            ],
            &[
                "zorgaanbieder",
                "add",
                "abcdefg@medmij",
                "--aanbiedertype",
                "ZA",
                "--interfaceversie",
                "1.1.0",
                "--gegevensdienst",
                "4",
                "--authorization-endpoint",
                "https://a.nl/a",
                "--token-endpoint",
                "https://a.nl/t",
                "--systeemrol",
                "X=https://a.nl/f",
            ],
            &["release", "set-status", "2.0.0", "verplicht"],
            &[
                "livegang",
                "start",
                "--gegevensdienst",
                "4",
                "--zorgaanbieder",
                "labnoord@medmij",
                "--oauthclient",
                "a.example.nl",
                "--until",
                "2099-01-01",
            ],
            &["history", "diff", "--list", "zal", "1", "2"],
        ];
        for argv in cases {
            let cli =
                Cli::try_parse_from(std::iter::once("stelselnode").chain(argv.iter().copied()))
                    .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            let op = match cli.command.local() {
                Ok(_) => panic!("{argv:?} is local"),
                Err(c) => c.into_operation().unwrap(),
            };
            let json = serde_json::to_string(&op).unwrap();
            let back: Operation = serde_json::from_str(&json).unwrap();
            assert_eq!(back, op, "{json}");
        }
        let pub_op = Cli::try_parse_from(["stelselnode", "publish", "-m", "x"]).unwrap();
        assert!(pub_op
            .command
            .local()
            .err()
            .unwrap()
            .into_operation()
            .unwrap()
            .publishes());
        let verify =
            Cli::try_parse_from(["stelselnode", "history", "verify", "a.tar", "--cert", "c"]);
        assert!(matches!(
            verify.unwrap().command.local(),
            Ok(Local::HistoryVerify { .. })
        ));
    }

    #[test]
    fn every_command_and_argument_has_help() {
        let mut missing = Vec::new();
        walk(&Cli::command(), "stelselnode", &mut missing);
        assert!(missing.is_empty(), "no --help text for: {missing:#?}");
    }
}
