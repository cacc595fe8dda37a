use super::*;
use file::tests::FULL;
use spec::tests::tap;

fn overrides(ports: &[&str]) -> Overrides {
    Overrides {
        ports: ports.iter().map(|p| p.parse().unwrap()).collect(),
        ..Overrides::default()
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
fn switch_names_are_safe_file_names() {
    assert_eq!(parse_switch_name("vswitch0").as_deref(), Ok("vswitch0"));
    assert_eq!(parse_switch_name("lab-1_a.b").as_deref(), Ok("lab-1_a.b"));
    for bad in ["", ".hidden", "a/b", "a b", &"x".repeat(65)] {
        assert!(parse_switch_name(bad).is_err(), "{bad:?}");
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
