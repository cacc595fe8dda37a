use super::*;

fn spec(s: &str) -> Result<PortSpec, SpecError> {
    s.parse()
}

fn tap(name: &str) -> PortSpec {
    PortSpec {
        name: name.to_owned(),
        target: Target::Tap(IfName::new(name).unwrap()),
        vlan: VlanMode::All,
        arp_suppress: None,
        arp_guard: false,
    }
}

fn with_vlan(name: &str, vlan: VlanMode) -> PortSpec {
    PortSpec { vlan, ..tap(name) }
}

fn trunk(list: &str, native: Option<u16>) -> VlanMode {
    VlanMode::Trunk {
        vlans: Box::new(list.parse().unwrap()),
        native,
    }
}

#[test]
fn bare_name_and_tap_prefix_are_taps() {
    assert_eq!(spec("tap0"), Ok(tap("tap0")));
    assert_eq!(spec("tap:tap0"), Ok(tap("tap0")));
    assert_eq!(tap("tap0").to_string(), "tap:tap0");
}

#[test]
fn spec_rejections_name_the_problem() {
    assert_eq!(spec(""), Err(SpecError::Empty));
    let e = spec("vxlan:v0").unwrap_err().to_string();
    assert!(
        e.contains("\"vxlan\"") && e.contains("known kinds: tap"),
        "{e}"
    );
    // The switch's own port has a kind, but no spec can name it.
    assert_eq!(
        spec("internal:x").unwrap_err().to_string(),
        "unknown port kind \"internal\" (known kinds: tap, netdev, stream, dgram)"
    );
    let e = spec("tap:").unwrap_err().to_string();
    assert!(e.contains("empty"), "{e}");
    let e = spec("averyveryverylongname").unwrap_err().to_string();
    assert!(e.contains("longer than 15"), "{e}");
    let e = spec("tap0,colour=red").unwrap_err().to_string();
    assert!(
        e.contains("\"colour\"") && e.contains("vlan, trunk, native"),
        "{e}"
    );
    let e = spec("tap0,junk").unwrap_err().to_string();
    assert!(e.contains("\"junk\"") && e.contains("key=value"), "{e}");
    let e = spec("ta/p").unwrap_err().to_string();
    assert!(e.contains("'/'"), "{e}");
}

#[test]
fn vlan_keys_make_access_and_trunk_ports() {
    assert_eq!(
        spec("tap0,vlan=10"),
        Ok(with_vlan("tap0", VlanMode::Access(10)))
    );
    assert_eq!(
        spec("tap0,trunk=10,20,30-40"),
        Ok(with_vlan("tap0", trunk("10,20,30-40", None)))
    );
    assert_eq!(
        spec("tap:tap0,trunk=10,20,native=5"),
        Ok(with_vlan("tap0", trunk("10,20", Some(5))))
    );
    assert_eq!(
        spec("tap0,native=5,trunk=7").unwrap().to_string(),
        "tap:tap0,trunk=7,native=5"
    );
    // Printing and parsing round-trip.
    let s = spec("tap0,trunk=1-3,9,native=4").unwrap();
    assert_eq!(spec(&s.to_string()), Ok(s));
}

