//! The `vswitchd` command line (clap). Kept in the library so tests and the man page generator
//! see the same definition the binary parses.

use clap::{ArgAction, Parser};

use std::path::PathBuf;

use smoltcp::wire::IpCidr;

use crate::config::{
    BUSY_POLL_RANGE, Config, ConfigError, MAC_AGEING_RANGE, MAC_MOVE_SECS_RANGE,
    MAC_TABLE_SIZE_RANGE, MacMoveLimit, Overrides, PortSpec, parse_cidr, parse_move_limit,
    parse_own_mac, parse_switch_name,
};
use crate::wire::MacAddr;
use crate::wire::vlan::MAX_VID;

const ABOUT: &str = "A virtual Ethernet switch that runs entirely in userspace";

const LONG_ABOUT: &str = "\
A virtual Ethernet switch that runs entirely in userspace.

vswitchd attaches each --port (a TAP it creates or opens, an existing interface through
AF_PACKET, or a QEMU stream or datagram socket), learns which MAC address lives behind which
port, forwards known unicast to one port and floods broadcast, multicast and unknown unicast to
the others, like the kernel's bridge but in one process you can run, inspect and stop.

It serves a control socket (/run/vswitchd/NAME.ctl) for vswitchctl: the MAC table, ports and
their counters, ports added and removed at runtime. With --config, SIGHUP (or `vswitchctl
reload`) re-reads the file and applies the difference without disturbing unchanged ports.
SIGINT or SIGTERM stop it: it closes its ports, which deletes the TAPs it created (persistent
TAPs it only attached to stay), removes its socket and exits 0.";

const AFTER_HELP: &str = "\
Examples:
  Three TAPs on the host, bridged:
    vswitchd --port tap0 --port tap1 --port tap2

  Hosts in network namespaces (the switch keeps working through the fds it holds):
    vswitchd --port tap1 --port tap2 &
    ip netns add h1 && ip link set tap1 netns h1
    ip -n h1 addr add 10.0.0.1/24 dev tap1 && ip -n h1 link set tap1 up

  From a config file, then inspected and changed at runtime:
    vswitchd --config /etc/vswitchd/lab.toml &
    vswitchctl -n lab fdb show
    vswitchctl -n lab port add tap9

  Without root: create the TAPs for your user once, then attach to them:
    sudo ip tuntap add dev tap0 mode tap user $USER
    vswitchd --port tap0 --ctl-socket $XDG_RUNTIME_DIR/vswitch0.ctl ...

Port specs: [KIND:]NAME[,key=value...]. KIND is `tap` (the default): a TAP the switch creates,
or attaches to if a persistent TAP of that name exists and no other process holds it; `netdev`,
`stream`, `dgram`, `vhost-user`, `vhost-user-client` (docs/qemu.md). Keys (the same in [[port]]
tables and `vswitchctl port set`):
  VLANs      vlan=N | trunk=LIST[,native=N]                       (docs/vlan.md)
  ARP        arp-suppress=on|off, arp-guard=on|off                (docs/arp.md)
  flags      learning, flood, mcast-flood, bcast-flood, isolated, hairpin =on|off
  link-local link-local=none|all|stp,lacp,lldp,...  forward 01:80:c2:00:00:0X groups
  link       link=up|down|rx-down|tx-down  (a TAP's carrier follows)
  impairment tx-delay=MS tx-jitter=MS tx-loss=PCT tx-rate=10mbit ... and rx-*, impair=off
             (tx: towards the port's host; rx: from it; docs/lab.md)
  security   locked=on|off, mab=on|off, max-macs=N, sticky=on|off,
             storm-bcast=PPS, storm-mcast=PPS, storm-unknown=PPS, storm-action=drop|block
             (docs/security.md)
  e.g. --port tap1,vlan=10,link-local=lldp,tx-delay=50,tx-loss=1

Exit status: 0 after SIGINT/SIGTERM, 1 when the switch cannot run (the message names the port
or socket and the fix), 2 for a usage error. Logs go to stderr; RUST_LOG=debug overrides -v/-q.
See docs/config.md, docs/control.md and vswitchctl(8).";

/// `vswitchd`'s arguments as typed.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "vswitchd",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = AFTER_HELP,
)]
pub struct Args {
    /// Attach a port: [KIND:]NAME[,key=value...], e.g. `tap0` or `tap:tap0`. Repeat for more
    /// ports. Added to the config file's ports; a port named in both takes this spec.
    #[arg(short = 'p', long = "port", value_name = "SPEC")]
    pub ports: Vec<PortSpec>,

