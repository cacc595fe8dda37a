//! Ethernet MAC addresses: the newtype the switch keys its table with, and the address classes
//! that decide whether a source may be learned and whether a destination may be forwarded.

use std::fmt;
use std::str::FromStr;

/// A 48-bit IEEE 802 MAC address. Prints and parses as lowercase hex with colons
/// (`02:00:00:00:00:01`), the form `ip link`, `bridge fdb` and `ovs-appctl fdb/show` use.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Group addresses (the I/G bit, broadcast included).
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    pub fn is_zero(&self) -> bool {
        *self == Self::ZERO
    }

    /// The IEEE 802.1D reserved group addresses 01:80:c2:00:00:00 through 0f (STP, LACP, 802.1X,
    /// LLDP, ...). A bridge consumes them and never forwards them.
    pub fn is_link_local(&self) -> bool {
        self.0[..5] == [0x01, 0x80, 0xc2, 0x00, 0x00] && self.0[5] & 0xf0 == 0
    }

    /// Whether a frame from this source address may teach the table: individual and not zero.
    pub fn is_learnable_source(&self) -> bool {
        !self.is_multicast() && !self.is_zero()
    }

    /// The U/L bit: set for addresses chosen by software rather than burnt in by a vendor.
    pub fn is_locally_administered(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(octets: [u8; 6]) -> Self {
        MacAddr(octets)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A string that is not six two-digit hex octets separated by `:` (or `-`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}: expected six hex octets like 02:00:00:00:00:01")]
pub struct ParseMacError(pub String);

impl FromStr for MacAddr {
    type Err = ParseMacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseMacError(s.to_owned());
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut octets = [0u8; 6];
        let mut parts = s.split(sep);
        for octet in &mut octets {
            let part = parts.next().ok_or_else(err)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(octets))
    }
}

impl serde::Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_lowercase_with_colons() {
        let mac = MacAddr([0x02, 0xAB, 0x00, 0x0c, 0xff, 0x01]);
        assert_eq!(mac.to_string(), "02:ab:00:0c:ff:01");
        assert_eq!(format!("{mac:?}"), "02:ab:00:0c:ff:01");
    }

    #[test]
    fn parses_colon_and_dash_forms_in_any_case() {
        let want = MacAddr([0x02, 0xab, 0x00, 0x0c, 0xff, 0x01]);
        assert_eq!("02:ab:00:0c:ff:01".parse::<MacAddr>(), Ok(want));
        assert_eq!("02:AB:00:0C:FF:01".parse::<MacAddr>(), Ok(want));
        assert_eq!("02-ab-00-0c-ff-01".parse::<MacAddr>(), Ok(want));
    }

    #[test]
    fn rejects_malformed_strings() {
        for bad in [
            "",
            "02:ab:00:0c:ff",
            "02:ab:00:0c:ff:01:02",
            "2:ab:00:0c:ff:01",
            "02:ab:00:0c:ff:0g",
            "02:ab-00:0c:ff:01",
            "+2:ab:00:0c:ff:01",
            "02:ab:00:0c:ff:01:",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn classifies_addresses() {
        assert!(MacAddr::BROADCAST.is_broadcast() && MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]).is_multicast());
        assert!(MacAddr([0x33, 0x33, 0, 0, 0, 1]).is_multicast());
        assert!(!MacAddr([0x02, 0, 0, 0, 0, 1]).is_multicast());
        assert!(MacAddr::ZERO.is_zero());
        assert!(MacAddr([0x02, 0, 0, 0, 0, 1]).is_learnable_source());
        assert!(!MacAddr::ZERO.is_learnable_source());
        assert!(!MacAddr::BROADCAST.is_learnable_source());
        assert!(!MacAddr([0x01, 0, 0, 0, 0, 1]).is_learnable_source());
        assert!(MacAddr([0x02, 0, 0, 0, 0, 1]).is_locally_administered());
        assert!(!MacAddr([0x52, 0x54, 0, 0, 0, 1]).is_multicast());
    }

    #[test]
    fn link_local_is_exactly_the_802_1d_reserved_block() {
        for last in 0x00..=0x0f {
            assert!(MacAddr([0x01, 0x80, 0xc2, 0, 0, last]).is_link_local());
        }
        assert!(!MacAddr([0x01, 0x80, 0xc2, 0, 0, 0x10]).is_link_local());
        assert!(!MacAddr([0x01, 0x80, 0xc2, 0, 0x01, 0x00]).is_link_local());
        assert!(!MacAddr([0x03, 0x80, 0xc2, 0, 0, 0x00]).is_link_local());
    }

    #[test]
    fn serializes_as_a_string() {
        let mac = MacAddr([0x02, 0xab, 0, 0, 0, 1]);
        assert_eq!(
            serde_json::to_string(&mac).unwrap(),
            "\"02:ab:00:00:00:01\""
        );
        assert_eq!(
            serde_json::from_str::<MacAddr>("\"02:AB:00:00:00:01\"").unwrap(),
            mac
        );
        let err = serde_json::from_str::<MacAddr>("\"02:ab\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid MAC address"), "{err}");
    }
}
