//! The `picket` binary.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let cli = agent::cli::Cli::parse();
    agent::logging::init(cli.verbosity);
    let result = match cli.command {
        Some(agent::cli::Command::Bench(args)) => agent::bench::run(&args),
        #[cfg(feature = "analyze")]
        Some(agent::cli::Command::Analyze(args)) => agent::analyze_cmd::run(&args),
        Some(agent::cli::Command::Config(args)) => args.run(),
        None => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(agent::live::run(cli.run))),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
