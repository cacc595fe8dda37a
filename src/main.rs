//! `vswitchd`: parse the command line, open the ports, run the loop until a signal.

use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use log::info;

use vswitch::cli::Args;
use vswitch::config::Config;
use vswitch::port::TapPort;
use vswitch::reactor::Reactor;

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match args.config() {
        Ok(config) => config,
        Err(e) => Args::command()
            .error(clap::error::ErrorKind::ValueValidation, e)
            .exit(),
    };
    init_logging(args.log_level());
    match run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vswitchd: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: log::LevelFilter) {
    let mut builder = if std::env::var_os("RUST_LOG").is_some() {
        env_logger::Builder::from_default_env()
    } else {
        let mut b = env_logger::Builder::new();
        b.filter_level(level);
        b
    };
    builder.format_target(false).init();
}

fn run(config: &Config) -> anyhow::Result<()> {
    let mut reactor = Reactor::new(config.bridge).context("cannot create the event loop")?;
    // Installed before any port opens, so a signal during startup still ends in a clean exit.
    reactor
        .handle_signals()
        .context("cannot install the SIGINT/SIGTERM handlers")?;
    for spec in &config.ports {
        let port = TapPort::open(&spec.name)?;
        reactor
            .add_port(Box::new(port))
            .with_context(|| format!("cannot watch port {}", spec.name))?;
    }
    info!(
        "{}: switching between {} ports (MAC table {} entries, ageing {} s)",
        config.name,
        config.ports.len(),
        config.bridge.mac_table_size,
        config.bridge.mac_ageing
    );
    reactor.run().context("event loop failed")?;
    drop(reactor);
    info!("{}: stopped", config.name);
    Ok(())
}
