//! The self-contained HTML report: the text report's sections as sortable HTML tables, and
//! interactive charts (zoom, pan, values on hover, alert episodes as bands, a conversation
//! heatmap) drawn by ECharts, inlined from `analyze/vendor/echarts` (Apache-2.0) so the page
//! works offline: no external resources.

use anyhow::Result;

use super::{
    layout::{Section, Table, sections},
    report::Report,
};

/// ECharts 5.6.0 (`dist/echarts.min.js` of the npm package), and its license.
const ECHARTS: &str = include_str!("../vendor/echarts/echarts.min.js");
/// The page's own script: the charts and the sortable tables.
const SCRIPT: &str = include_str!("report.js");

/// The charts: element id, title.
pub const CHARTS: [(&str, &str); 6] = [
    ("chart-traffic", "Bytes over time by protocol"),
    ("chart-packets", "Packets over time, and the largest packet"),
    ("chart-connections", "TCP connections opened per minute"),
    (
        "chart-heatmap",
        "Conversations between the busiest addresses (bytes)",
    ),
    ("chart-talkers", "Top sources by bytes sent"),
    ("chart-sizes", "Packet sizes"),
];

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222;max-width:1200px}\
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.6em 0 1.2em}caption{text-align:left;font-weight:bold;padding:.3em 0}\
th,td{border:1px solid #ddd;padding:.2em .6em;font-size:.9em;vertical-align:top}th{background:#f3f3f3}\
td.n{text-align:right;font-variant-numeric:tabular-nums}td{word-break:break-all}\
figure{margin:1em 0}figure svg{max-width:100%;height:auto}figcaption{font-size:.9em;color:#555}\
p.line{margin:.2em 0;font-family:monospace;white-space:pre-wrap}\
div.chart{width:100%;height:360px}th{cursor:pointer}th[data-dir=asc]::after{content:' \\25B2'}\
th[data-dir=desc]::after{content:' \\25BC'}#zoom-range{font-family:monospace;font-size:.9em}";

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
            out.push_str(
                "<p>Wheel or slider to zoom, drag to pan, hover for values; alert episodes are \
                 red bands. Time range shown: <span id=\"zoom-range\"></span></p>\n",
            );
            for (id, title) in CHARTS {
                out.push_str(&format!(
                    "<figure>\n<figcaption>{}</figcaption>\n<div class=\"chart\" id=\"{id}\"></div>\n</figure>\n",
                    escape(title)
                ));
            }
            out.push_str("</section>\n");
        }
    }
    // The data, as JSON that cannot close the script element.
    let data = serde_json::to_string(r)?.replace("</", "<\\/");
    out.push_str(&format!(
        "<script type=\"application/json\" id=\"picket-data\">{data}</script>\n"
    ));
    out.push_str(&format!(
        "<script>{ECHARTS}</script>\n<script>{SCRIPT}</script>\n"
    ));
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
    out.push_str("<table class=\"sortable\">\n");
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
