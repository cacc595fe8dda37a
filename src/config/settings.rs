//! Every setting a port has, by key: one vocabulary for `--port` specs, `[[port]]` tables,
//! `vswitchctl port set` and `port show`. [`PortSettings::apply`] reads `key=value` pairs onto
//! settings (a spec's onto the defaults, `port set`'s onto the running port's);
//! [`PortSettings::keys`] writes every setting back as the same pairs.

use std::time::Duration;

use super::spec::SpecError;
use crate::bridge::vlan::{VlanMode, VlanSet, parse_vid};
use crate::bridge::{PortConfig, StormAction};
use crate::datapath::impair::{Chance, DelayDist, Impair, ImpairConfig};

/// A port's settings: the core's share (VLAN, ARP, flags, link-local, link) and the edge's
/// (impairment).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSettings {
    pub port: PortConfig,
    pub impair: ImpairConfig,
}

/// The keys of one impaired direction, after its `rx-`/`tx-` prefix.
const IMPAIR_KEYS: [&str; 10] = [
    "delay",
    "jitter",
    "delay-dist",
    "loss",
    "loss-corr",
    "duplicate",
    "corrupt",
    "reorder",
    "rate",
    "limit",
];

/// The keys a port's settings take (besides the socket keys `name` and `peer`), for messages.
pub const SETTING_KEYS: &str = "vlan, trunk, native, arp-suppress, arp-guard, learning, flood, \
     mcast-flood, bcast-flood, isolated, hairpin, link-local, link, locked, mab, max-macs, \
     sticky, storm-bcast, storm-mcast, storm-unknown, storm-action, tx-/rx-delay, -jitter, \
     -delay-dist, -loss, -loss-corr, -duplicate, -corrupt, -reorder, -rate, -limit, impair, seed";

/// `on`/`off` (or `true`/`false`, `yes`/`no`).
pub fn parse_switch(value: &str) -> Option<bool> {
    match value {
        "on" | "true" | "yes" => Some(true),
        "off" | "false" | "no" => Some(false),
        _ => None,
    }
}

fn on(b: bool) -> String {
    if b { "on" } else { "off" }.to_owned()
}

/// A count from 1 to `max`, or `off` (`None`).
fn parse_count(value: &str, max: u32) -> Result<Option<u32>, &'static str> {
    if value == "off" {
        return Ok(None);
    }
    match value.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
        _ => Err("expected a positive number or off"),
    }
}

/// A time in milliseconds: `50`, `0.5`, `50ms`, `200us`, `1.5s`.
fn parse_ms(value: &str) -> Result<Duration, String> {
    let (number, scale) = if let Some(n) = value.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = value.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1.0)
    } else {
        (value, 1e-3)
    };
    let n: f64 = number
        .parse()
        .map_err(|_| "expected milliseconds (50, 0.5, 50ms, 200us, 1s)".to_owned())?;
    let secs = n * scale;
    if !(0.0..=60.0).contains(&secs) {
        return Err("expected 0 to 60 seconds".to_owned());
    }
    // Whole microseconds: what `port show` prints is what was set.
    Ok(Duration::from_micros((secs * 1e6).round() as u64))
}

fn print_ms(d: Duration) -> String {
    let us = d.as_micros();
    if us % 1000 == 0 {
        format!("{}ms", us / 1000)
    } else {
        format!("{us}us")
    }
}

/// A percentage: `30`, `30%`, `0.5`.
fn parse_pct(value: &str) -> Result<Chance, String> {
    value
        .strip_suffix('%')
        .unwrap_or(value)
        .parse::<f64>()
        .ok()
        .and_then(Chance::from_pct)
        .ok_or_else(|| "expected a percentage from 0 to 100".to_owned())
}

const RATE_UNITS: [(&str, u64); 9] = [
    ("tbit", 1_000_000_000_000),
    ("gbit", 1_000_000_000),
    ("mbit", 1_000_000),
    ("kbit", 1_000),
    ("bit", 1),
    ("gbps", 8_000_000_000),
    ("mbps", 8_000_000),
    ("kbps", 8_000),
    ("bps", 8),
];

