use super::*;
use crate::bridge::vlan::VlanMode;
use crate::config::spec::tests::{tap, trunk, with_vlan};

pub(in crate::config) const FULL: &str = r#"
# A lab switch.
name = "lab"
ctl-socket = "/tmp/lab.ctl"
mac-ageing = 60
mac-table-size = 1000

[[port]]
name = "tap0"

[[port]]
name = "tap1"
kind = "tap"
"#;

fn parse(text: &str) -> Result<FileConfig, ConfigError> {
    FileConfig::parse(Path::new("sw.toml"), text)
}

fn file_error(text: &str) -> (usize, String) {
    match parse(text) {
        Err(ConfigError::File { line, message, .. }) => (line, message),
        other => panic!("expected a file error, got {other:?}"),
    }
}

#[test]
fn arp_and_own_address_in_the_file() {
    let f = parse(
        "arp-suppress = true\nip = [\"10.0.0.254/24\", \"fd00::fe/64\"]\nip-vlan = 10\n\
         ip-mac = \"02:00:00:00:00:fe\"\n\n[[port]]\nname = \"a\"\narp-guard = true\n\n\
         [[arp]]\nip = \"10.0.0.2\"\nmac = \"02:00:00:00:00:02\"\nport = \"a\"\n",
    )
    .unwrap();
    assert_eq!(f.arp_suppress, Some(true));
    assert_eq!(f.ips.len(), 2);
    assert_eq!(f.ip_vlan, Some(10));
    assert_eq!(f.ip_mac, Some("02:00:00:00:00:fe".parse().unwrap()));
    assert!(f.ports[0].settings.port.arp_guard);
    assert_eq!(f.arp_bindings.len(), 1);
    assert_eq!(f.arp_bindings[0].ip, Ipv4Addr::new(10, 0, 0, 2));
    for (bad, needle) in [
        ("ip = \"10.0.0.1\"\n", "prefix length"),
        ("ip-mac = \"ff:ff:ff:ff:ff:ff\"\n", "not a unicast MAC"),
        ("ip-vlan = 5000\n", "ip-vlan"),
        (
            "[[arp]]\nip = \"10.0.0.300\"\nmac = \"02:00:00:00:00:02\"\nport = \"a\"\n",
            "IPv4",
        ),
        (
            "[[arp]]\nip = \"10.0.0.3\"\nmac = \"01:00:00:00:00:02\"\nport = \"a\"\n",
            "unicast",
        ),
        (
            "[[arp]]\nip = \"10.0.0.3\"\nmac = \"02:00:00:00:00:02\"\n",
            "port",
        ),
    ] {
        let (_, msg) = file_error(bad);
        assert!(msg.contains(needle), "{bad:?}: {msg}");
    }
}

#[test]
fn socket_ports_in_the_file() {
    let f = parse(
        "[[port]]\nkind = \"stream\"\npath = \"/tmp/vm1.sock\"\n\n[[port]]\nkind = \"dgram\"\n\
         path = \"/tmp/sw.sock\"\npeer = \"/tmp/vm2.sock\"\nname = \"vm2\"\n\n\
         [[port]]\nkind = \"netdev\"\nname = \"qtap0\"\n\n\
         [[port]]\nkind = \"vhost-user\"\npath = \"/tmp/vm3.sock\"\n",
    )
    .unwrap();
    let names: Vec<&str> = f.ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["vm1.sock", "vm2", "qtap0", "vm3.sock"]);
    assert_eq!(f.ports[3].target, Target::VhostUser("/tmp/vm3.sock".into()));
    let (_, msg) = file_error("[[port]]\nname = \"t\"\npath = \"/tmp/x\"\n");
    assert!(msg.contains("stream, dgram and vhost-user"), "{msg}");
    let (_, msg) = file_error("[[port]]\nkind = \"stream\"\n");
    assert!(msg.contains("needs name"), "{msg}");
}

#[test]
fn a_full_file_parses() {
    let f = parse(FULL).unwrap();
    assert_eq!(f.name.as_deref(), Some("lab"));
    assert_eq!(f.ctl_socket, Some(PathBuf::from("/tmp/lab.ctl")));
    assert_eq!((f.mac_ageing, f.mac_table_size), (Some(60), Some(1000)));
    assert_eq!(f.ports, vec![tap("tap0"), tap("tap1")]);
    let empty = parse("").unwrap();
    assert!(empty.ports.is_empty() && empty.name.is_none());
}

#[test]
fn file_errors_name_the_key_and_the_line() {
    let (line, msg) = file_error("name = \"a\"\nmac-ageign = 30\n");
    assert_eq!(line, 2);
    assert!(msg.contains("mac-ageign"), "{msg}");

    let (line, msg) = file_error("\n\n[[port]]\nname = \"tap0\"\ncolour = \"red\"\n");
    assert_eq!(line, 5);
    assert!(msg.contains("colour"), "{msg}");

    let (line, msg) = file_error("mac-ageing = 5\n");
    assert_eq!(line, 1);
    assert!(
        msg.contains("mac-ageing = 5 is out of range (10 to 1000000)"),
        "{msg}"
    );

    let (line, msg) = file_error("busy-poll = 2000000\n");
    assert!(
        line == 1 && msg.contains("busy-poll = 2000000 is out of range"),
        "{msg}"
    );

    let (line, msg) = file_error("mac-table-size = 0\n");
    assert!(line == 1 && msg.contains("mac-table-size"), "{msg}");

    let (line, msg) = file_error("[[port]]\nname = \"tap0\"\n[[port]]\nname = \"x/y\"\n");
    assert_eq!(line, 3);
    assert!(msg.contains("x/y"), "{msg}");

    let (line, msg) = file_error("[[port]]\nname = \"t\"\nkind = \"vde\"\n");
    assert!(line == 1 && msg.contains("\"vde\""), "{line} {msg}");

    let (line, msg) = file_error("[[port]]\nname = \"t\"\n\n[[port]]\nname = \"t\"\n");
    assert!(line == 4 && msg.contains("more than once"), "{line} {msg}");

    let (line, msg) = file_error("name = \"bad name\"\n");
    assert!(line == 1 && msg.contains("bad name"), "{msg}");

    let (line, msg) = file_error("mac-ageing = \"soon\"\n");
    assert!(line == 1 && msg.contains("expected u32"), "{msg}");

    let (line, _) = file_error("name = \"unterminated\n");
    assert_eq!(line, 1);
}

