//! The declarative message, group and counter-block macros: each message is
//! written once as a list of fixed fields (with the version each appears in)
//! and floating fields (with tag, version range and list count), and the macro
//! derives the struct, its decoder, encoder, version restriction and field
//! visitor from it. The version rules themselves live in `version.rs`.

/// A floating field that appears at most once.
pub type Opt<T> = Option<T>;
/// A floating field repeated with the same tag (named variables and arrays).
pub type List<T> = Vec<T>;
/// A repeated group of consecutive floating fields (parties, skill groups, …).
pub type Group<T> = Vec<T>;

/// Inclusive version range of a floating field: `()` all, `(s)` from s, `(s, u)` s..=u.
macro_rules! version_range {
    () => {
        (0u8, u8::MAX)
    };
    ($since:literal) => {
        ($since, u8::MAX)
    };
    ($since:literal, $until:literal) => {
        ($since, $until)
    };
}

/// First version of a fixed field (`()` = always there).
macro_rules! since {
    () => {
        0u8
    };
    ($since:literal) => {
        $since
    };
}

/// The value a gated fixed field holds at a version without it: the
/// declared one (`field: u32 @ 14 = NULL`), else the type's default.
macro_rules! absent {
    () => {
        Default::default()
    };
    ($absent:expr) => {
        $absent
    };
}

/// Decode step for one floating declaration: consumes `$f` and `continue`s when it matches.
macro_rules! float_take {
    (Opt, $ty:ty, $slot:expr, $f:ident, $tag:ident) => {
        if $f.tag == $crate::proto::tags::$tag {
            $slot = Some(<$ty as $crate::proto::values::FloatValue>::decode(
                $f.tag, $f.data,
            )?);
            continue;
        }
    };
    (List, $ty:ty, $slot:expr, $f:ident, $tag:ident) => {
        if $f.tag == $crate::proto::tags::$tag {
            $slot.push(<$ty as $crate::proto::values::FloatValue>::decode(
                $f.tag, $f.data,
            )?);
            continue;
        }
    };
    (Group, $ty:ty, $slot:expr, $f:ident,) => {
        if <$ty as $crate::proto::group::GroupFields>::accepts($f.tag) {
            <$ty as $crate::proto::group::GroupFields>::take(&mut $slot, $f.tag, $f.data)?;
            continue;
        }
    };
}

/// Encode step for one floating declaration.
macro_rules! float_put {
    (Opt, $ty:ty, $slot:expr, $v:ident, $out:ident, $tag:ident) => {
        if let Some(value) = &$slot {
            $crate::proto::group::put_float($out, $v, $crate::proto::tags::$tag, value);
        }
    };
    (List, $ty:ty, $slot:expr, $v:ident, $out:ident, $tag:ident) => {
        for value in &$slot {
            $crate::proto::group::put_float($out, $v, $crate::proto::tags::$tag, value);
        }
    };
    (Group, $ty:ty, $slot:expr, $v:ident, $out:ident,) => {
        for entry in &$slot {
            <$ty as $crate::proto::group::GroupFields>::encode(entry, $v, $out);
        }
    };
}

/// Visit step for one floating declaration.
macro_rules! float_visit {
    (Opt, $ty:ty, $slot:expr, $name:ident, $visit:ident, $tag:ident) => {
        if let Some(value) = &$slot {
            $visit($crate::proto::Field {
                name: stringify!($name),
                tag: Some($crate::proto::tags::$tag),
                value: $crate::proto::values::FloatValue::view(value),
            });
        }
    };
    (List, $ty:ty, $slot:expr, $name:ident, $visit:ident, $tag:ident) => {
        for value in &$slot {
            $visit($crate::proto::Field {
                name: stringify!($name),
                tag: Some($crate::proto::tags::$tag),
                value: $crate::proto::values::FloatValue::view(value),
            });
        }
    };
    (Group, $ty:ty, $slot:expr, $name:ident, $visit:ident,) => {
        for entry in &$slot {
            <$ty as $crate::proto::group::GroupFields>::visit(entry, $visit);
        }
    };
}

/// Whether a declaration's tag can be written at a version (groups decide per member).
macro_rules! float_tag_fits {
    ($v:ident, $tag:ident) => {
        $crate::proto::tags::$tag <= $v.max_tag()
    };
    ($v:ident,) => {
        true
    };
}

/// List-count check / sync for declarations with `# count_field`.
macro_rules! count_check {
    ($m:ident, $list:ident, $count:ident) => {
        if $m.$count as usize != $m.$list.len() {
            return Err($crate::proto::error::Invalid::ListCount {
                field: stringify!($count),
                count: $m.$count as usize,
                actual: $m.$list.len(),
            });
        }
    };
    ($m:ident, $list:ident,) => {};
}

macro_rules! count_sync {
    ($m:ident, $list:ident, $count:ident) => {
        $m.$count = $m.$list.len() as _;
    };
    ($m:ident, $list:ident,) => {};
}

