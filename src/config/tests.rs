use super::*;

fn spec(s: &str) -> Result<PortSpec, SpecError> {
    s.parse()
}

fn tap(name: &str) -> PortSpec {
    PortSpec {
        kind: PortKind::Tap,
        name: IfName::new(name).unwrap(),
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
    let e = spec("tap:").unwrap_err().to_string();
    assert!(e.contains("empty"), "{e}");
    let e = spec("averyveryverylongname").unwrap_err().to_string();
    assert!(e.contains("longer than 15"), "{e}");
    let e = spec("tap0,vlan=10").unwrap_err().to_string();
    assert!(e.contains("\"vlan\""), "{e}");
    let e = spec("tap0,junk").unwrap_err().to_string();
    assert!(e.contains("\"junk\"") && e.contains("key=value"), "{e}");
    let e = spec("ta/p").unwrap_err().to_string();
    assert!(e.contains("'/'"), "{e}");
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
    assert_eq!(c.ctl_socket, PathBuf::from("/run/vswitchd/vswitch0.ctl"));
    assert_eq!(c.bridge, BridgeConfig::default());
    assert_eq!(c.ports, vec![tap("tap0"), tap("tap1")]);
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

    let (line, msg) = file_error("\n\n[[port]]\nname = \"tap0\"\nvlan = 10\n");
    assert_eq!(line, 5);
    assert!(msg.contains("vlan"), "{msg}");

    let (line, msg) = file_error("mac-ageing = 5\n");
    assert_eq!(line, 1);
    assert!(
        msg.contains("mac-ageing = 5 is out of range (10 to 1000000)"),
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
fn the_documented_example_file_is_valid() {
    let f = parse(include_str!("../../docs/vswitchd.toml")).unwrap();
    assert_eq!(f.name.as_deref(), Some("lab"));
    assert_eq!(f.ports, vec![tap("lab-tap1"), tap("lab-tap2")]);
}
