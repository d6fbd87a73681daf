use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = stelselnode::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // Before anything can call into libxml2 (parsing the arguments and logging do not).
    stelselnode::xml::libxml::allocate_with_mimalloc();
    stelselnode::app::main(cli)
}
