// `unsafe` only where ARCHITECTURE.md allows it.
#![deny(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = stelselnode::cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal: a journal or log file gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // SAFETY: nothing has called into libxml2 yet (parsing the arguments and logging do
    // not) and no other thread exists.
    #[allow(unsafe_code)]
    unsafe {
        stelselnode::xml::libxml::allocate_with_mimalloc()
    };
    stelselnode::app::main(cli)
}