/// A rate as tc writes it: `10mbit`, `1.5gbit`, `500kbit`, bits per second without a unit,
/// bytes per second with `bps`; `off` for none.
fn parse_rate(value: &str) -> Result<Option<u64>, String> {
    if matches!(value, "off" | "none" | "0") {
        return Ok(None);
    }
    let lower = value.to_ascii_lowercase();
    let (number, unit) = RATE_UNITS
        .iter()
        .find_map(|&(u, scale)| Some((lower.strip_suffix(u)?, scale)))
        .unwrap_or((lower.as_str(), 1));
    let bad = || "expected a rate such as 10mbit, 500kbit, 1gbit (or off)".to_owned();
    let n: f64 = number.parse().map_err(|_| bad())?;
    let bits = n * unit as f64;
    if !(1000.0..=1e13).contains(&bits) {
        return Err("expected a rate from 1kbit to 10tbit".to_owned());
    }
    Ok(Some(bits.round() as u64))
}

fn print_rate(rate: Option<u64>) -> String {
    let Some(bits) = rate else {
        return "off".to_owned();
    };
    RATE_UNITS[..5]
        .iter()
        .find(|&&(_, scale)| bits % scale == 0)
        .map_or_else(
            || format!("{bits}bit"),
            |&(u, scale)| format!("{}{u}", bits / scale),
        )
}

/// The VLAN keys of one `apply`, resolved together once all are read.
#[derive(Default)]
struct VlanKeys {
    access: Option<Option<u16>>,
    trunk: Option<VlanSet>,
    native: Option<Option<u16>>,
}

impl PortSettings {
    /// Applies `options` in order onto these settings. The VLAN keys are taken together:
    /// `vlan=N` makes an access port (`vlan=all` an unconfigured one), `trunk=LIST[,native=N]`
    /// a trunk, and `native=N` alone changes a trunk's native VLAN. A key given twice, an
    /// unknown key or a bad value is refused with the key named; nothing is applied then.
    pub fn apply(&mut self, options: &[(&str, &str)]) -> Result<(), SpecError> {
        let mut next = self.clone();
        let mut vlans = VlanKeys::default();
        let mut seen: Vec<&str> = Vec::new();
        for &(key, value) in options {
            if seen.contains(&key) {
                return Err(SpecError::Duplicate(key.to_owned()));
            }
            seen.push(key);
            next.set(key, value, &mut vlans)?;
        }
        next.resolve_vlans(vlans)?;
        *self = next;
        Ok(())
    }

