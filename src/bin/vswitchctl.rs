//! `vswitchctl`: send one command to a running vswitchd and print its reply.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use vswitch::capture::pcapng;
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
    if let Command::Capture { write, .. } = &args.command {
        return capture(&args, &path, write);
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

/// `vswitchctl capture`: streams the capture into `write` (a file, or `-` for stdout), whole
/// pcapng blocks at a time, until the daemon ends it or Ctrl-C.
fn capture(args: &CtlArgs, path: &std::path::Path, write: &str) -> ExitCode {
    let mut out: Box<dyn Write> = if write == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        match std::fs::File::create(write) {
            Ok(f) => Box::new(std::io::BufWriter::new(f)),
            Err(e) => {
                eprintln!("vswitchctl: cannot write {write}: {e}");
                return ExitCode::from(REFUSED);
            }
        }
    };
    let stop = match vswitch::sys::signal::interrupt_flag() {
        Ok(flag) => flag,
        Err(e) => {
            eprintln!("vswitchctl: cannot handle Ctrl-C: {e}");
            return ExitCode::from(UNREACHABLE);
        }
    };
    let mut partial: Vec<u8> = Vec::new();
    let mut packets = 0u64;
    let result = Client::connect(path, Duration::from_secs(args.timeout)).and_then(|mut client| {
        client.stream(&args.command.request(), stop, |bytes| {
            partial.extend_from_slice(bytes);
            let mut at = 0;
            while let Some(len) = pcapng::whole_block(&partial[at..]) {
                packets += u64::from(partial[at..at + 4] == 6u32.to_le_bytes());
                at += len;
            }
            out.write_all(&partial[..at])?;
            out.flush()?;
            partial.drain(..at);
            Ok(())
        })
    });
    match result {
        Ok(()) => {
            eprintln!("vswitchctl: {packets} packets captured");
            ExitCode::SUCCESS
        }
        Err(e @ ClientError::Refused(_)) => {
            eprintln!("vswitchctl: {e}");
            ExitCode::from(REFUSED)
        }
        Err(e) => {
            eprintln!("vswitchctl: {e}");
            ExitCode::from(UNREACHABLE)
        }
    }
}