    /// Read settings and ports from a TOML file (see docs/config.md); flags override it.
    /// SIGHUP or `vswitchctl reload` re-reads it.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The switch's name, used in logs and for its control socket [default: vswitch0].
    #[arg(long, value_name = "NAME", value_parser = parse_switch_name)]
    pub name: Option<String>,

    /// The control socket vswitchctl talks to [default: /run/vswitchd/NAME.ctl].
    #[arg(long, value_name = "PATH")]
    pub ctl_socket: Option<PathBuf>,

    /// Seconds a learned MAC address is kept without traffic from it, 10 to 1000000
    /// [default: 300].
    #[arg(
        long,
        value_name = "SECS",
        value_parser = clap::value_parser!(u32).range(
            i64::from(*MAC_AGEING_RANGE.start())..=i64::from(*MAC_AGEING_RANGE.end())
        ),
    )]
    pub mac_ageing: Option<u32>,

    /// Most MAC addresses learned at once, 1 to 16777216 [default: 8192]; when full, the port
    /// holding the most loses its least recently seen one.
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(
            i64::from(*MAC_TABLE_SIZE_RANGE.start())..=i64::from(*MAC_TABLE_SIZE_RANGE.end())
        ),
    )]
    pub mac_table_size: Option<u32>,

    /// Microseconds to keep polling after the last frame before sleeping, 0 to 1000000
    /// [default: 50]. Frames arriving within it are read without a wake-up; more lowers latency
    /// at sparse traffic at the cost of CPU while traffic flows; 0 never busy-polls. An idle
    /// switch always sleeps.
    #[arg(
        long,
        value_name = "USEC",
        value_parser = clap::value_parser!(u32).range(
            i64::from(*BUSY_POLL_RANGE.start())..=i64::from(*BUSY_POLL_RANGE.end())
        ),
    )]
    pub busy_poll: Option<u32>,

    /// Loop protection: a MAC that moves away from its home port (where it was before it
    /// started moving) more than N times within SECS seconds is pinned there (frames with it
    /// from the others are dropped, `mac_flap`, and "possible loop between X and Y" is logged).
    /// `off` turns it off [default: 10/10].
    #[arg(long, value_name = "N/SECS|off", value_parser = parse_move_limit)]
    pub mac_move_limit: Option<MacMoveLimit>,

    /// Seconds a flapping MAC stays pinned, 1 to 3600 [default: 15].
    #[arg(
        long,
        value_name = "SECS",
        value_parser = clap::value_parser!(u32).range(
            i64::from(*MAC_MOVE_SECS_RANGE.start())..=i64::from(*MAC_MOVE_SECS_RANGE.end())
        ),
    )]
    pub mac_move_hold: Option<u32>,

    /// Seed the random choices of every port's impairment (loss, jitter, ...) that has no
    /// `seed` key of its own, so that a lab loses the same frames on every run [default:
    /// random].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Answer ARP requests for addresses the switch has seen, on the requester's port, instead
    /// of flooding them (ports can override with arp-suppress=on|off). Probes and gratuitous ARP
    /// are always forwarded.
    #[arg(long)]
    pub arp_suppress: bool,

    /// Give the switch an address of its own, as on br0: an internal port answers ARP (or
    /// neighbour discovery) and ping for it. Repeat for IPv4 and IPv6.
    #[arg(long = "ip", value_name = "CIDR", value_parser = parse_cidr)]
    pub ips: Vec<IpCidr>,

    /// The MAC of the switch's own port [default: derived from the switch's name].
    #[arg(long, value_name = "MAC", value_parser = parse_own_mac, requires = "ips")]
    pub ip_mac: Option<MacAddr>,

    /// The VLAN of the switch's own port, 1 to 4094 [default: untagged, VLAN 0].
    #[arg(
        long,
        value_name = "VLAN",
        requires = "ips",
        value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_VID))
    )]
    pub ip_vlan: Option<u16>,

    /// Log more: -v for debug, -vv for trace.
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Log less: -q for warnings and errors only, -qq for errors only.
    #[arg(short, long, action = ArgAction::Count)]
    pub quiet: u8,
}

