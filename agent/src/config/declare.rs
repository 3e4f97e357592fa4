//! The machinery behind [`super::settings`]: the `declare!` macro turns the one table of
//! settings into the `Settings` struct, its defaults, the flag overlay ([`Flags`]) and its
//! layering, the per-setting checks, the per-key file reader and writer, and the
//! metadata ([`Key`]) the command line, the default file and `flag_of` are made from.

/// How a flag sets its setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// One value replaces the setting.
    Set,
    /// Repeatable; the values given replace the setting's list.
    Append,
    /// A switch that turns the (true by default) setting off.
    Off,
    /// A switch that turns the (false by default) setting on.
    On,
}

/// Where a setting applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// The live agent.
    Live,
    /// `picket analyze` (the same defaults and checks).
    Analyze,
    /// Applied on SIGHUP without a restart.
    Reload,
}

/// What a setting declares, for the command line, the default file and messages.
#[derive(Debug)]
pub struct Key {
    /// Key path in the file (`window`, `thresholds.port_scan_ports`).
    pub key: &'static str,
    /// The table it is in, if not the top level.
    pub group: Option<&'static str>,
    /// The key within its table.
    pub name: &'static str,
    /// Long flag, without `--`.
    pub flag: &'static str,
    /// Short flag.
    pub short: Option<char>,
    /// Placeholder of the flag's value.
    pub value_name: &'static str,
    /// The allowed values, for value enums.
    pub choices: &'static [&'static str],
    /// How the flag sets it.
    pub how: How,
    /// Where it applies.
    pub sections: &'static [Section],
    /// What it does (one sentence or two; the flag's help and the file's comment).
    pub help: &'static str,
    /// Its check in words, if it has one.
    pub rule: fn() -> Option<String>,
    /// Its value in `settings` as the help shows defaults (none for lists, switches and
    /// optional values).
    pub show: fn(&super::Settings) -> Option<String>,
    /// An example value (TOML) for keys without a default.
    pub example: fn() -> Option<String>,
}

impl Key {
    /// Whether the setting applies in `section`.
    pub fn is_in(&self, section: Section) -> bool {
        self.sections.contains(&section)
    }
}

/// A key the file could not set: where, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Bad {
    /// Key path (with `[i]` for a list element).
    pub key: String,
    /// Byte range in the file.
    pub span: std::ops::Range<usize>,
    /// What is wrong.
    pub reason: String,
}

macro_rules! opt {
    () => {
        None
    };
    ($x:expr) => {
        Some($x)
    };
}

macro_rules! first {
    ($x:expr $(, $rest:expr)*) => {
        $x
    };
}

/// The type of a setting's field in [`Flags`].
macro_rules! flag_ty {
    (set $t:ty) => { Option<$t> };
    (list $t:ty) => { Vec<$t> };
    (some $t:ty) => { Option<$t> };
    (off $t:ty) => { bool };
    (on $t:ty) => { bool };
}

macro_rules! how {
    (set) => {
        How::Set
    };
    (some) => {
        How::Set
    };
    (list) => {
        How::Append
    };
    (off) => {
        How::Off
    };
    (on) => {
        How::On
    };
}

/// Stores a parsed flag value.
macro_rules! store {
    (set $slot:expr, $v:expr) => {
        $slot = Some($v)
    };
    (some $slot:expr, $v:expr) => {
        $slot = Some($v)
    };
    (list $slot:expr, $v:expr) => {
        $slot.push($v)
    };
    (off $slot:expr, $v:expr) => {
        $slot = $v
    };
    (on $slot:expr, $v:expr) => {
        $slot = $v
    };
}

/// Applies a flag over a setting.
macro_rules! apply {
    (set $slot:expr, $flag:expr) => {
        if let Some(v) = &$flag {
            $slot = v.clone();
        }
    };
    (some $slot:expr, $flag:expr) => {
        if $flag.is_some() {
            $slot = $flag.clone();
        }
    };
    (list $slot:expr, $flag:expr) => {
        if !$flag.is_empty() {
            $slot = $flag.clone();
        }
    };
    (off $slot:expr, $flag:expr) => {
        if $flag {
            $slot = false;
        }
    };
    (on $slot:expr, $flag:expr) => {
        if $flag {
            $slot = true;
        }
    };
}

/// The values of a setting its check applies to, with their key paths.
macro_rules! items {
    (set $key:expr, $v:expr) => {
        vec![($key.to_string(), $v)]
    };
    (off $key:expr, $v:expr) => {
        vec![($key.to_string(), $v)]
    };
    (on $key:expr, $v:expr) => {
        vec![($key.to_string(), $v)]
    };
    (some $key:expr, $v:expr) => {
        $v.iter().map(|x| ($key.to_string(), x)).collect::<Vec<_>>()
    };
    (list $key:expr, $v:expr) => {
        $v.iter()
            .enumerate()
            .map(|(i, x)| (format!("{}[{i}]", $key), x))
            .collect::<Vec<_>>()
    };
}