#[test]
fn arp_keys_set_suppression_and_guard() {
    let s = spec("tap0,arp-suppress=off,arp-guard=on").unwrap();
    assert_eq!((s.arp_suppress, s.arp_guard), (Some(false), true));
    assert_eq!(s.to_string(), "tap:tap0,arp-suppress=off,arp-guard=on");
    let s = spec("tap0,vlan=5,arp-suppress=yes").unwrap();
    assert_eq!((s.arp_suppress, s.arp_guard), (Some(true), false));
    assert_eq!(spec(&s.to_string()), Ok(s));
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
    assert!(f.ports[0].arp_guard);
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
fn a_static_binding_must_name_a_configured_port() {
    let dir = std::env::temp_dir().join(format!("vswitch-config-arp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sw.toml");
    std::fs::write(
        &path,
        "[[port]]\nname = \"a\"\n[[arp]]\nip = \"10.0.0.2\"\nmac = \"02:00:00:00:00:02\"\nport = \"b\"\n",
    )
    .unwrap();
    let e = Config::load(Some(&path), &Overrides::default()).unwrap_err();
    assert!(e.to_string().contains("port b"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn own_address_defaults_and_overrides() {
    let o = Overrides {
        ports: vec![tap("a")],
        ips: vec!["10.0.0.254/24".parse().unwrap()],
        ..Overrides::default()
    };
    let c = Config::load(None, &o).unwrap();
    let own = c.own.unwrap();
    assert_eq!(own.vlan, 0);
    assert_eq!(own.mac, default_ip_mac("vswitch0"));
    assert!(own.mac.is_locally_administered() && own.mac.is_learnable_source());
    assert_ne!(default_ip_mac("a"), default_ip_mac("b"));
    assert!(
        Config::load(None, &overrides(&["a"]))
            .unwrap()
            .own
            .is_none()
    );
}

#[test]
fn bad_vlan_keys_are_named() {
    let cases = [
        ("tap0,vlan=0", "vlan=0"),
        ("tap0,vlan=5000", "vlan=5000"),
        ("tap0,vlan=ten", "vlan=ten"),
        ("tap0,trunk=", "trunk="),
        ("tap0,trunk=10,4095", "trunk=10,4095"),
        ("tap0,trunk=30-20", "trunk=30-20"),
        ("tap0,native=0,trunk=5", "native=0"),
        ("tap0,vlan=10,trunk=20", "vlan="),
        ("tap0,vlan=10,native=20", "vlan="),
        ("tap0,native=20", "native= needs trunk="),
        ("tap0,vlan=10,vlan=11", "vlan= is given twice"),
        ("tap0,trunk=1,trunk=2", "trunk= is given twice"),
        ("tap0,vlan=10,20", "\"20\" is not key=value"),
        (
            "tap0,arp-guard=maybe",
            "arp-guard=maybe: expected on or off",
        ),
        (
            "tap0,arp-suppress=on,arp-suppress=off",
            "arp-suppress= is given twice",
        ),
    ];
    for (bad, needle) in cases {
        let e = spec(bad).unwrap_err().to_string();
        assert!(e.contains(needle), "{bad}: {e}");
    }
}

#[test]
fn netdev_stream_and_dgram_specs() {
    let n = spec("netdev:qtap0").unwrap();
    assert_eq!(n.target, Target::Netdev(IfName::new("qtap0").unwrap()));
    assert_eq!((n.name.as_str(), n.kind()), ("qtap0", PortKind::Netdev));
    assert_eq!(n.to_string(), "netdev:qtap0");
    assert!(spec("netdev:a/b").is_err());

    let s = spec("stream:/run/vm/vm1.sock,vlan=10").unwrap();
    assert_eq!(s.target, Target::Stream("/run/vm/vm1.sock".into()));
    assert_eq!(s.name, "vm1.sock", "named after the socket file");
    assert_eq!(s.vlan, VlanMode::Access(10));
    assert_eq!(spec(&s.to_string()), Ok(s));
    let s = spec("stream:/tmp/x.sock,name=web").unwrap();
    assert_eq!(s.name, "web");
    assert_eq!(s.to_string(), "stream:/tmp/x.sock,name=web");

    let d = spec("dgram:/tmp/sw.sock,peer=/tmp/vm.sock").unwrap();
    assert_eq!(
        d.target,
        Target::Dgram {
            path: "/tmp/sw.sock".into(),
            peer: Some("/tmp/vm.sock".into())
        }
    );
    assert_eq!(spec(&d.to_string()), Ok(d));

    for (bad, needle) in [
        ("stream:", "need a socket path"),
        ("tap0,name=x", "only for stream and dgram"),
        ("stream:/tmp/a,peer=/tmp/b", "only for dgram"),
        ("stream:/tmp/a,name=has space", "bad port name"),
        ("stream:/tmp/a,name=x,name=y", "given twice"),
    ] {
        let e = spec(bad).unwrap_err().to_string();
        assert!(e.contains(needle), "{bad}: {e}");
    }
}

#[test]
fn socket_ports_in_the_file() {
    let f = parse(
        "[[port]]\nkind = \"stream\"\npath = \"/tmp/vm1.sock\"\n\n[[port]]\nkind = \"dgram\"\n\
         path = \"/tmp/sw.sock\"\npeer = \"/tmp/vm2.sock\"\nname = \"vm2\"\n\n\
         [[port]]\nkind = \"netdev\"\nname = \"qtap0\"\n",
    )
    .unwrap();
    let names: Vec<&str> = f.ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["vm1.sock", "vm2", "qtap0"]);
    let (_, msg) = file_error("[[port]]\nname = \"t\"\npath = \"/tmp/x\"\n");
    assert!(msg.contains("stream and dgram"), "{msg}");
    let (_, msg) = file_error("[[port]]\nkind = \"stream\"\n");
    assert!(msg.contains("needs name"), "{msg}");
}

#[test]
fn switch_names_are_safe_file_names() {
    assert_eq!(parse_switch_name("vswitch0").as_deref(), Ok("vswitch0"));
    assert_eq!(parse_switch_name("lab-1_a.b").as_deref(), Ok("lab-1_a.b"));
    for bad in ["", ".hidden", "a/b", "a b", &"x".repeat(65)] {
        assert!(parse_switch_name(bad).is_err(), "{bad:?}");
    }
}

fn overrides(ports: &[&str]) -> Overrides {
    Overrides {
        ports: ports.iter().map(|p| p.parse().unwrap()).collect(),
        ..Overrides::default()
    }
}

#[test]
fn command_line_alone_needs_distinct_ports() {
    assert_eq!(
        Config::load(None, &overrides(&[])),
        Err(ConfigError::NoPorts)
    );
    assert_eq!(
        Config::load(None, &overrides(&["tap0", "tap1", "tap:tap0"])),
        Err(ConfigError::DuplicatePort("tap0".into()))
    );
    let c = Config::load(None, &overrides(&["tap0", "tap1"])).unwrap();
    assert_eq!(c.name, "vswitch0");
    assert_eq!(c.busy_poll, DEFAULT_BUSY_POLL);
    assert_eq!(c.ctl_socket, PathBuf::from("/run/vswitchd/vswitch0.ctl"));
    assert_eq!(c.bridge, BridgeConfig::default());
    assert_eq!(c.ports, vec![tap("tap0"), tap("tap1")]);
}

#[test]
fn a_port_cannot_take_the_name_of_the_switchs_own_port() {
    let mut o = overrides(&["tap0", "vswitch0"]);
    // Without --ip there is no own port, so the name is free.
    assert!(Config::load(None, &o).is_ok());
    o.ips = vec!["10.0.0.254/24".parse().unwrap()];
    let e = Config::load(None, &o).unwrap_err();
    assert_eq!(e, ConfigError::OwnPortName("vswitch0".into()));
    assert!(e.to_string().contains("--name"), "{e}");
    o.name = Some("lab".into());
    assert!(Config::load(None, &o).is_ok());
}

const FULL: &str = r#"
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

fn file_error(text: &str) -> (usize, String) {
    match parse(text) {
        Err(ConfigError::File { line, message, .. }) => (line, message),
        other => panic!("expected a file error, got {other:?}"),
    }
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
fn flags_override_the_file() {
    let dir = std::env::temp_dir().join(format!("vswitch-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sw.toml");
    std::fs::write(&path, FULL).unwrap();

    let c = Config::load(Some(&path), &Overrides::default()).unwrap();
    assert_eq!(c.name, "lab");
    assert_eq!(c.ctl_socket, PathBuf::from("/tmp/lab.ctl"));
    assert_eq!(c.bridge.mac_ageing, 60);

    let o = Overrides {
        name: Some("other".into()),
        mac_ageing: Some(20),
        ports: vec![tap("tap1"), tap("tap2")],
        ..Overrides::default()
    };
    let c = Config::load(Some(&path), &o).unwrap();
    assert_eq!(c.name, "other");
    // The file's ctl-socket stays: only flags given override.
    assert_eq!(c.ctl_socket, PathBuf::from("/tmp/lab.ctl"));
    assert_eq!((c.bridge.mac_ageing, c.bridge.mac_table_size), (20, 1000));
    assert_eq!(c.ports, vec![tap("tap0"), tap("tap1"), tap("tap2")]);

    // A name without a ctl-socket anywhere gives the name's default socket.
    std::fs::write(&path, "name = \"x\"\n").unwrap();
    let c = Config::load(Some(&path), &Overrides::default()).unwrap();
    assert_eq!(c.ctl_socket, PathBuf::from("/run/vswitchd/x.ctl"));
    assert!(
        c.ports.is_empty(),
        "a file may start a switch with no ports"
    );

    let missing = dir.join("missing.toml");
    let e = Config::load(Some(&missing), &Overrides::default()).unwrap_err();
    assert!(e.to_string().contains("missing.toml"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
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
    assert!(line == 4 && msg.contains("vlan=0"), "{line} {msg}");
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
    let f = parse(include_str!("../../docs/vswitchd.toml")).unwrap();
    assert_eq!(f.name.as_deref(), Some("lab"));
    assert_eq!(f.ports, vec![tap("lab-tap1"), tap("lab-tap2")]);
}