impl Args {
    /// The settings given as flags, which override the config file.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            name: self.name.clone(),
            ctl_socket: self.ctl_socket.clone(),
            mac_ageing: self.mac_ageing,
            mac_table_size: self.mac_table_size,
            busy_poll: self.busy_poll,
            mac_move_limit: self.mac_move_limit,
            mac_move_hold: self.mac_move_hold,
            seed: self.seed,
            ports: self.ports.clone(),
            arp_suppress: self.arp_suppress.then_some(true),
            ips: self.ips.clone(),
            ip_mac: self.ip_mac,
            ip_vlan: self.ip_vlan,
        }
    }

    /// The validated configuration: the config file (if any) with the flags over it.
    pub fn config(&self) -> Result<Config, ConfigError> {
        Config::load(self.config.as_deref(), &self.overrides())
    }

    /// The log level -v/-q select around `info`.
    pub fn log_level(&self) -> log::LevelFilter {
        use log::LevelFilter::*;
        match (self.verbose, self.quiet) {
            (0, 0) => Info,
            (1, _) => Debug,
            (v, _) if v >= 2 => Trace,
            (_, 1) => Warn,
            (_, 2) => Error,
            _ => Off,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("vswitchd").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults_match_the_contract() {
        let a = parse(&["--port", "tap0"]).unwrap();
        assert_eq!(a.log_level(), log::LevelFilter::Info);
        let c = a.config().unwrap();
        assert_eq!(c.name, "vswitch0");
        assert_eq!(c.ctl_socket, PathBuf::from("/run/vswitchd/vswitch0.ctl"));
        assert_eq!(c.bridge.mac_ageing, 300);
        assert_eq!(c.bridge.mac_table_size, 8192);
        assert_eq!(c.ports.len(), 1);
        let c = parse(&["-p", "t", "--name", "lab"])
            .unwrap()
            .config()
            .unwrap();
        assert_eq!(c.ctl_socket, PathBuf::from("/run/vswitchd/lab.ctl"));
    }

    #[test]
    fn ranges_are_enforced() {
        assert!(parse(&["-p", "t", "--mac-ageing", "9"]).is_err());
        assert!(parse(&["-p", "t", "--mac-ageing", "10"]).is_ok());
        assert!(parse(&["-p", "t", "--mac-ageing", "1000000"]).is_ok());
        assert!(parse(&["-p", "t", "--mac-ageing", "1000001"]).is_err());
        assert!(parse(&["-p", "t", "--mac-table-size", "0"]).is_err());
        assert!(parse(&["-p", "t", "--mac-table-size", "16777217"]).is_err());
        assert!(parse(&["-p", "t", "--busy-poll", "0"]).is_ok());
        assert!(parse(&["-p", "t", "--busy-poll", "1000001"]).is_err());
    }

    #[test]
    fn usage_errors_name_the_value() {
        let e = parse(&["--port", "bogus:x"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ValueValidation);
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = parse(&[]).unwrap().config().unwrap_err();
        assert!(e.to_string().contains("--port"), "{e}");
        let e = parse(&["-p", "t", "--name", "a/b"]).unwrap_err();
        assert!(e.to_string().contains("a/b"), "{e}");
    }

    #[test]
    fn verbosity_maps_to_levels() {
        let lvl = |args: &[&str]| {
            let mut all = vec!["-p", "t"];
            all.extend_from_slice(args);
            parse(&all).unwrap().log_level()
        };
        assert_eq!(lvl(&["-v"]), log::LevelFilter::Debug);
        assert_eq!(lvl(&["-vv"]), log::LevelFilter::Trace);
        assert_eq!(lvl(&["-q"]), log::LevelFilter::Warn);
        assert_eq!(lvl(&["-qq"]), log::LevelFilter::Error);
        assert_eq!(lvl(&["-qqq"]), log::LevelFilter::Off);
        assert!(parse(&["-p", "t", "-v", "-q"]).is_err());
    }
}