/// Reads a file's value into a setting, or records why not.
macro_rules! read {
    (set $t:ty, $key:expr, $v:expr, $slot:expr, $bad:expr) => {
        read!(@one $t, $key, $v, $slot, $bad, |x| x)
    };
    (off $t:ty, $key:expr, $v:expr, $slot:expr, $bad:expr) => {
        read!(@one $t, $key, $v, $slot, $bad, |x| x)
    };
    (on $t:ty, $key:expr, $v:expr, $slot:expr, $bad:expr) => {
        read!(@one $t, $key, $v, $slot, $bad, |x| x)
    };
    (some $t:ty, $key:expr, $v:expr, $slot:expr, $bad:expr) => {
        read!(@one $t, $key, $v, $slot, $bad, Some)
    };
    (@one $t:ty, $key:expr, $v:expr, $slot:expr, $bad:expr, $wrap:expr) => {
        match <$t as Value>::read($v) {
            Ok(x) => $slot = $wrap(x),
            Err(reason) => $bad.push(Bad {
                key: $key.to_string(),
                span: $v.span(),
                reason,
            }),
        }
    };
    (list $t:ty, $key:expr, $v:expr, $slot:expr, $bad:expr) => {
        match $v.get_ref() {
            DeValue::Array(items) => {
                let before = $bad.len();
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match <$t as Value>::read(item) {
                        Ok(x) => out.push(x),
                        Err(reason) => $bad.push(Bad {
                            key: format!("{}[{i}]", $key),
                            span: item.span(),
                            reason,
                        }),
                    }
                }
                if $bad.len() == before {
                    $slot = out;
                }
            }
            _ => $bad.push(Bad {
                key: $key.to_string(),
                span: $v.span(),
                reason: super::value::not_a_list($v),
            }),
        }
    };
}

/// A setting's value in a file (none: the key is left out).
macro_rules! write {
    (set $v:expr) => {
        Some(Value::write($v))
    };
    (off $v:expr) => {
        Some(Value::write($v))
    };
    (on $v:expr) => {
        Some(Value::write($v))
    };
    (some $v:expr) => {
        $v.as_ref().map(Value::write)
    };
    (list $v:expr) => {
        Some(toml::Value::Array($v.iter().map(Value::write).collect()))
    };
}

/// A setting's default as the help shows it.
macro_rules! show {
    (set $v:expr) => {
        Some(Value::show($v))
    };
    ($other:ident $v:expr) => {{
        let _ = $v;
        None
    }};
}

