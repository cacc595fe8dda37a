//! `vswitchctl`: send one command to a running vswitchd and print its reply.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use vswitch::control::client::{Client, ClientError};
use vswitch::ctl::CtlArgs;

/// The daemon refused the command.
const REFUSED: u8 = 1;
/// The daemon could not be reached.
const UNREACHABLE: u8 = 3;

fn main() -> ExitCode {
    let args = CtlArgs::parse();
    let path = args.socket_path();
    let result = Client::connect(&path, Duration::from_secs(args.timeout))
        .and_then(|mut client| client.call(&args.command.request()));
    let value = match result {
        Ok(value) => value,
        Err(e @ ClientError::Refused(_)) => {
            eprintln!("vswitchctl: {e}");
            return ExitCode::from(REFUSED);
        }
        Err(e) => {
            eprintln!("vswitchctl: {e}");
            return ExitCode::from(UNREACHABLE);
        }
    };
    if args.json {
        println!("{value}");
        return ExitCode::SUCCESS;
    }
    match args.command.render(value) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vswitchctl: {e}");
            ExitCode::from(REFUSED)
        }
    }
}
