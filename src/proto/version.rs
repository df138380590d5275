//! Protocol version rules, all in one place: which versions exist, how wide a
//! floating tag/length is, how long a frame may be, and whether a field or a
//! message type exists at a version. Everything that differs between versions
//! asks this file. No I/O here.

use std::fmt;

/// A negotiated GED-188 protocol version (the OPEN_REQ `VersionNumber`).
///
/// Only 13..=24 can be constructed: those are the versions the router serves
/// (docs/design.md §4.1). Holding a `Version` proves the number is one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(u8);

impl Version {
    /// Oldest version served (UCCE 7.x era; docs/protocol.md §8).
    pub const MIN: Version = Version(13);
    /// Newest version served (UCCE 12.6(1); docs/protocol.md §8).
    pub const MAX: Version = Version(24);
    /// First version with 2-byte floating tags and lengths (docs/protocol.md §2.5, PV24-CA).
    pub const WIDE_TAGS: Version = Version(20);

    /// `Some` for 13..=24, `None` for anything else (→ E_CTI_INVALID_VERSION).
    pub const fn new(number: u32) -> Option<Version> {
        if number >= Self::MIN.0 as u32 && number <= Self::MAX.0 as u32 {
            Some(Version(number as u8))
        } else {
            None
        }
    }

    /// The version number as sent on the wire.
    pub const fn number(self) -> u32 {
        self.0 as u32
    }

    /// Every version served, oldest first.
    pub fn all() -> impl Iterator<Item = Version> {
        (Self::MIN.0..=Self::MAX.0).map(Version)
    }

    /// Bytes of a floating field's tag, and again of its length: 1 below 20, 2 from 20.
    pub const fn tag_width(self) -> usize {
        if self.0 >= Self::WIDE_TAGS.0 {
            2
        } else {
            1
        }
    }

    /// Largest tag number this version can write (1-byte tags stop at 255).
    pub const fn max_tag(self) -> u16 {
        if self.tag_width() == 1 {
            u8::MAX as u16
        } else {
            u16::MAX
        }
    }

    /// Largest floating data length this version can write.
    pub const fn max_field_len(self) -> usize {
        if self.tag_width() == 1 {
            u8::MAX as usize
        } else {
            u16::MAX as usize
        }
    }

    /// Whether a field that exists from `since` (inclusive) to `until`
    /// (inclusive) exists at this version.
    pub const fn has(self, since: u8, until: u8) -> bool {
        self.0 >= since && self.0 <= until
    }

    /// Index 0..12 of this version, for per-version tables.
    pub const fn index(self) -> usize {
        (self.0 - Self::MIN.0) as usize
    }

    /// Number of versions served (size of per-version tables).
    pub const COUNT: usize = (Self::MAX.0 - Self::MIN.0 + 1) as usize;
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Default for Version {
    fn default() -> Self {
        Version::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_13_to_24_are_versions() {
        assert!(Version::new(12).is_none());
        assert!(Version::new(25).is_none());
        assert_eq!(Version::all().count(), Version::COUNT);
        assert_eq!(Version::new(13), Some(Version::MIN));
    }

    #[test]
    fn tags_widen_at_20() {
        assert_eq!(Version::new(19).unwrap().tag_width(), 1);
        assert_eq!(Version::new(20).unwrap().tag_width(), 2);
        assert_eq!(Version::new(19).unwrap().max_tag(), 255);
    }
}
