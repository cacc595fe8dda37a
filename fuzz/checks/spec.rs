//! The `--port` grammar: parsing, printing back, and the settings' keys.

use vswitch::config::{PortSettings, PortSpec};

/// A spec that parsed prints back as a spec that parses to the same port, and its settings,
/// written as `port show` lists them, apply back to the same settings.
pub(super) fn check_spec(spec: &PortSpec, origin: &str) {
    let printed = spec.to_string();
    let again: PortSpec = printed
        .parse()
        .unwrap_or_else(|e| panic!("{origin:?} parsed, but not as printed, {printed:?}: {e}"));
    assert_eq!(
        again, *spec,
        "{origin:?} printed as {printed:?} parses to another port"
    );
    let keys = spec.settings.keys();
    let pairs: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut fresh = PortSettings::default();
    fresh
        .apply(&pairs)
        .unwrap_or_else(|e| panic!("{origin:?}: its own keys {pairs:?} refused: {e}"));
    assert_eq!(
        fresh, spec.settings,
        "{origin:?}: keys {pairs:?} apply to other settings"
    );
    let mut same = spec.settings.clone();
    same.apply(&pairs).expect("applied once");
    assert_eq!(
        same, spec.settings,
        "{origin:?}: port set of port show's keys changed it"
    );
}

/// Any text as a `--port` spec: parsing never panics, and what parses prints back (see
/// [`check_spec`]).
pub fn port_spec(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match text.parse::<PortSpec>() {
        Ok(spec) => check_spec(&spec, &text),
        Err(e) => {
            let message = e.to_string();
            assert!(!message.is_empty());
            // Keys are quoted with Rust's escapes: check the plain ones.
            if let Some(key) = e
                .key()
                .filter(|k| k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            {
                assert!(message.contains(key), "{message} does not name {key}");
            }
        }
    }
}
