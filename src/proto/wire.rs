//! Byte-level reading and writing: big-endian integers of the fixed part, and
//! the floating part's tag/length/data records at a version's tag width
//! (docs/protocol.md §2.2, §2.5). Everything bounds-checked; nothing panics on input.

use super::error::Invalid;
use super::values::FieldValue;
use super::version::Version;
use super::Field;

/// A fixed-size, big-endian field of a message's fixed part: an integer, or
/// a block of UINT counters (`counters!`).
pub trait FixedValue: Copy + Default {
    /// Bytes on the wire.
    const SIZE: usize;
    /// Read from the first `SIZE` bytes (the caller checked the length).
    fn read(bytes: &[u8]) -> Self;
    /// Append the big-endian bytes.
    fn write(self, out: &mut Vec<u8>);
    /// Hand the field to a visitor as the fixed field `name`: an integer as
    /// one field (widened to `i64`), a counter block as one field per
    /// counter under the counter's own name.
    fn visit_as(self, name: &'static str, visit: &mut dyn FnMut(Field<'_>));
}

macro_rules! fixed_int {
    ($($ty:ty),*) => {$(
        impl FixedValue for $ty {
            const SIZE: usize = std::mem::size_of::<$ty>();
            #[inline]
            fn read(bytes: &[u8]) -> Self {
                let mut raw = [0u8; std::mem::size_of::<$ty>()];
                raw.copy_from_slice(&bytes[..Self::SIZE]);
                <$ty>::from_be_bytes(raw)
            }
            #[inline]
            fn write(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
            fn visit_as(self, name: &'static str, visit: &mut dyn FnMut(Field<'_>)) {
                visit(Field { name, tag: None, value: FieldValue::Int(self as i64) });
            }
        }
    )*};
}
fixed_int!(u8, u16, u32, i16, i32);

/// Reads a message's fixed part front to back.
pub struct FixedReader<'a> {
    body: &'a [u8],
    pos: usize,
    message_type: u32,
    fixed_len: usize,
}

impl<'a> FixedReader<'a> {
    /// Checks up front that the body holds the whole fixed part.
    pub fn new(body: &'a [u8], message_type: u32, fixed_len: usize) -> Result<Self, Invalid> {
        if body.len() < fixed_len {
            return Err(Invalid::ShortFixedPart {
                message_type,
                needed: fixed_len,
                available: body.len(),
            });
        }
        Ok(FixedReader {
            body,
            pos: 0,
            message_type,
            fixed_len,
        })
    }

    /// Next fixed field. Cannot run short: `new` checked the length.
    #[inline]
    pub fn take<T: FixedValue>(&mut self) -> T {
        debug_assert!(
            self.pos + T::SIZE <= self.fixed_len,
            "type {}",
            self.message_type
        );
        let value = T::read(&self.body[self.pos..]);
        self.pos += T::SIZE;
        value
    }

    /// The floating part: everything after the fixed part.
    pub fn floating(&self) -> &'a [u8] {
        &self.body[self.fixed_len..]
    }
}

/// One floating field: its tag and its data bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawField<'a> {
    pub tag: u16,
    pub data: &'a [u8],
    /// Offset of `data` from the start of the floating part.
    pub offset: usize,
}

/// Iterates the floating part as tag/length/data records at one version's width.
#[derive(Clone)]
pub struct FloatingFields<'a> {
    bytes: &'a [u8],
    pos: usize,
    wide: bool,
}

impl<'a> FloatingFields<'a> {
    pub fn new(bytes: &'a [u8], version: Version) -> Self {
        FloatingFields {
            bytes,
            pos: 0,
            wide: version.tag_width() == 2,
        }
    }

    /// Same, choosing the width directly (2-byte tags when `wide`).
    pub fn with_width(bytes: &'a [u8], wide: bool) -> Self {
        FloatingFields {
            bytes,
            pos: 0,
            wide,
        }
    }

    /// The next field, `Ok(None)` at the exact end, an error when a header or
    /// a field's data runs past the end.
    #[inline]
    pub fn next_field(&mut self) -> Result<Option<RawField<'a>>, Invalid> {
        let rest = &self.bytes[self.pos..];
        if rest.is_empty() {
            return Ok(None);
        }
        let (tag, len, header) = if self.wide {
            if rest.len() < 4 {
                return Err(Invalid::TruncatedFloatingHeader {
                    available: rest.len(),
                });
            }
            (
                u16::from_be_bytes([rest[0], rest[1]]),
                u16::from_be_bytes([rest[2], rest[3]]) as usize,
                4,
            )
        } else {
            if rest.len() < 2 {
                return Err(Invalid::TruncatedFloatingHeader {
                    available: rest.len(),
                });
            }
            (rest[0] as u16, rest[1] as usize, 2)
        };
        let available = rest.len() - header;
        if len > available {
            return Err(Invalid::FloatingOverrun {
                tag,
                len,
                available,
            });
        }
        let offset = self.pos + header;
        self.pos += header + len;
        Ok(Some(RawField {
            tag,
            data: &self.bytes[offset..offset + len],
            offset,
        }))
    }
}

/// Appends one floating field at `version`'s width. Returns `false` (writing
/// nothing) when the version cannot carry it: a tag above 255 or data longer
/// than 255 bytes with 1-byte tags (docs/design.md §4.1: what a version does not
/// know is not sent).
#[inline]
pub fn put_field_header(out: &mut Vec<u8>, version: Version, tag: u16, len: usize) -> bool {
    if tag > version.max_tag() || len > version.max_field_len() {
        return false;
    }
    if version.tag_width() == 2 {
        let [t0, t1] = tag.to_be_bytes();
        let [l0, l1] = (len as u16).to_be_bytes();
        out.extend_from_slice(&[t0, t1, l0, l1]);
    } else {
        out.extend_from_slice(&[tag as u8, len as u8]);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(n: u32) -> Version {
        Version::new(n).unwrap()
    }

    #[test]
    fn narrow_and_wide_headers_round_trip() {
        for ver in [v(19), v(20)] {
            let mut out = Vec::new();
            assert!(put_field_header(&mut out, ver, 25, 3));
            out.extend_from_slice(b"ab\0");
            let mut it = FloatingFields::new(&out, ver);
            let f = it.next_field().unwrap().unwrap();
            assert_eq!((f.tag, f.data), (25, &b"ab\0"[..]));
            assert_eq!(it.next_field().unwrap(), None);
        }
    }

    #[test]
    fn wide_tag_is_not_written_at_narrow_versions() {
        let mut out = Vec::new();
        assert!(!put_field_header(&mut out, v(19), 266, 4));
        assert!(out.is_empty());
    }

    #[test]
    fn overrun_and_truncated_header_are_errors() {
        let mut it = FloatingFields::new(&[25, 9, b'a'], v(19));
        assert!(matches!(
            it.next_field(),
            Err(Invalid::FloatingOverrun { tag: 25, .. })
        ));
        let mut it = FloatingFields::new(&[0, 25, 0], v(20));
        assert!(matches!(
            it.next_field(),
            Err(Invalid::TruncatedFloatingHeader { .. })
        ));
    }

    #[test]
    fn short_fixed_part_is_an_error() {
        assert!(FixedReader::new(&[0; 3], 5, 4).is_err());
    }
}
