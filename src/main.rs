//! `vswitchd`: parse the command line, open the ports and the control socket, run the loop
//! until a signal.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use log::{info, warn};

use vswitch::cli::Args;
use vswitch::config::Config;
use vswitch::control::server::ControlServer;
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
    match run(&args, config) {
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

fn run(args: &Args, config: Config) -> anyhow::Result<()> {
    let mut reactor =
        Reactor::new(&config.name, config.bridge).context("cannot create the event loop")?;
    let switch = reactor.switch_mut();
    switch.set_busy_poll(Duration::from_micros(u64::from(config.busy_poll)));
    switch.set_seed(config.seed);
    // Installed before any port opens, so a signal during startup still ends in a clean exit.
    reactor
        .handle_signals()
        .context("cannot install the signal handlers")?;
    // The socket comes first: a second daemon with the same name fails before touching a port.
    let control = ControlServer::bind(&config.ctl_socket)?;
    reactor
        .serve_control(control)
        .context("cannot watch the control socket")?;
    let switch = reactor.switch_mut();
    for spec in &config.ports {
        switch.attach(spec).map_err(anyhow::Error::msg)?;
    }
    if let Some(own) = &config.own {
        switch
            .attach_own_address(own)
            .context("cannot attach the switch's own port")?;
    }
    for binding in &config.arp_bindings {
        switch
            .add_arp_binding(binding)
            .map_err(anyhow::Error::msg)?;
    }
    for entry in &config.static_macs {
        switch.add_static_mac(entry).map_err(anyhow::Error::msg)?;
    }
    for mirror in &config.mirrors {
        switch.add_mirror(mirror).map_err(anyhow::Error::msg)?;
    }
    if let Some(path) = &args.config {
        let (path, args) = (path.clone(), args.clone());
        let load = Box::new(move || args.config().map_err(|e| e.to_string()));
        switch.set_config_source(&path, load, config.clone());
    }
    if config.ports.is_empty() {
        warn!("no ports yet; add them with `vswitchctl port add SPEC`");
    }
    info!(
        "{}: switching between {} ports (MAC table {} entries, ageing {} s), control socket {}",
        config.name,
        config.ports.len(),
        config.bridge.mac_table_size,
        config.bridge.mac_ageing,
        config.ctl_socket.display()
    );
    reactor.run().context("event loop failed")?;
    drop(reactor);
    info!("{}: stopped", config.name);
    Ok(())
}
