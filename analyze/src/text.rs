//! The readable text report.

use super::{
    layout::{Section, Table, sections},
    report::Report,
};

/// The report as text: a title line per section, its lines, and aligned tables.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    for s in sections(r) {
        section(&mut out, &s);
    }
    out
}

fn section(out: &mut String, s: &Section) {
    out.push_str(&format!("== {} ==\n", s.title));
    for l in &s.lines {
        out.push_str(&format!("  {l}\n"));
    }
    for t in &s.tables {
        table(out, t);
    }
    out.push('\n');
}

fn table(out: &mut String, t: &Table) {
    if !t.caption.is_empty() {
        out.push_str(&format!("  {}:\n", t.caption));
    }
    let mut widths: Vec<usize> = t.columns.iter().map(|c| c.header.chars().count()).collect();
    for row in &t.rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::from("   ");
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            let pad = w.saturating_sub(cell.chars().count());
            l.push(' ');
            if t.is_numeric(i) {
                l.push_str(&" ".repeat(pad));
                l.push_str(cell);
            } else {
                l.push_str(cell);
                l.push_str(&" ".repeat(pad));
            }
            l.push(' ');
        }
        l.truncate(l.trim_end().len());
        l.push('\n');
        l
    };
    out.push_str(&line(&mut t.columns.iter().map(|c| c.header)));
    for row in &t.rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
}
