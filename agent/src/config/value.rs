//! The value types of settings: how each is parsed from a flag, read from a file value,
//! written back to TOML and shown as a default. One impl per type, not per setting.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use ipnet::IpNet;
use picket_detect::{allowlist::PortNet, detector::Rule};
use serde::Deserialize;
use toml::{
    Spanned,
    de::{DeValue, ValueDeserializer},
};

use crate::{loader::Hook, loader::XdpModeArg, output::Format, parse};

/// A type a setting (or, for lists, each element of one) can have.
pub trait Value: Sized + Clone {
    /// Placeholder of the flag's value in the help.
    const VALUE_NAME: &'static str;
    /// The only values allowed, for value enums (listed in the help); empty: any.
    const CHOICES: &'static [&'static str] = &[];
    /// Parses a command-line value.
    fn parse_flag(s: &str) -> Result<Self, String>;
    /// Reads a value of a file; the error applies to the whole value.
    fn read(v: &Spanned<DeValue<'_>>) -> Result<Self, String>;
    /// The value in a file.
    fn write(&self) -> toml::Value;
    /// The value as the help shows it.
    fn show(&self) -> String;
}

/// Deserializes `v` as `T` with serde; the error is serde's message.
fn de<T: for<'de> Deserialize<'de>>(v: &Spanned<DeValue<'_>>) -> Result<T, String> {
    T::deserialize(ValueDeserializer::from(v.clone())).map_err(|e| e.message().to_string())
}

/// A string of the file, then `parse` on it.
fn de_str<T>(
    v: &Spanned<DeValue<'_>>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, String> {
    parse(&de::<String>(v)?)
}

/// Why a value that should be a list is not (serde's message).
pub fn not_a_list(v: &Spanned<DeValue<'_>>) -> String {
    de::<Vec<toml::Value>>(v)
        .err()
        .unwrap_or_else(|| "expected an array".into())
}

macro_rules! numbers {
    ($($t:ty => $name:literal, $write:expr;)*) => {$(
        impl Value for $t {
            const VALUE_NAME: &'static str = $name;
            fn parse_flag(s: &str) -> Result<Self, String> {
                s.parse().map_err(|_| format!("{s:?} is not a number"))
            }
            fn read(v: &Spanned<DeValue<'_>>) -> Result<Self, String> {
                de(v)
            }
            fn write(&self) -> toml::Value {
                $write(*self)
            }
            fn show(&self) -> String {
                self.to_string()
            }
        }
    )*};
}

numbers! {
    u32 => "N", |v: u32| toml::Value::Integer(v.into());
    u64 => "BYTES", |v: u64| toml::Value::Integer(v as i64);
    f64 => "RATE", toml::Value::Float;
}

impl Value for bool {
    const VALUE_NAME: &'static str = "BOOL";
    fn parse_flag(s: &str) -> Result<Self, String> {
        s.parse().map_err(|_| format!("{s:?} is not true or false"))
    }
    fn read(v: &Spanned<DeValue<'_>>) -> Result<Self, String> {
        de(v)
    }
    fn write(&self) -> toml::Value {
        toml::Value::Boolean(*self)
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

impl Value for Duration {
    const VALUE_NAME: &'static str = "DURATION";
    fn parse_flag(s: &str) -> Result<Self, String> {
        parse::parse_duration(s)
    }
    fn read(v: &Spanned<DeValue<'_>>) -> Result<Self, String> {
        de_str(v, |s| {
            parse::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))
        })
    }
    fn write(&self) -> toml::Value {
        toml::Value::String(self.show())
    }
    fn show(&self) -> String {
        humantime::format_duration(*self).to_string()
    }
}

/// Types that are strings in files and on the command line.
macro_rules! strings {
    ($($t:ty => $name:literal, $parse:expr;)*) => {$(
        impl Value for $t {
            const VALUE_NAME: &'static str = $name;
            fn parse_flag(s: &str) -> Result<Self, String> {
                $parse(s)
            }
            fn read(v: &Spanned<DeValue<'_>>) -> Result<Self, String> {
                de_str(v, $parse)
            }
            fn write(&self) -> toml::Value {
                toml::Value::String(self.show())
            }
            fn show(&self) -> String {
                self.to_string()
            }
        }
    )*};
}

strings! {
    String => "STRING", |s: &str| Ok::<_, String>(s.to_string());
    IpNet => "CIDR", parse::parse_net;
    PortNet => "CIDR[:PORT]", |s: &str| s.parse::<PortNet>();
    SocketAddr => "ADDR:PORT", parse::parse_metrics_addr;
    Rule => "RULE", |s: &str| s.parse::<Rule>().map_err(|_| format!("{s:?} is not a rule \
        (port_scan, host_sweep, syn_flood, udp_flood, icmp_flood)"));
}

impl Value for PathBuf {
    const VALUE_NAME: &'static str = "PATH";
    fn parse_flag(s: &str) -> Result<Self, String> {
        Ok(s.into())
    }
    fn read(v: &Spanned<DeValue<'_>>) -> Result<Self, String> {
        de(v)
    }
    fn write(&self) -> toml::Value {
        toml::Value::String(self.show())
    }
    fn show(&self) -> String {
        self.display().to_string()
    }
}

/// Value enums: their serde names (also their flag values, checked by a test).
macro_rules! enums {
    ($($t:ty => [$($choice:literal),*];)*) => {$(
        impl Value for $t {
            const VALUE_NAME: &'static str = "NAME";
            const CHOICES: &'static [&'static str] = &[$($choice),*];
            fn parse_flag(s: &str) -> Result<Self, String> {
                use serde::de::IntoDeserializer as _;
                let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
                    s.into_deserializer();
                <$t>::deserialize(de).map_err(|e| e.to_string())
            }
            fn read(v: &Spanned<DeValue<'_>>) -> Result<Self, String> {
                de(v)
            }
            fn write(&self) -> toml::Value {
                toml::Value::try_from(self).expect("a value enum serializes as a string")
            }
            fn show(&self) -> String {
                match self.write() {
                    toml::Value::String(s) => s,
                    v => v.to_string(),
                }
            }
        }
    )*};
}

enums! {
    Hook => ["auto", "xdp", "tc", "afpacket"];
    XdpModeArg => ["auto", "driver", "skb"];
    Format => ["auto", "text", "json"];
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choices_round_trip<T: Value + PartialEq + std::fmt::Debug>() {
        for c in T::CHOICES {
            let v = T::parse_flag(c).unwrap();
            assert_eq!(v.show(), *c);
        }
        assert!(T::parse_flag("bogus").is_err());
    }

    #[test]
    fn enum_choices_are_the_serde_names() {
        choices_round_trip::<Hook>();
        choices_round_trip::<XdpModeArg>();
        choices_round_trip::<Format>();
    }
}