    fn set(&mut self, key: &str, value: &str, vlans: &mut VlanKeys) -> Result<(), SpecError> {
        let invalid = |reason: String| SpecError::Invalid {
            key: key.to_owned(),
            value: value.to_owned(),
            reason,
        };
        let on_off = || parse_switch(value).ok_or_else(|| invalid("expected on or off".to_owned()));
        let vid = || parse_vid(value).map_err(|e| invalid(e.to_string()));
        let flags = &mut self.port.flags;
        match key {
            "vlan" if matches!(value, "all" | "none") => vlans.access = Some(None),
            "vlan" => vlans.access = Some(Some(vid()?)),
            "native" if value == "none" => vlans.native = Some(None),
            "native" => vlans.native = Some(Some(vid()?)),
            "trunk" => {
                vlans.trunk = Some(
                    value
                        .parse()
                        .map_err(|e: crate::bridge::vlan::VlanListError| invalid(e.to_string()))?,
                )
            }
            "arp-suppress" if value == "default" => self.port.arp_suppress = None,
            "arp-suppress" => self.port.arp_suppress = Some(on_off()?),
            "arp-guard" => self.port.arp_guard = on_off()?,
            "learning" => flags.learning = on_off()?,
            "flood" => flags.flood = on_off()?,
            "mcast-flood" => flags.mcast_flood = on_off()?,
            "bcast-flood" => flags.bcast_flood = on_off()?,
            "isolated" => flags.isolated = on_off()?,
            "hairpin" => flags.hairpin = on_off()?,
            "link-local" => {
                self.port.link_local = value
                    .parse()
                    .map_err(|e: crate::bridge::port::LinkLocalError| invalid(e.to_string()))?
            }
            "link" => {
                self.port.link = value
                    .parse()
                    .map_err(|()| invalid("expected up, down, rx-down or tx-down".to_owned()))?
            }
            "locked" => self.port.security.locked = on_off()?,
            "mab" => self.port.security.mab = on_off()?,
            "sticky" => self.port.security.sticky = on_off()?,
            "max-macs" => {
                self.port.security.max_macs =
                    parse_count(value, 16_777_216).map_err(|e| invalid(e.to_owned()))?
            }
            "storm-bcast" | "storm-mcast" | "storm-unknown" => {
                let pps = parse_count(value, 100_000_000).map_err(|e| invalid(e.to_owned()))?;
                let storm = &mut self.port.security.storm;
                match key {
                    "storm-bcast" => storm.broadcast = pps,
                    "storm-mcast" => storm.multicast = pps,
                    _ => storm.unknown = pps,
                }
            }
            "storm-action" => {
                self.port.security.storm_action = match value {
                    "drop" => StormAction::Drop,
                    "block" => StormAction::Block,
                    _ => return Err(invalid("expected drop or block".to_owned())),
                }
            }
            "impair" if value == "off" => {
                self.impair.rx = Impair::default();
                self.impair.tx = Impair::default();
            }
            "impair" => {
                return Err(invalid(
                    "only impair=off (clear every rx- and tx- key)".into(),
                ));
            }
            "seed" if value == "none" => self.impair.seed = None,
            "seed" => {
                self.impair.seed = Some(
                    value
                        .parse()
                        .map_err(|_| invalid("expected a number".to_owned()))?,
                )
            }
            _ => {
                let (dir, item) = match (key.strip_prefix("tx-"), key.strip_prefix("rx-")) {
                    (Some(item), _) => (&mut self.impair.tx, item),
                    (_, Some(item)) => (&mut self.impair.rx, item),
                    _ => return Err(SpecError::UnknownKey(key.to_owned())),
                };
                set_impair(dir, item, value).map_err(|e| {
                    e.map_or_else(|| SpecError::UnknownKey(key.to_owned()), invalid)
                })?;
            }
        }
        Ok(())
    }

    fn resolve_vlans(&mut self, keys: VlanKeys) -> Result<(), SpecError> {
        let current = &self.port.vlan;
        self.port.vlan = match (keys.access, keys.trunk, keys.native) {
            (None, None, None) => return Ok(()),
            (Some(None), None, None) => VlanMode::All,
            (Some(Some(n)), None, None) => VlanMode::Access(n),
            (None, Some(vlans), native) => VlanMode::Trunk {
                vlans: Box::new(vlans),
                native: native.flatten(),
            },
            (None, None, Some(native)) => match current {
                VlanMode::Trunk { vlans, .. } => VlanMode::Trunk {
                    vlans: vlans.clone(),
                    native,
                },
                _ => {
                    return Err(SpecError::Conflict(
                        "native= needs trunk= (the tagged VLANs)",
                    ));
                }
            },
            (Some(_), _, _) => {
                return Err(SpecError::Conflict(
                    "vlan= makes an access port; it cannot be combined with trunk= or native=",
                ));
            }
        };
        Ok(())
    }

