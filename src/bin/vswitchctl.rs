//! `vswitchctl`: send one command to a running vswitchd and print its reply.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use vswitch::control::client::{Client, ClientError};
use vswitch::ctl::{Command, CtlArgs};

/// The daemon refused the command.
const REFUSED: u8 = 1;
/// The daemon could not be reached, or its reply made no sense.
const UNREACHABLE: u8 = 3;

fn main() -> ExitCode {
    let args = CtlArgs::parse();
    let path = args.socket_path();
    if args.command == Command::Version && !args.json {
        // Our own version, whether or not the daemon answers.
        println!("vswitchctl {}", env!("CARGO_PKG_VERSION"));
    }
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
    let value = args.command.arrange(value);
    let partial = args.command.partly_failed(&value);
    if args.json {
        println!("{value}");
    } else {
        match args.command.render(value) {
            Ok(text) => print!("{text}"),
            Err(e) => {
                // The daemon answered, but not in a shape this vswitchctl knows (another
                // version): like a reply that made no sense.
                eprintln!("vswitchctl: {e}");
                return ExitCode::from(UNREACHABLE);
            }
        }
    }
    if partial {
        ExitCode::from(REFUSED)
    } else {
        ExitCode::SUCCESS
    }
}
