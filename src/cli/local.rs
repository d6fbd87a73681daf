//! The arguments of the commands that run in this process without the registry's
//! server: `init`, `serve`, `verify`, `sync`.

use clap::Args;
use std::path::PathBuf;

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
    /// Initialise the data directory with the demo registry first, if it is empty; without
    /// --tls-cert, serve https with a generated development CA (DATA/dev-tls-ca.pem).
    #[arg(long)]
    pub demo: bool,
    /// PEM certificate chain of the listener (https). Re-read on SIGHUP.
    #[arg(
        long,
        value_name = "PEM",
        env = "STELSELNODE_TLS_CERT",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert. Re-read on SIGHUP.
    #[arg(
        long,
        value_name = "PEM",
        env = "STELSELNODE_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) whose client certificates are accepted, e.g. the PKIoverheid
    /// private-services roots. Re-read on SIGHUP.
    #[arg(
        long,
        value_name = "PEM",
        env = "STELSELNODE_CLIENT_CA",
        requires = "tls_cert"
    )]
    pub client_ca: Option<PathBuf>,
    /// Client certificates for every path: required, optional or off (default: optional
    /// with --client-ca, else off).
    #[arg(long, value_name = "MODE", requires = "client_ca")]
    pub client_auth: Option<crate::serve::tls::ClientAuth>,
    /// Client certificates for one path prefix: PATH=MODE (longest prefix wins), e.g.
    /// /MedMij_OAuthclientlist.xml=required. Repeat for several.
    #[arg(long, value_name = "PATH=MODE", requires = "client_ca", value_parser = crate::serve::tls::ClientPolicy::parse_path)]
    pub client_auth_path: Vec<(String, crate::serve::tls::ClientAuth)>,
    /// Serve plain HTTP: only behind a proxy that terminates TLS, or to try things out.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub insecure_http: bool,
    /// Connections open at once; more are answered 503 with Retry-After and closed.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Connections open at once from one client address.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_connections_per_client: usize,
    /// Seconds for a request's headers and for an idle keep-alive connection.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub idle_timeout: u64,
    /// Seconds a response may wait for the client to read before the connection is closed
    /// (between two writes, as nginx's send_timeout): clients that stop reading give
    /// their connection back.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub send_timeout: u64,
    /// Seconds in-flight responses get after SIGTERM before the process exits.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub shutdown_grace: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics (a loopback address; off by default).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Seconds a signed head (/stelselnode/head.xml) is valid: consumers refuse an older
    /// one as a frozen copy. Keep it well above the 900 s fetch interval.
    #[arg(long, value_name = "SECONDS", default_value_t = 7200, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub head_lifetime: u64,
    /// Seconds between signing the heads again when nothing is published.
    #[arg(long, value_name = "SECONDS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub head_resign: u64,
    /// Keep a static export (as `export-static DIR`) current after every publication, for
    /// edges that rsync or mount it.
    #[arg(long, value_name = "DIR")]
    pub export_static: Option<PathBuf>,
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

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["once", "interval"])))]
pub struct SyncArgs {
    /// The Stelselnode's base URL, e.g. https://stelselnode.example.nl/
    #[arg(value_name = "BASE_URL")]
    pub base_url: String,
    /// Directory to keep the lists in, under their official file names (with .sig).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The operator's signing certificate (PEM), pinned: heads and lists signed by any
    /// other key are refused. Get it out of band and check its fingerprint.
    #[arg(long, value_name = "PEM")]
    pub cert: PathBuf,
    /// Follow the newest release of this major version.
    #[arg(long, value_name = "N", conflicts_with = "release")]
    pub api: Option<String>,
    /// Follow this release (default: the Stelselnode's default release).
    #[arg(long, value_name = "R")]
    pub release: Option<String>,
    /// CA certificates (PEM) to trust for an https:// BASE_URL (default: the system's).
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) to present, e.g. a PKIoverheid services certificate.
    #[arg(long, value_name = "PEM", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "PEM", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Sync once and exit with a code that says how it went.
    #[arg(long)]
    pub once: bool,
    /// Keep syncing, every SECONDS (the MedMij fetch interval is 900).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub interval: Option<u64>,
    /// With --interval: serve Prometheus metrics at http://ADDR/metrics (loopback only).
    #[arg(long, value_name = "ADDR", requires = "interval")]
    pub metrics_listen: Option<String>,
    /// Largest list document accepted (KiB, MiB, GiB).
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = crate::xml::input::parse_size)]
    pub max_size: u64,
    /// Deadline in seconds for each download.
    #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
}