    /// Every setting as `key=value` pairs, in the order `port show` lists them; applying them
    /// gives these settings back.
    pub fn keys(&self) -> Vec<(String, String)> {
        let p = &self.port;
        let mut keys: Vec<(&str, String)> = Vec::new();
        match &p.vlan {
            VlanMode::All => keys.push(("vlan", "all".to_owned())),
            VlanMode::Access(n) => keys.push(("vlan", n.to_string())),
            VlanMode::Trunk { vlans, native } => {
                keys.push(("trunk", vlans.to_string()));
                keys.push((
                    "native",
                    native.map_or("none".to_owned(), |n| n.to_string()),
                ));
            }
        }
        keys.push((
            "arp-suppress",
            p.arp_suppress.map_or("default".to_owned(), on),
        ));
        keys.push(("arp-guard", on(p.arp_guard)));
        let f = p.flags;
        keys.push(("learning", on(f.learning)));
        keys.push(("flood", on(f.flood)));
        keys.push(("mcast-flood", on(f.mcast_flood)));
        keys.push(("bcast-flood", on(f.bcast_flood)));
        keys.push(("isolated", on(f.isolated)));
        keys.push(("hairpin", on(f.hairpin)));
        keys.push(("link-local", p.link_local.to_string()));
        keys.push(("link", p.link.to_string()));
        let sec = &p.security;
        let count = |n: Option<u32>| n.map_or("off".to_owned(), |n| n.to_string());
        keys.push(("locked", on(sec.locked)));
        keys.push(("mab", on(sec.mab)));
        keys.push(("max-macs", count(sec.max_macs)));
        keys.push(("sticky", on(sec.sticky)));
        keys.push(("storm-bcast", count(sec.storm.broadcast)));
        keys.push(("storm-mcast", count(sec.storm.multicast)));
        keys.push(("storm-unknown", count(sec.storm.unknown)));
        keys.push(("storm-action", sec.storm_action.name().to_owned()));
        let mut out: Vec<(String, String)> =
            keys.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        for (prefix, dir) in [("tx", &self.impair.tx), ("rx", &self.impair.rx)] {
            for (item, value) in impair_keys(dir) {
                out.push((format!("{prefix}-{item}"), value));
            }
        }
        out.push((
            "seed".to_owned(),
            self.impair
                .seed
                .map_or("none".to_owned(), |s| s.to_string()),
        ));
        out
    }

    /// The settings that differ from a new port's, as `key=value` pairs (what a spec must
    /// say to make this port).
    pub fn changed_keys(&self) -> Vec<(String, String)> {
        let defaults = PortSettings::default().keys();
        self.keys()
            .into_iter()
            .filter(|kv| !defaults.contains(kv))
            .collect()
    }
}

/// Sets one impairment key (without its direction); `Err(None)` for an unknown key.
fn set_impair(dir: &mut Impair, item: &str, value: &str) -> Result<(), Option<String>> {
    match item {
        "delay" => dir.delay = parse_ms(value)?,
        "jitter" => dir.jitter = parse_ms(value)?,
        "delay-dist" => {
            dir.dist = match value {
                "uniform" => DelayDist::Uniform,
                "normal" => DelayDist::Normal,
                _ => return Err(Some("expected uniform or normal".to_owned())),
            }
        }
        "loss" => dir.loss = parse_pct(value)?,
        "loss-corr" => dir.loss_corr = parse_pct(value)?,
        "duplicate" => dir.duplicate = parse_pct(value)?,
        "corrupt" => dir.corrupt = parse_pct(value)?,
        "reorder" => dir.reorder = parse_pct(value)?,
        "rate" => dir.rate = parse_rate(value)?,
        "limit" => {
            dir.limit = value
                .parse()
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .ok_or_else(|| "expected 1 to 100000 frames".to_owned())?
        }
        _ => return Err(None),
    }
    Ok(())
}

