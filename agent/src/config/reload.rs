//! SIGHUP: the settings again from the file and the flags, and what changed.

use std::{collections::BTreeMap, path::Path};

use super::{
    declare::Section,
    settings::{Flags, KEYS, Settings},
};

impl Settings {
    /// A one-line description of what a reload from `self` to `new` changes, and which
    /// changes only take effect after a restart.
    pub fn describe_reload(&self, new: &Settings) -> String {
        let (old_v, new_v) = (table_of(self), table_of(new));
        let mut applied = Vec::new();
        let mut restart = Vec::new();
        for (key, value) in &new_v {
            let before = old_v.get(key);
            if before == Some(value) {
                continue;
            }
            let shown = |v: Option<&toml::Value>| v.map_or("(none)".into(), |v| v.to_string());
            let change = format!("{key} {} -> {}", shown(before), shown(Some(value)));
            let reloadable = KEYS
                .iter()
                .any(|k| k.key == key && k.is_in(Section::Reload));
            if reloadable {
                applied.push(change);
            } else {
                restart.push(key.clone());
            }
        }
        let mut line = if applied.is_empty() {
            "thresholds and allowlist unchanged".to_string()
        } else {
            applied.join(", ")
        };
        if !restart.is_empty() {
            line.push_str(&format!(
                " (changes to {} take effect after a restart)",
                restart.join(", ")
            ));
        }
        line
    }
}

/// Settings as a flat map of dotted keys to values (for comparisons).
pub(super) fn table_of(s: &Settings) -> BTreeMap<String, toml::Value> {
    let mut out = BTreeMap::new();
    for (k, v) in s.to_table() {
        match v {
            toml::Value::Table(t) => {
                for (k2, v2) in t {
                    out.insert(format!("{k}.{k2}"), v2);
                }
            }
            v => {
                out.insert(k, v);
            }
        }
    }
    out
}

/// On SIGHUP: the settings from the file and the flags again, or `None` (after one line on
/// stderr saying why) when there is no file or it is invalid. Only thresholds and the
/// allowlist are meant to be applied; the line says which other changes need a restart.
pub fn reload(config: Option<&Path>, flags: &Flags, current: &Settings) -> Option<Settings> {
    let Some(path) = config else {
        tracing::info!("SIGHUP: nothing to reload (no --config file)");
        return None;
    };
    match Settings::load(Some(path), flags) {
        Ok(new) => {
            tracing::info!(
                "reloaded {}: {}",
                path.display(),
                current.describe_reload(&new)
            );
            Some(new)
        }
        Err(e) => {
            let e = format!("{e:#}").replace('\n', "; ");
            tracing::warn!(
                "reload of {} failed, keeping the current settings: {e}",
                path.display()
            );
            None
        }
    }
}
