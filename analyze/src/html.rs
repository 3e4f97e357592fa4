//! The self-contained HTML report: the text report's sections as HTML tables, and every chart
//! as inline SVG. No scripts, no external resources.

use anyhow::Result;

use super::{
    charts::{self, Chart},
    layout::{Section, Table, sections},
    report::Report,
};

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222;max-width:1200px}\
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.6em 0 1.2em}caption{text-align:left;font-weight:bold;padding:.3em 0}\
th,td{border:1px solid #ddd;padding:.2em .6em;font-size:.9em;vertical-align:top}th{background:#f3f3f3}\
td.n{text-align:right;font-variant-numeric:tabular-nums}td{word-break:break-all}\
figure{margin:1em 0}figure svg{max-width:100%;height:auto}figcaption{font-size:.9em;color:#555}\
p.line{margin:.2em 0;font-family:monospace;white-space:pre-wrap}";

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The page.
pub fn render(r: &Report) -> Result<String> {
    let names: Vec<&str> = r.inputs.iter().map(|i| i.name.as_str()).collect();
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str(&format!(
        "<title>picket analyze: {}</title>\n",
        escape(&names.join(", "))
    ));
    out.push_str(&format!("<style>{STYLE}</style>\n</head>\n<body>\n"));
    out.push_str(&format!(
        "<h1>picket analyze: {}</h1>\n",
        escape(&names.join(", "))
    ));
    for s in sections(r) {
        section(&mut out, &s);
        if s.id == "totals" {
            out.push_str("<section id=\"charts\">\n<h2>Charts</h2>\n");
            for c in Chart::ALL {
                let svg = charts::svg(r, c)?;
                // Inline: drop any XML declaration before the <svg> element.
                let svg = svg.find("<svg").map_or(svg.as_str(), |i| &svg[i..]);
                out.push_str(&format!(
                    "<figure id=\"chart-{}\">\n{svg}\n<figcaption>{}</figcaption>\n</figure>\n",
                    c.name(),
                    escape(c.title())
                ));
            }
            out.push_str("</section>\n");
        }
    }
    out.push_str("</body>\n</html>\n");
    Ok(out)
}

fn section(out: &mut String, s: &Section) {
    out.push_str(&format!(
        "<section id=\"{}\">\n<h2>{}</h2>\n",
        s.id,
        escape(s.title)
    ));
    for l in &s.lines {
        out.push_str(&format!("<p class=\"line\">{}</p>\n", escape(l)));
    }
    for t in &s.tables {
        table(out, t);
    }
    out.push_str("</section>\n");
}

fn table(out: &mut String, t: &Table) {
    out.push_str("<table>\n");
    if !t.caption.is_empty() {
        out.push_str(&format!("<caption>{}</caption>\n", escape(&t.caption)));
    }
    out.push_str("<tr>");
    for c in &t.columns {
        out.push_str(&format!("<th>{}</th>", escape(c.header)));
    }
    out.push_str("</tr>\n");
    for row in &t.rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            let class = if t.is_numeric(i) { " class=\"n\"" } else { "" };
            out.push_str(&format!("<td{class}>{}</td>", escape(cell)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }
}