fn impair_keys(dir: &Impair) -> Vec<(&'static str, String)> {
    let values = [
        print_ms(dir.delay),
        print_ms(dir.jitter),
        dir.dist.name().to_owned(),
        dir.loss.to_string(),
        dir.loss_corr.to_string(),
        dir.duplicate.to_string(),
        dir.corrupt.to_string(),
        dir.reorder.to_string(),
        print_rate(dir.rate),
        dir.limit.to_string(),
    ];
    IMPAIR_KEYS.into_iter().zip(values).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::LinkState;

    fn applied(options: &[(&str, &str)]) -> Result<PortSettings, SpecError> {
        let mut s = PortSettings::default();
        s.apply(options)?;
        Ok(s)
    }

    #[test]
    fn every_key_prints_back_to_what_it_set() {
        let s = applied(&[
            ("trunk", "10,20"),
            ("native", "5"),
            ("arp-guard", "on"),
            ("flood", "off"),
            ("isolated", "on"),
            ("hairpin", "yes"),
            ("link-local", "stp,lldp"),
            ("link", "rx-down"),
            ("tx-delay", "50"),
            ("tx-jitter", "0.5"),
            ("tx-delay-dist", "normal"),
            ("tx-loss", "30%"),
            ("rx-duplicate", "1.5"),
            ("tx-rate", "20mbit"),
            ("rx-rate", "1.5gbit"),
            ("tx-limit", "50"),
            ("seed", "7"),
            ("locked", "on"),
            ("mab", "on"),
            ("max-macs", "100"),
            ("storm-bcast", "1000"),
            ("storm-action", "block"),
        ])
        .unwrap();
        assert_eq!(s.port.link, LinkState::RxDown);
        assert!(!s.port.flags.flood && s.port.flags.isolated && s.port.flags.hairpin);
        assert_eq!(s.impair.tx.delay, Duration::from_millis(50));
        assert_eq!(s.impair.tx.rate, Some(20_000_000));
        let keys = s.changed_keys();
        let pairs: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert!(pairs.contains(&("tx-jitter", "500us")), "{pairs:?}");
        assert!(pairs.contains(&("rx-rate", "1500mbit")), "{pairs:?}");
        assert!(pairs.contains(&("tx-loss", "30%")), "{pairs:?}");
        assert_eq!(applied(&pairs).unwrap(), s);
        assert!(PortSettings::default().changed_keys().is_empty());
    }

    #[test]
    fn bad_keys_and_values_name_the_key() {
        let cases = [
            (("lerning", "on"), "unknown key \"lerning\""),
            (("tx-dealy", "5"), "unknown key \"tx-dealy\""),
            (("flood", "maybe"), "flood=maybe: expected on or off"),
            (("link", "sideways"), "link=sideways: expected up, down"),
            (("tx-loss", "101"), "tx-loss=101: expected a percentage"),
            (("tx-delay", "soon"), "tx-delay=soon: expected milliseconds"),
            (("rx-rate", "fast"), "rx-rate=fast: expected a rate"),
            (("tx-limit", "0"), "tx-limit=0: expected 1 to 100000"),
            (("link-local", "0x01"), "link-local=0x01: pause frames"),
            (("impair", "on"), "impair=on: only impair=off"),
            (("max-macs", "0"), "max-macs=0: expected a positive number"),
            (
                ("storm-bcast", "lots"),
                "storm-bcast=lots: expected a positive number",
            ),
            (
                ("storm-action", "shout"),
                "storm-action=shout: expected drop or block",
            ),
        ];
        for ((key, value), message) in cases {
            let e = applied(&[(key, value)]).unwrap_err().to_string();
            assert!(e.starts_with(message), "{key}={value}: {e}");
        }
        assert_eq!(
            applied(&[("flood", "off"), ("flood", "on")]).unwrap_err(),
            SpecError::Duplicate("flood".to_owned())
        );
    }

    #[test]
    fn a_failed_apply_changes_nothing() {
        let mut s = applied(&[("tx-delay", "10")]).unwrap();
        let before = s.clone();
        assert!(s.apply(&[("tx-delay", "20"), ("flood", "bad")]).is_err());
        assert_eq!(s, before);
    }

    #[test]
    fn vlan_keys_change_a_running_port_as_a_whole() {
        let mut s = applied(&[("trunk", "10,20"), ("native", "5")]).unwrap();
        s.apply(&[("native", "7")]).unwrap();
        assert_eq!(s.port.vlan.to_string(), "trunk 10,20 native 7");
        s.apply(&[("vlan", "30")]).unwrap();
        assert_eq!(s.port.vlan, VlanMode::Access(30));
        assert!(
            s.apply(&[("native", "7")]).is_err(),
            "native on an access port"
        );
        s.apply(&[("vlan", "all")]).unwrap();
        assert_eq!(s.port.vlan, VlanMode::All);
    }

    #[test]
    fn impair_off_clears_both_directions() {
        let mut s = applied(&[("tx-delay", "10"), ("rx-loss", "5"), ("seed", "3")]).unwrap();
        assert!(s.impair.tx.is_active() && s.impair.rx.is_active());
        s.apply(&[("impair", "off")]).unwrap();
        assert!(!s.impair.tx.is_active() && !s.impair.rx.is_active());
        assert_eq!(s.impair.seed, Some(3), "the seed stays");
    }
}
