//! `vswitchctl`: send one command to a running vswitchd and print its reply.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use vswitch::capture::pcapng;
use vswitch::control::PortStatsRow;
use vswitch::control::client::{Client, ClientError};
use vswitch::ctl::{Command, CtlArgs, PortCommand, port_rates, rate_table};
use vswitch::monitor::Event;

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
    if let Command::Monitor { timestamp, .. } = &args.command {
        return monitor(&args, &path, *timestamp);
    }
    if let Command::Port(PortCommand::Stats {
        rate: Some(secs), ..
    }) = &args.command
    {
        return rates(&args, &path, *secs);
    }
    let result = Client::connect(&path, Duration::from_secs(args.timeout))
        .and_then(|mut client| client.call(&args.command.request()));
    let value = match result {
        Ok(value) => value,
        Err(e) => return failed(&e),
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
        Err(e) => failed(&e),
    }
}

/// `vswitchctl monitor`: prints each event as it arrives (as a line of text, or the daemon's
/// JSON line with --json) until the daemon goes or Ctrl-C.
fn monitor(args: &CtlArgs, path: &std::path::Path, timestamp: bool) -> ExitCode {
    let stop = match vswitch::sys::signal::interrupt_flag() {
        Ok(flag) => flag,
        Err(e) => {
            eprintln!("vswitchctl: cannot handle Ctrl-C: {e}");
            return ExitCode::from(UNREACHABLE);
        }
    };
    let mut out = std::io::stdout().lock();
    let mut partial: Vec<u8> = Vec::new();
    let mut reader_gone = false;
    let result = Client::connect(path, Duration::from_secs(args.timeout)).and_then(|mut client| {
        client.stream(&args.command.request(), stop, |bytes| {
            partial.extend_from_slice(bytes);
            let printed = print_events(&mut out, &mut partial, args.json, timestamp);
            reader_gone = printed
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe);
            printed
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Its reader went (`| head -3`): done.
        Err(_) if reader_gone => ExitCode::SUCCESS,
        Err(e) => failed(&e),
    }
}

/// Prints the whole event lines in `partial` (and takes them out of it): as text, or as the
/// JSON lines they are.
fn print_events(
    out: &mut impl Write,
    partial: &mut Vec<u8>,
    json: bool,
    timestamp: bool,
) -> std::io::Result<()> {
    let mut at = 0;
    while let Some(end) = partial[at..].iter().position(|&b| b == b'\n') {
        let line = &partial[at..at + end];
        at += end + 1;
        if json {
            out.write_all(line)?;
            out.write_all(b"\n")?;
            continue;
        }
        match serde_json::from_slice::<Event>(line) {
            Ok(event) if timestamp => writeln!(out, "{} {}", event.time_of_day(), event.what)?,
            Ok(event) => writeln!(out, "{}", event.what)?,
            // An event this vswitchctl does not know (a newer daemon): as it came.
            Err(_) => writeln!(out, "{}", String::from_utf8_lossy(line))?,
        }
    }
    partial.drain(..at);
    // Each event as it happens, also into a pipe.
    out.flush()
}

/// `vswitchctl port stats --rate SECS`: the counters twice, SECS apart, as rates.
fn rates(args: &CtlArgs, path: &std::path::Path, secs: u64) -> ExitCode {
    let sample = || -> Result<(std::time::Instant, Vec<PortStatsRow>), ClientError> {
        let value = Client::connect(path, Duration::from_secs(args.timeout))?
            .call(&args.command.request())?;
        let rows = serde_json::from_value(value).map_err(|e| ClientError::Broken {
            path: path.to_owned(),
            reason: format!("unexpected reply: {e}"),
        })?;
        Ok((std::time::Instant::now(), rows))
    };
    let result = sample().and_then(|first| {
        std::thread::sleep(Duration::from_secs(secs));
        Ok((first, sample()?))
    });
    match result {
        Ok(((t0, before), (t1, after))) => {
            let rates = port_rates(&before, &after, (t1 - t0).as_secs_f64());
            if args.json {
                println!("{}", serde_json::to_string(&rates).unwrap_or_default());
            } else {
                print!("{}", rate_table(&rates));
            }
            ExitCode::SUCCESS
        }
        Err(e) => failed(&e),
    }
}

/// Says why a call failed; the exit status tells a refusal from an unreachable daemon.
fn failed(e: &ClientError) -> ExitCode {
    eprintln!("vswitchctl: {e}");
    match e {
        ClientError::Refused(_) => ExitCode::from(REFUSED),
        _ => ExitCode::from(UNREACHABLE),
    }
}