/// Makes the struct of a table the declaration owns; tables whose struct lives elsewhere
/// (`external`) only get their fields checked by the defaults' struct literal.
macro_rules! table_struct {
    (external $ty:ident $doc:literal { $($field:ident : $fty:ty, $help:literal;)* }) => {};
    (new $ty:ident $doc:literal { $($field:ident : $fty:ty, $help:literal;)* }) => {
        #[doc = $doc]
        #[derive(Clone, Debug, PartialEq)]
        pub struct $ty {
            $(#[doc = $help] pub $field: $fty,)*
        }
    };
}

/// The declaration's expansion; see [`super::settings`] for the table's grammar.
macro_rules! declare {
    (
        top {
            $($field:ident : $ty:ty {
                default: $default:expr,
                flag: $how:ident($item:ty) $flag:literal $(short $short:literal)? $(value $vname:literal)?,
                check: $check:expr,
                in: [$($section:ident),*],
                help: $help:literal
                $(, example: $example:expr)?
                $(,)?
            })*
        }
        $(table $group:ident : $kind:ident $gty:ident ($gdoc:literal) {
            $($gfield:ident : $gfty:ty {
                default: $gdefault:expr,
                flag: $ghow:ident($gitem:ty) $gflag:literal $(short $gshort:literal)? $(value $gvname:literal)?,
                check: $gcheck:expr,
                in: [$($gsection:ident),*],
                help: $ghelp:literal
                $(, example: $gexample:expr)?
                $(,)?
            })*
        })*
    ) => {
        /// Everything the live agent is configured with (declared in [`super::settings`]).
        #[derive(Clone, Debug, PartialEq)]
        pub struct Settings {
            $(#[doc = $help] pub $field: $ty,)*
            $(#[doc = $gdoc] pub $group: $gty,)*
        }

        $(table_struct!($kind $gty $gdoc { $($gfield: $gfty, $ghelp;)* });)*

        impl Default for Settings {
            fn default() -> Self {
                Settings {
                    $($field: $default,)*
                    $($group: $gty { $($gfield: $gdefault,)* },)*
                }
            }
        }

        /// Top-level keys of the file: settings and tables.
        pub const TOP_KEYS: &[&str] = &[$(stringify!($field),)* $(stringify!($group),)*];

        /// The tables of the file, with what they hold.
        pub const TABLES: &[(&str, &str, &[&str])] =
            &[$((stringify!($group), $gdoc, &[$(stringify!($gfield)),*]),)*];

        declare!(@flat
            $({ ; $field : $ty : $item ; $how ; $flag ; [$($short)?] ; [$($vname)?] ; $check ;
                [$($section),*] ; $help ; [$($example)?] })*
            $($({ $group ; $gfield : $gfty : $gitem ; $ghow ; $gflag ; [$($gshort)?] ;
                [$($gvname)?] ; $gcheck ; [$($gsection),*] ; $ghelp ; [$($gexample)?] })*)*
        );
    };
    (@flat $({
        $($g:ident)? ; $name:ident : $ty:ty : $item:ty ; $how:ident ; $flag:literal ;
        [$($short:literal)?] ; [$($vname:literal)?] ; $check:expr ; [$($section:ident),*] ;
        $help:literal ; [$($example:expr)?]
    })*) => {
        /// Settings given on the command line, each unset unless given; laid over the
        /// settings by [`Settings::with_flags`]. Built by the command line (`crate::cli`)
        /// with [`Flags::set`], which parses and checks like the file.
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct Flags {
            $(#[doc = $help] pub $name: flag_ty!($how $item),)*
        }

        impl Flags {
            /// Parses `raw` as the flag of `key` (a key path), checks it and stores it.
            pub fn set(&mut self, key: &str, raw: &str) -> Result<(), String> {
                match key {
                    $(k if k == concat!($(stringify!($g), ".",)? stringify!($name)) => {
                        let v = <$item as Value>::parse_flag(raw)?;
                        let check: Check<$item> = $check;
                        check.test(&v)?;
                        store!($how self.$name, v);
                    })*
                    _ => return Err(format!("no setting {key:?}")),
                }
                Ok(())
            }
        }

        /// Every setting, in declaration order.
        pub static KEYS: &[Key] = &[$(Key {
            key: concat!($(stringify!($g), ".",)? stringify!($name)),
            group: opt!($(stringify!($g))?),
            name: stringify!($name),
            flag: $flag,
            short: opt!($($short)?),
            value_name: first!($($vname,)? <$item as Value>::VALUE_NAME),
            choices: <$item as Value>::CHOICES,
            how: how!($how),
            sections: &[$(Section::$section),*],
            help: $help,
            rule: {
                fn rule() -> Option<String> {
                    let check: Check<$item> = $check;
                    check.describe()
                }
                rule
            },
            show: {
                fn show(s: &Settings) -> Option<String> {
                    show!($how &s $(.$g)? .$name)
                }
                show
            },
            example: {
                fn example() -> Option<String> {
                    opt!($(($example).to_string())?)
                }
                example
            },
        },)*];

        impl Settings {
            /// These settings with every flag given in `flags` applied over them.
            pub fn with_flags(mut self, flags: &Flags) -> Settings {
                $(apply!($how self $(.$g)? .$name, flags.$name);)*
                self
            }

            /// The settings' own checks (the declared [`Check`] of each).
            pub(super) fn own_problems(&self) -> Vec<Problem> {
                let mut out = Vec::new();
                $({
                    let check: Check<$item> = $check;
                    let key = concat!($(stringify!($g), ".",)? stringify!($name));
                    for (key, v) in items!($how key, &self $(.$g)? .$name) {
                        if let Err(reason) = check.test(v) {
                            out.push(Problem { key, reason, also: &[] });
                        }
                    }
                })*
                out
            }

            /// The defaults with every key of `root` that reads as its type; the keys that
            /// do not, and unknown keys, go to `bad`.
            pub(super) fn read(root: &DeTable<'_>, bad: &mut Vec<Bad>) -> Settings {
                let mut s = Settings::default();
                $({
                    let key = concat!($(stringify!($g), ".",)? stringify!($name));
                    if let Some(v) = super::file::lookup(root, key) {
                        read!($how $item, key, v, s $(.$g)? .$name, bad);
                    }
                })*
                s
            }

            /// The settings as a TOML table (keys without a value left out).
            pub fn to_table(&self) -> toml::Table {
                let mut top = toml::Table::new();
                $({
                    let value: Option<toml::Value> = write!($how &self $(.$g)? .$name);
                    if let Some(v) = value {
                        let group: Option<&str> = opt!($(stringify!($g))?);
                        let table = match group {
                            None => &mut top,
                            Some(g) => top
                                .entry(g)
                                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                                .as_table_mut()
                                .expect("a table"),
                        };
                        table.insert(stringify!($name).into(), v);
                    }
                })*
                top
            }
        }
    };
}

pub(super) use {
    apply, declare, first, flag_ty, how, items, opt, read, show, store, table_struct, write,
};
