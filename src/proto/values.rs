//! Floating field value types: strings (NUL optional on input, always sent),
//! opaque bytes, integers, named variables and arrays (docs/protocol.md §2.6), and
//! the `FieldValue` view used to print or compare any decoded field.

use std::fmt;

use arbitrary::{Arbitrary, Unstructured};

use super::error::Invalid;

/// A value that can be a floating field's data.
pub trait FloatValue: Sized {
    /// Decode from the field's data bytes.
    fn decode(tag: u16, data: &[u8]) -> Result<Self, Invalid>;
    /// Length of the data this value writes.
    fn data_len(&self) -> usize;
    /// Append the data bytes.
    fn write(&self, out: &mut Vec<u8>);
    /// A borrowed view for printing and comparison.
    fn view(&self) -> FieldValue<'_>;
}

/// A borrowed view of a decoded field value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValue<'a> {
    Int(i64),
    Str(&'a [u8]),
    Bytes(&'a [u8]),
    NamedVar {
        name: &'a [u8],
        value: &'a [u8],
    },
    NamedArray {
        index: u8,
        name: &'a [u8],
        value: &'a [u8],
    },
}

macro_rules! float_int {
    ($($ty:ty),*) => {$(
        impl FloatValue for $ty {
            fn decode(tag: u16, data: &[u8]) -> Result<Self, Invalid> {
                let raw: [u8; std::mem::size_of::<$ty>()] = data
                    .try_into()
                    .map_err(|_| Invalid::FieldLength { tag, len: data.len() })?;
                Ok(<$ty>::from_be_bytes(raw))
            }
            fn data_len(&self) -> usize {
                std::mem::size_of::<$ty>()
            }
            fn write(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
            fn view(&self) -> FieldValue<'_> {
                FieldValue::Int(*self as i64)
            }
        }
    )*};
}
float_int!(u8, u16, u32, i32);

/// Longest string the generators make: short enough that any message of
/// generated strings stays far below the frame limit and the 255-byte
/// narrow-tag length.
const ARBITRARY_MAX_STR: usize = 40;

/// A protocol STRING: ASCII text whose wire form ends in NUL.
///
/// Stored without the NUL. Decoding stops at the first NUL and accepts a
/// missing one (docs/protocol.md §2.6: real clients omit it); encoding always
/// writes exactly one.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CtiString(Vec<u8>);

impl CtiString {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        let mut bytes = bytes.into();
        if let Some(nul) = bytes.iter().position(|&b| b == 0) {
            bytes.truncate(nul);
        }
        CtiString(bytes)
    }

    /// The text bytes, without NUL.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The text, with anything not UTF-8 replaced.
    pub fn to_str_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The text up to the first NUL, or all of it when there is none.
pub fn strip_nul(data: &[u8]) -> &[u8] {
    match data.iter().position(|&b| b == 0) {
        Some(nul) => &data[..nul],
        None => data,
    }
}

impl From<&str> for CtiString {
    fn from(s: &str) -> Self {
        CtiString::new(s.as_bytes())
    }
}

impl From<String> for CtiString {
    fn from(s: String) -> Self {
        CtiString::new(s.into_bytes())
    }
}

impl fmt::Debug for CtiString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_str_lossy())
    }
}

impl fmt::Display for CtiString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_str_lossy())
    }
}

impl FloatValue for CtiString {
    fn decode(_tag: u16, data: &[u8]) -> Result<Self, Invalid> {
        Ok(CtiString(strip_nul(data).to_vec()))
    }
    fn data_len(&self) -> usize {
        self.0.len() + 1
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
        out.push(0);
    }
    fn view(&self) -> FieldValue<'_> {
        FieldValue::Str(&self.0)
    }
}

fn arbitrary_text(u: &mut Unstructured<'_>, max: usize) -> arbitrary::Result<Vec<u8>> {
    let len = u.int_in_range(0..=max)?;
    (0..len).map(|_| u.int_in_range(0x20u8..=0x7e)).collect()
}

impl<'a> Arbitrary<'a> for CtiString {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(CtiString(arbitrary_text(u, ARBITRARY_MAX_STR)?))
    }
}

/// UNSPEC data: opaque bytes, passed as they are (ClientPassword, UUI, CallReferenceID).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Unspec(pub Vec<u8>);

impl fmt::Debug for Unspec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl FloatValue for Unspec {
    fn decode(_tag: u16, data: &[u8]) -> Result<Self, Invalid> {
        Ok(Unspec(data.to_vec()))
    }
    fn data_len(&self) -> usize {
        self.0.len()
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
    fn view(&self) -> FieldValue<'_> {
        FieldValue::Bytes(&self.0)
    }
}

