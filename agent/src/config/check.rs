//! Validation: the per-setting checks a declaration names ([`Check`]) and the checks that
//! involve two settings ([`Settings::problems`]).

use std::{cmp::Ordering, net::SocketAddr, path::PathBuf, time::Duration};

use ipnet::IpNet;
use picket_detect::{allowlist::PortNet, detector::Rule};

use super::{settings::Settings, value::Value};
use crate::{
    loader::{Hook, XdpModeArg},
    output::Format,
};

/// The check of one setting's value (for lists: of each element). The command line applies
/// it while parsing a flag, a file while reading a key, and [`Settings::problems`] to the
/// merged settings.
#[derive(Clone, Copy, Debug)]
pub enum Check<T> {
    /// Anything of the type.
    Any,
    /// At least this.
    Min(T),
    /// At most this.
    Max(T),
    /// Within these bounds (inclusive).
    Within(T, T),
    /// Above zero (and finite).
    Positive,
    /// A custom test, and how the file's comments describe it.
    Custom(fn(&T) -> Result<(), String>, &'static str),
}

/// What the checks need of a type: an order (none for value enums) and what
/// [`Check::Positive`] means for it.
pub trait Checked: Value {
    /// How two values compare.
    fn order(&self, other: &Self) -> Option<Ordering>;
    /// The reason a value fails [`Check::Positive`], if it does.
    fn not_positive(&self) -> Option<String>;
}

impl Checked for f64 {
    fn order(&self, other: &Self) -> Option<Ordering> {
        self.partial_cmp(other)
    }
    fn not_positive(&self) -> Option<String> {
        (!(*self > 0.0 && self.is_finite())).then(|| format!("{self} is not a positive number"))
    }
}

macro_rules! ordered {
    ($($t:ty),*) => {$(
        impl Checked for $t {
            fn order(&self, other: &Self) -> Option<Ordering> {
                self.partial_cmp(other)
            }
            fn not_positive(&self) -> Option<String> {
                (*self == <$t>::default()).then(|| "must be greater than 0".to_string())
            }
        }
    )*};
}
ordered!(u32, u64, Duration, String, PathBuf);

/// Types without an order: only [`Check::Any`] and [`Check::Custom`] apply.
macro_rules! unordered {
    ($($t:ty),*) => {$(
        impl Checked for $t {
            fn order(&self, _: &Self) -> Option<Ordering> {
                None
            }
            fn not_positive(&self) -> Option<String> {
                None
            }
        }
    )*};
}
unordered!(
    bool, IpNet, PortNet, SocketAddr, Hook, XdpModeArg, Format, Rule
);

impl<T: Checked> Check<T> {
    /// Ok, or why `v` fails.
    pub fn test(&self, v: &T) -> Result<(), String> {
        let fail = match self {
            Check::Any => None,
            Check::Min(m) => (v.order(m) == Some(Ordering::Less))
                .then(|| format!("{} is below the minimum {}", v.show(), m.show())),
            Check::Max(m) => (v.order(m) == Some(Ordering::Greater))
                .then(|| format!("{} is above the maximum {}", v.show(), m.show())),
            Check::Within(a, b) => (v.order(a) == Some(Ordering::Less)
                || v.order(b) == Some(Ordering::Greater))
            .then(|| format!("{} is out of range ({}..={})", v.show(), a.show(), b.show())),
            Check::Positive => v.not_positive(),
            Check::Custom(f, _) => f(v).err(),
        };
        fail.map_or(Ok(()), Err)
    }

    /// The rule in words (for the help and the default file), if there is one.
    pub fn describe(&self) -> Option<String> {
        match self {
            Check::Any => None,
            Check::Min(m) => Some(format!("at least {}", m.show())),
            Check::Max(m) => Some(format!("at most {}", m.show())),
            Check::Within(a, b) => Some(format!("{}..={}", a.show(), b.show())),
            Check::Positive => Some("greater than 0".into()),
            Check::Custom(_, what) => Some(what.to_string()),
        }
    }
}

/// An interface name the kernel could have.
pub fn interface_name(name: &String) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '\0']) {
        return Err(format!(
            "{name:?} is not an interface name (1 to 15 characters, no '/' or space)"
        ));
    }
    Ok(())
}

/// One problem with a setting: the key path (`thresholds.port_scan_ports`, `allow[1]`) and
/// why.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// Key path in the file.
    pub key: String,
    /// What is wrong.
    pub reason: String,
    /// Other keys the check compared this one with (a file that failed to set one of them
    /// does not get this problem: it would be about a default).
    pub also: &'static [&'static str],
}

impl Settings {
    /// Values out of range, and combinations that do not make sense.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = self.own_problems();
        let fine = |out: &[Problem], keys: &[&str]| !out.iter().any(|p| keys.contains(&&*p.key));
        if fine(&out, &["poll_interval", "window"]) && self.window < self.poll_interval {
            out.push(Problem {
                key: "window".into(),
                reason: format!(
                    "{} must be at least poll_interval ({})",
                    self.window.show(),
                    self.poll_interval.show()
                ),
                also: &["poll_interval"],
            });
        }
        if fine(&out, &["capture_file_bytes", "capture_max_bytes"])
            && self.capture_max_bytes < self.capture_file_bytes
        {
            out.push(Problem {
                key: "capture_max_bytes".into(),
                reason: format!(
                    "{} must be at least capture_file_bytes ({})",
                    self.capture_max_bytes, self.capture_file_bytes
                ),
                also: &["capture_file_bytes"],
            });
        }
        out
    }
}
