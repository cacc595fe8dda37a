//! Interface names, validated before they reach a syscall, and the `ifreq` they travel in.

use std::fmt;
use std::str::FromStr;

/// Longest interface name the kernel accepts (`IFNAMSIZ` minus the terminating NUL).
pub const MAX_IFNAME_LEN: usize = libc::IFNAMSIZ - 1;

/// A name the kernel would accept for a network interface: 1 to 15 bytes, not `.` or `..`, and
/// free of `/`, `:`, whitespace and NUL (the rules of the kernel's `dev_valid_name`). `%` is
/// refused too: the kernel would read `tap%d` as a template and pick a name of its own.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfName(String);

/// Why a string is not a valid interface name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidIfName {
    #[error("interface name is empty")]
    Empty,
    #[error("interface name {0:?} is longer than {MAX_IFNAME_LEN} bytes")]
    TooLong(String),
    #[error("interface name {0:?} is reserved")]
    Reserved(String),
    #[error("interface name {0:?} contains {1:?}, which the kernel does not allow")]
    BadChar(String, char),
}

impl IfName {
    pub fn new(name: &str) -> Result<IfName, InvalidIfName> {
        if name.is_empty() {
            return Err(InvalidIfName::Empty);
        }
        if name.len() > MAX_IFNAME_LEN {
            return Err(InvalidIfName::TooLong(name.to_owned()));
        }
        if name == "." || name == ".." {
            return Err(InvalidIfName::Reserved(name.to_owned()));
        }
        if let Some(c) = name
            .chars()
            .find(|&c| matches!(c, '/' | ':' | '%' | '\0') || c.is_whitespace())
        {
            return Err(InvalidIfName::BadChar(name.to_owned(), c));
        }
        Ok(IfName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An `ifreq` with this name and everything else zeroed.
    pub(crate) fn to_ifreq(&self) -> libc::ifreq {
        // SAFETY: ifreq is a plain C struct (a name array and a union of integers, sockaddrs and
        // a pointer) for which all-zero bytes are a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        // The name is at most 15 bytes, so the 16th stays 0 and terminates it.
        for (dst, &src) in ifr.ifr_name.iter_mut().zip(self.0.as_bytes()) {
            *dst = src as libc::c_char;
        }
        ifr
    }
}

/// Reads the NUL-terminated name the kernel wrote back into an `ifreq`.
pub(crate) fn ifreq_name(ifr: &libc::ifreq) -> String {
    let bytes: Vec<u8> = ifr
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

impl FromStr for IfName {
    type Err = InvalidIfName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IfName::new(s)
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in ["tap0", "a", "vs-h1", "x_y.z", "123456789012345"] {
            assert_eq!(IfName::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_what_the_kernel_rejects() {
        assert_eq!(IfName::new(""), Err(InvalidIfName::Empty));
        assert!(matches!(
            IfName::new("1234567890123456"),
            Err(InvalidIfName::TooLong(_))
        ));
        assert!(matches!(IfName::new("."), Err(InvalidIfName::Reserved(_))));
        assert!(matches!(IfName::new(".."), Err(InvalidIfName::Reserved(_))));
        for (bad, c) in [
            ("a/b", '/'),
            ("a:b", ':'),
            ("a b", ' '),
            ("a\tb", '\t'),
            ("a\0", '\0'),
        ] {
            assert_eq!(IfName::new(bad), Err(InvalidIfName::BadChar(bad.into(), c)));
        }
    }

    #[test]
    fn ifreq_round_trips_the_name() {
        let name = IfName::new("123456789012345").unwrap();
        let ifr = name.to_ifreq();
        assert_eq!(ifr.ifr_name[15], 0);
        assert_eq!(ifreq_name(&ifr), "123456789012345");
    }
}
