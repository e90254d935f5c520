//! `pilot`: start, inspect, extend and stop pilots. A thin wrapper over [`pilot_core::cli`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = pilot_core::cli::Cli::parse();
    let mut out = std::io::stdout();
    match pilot_core::cli::run(cli, &mut out) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {:#}", anyhow::Error::new(e));
            std::process::ExitCode::FAILURE
        }
    }
}
