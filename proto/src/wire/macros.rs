//! Code generators shared by the wire modules.

/// Declares a `Copy` enum for a numeric protocol code with an extra `Unknown(raw)` variant, plus
/// `From` conversions both ways, so that an unrecognised code can be logged and re-emitted
/// instead of failing the parse. Each known variant also gets a `name()` as the spec spells it.
macro_rules! enum_with_unknown {
    (
        $( #[$enum_attr:meta] )*
        pub enum $name:ident($ty:ty) {
            $(
                $( #[$variant_attr:meta] )*
                $variant:ident = $value:expr => $text:expr
            ),+ $(,)?
        }
    ) => {
        $( #[$enum_attr] )*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $(
                $( #[$variant_attr] )*
                $variant
            ),+,
            /// A value this implementation does not know; kept so it re-emits unchanged.
            Unknown($ty),
        }

        impl ::core::convert::From<$ty> for $name {
            fn from(value: $ty) -> Self {
                match value {
                    $( $value => $name::$variant ),+,
                    other => $name::Unknown(other),
                }
            }
        }

        impl ::core::convert::From<$name> for $ty {
            fn from(value: $name) -> Self {
                match value {
                    $( $name::$variant => $value ),+,
                    $name::Unknown(other) => other,
                }
            }
        }

        impl $name {
            /// The name the kernel sources and the spec use for this value.
            pub fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+,
                    $name::Unknown(_) => "UNKNOWN",
                }
            }
        }
    };
}
