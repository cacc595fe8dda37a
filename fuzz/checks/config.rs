//! The TOML config file, loaded as `vswitchd --config FILE` loads it.

use std::path::PathBuf;

use vswitch::config::{Config, ConfigError, Overrides, Target};

use super::spec::check_spec;

thread_local! {
    /// The file `config_file` writes, one per process and thread (a config file must be a
    /// file: `Config::load` reads it by path).
    static CONFIG_PATH: PathBuf = std::env::temp_dir().join(format!(
        "vswitch-fuzz-{}-{:?}.toml",
        std::process::id(),
        std::thread::current().id()
    ));
}

/// Removes this thread's config file (the fuzzers leave theirs; it is rewritten each run).
pub fn remove_config_file() {
    CONFIG_PATH.with(|path| {
        let _ = std::fs::remove_file(path);
    });
}

/// Any bytes as a config file, loaded as `vswitchd --config FILE` loads it: never a panic;
/// an error names the line it is about (or the port a cross-reference misses); a config that
/// loads holds only values in range, and its ports print back as specs.
pub fn config_file(data: &[u8]) {
    let path = CONFIG_PATH.with(PathBuf::clone);
    std::fs::write(&path, data).expect("writing the config file");
    let text = std::str::from_utf8(data);
    match Config::load(Some(&path), &Overrides::default()) {
        Ok(config) => check_config(&config),
        Err(ConfigError::File {
            path: p,
            line,
            ref message,
        }) => {
            assert_eq!(p, path);
            let lines = text.expect("parsed as text").matches('\n').count() + 1;
            assert!(
                (1..=lines).contains(&line),
                "line {line} of {lines}: {message}"
            );
            assert!(!message.trim().is_empty(), "an error without a message");
        }
        Err(ConfigError::Read { .. }) => assert!(text.is_err(), "a text file could not be read"),
        // Cross-references, checked once the whole file is read: they name the port.
        Err(
            ConfigError::UnknownArpPort { .. }
            | ConfigError::UnknownFdbPort { .. }
            | ConfigError::UnknownMirrorPort { .. }
            | ConfigError::OwnPortName(_),
        ) => {}
        Err(e) => panic!("a config file gave {e:?}"),
    }
}

fn check_config(config: &Config) {
    use vswitch::config::{BUSY_POLL_RANGE, MAC_AGEING_RANGE, MAC_TABLE_SIZE_RANGE};
    assert!(MAC_AGEING_RANGE.contains(&config.bridge.mac_ageing));
    assert!(MAC_TABLE_SIZE_RANGE.contains(&(config.bridge.mac_table_size as u32)));
    assert!(BUSY_POLL_RANGE.contains(&config.busy_poll));
    vswitch::config::parse_switch_name(&config.name).expect("a valid switch name");
    for (i, spec) in config.ports.iter().enumerate() {
        assert!(
            config.ports[..i].iter().all(|p| p.name != spec.name),
            "port {} twice",
            spec.name
        );
        // A name or socket path with a comma cannot be written as a `--port` spec (the file's
        // tables can hold one).
        let paths: Vec<&std::path::Path> = match &spec.target {
            Target::Stream(p) | Target::VhostUser(p) | Target::VhostUserClient(p) => vec![p],
            Target::Dgram { path, peer } => std::iter::once(path.as_path())
                .chain(peer.as_deref())
                .collect(),
            Target::Tap(_) | Target::Netdev(_) | Target::Vxlan(_) | Target::Udp { .. } => {
                Vec::new()
            }
        };
        if !spec.name.contains(',') && paths.iter().all(|p| !p.to_string_lossy().contains(',')) {
            check_spec(spec, &spec.name);
        }
    }
    for b in &config.arp_bindings {
        assert!(config.ports.iter().any(|p| p.name == b.port));
        assert!(b.mac.is_learnable_source() && b.vlan <= 4094);
    }
    for m in &config.static_macs {
        assert!(config.ports.iter().any(|p| p.name == m.port));
        assert!(m.mac.is_learnable_source() && m.vlan <= 4094);
    }
    for m in &config.mirrors {
        let configured = |name: &String| config.ports.iter().any(|p| &p.name == name);
        assert!(
            configured(&m.to) && m.from.iter().all(configured),
            "mirror {m:?}"
        );
        assert!(
            !m.from.contains(&m.to),
            "mirror {} to one of its sources",
            m.name
        );
        assert!(
            matches!(m.direction.as_str(), "rx" | "tx" | "both"),
            "mirror {m:?}"
        );
    }
    if let Some(own) = &config.own {
        assert!(!own.ips.is_empty() && own.mac.is_learnable_source() && own.vlan <= 4094);
    }
}