impl<'a> Arbitrary<'a> for Unspec {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let len = u.int_in_range(0..=ARBITRARY_MAX_STR)?;
        Ok(Unspec(u.bytes(len)?.to_vec()))
    }
}

/// NAMEDVAR (tag 82): `Name\0Value\0` (docs/protocol.md §2.6).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct NamedVar {
    pub name: CtiString,
    pub value: CtiString,
}

/// Splits `name\0rest` at the first NUL; a missing NUL is malformed.
fn split_name(tag: u16, data: &[u8]) -> Result<(&[u8], &[u8]), Invalid> {
    let nul = data
        .iter()
        .position(|&b| b == 0)
        .ok_or(Invalid::FieldLength {
            tag,
            len: data.len(),
        })?;
    Ok((&data[..nul], &data[nul + 1..]))
}

impl FloatValue for NamedVar {
    fn decode(tag: u16, data: &[u8]) -> Result<Self, Invalid> {
        let (name, value) = split_name(tag, data)?;
        Ok(NamedVar {
            name: CtiString(name.to_vec()),
            value: CtiString(strip_nul(value).to_vec()),
        })
    }
    fn data_len(&self) -> usize {
        self.name.data_len() + self.value.data_len()
    }
    fn write(&self, out: &mut Vec<u8>) {
        self.name.write(out);
        self.value.write(out);
    }
    fn view(&self) -> FieldValue<'_> {
        FieldValue::NamedVar {
            name: self.name.as_bytes(),
            value: self.value.as_bytes(),
        }
    }
}

impl<'a> Arbitrary<'a> for NamedVar {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(NamedVar {
            name: CtiString(arbitrary_text(u, 32)?),
            value: CtiString(arbitrary_text(u, ARBITRARY_MAX_STR)?),
        })
    }
}

/// NAMEDARRAY (tag 83): `Index Name\0 Value\0` (docs/protocol.md §2.6).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct NamedArray {
    pub index: u8,
    pub name: CtiString,
    pub value: CtiString,
}

impl FloatValue for NamedArray {
    fn decode(tag: u16, data: &[u8]) -> Result<Self, Invalid> {
        let (&index, rest) = data
            .split_first()
            .ok_or(Invalid::FieldLength { tag, len: 0 })?;
        // Report the whole field's length, not the part after the index.
        let (name, value) = split_name(tag, rest).map_err(|_| Invalid::FieldLength {
            tag,
            len: data.len(),
        })?;
        Ok(NamedArray {
            index,
            name: CtiString(name.to_vec()),
            value: CtiString(strip_nul(value).to_vec()),
        })
    }
    fn data_len(&self) -> usize {
        1 + self.name.data_len() + self.value.data_len()
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.push(self.index);
        self.name.write(out);
        self.value.write(out);
    }
    fn view(&self) -> FieldValue<'_> {
        FieldValue::NamedArray {
            index: self.index,
            name: self.name.as_bytes(),
            value: self.value.as_bytes(),
        }
    }
}

impl<'a> Arbitrary<'a> for NamedArray {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(NamedArray {
            index: u.arbitrary()?,
            name: CtiString(arbitrary_text(u, 32)?),
            value: CtiString(arbitrary_text(u, ARBITRARY_MAX_STR)?),
        })
    }
}

impl fmt::Display for FieldValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match self {
            FieldValue::Int(i) => write!(f, "{i}"),
            FieldValue::Str(s) => write!(f, "{:?}", text(s)),
            FieldValue::Bytes(b) => {
                for x in *b {
                    write!(f, "{x:02x}")?;
                }
                Ok(())
            }
            FieldValue::NamedVar { name, value } => write!(f, "{}={:?}", text(name), text(value)),
            FieldValue::NamedArray { index, name, value } => {
                write!(f, "{}[{index}]={:?}", text(name), text(value))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_accepted_without_nul_and_sent_with_one() {
        let s = CtiString::decode(1, b"bridge").unwrap();
        assert_eq!(s.as_bytes(), b"bridge");
        let mut out = Vec::new();
        s.write(&mut out);
        assert_eq!(out, b"bridge\0");
        assert_eq!(
            CtiString::decode(1, b"ab\0").unwrap(),
            CtiString::from("ab")
        );
    }

    #[test]
    fn named_variable_needs_a_nul_after_its_name() {
        assert!(NamedVar::decode(82, b"novalue").is_err());
        let v = NamedVar::decode(82, b"user.x\0val\0").unwrap();
        assert_eq!(
            (v.name.as_bytes(), v.value.as_bytes()),
            (&b"user.x"[..], &b"val"[..])
        );
    }

    #[test]
    fn integer_field_of_wrong_length_is_an_error() {
        assert_eq!(
            u32::decode(121, &[1, 2]),
            Err(Invalid::FieldLength { tag: 121, len: 2 })
        );
    }
}
