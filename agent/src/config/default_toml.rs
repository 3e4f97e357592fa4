//! `picket config default`: the documented default file, written from the declaration.

use super::{
    declare::{How, Key, Section},
    settings::{KEYS, Settings, TABLES},
};

const HEADER: &str = "\
# Picket configuration (TOML). Every key is optional: a missing key takes the value shown,
# which is the built-in default. Command-line flags override this file (a list given with
# flags replaces the file's list). Check a file with `picket config check FILE`.
# SIGHUP makes a running picket reload [thresholds], `allow`, `ignore_scanners` and
# `ignore_scanned` from this file; other keys take effect at the next start.
";

/// Width of the comment lines.
const WIDTH: usize = 92;

/// The documented default configuration file: every key at its default value, each with
/// its help, flag and check; keys without a default are commented out with an example.
pub fn default_toml() -> String {
    let defaults = Settings::default().to_table();
    let mut out = String::from(HEADER);
    for (group, doc) in [(None, None)].into_iter().chain(
        TABLES
            .iter()
            .map(|(name, doc, _)| (Some(*name), Some(*doc))),
    ) {
        out.push('\n');
        if let (Some(name), Some(doc)) = (group, doc) {
            let flags: Vec<String> = keys_of(group).map(|k| format!("--{}", k.flag)).collect();
            comment(&mut out, &format!("{doc} Flags: {}.", flags.join(", ")));
            out.push_str(&format!("[{name}]\n"));
        }
        let table = match group {
            None => Some(&defaults),
            Some(g) => defaults.get(g).and_then(|v| v.as_table()),
        };
        for key in keys_of(group) {
            comment(&mut out, &describe(key));
            let value = table.and_then(|t| t.get(key.name));
            let example = (key.example)();
            match (value, example) {
                (Some(v), Some(e)) if key.how == How::Append => {
                    out.push_str(&format!("# e.g. {} = {e}\n{} = {v}\n", key.name, key.name))
                }
                (Some(v), _) => out.push_str(&format!("{} = {v}\n", key.name)),
                (None, Some(e)) => out.push_str(&format!("# {} = {e}\n", key.name)),
                (None, None) => out.push_str(&format!("# {} =\n", key.name)),
            }
        }
    }
    out
}

fn keys_of(group: Option<&'static str>) -> impl Iterator<Item = &'static Key> {
    KEYS.iter().filter(move |k| k.group == group)
}

/// A key's comment: help, flag, allowed values and rule, and whether SIGHUP applies it.
fn describe(key: &Key) -> String {
    let mut text = key.help.to_string();
    let flag = match key.how {
        How::Off => format!("--{} sets false", key.flag),
        How::On => format!("--{} sets true", key.flag),
        _ => format!("--{}", key.flag),
    };
    let mut notes = vec![flag];
    if !key.choices.is_empty() {
        let quoted: Vec<String> = key.choices.iter().map(|c| format!("{c:?}")).collect();
        notes.push(format!("one of {}", quoted.join(", ")));
    }
    if let Some(rule) = (key.rule)() {
        notes.push(rule);
    }
    if key.group.is_none() && key.is_in(Section::Reload) {
        notes.push("reloaded on SIGHUP".into());
    }
    text.push_str(&format!(" ({})", notes.join("; ")));
    text
}

/// Appends `text` as `# ` comment lines of at most [`WIDTH`] characters.
fn comment(out: &mut String, text: &str) {
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() > 1 && line.len() + 1 + word.len() > WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}