#[test]
fn vlan_keys_in_the_file() {
    let f = parse(
        "[[port]]\nname = \"a\"\nvlan = 10\n\n[[port]]\nname = \"b\"\ntrunk = \"10,20\"\nnative = 5\n\n\
         [[port]]\nname = \"c\"\ntrunk = [30, 31]\n",
    )
    .unwrap();
    assert_eq!(
        f.ports,
        vec![
            with_vlan("a", VlanMode::Access(10)),
            with_vlan("b", trunk("10,20", Some(5))),
            with_vlan("c", trunk("30-31", None)),
        ]
    );
    let (line, msg) = file_error("[[port]]\nname = \"a\"\n\n[[port]]\nname = \"b\"\nvlan = 0\n");
    assert!(
        line == 6 && msg.contains("vlan=0"),
        "the key's line: {line} {msg}"
    );
    let (_, msg) = file_error("[[port]]\nname = \"a\"\nvlan = 10\ntrunk = \"20\"\n");
    assert!(msg.contains("vlan="), "{msg}");
}

#[test]
fn relative_socket_paths_are_relative_to_the_file() {
    let f = FileConfig::parse(
        Path::new("/etc/vswitchd/lab.toml"),
        "ctl-socket = \"lab.ctl\"\n\
         [[port]]\nkind = \"stream\"\npath = \"vm/1.sock\"\n\
         [[port]]\nkind = \"dgram\"\npath = \"sw.sock\"\npeer = \"vm2.sock\"\n\
         [[port]]\nkind = \"dgram\"\npath = \"/run/abs.sock\"\n",
    )
    .unwrap();
    assert_eq!(f.ctl_socket, Some(PathBuf::from("/etc/vswitchd/lab.ctl")));
    let targets: Vec<&Target> = f.ports.iter().map(|p| &p.target).collect();
    assert_eq!(
        targets,
        [
            &Target::Stream("/etc/vswitchd/vm/1.sock".into()),
            &Target::Dgram {
                path: "/etc/vswitchd/sw.sock".into(),
                peer: Some("/etc/vswitchd/vm2.sock".into())
            },
            &Target::Dgram {
                path: "/run/abs.sock".into(),
                peer: None
            },
        ]
    );
}

#[test]
fn the_documented_example_file_is_valid() {
    let f = parse(include_str!("../../../docs/vswitchd.toml")).unwrap();
    assert_eq!(f.name.as_deref(), Some("lab"));
    assert_eq!(f.ports, vec![tap("lab-tap1"), tap("lab-tap2")]);
}

#[test]
fn static_macs_and_mac_move_damping_in_the_file() {
    let f = parse(
        "mac-move-limit = \"5/2\"\nmac-move-hold = 30\n\n[[port]]\nname = \"tap0\"\nsticky = true\n\n\
         [[fdb]]\nport = \"tap0\"\nmac = \"02:00:00:00:00:01\"\nvlan = 10\n",
    )
    .unwrap();
    assert_eq!(
        f.mac_move_limit,
        Some(crate::config::MacMoveLimit::Limit {
            moves: 5,
            window: 2
        })
    );
    assert_eq!(f.mac_move_hold, Some(30));
    assert!(f.ports[0].settings.port.security.sticky);
    assert_eq!(f.static_macs.len(), 1);
    assert_eq!(f.static_macs[0].vlan, 10);
    let (line, msg) = file_error("mac-move-limit = \"lots\"\n");
    assert!(line == 1 && msg.contains("N/SECS"), "{line} {msg}");
    let (line, msg) = file_error("[[fdb]]\nport = \"tap0\"\nmac = \"ff:ff:ff:ff:ff:ff\"\n");
    assert!(
        line == 1 && msg.contains("not a unicast MAC"),
        "{line} {msg}"
    );
    assert!(
        parse("mac-move-limit = \"off\"\n").unwrap().mac_move_limit
            == Some(crate::config::MacMoveLimit::Off)
    );
}

#[test]
fn mirrors_in_the_file() {
    let f = parse(
        "[[port]]\nname = \"a\"\n[[port]]\nname = \"b\"\n[[port]]\nname = \"c\"\n\n\
         [[mirror]]\nname = \"m1\"\nfrom = [\"a\", \"b\"]\nto = \"c\"\ndirection = \"rx\"\n",
    )
    .unwrap();
    assert_eq!(f.mirrors.len(), 1);
    assert_eq!(f.mirrors[0].from, ["a", "b"]);
    assert_eq!(f.mirrors[0].direction, "rx");
    let (line, msg) = file_error("\n[[mirror]]\nname = \"m\"\nfrom = \"a\"\nto = \"a\"\n");
    assert!(
        line == 2 && msg.contains("both a source and the output"),
        "{line} {msg}"
    );
    let (_, msg) =
        file_error("[[mirror]]\nname = \"m\"\nfrom = \"a\"\nto = \"b\"\ndirection = \"up\"\n");
    assert!(msg.contains("expected rx, tx or both"), "{msg}");
}