/// Declares one message type. See `msg/*.rs` for the declarations.
///
/// ```text
/// message! {
///     /// doc
///     pub struct Name = msg::NUMBER, since 13 {
///         fixed_field: u32,
///         gated_field: i32 @ 19,            // exists from version 19
///         null_before: u32 @ 14 = 0xFFFF_FFFF, // what it means before 14
///         statistics: AgentStatistics,      // a `counters!` block
///     }
///     floating {
///         field: Opt<CtiString> = TAG,      // at most once
///         field: Opt<u32> = TAG @ 14,       // from version 14
///         field: Opt<Unspec> = TAG @ 14..=18,
///         vars: List<NamedVar> = NAMED_VARIABLE # num_named_variables,
///         parties: Group<Party> # num_parties,
///     }
/// }
/// ```
macro_rules! message {
    (
        $(#[$meta:meta])*
        pub struct $name:ident = $mmod:ident :: $mtype:ident, since $msince:literal {
            $( $(#[$fmeta:meta])* $fname:ident : $fty:ident
               $(@ $fsince:literal $(= $fabsent:expr)?)? ),* $(,)?
        }
        floating {
            $( $(#[$lmeta:meta])*
               $lname:ident : $kind:ident < $lty:ty > $(= $tag:ident)?
               $(@ $lsince:literal $(..= $luntil:literal)?)?
               $(# $count:ident)? ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Default, arbitrary::Arbitrary)]
        pub struct $name {
            $( $(#[$fmeta])* pub $fname: $fty, )*
            $( $(#[$lmeta])* pub $lname: $crate::proto::macros::$kind<$lty>, )*
        }

        impl $crate::proto::MessageBody for $name {
            const MESSAGE_TYPE: u32 = $mmod::$mtype;
            // The bare constant name (`CALL_DELIVERED_EVENT`), not the path.
            const NAME: &'static str = stringify!($mtype);
            const SINCE: u8 = $msince;

            #[allow(unused_variables)]
            fn fixed_len(version: $crate::proto::Version) -> usize {
                0 $( + if version.has(since!($($fsince)?), u8::MAX) {
                    <$fty as $crate::proto::wire::FixedValue>::SIZE
                } else {
                    0
                } )*
            }

            #[allow(unused_mut, unused_variables)]
            fn decode_body(
                body: &[u8],
                version: $crate::proto::Version,
                options: $crate::proto::DecodeOptions,
            ) -> Result<Self, $crate::proto::error::Invalid> {
                let mut fixed = $crate::proto::wire::FixedReader::new(
                    body, $mmod::$mtype, Self::fixed_len(version))?;
                let mut m = Self::default();
                $( if version.has(since!($($fsince)?), u8::MAX) {
                    m.$fname = fixed.take::<$fty>();
                } else {
                    m.$fname = absent!($($($fabsent)?)?);
                } )*
                let mut fields = $crate::proto::wire::FloatingFields::new(fixed.floating(), version);
                while let Some(f) = fields.next_field()? {
                    $( float_take!($kind, $lty, m.$lname, f, $($tag)?); )*
                    // A tag this message does not declare is skipped: newer
                    // peers may send tags we do not know (forward compatible).
                }
                if options.check_counts {
                    $( count_check!(m, $lname, $($count)?); )*
                }
                Ok(m)
            }

            #[allow(unused_variables)]
            fn encode_body(&self, version: $crate::proto::Version, out: &mut Vec<u8>) {
                $( if version.has(since!($($fsince)?), u8::MAX) {
                    $crate::proto::wire::FixedValue::write(self.$fname, out);
                } )*
                $( {
                    let (lo, hi) = version_range!($($lsince $(, $luntil)?)?);
                    if version.has(lo, hi) {
                        float_put!($kind, $lty, self.$lname, version, out, $($tag)?);
                    }
                } )*
            }

            #[allow(unused_variables)]
            fn restrict_to(&mut self, version: $crate::proto::Version) {
                $( if !version.has(since!($($fsince)?), u8::MAX) {
                    self.$fname = absent!($($($fabsent)?)?);
                } )*
                $( {
                    let (lo, hi) = version_range!($($lsince $(, $luntil)?)?);
                    if !version.has(lo, hi) || !float_tag_fits!(version, $($tag)?) {
                        self.$lname = Default::default();
                    }
                } )*
            }

            #[allow(unused_variables)]
            fn sync_counts(&mut self) {
                let m = self;
                $( count_sync!(m, $lname, $($count)?); )*
            }

            #[allow(unused_variables)]
            fn visit(&self, version: $crate::proto::Version, visit: &mut dyn FnMut($crate::proto::Field<'_>)) {
                $( if version.has(since!($($fsince)?), u8::MAX) {
                    $crate::proto::wire::FixedValue::visit_as(
                        self.$fname, stringify!($fname), visit);
                } )*
                $( float_visit!($kind, $lty, self.$lname, $lname, visit, $($tag)?); )*
            }
        }
    };
}

/// Declares a block of UINT counters that a message carries as one fixed
/// field (the statistics confirmations, docs/protocol.md §12.4): a newtype
/// over `[u32; N]`, written back to back in the order of a const table of
/// counter names, and visited one counter at a time under those names (so a
/// dump or a test names every counter without a struct field per counter).
///
/// ```text
/// counters! {
///     /// doc
///     pub struct Name([u32; 84]) = NAME_TABLE;   // NAME_TABLE: [&str; 84]
/// }
/// ```
macro_rules! counters {
    (
        $(#[$meta:meta])*
        pub struct $name:ident([u32; $len:literal]) = $names:ident;
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, arbitrary::Arbitrary)]
        pub struct $name(pub [u32; $len]);

        impl $name {
            /// Number of counters.
            pub const LEN: usize = $len;
            /// The counters' names, in wire order.
            pub const NAMES: &'static [&'static str; $len] = &$names;

            /// The counter called `name` (one of [`Self::NAMES`]).
            pub fn get(&self, name: &str) -> Option<u32> {
                let at = Self::NAMES.iter().position(|n| *n == name)?;
                Some(self.0[at])
            }

            /// Every counter as (name, value), in wire order.
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, u32)> + '_ {
                Self::NAMES.iter().copied().zip(self.0.iter().copied())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name([0; $len])
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_map().entries(self.iter()).finish()
            }
        }

        impl $crate::proto::wire::FixedValue for $name {
            const SIZE: usize = 4 * $len;

            fn read(bytes: &[u8]) -> Self {
                let mut counters = [0u32; $len];
                let raw = bytes[..Self::SIZE].chunks_exact(4);
                for (counter, b) in counters.iter_mut().zip(raw) {
                    *counter = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                }
                $name(counters)
            }

            fn write(self, out: &mut Vec<u8>) {
                for counter in self.0 {
                    out.extend_from_slice(&counter.to_be_bytes());
                }
            }

            fn visit_as(
                self,
                _name: &'static str,
                visit: &mut dyn FnMut($crate::proto::Field<'_>),
            ) {
                for (name, counter) in self.iter() {
                    visit($crate::proto::Field {
                        name,
                        tag: None,
                        value: $crate::proto::values::FieldValue::Int(i64::from(counter)),
                    });
                }
            }
        }
    };
}

/// Declares a repeated group of floating fields. The first member leads: it
/// always starts a new entry; another member starts one when the current entry
/// already has it (so a group missing its leader still decodes).
macro_rules! group {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $leader:ident : $lty:ty = $ltag:ident,
            $( $member:ident : $mty:ty = $mtag:ident ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            pub $leader: Option<$lty>,
            $( pub $member: Option<$mty>, )*
        }

        impl<'a> arbitrary::Arbitrary<'a> for $name {
            fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
                // The leader is always present, so a generated entry survives
                // a round trip as one entry.
                Ok($name { $leader: Some(u.arbitrary()?), $( $member: u.arbitrary()?, )* })
            }
        }

        impl $crate::proto::group::GroupFields for $name {
            fn accepts(tag: u16) -> bool {
                tag == $crate::proto::tags::$ltag $( || tag == $crate::proto::tags::$mtag )*
            }

            fn take(
                list: &mut Vec<Self>,
                tag: u16,
                data: &[u8],
            ) -> Result<(), $crate::proto::error::Invalid> {
                use $crate::proto::values::FloatValue;
                if tag == $crate::proto::tags::$ltag {
                    list.push($name { $leader: Some(<$lty>::decode(tag, data)?), ..Default::default() });
                    return Ok(());
                }
                $( if tag == $crate::proto::tags::$mtag {
                    let value = <$mty>::decode(tag, data)?;
                    match list.last_mut() {
                        Some(last) if last.$member.is_none() => last.$member = Some(value),
                        _ => list.push($name { $member: Some(value), ..Default::default() }),
                    }
                    return Ok(());
                } )*
                Ok(())
            }

            fn encode(&self, version: $crate::proto::Version, out: &mut Vec<u8>) {
                if let Some(value) = &self.$leader {
                    $crate::proto::group::put_float(out, version, $crate::proto::tags::$ltag, value);
                }
                $( if let Some(value) = &self.$member {
                    $crate::proto::group::put_float(out, version, $crate::proto::tags::$mtag, value);
                } )*
            }

            fn visit(&self, visit: &mut dyn FnMut($crate::proto::Field<'_>)) {
                use $crate::proto::values::FloatValue;
                if let Some(value) = &self.$leader {
                    visit($crate::proto::Field {
                        name: stringify!($leader),
                        tag: Some($crate::proto::tags::$ltag),
                        value: value.view(),
                    });
                }
                $( if let Some(value) = &self.$member {
                    visit($crate::proto::Field {
                        name: stringify!($member),
                        tag: Some($crate::proto::tags::$mtag),
                        value: value.view(),
                    });
                } )*
            }
        }
    };
}
