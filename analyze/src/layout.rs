//! The report laid out as titled sections of lines and tables, once, for both the text and
//! the HTML output.

use super::report::{Flow, ProtoCount, Report};

/// A table: headers and rows of cells; numeric columns are right-aligned.
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// Caption above the table (may be empty).
    pub caption: String,
    /// Columns: header and kind.
    pub columns: Vec<Column>,
    /// Rows, each as long as `columns`.
    pub rows: Vec<Vec<String>>,
}

/// What a column holds, which decides its alignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    /// Text, left-aligned.
    Text,
    /// Numbers, right-aligned.
    Number,
}

/// A column of a [`Table`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    /// Header.
    pub header: &'static str,
    /// What its cells hold.
    pub kind: ColumnKind,
}

/// A column of text.
const fn text(header: &'static str) -> Column {
    Column {
        header,
        kind: ColumnKind::Text,
    }
}

/// A column of numbers.
const fn num(header: &'static str) -> Column {
    Column {
        header,
        kind: ColumnKind::Number,
    }
}

impl Table {
    fn new(caption: impl Into<String>, columns: &[Column]) -> Self {
        Table {
            caption: caption.into(),
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Whether column `i` holds numbers.
    pub fn is_numeric(&self, i: usize) -> bool {
        self.columns
            .get(i)
            .is_some_and(|c| c.kind == ColumnKind::Number)
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
}

/// A titled part of the report.
#[derive(Clone, Debug)]
pub struct Section {
    /// Anchor (HTML id).
    pub id: &'static str,
    /// Title.
    pub title: &'static str,
    /// Lines of prose.
    pub lines: Vec<String>,
    /// Tables after the lines.
    pub tables: Vec<Table>,
}

impl Section {
    fn new(id: &'static str, title: &'static str) -> Self {
        Section {
            id,
            title,
            lines: Vec::new(),
            tables: Vec::new(),
        }
    }

    fn table(&mut self, t: Table) {
        if !t.rows.is_empty() {
            self.tables.push(t);
        }
    }
}

/// "1.5 MB"-style size.
pub fn human_bytes(b: f64) -> String {
    human(b, "B", 1000.0)
}

/// "12.3 Mbit/s"-style rate.
pub fn human_bits(b: f64) -> String {
    human(b, "bit/s", 1000.0)
}

fn human(v: f64, unit: &str, k: f64) -> String {
    let prefixes = ["", "k", "M", "G", "T", "P"];
    let mut v = v;
    let mut i = 0;
    while v.abs() >= k && i + 1 < prefixes.len() {
        v /= k;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} {unit}")
    } else {
        format!("{v:.1} {}{unit}", prefixes[i])
    }
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "0.0".into()
    } else {
        format!("{:.1}", part as f64 * 100.0 / whole as f64)
    }
}

fn mix(caption: &str, first: Column, rows: &[ProtoCount], total: (u64, u64)) -> Table {
    let mut t = Table::new(
        caption,
        &[
            first,
            text("name"),
            num("packets"),
            num("% packets"),
            num("bytes"),
            num("% bytes"),
        ],
    );
    for r in rows {
        t.row(vec![
            r.id.clone(),
            r.name.clone(),
            r.packets.to_string(),
            pct(r.packets, total.0),
            r.bytes.to_string(),
            pct(r.bytes, total.1),
        ]);
    }
    t
}

/// Most rows of the per-minute connection table.
const MAX_MINUTES: usize = 60;

/// The sections of a report, in order.
pub fn sections(r: &Report) -> Vec<Section> {
    let mut out = Vec::new();
    let tot = &r.totals;

    let mut s = Section::new("inputs", "Inputs");
    let mut t = Table::new(
        "",
        &[
            text("file"),
            text("format"),
            text("byte order"),
            num("sections"),
            num("interfaces"),
            num("packets read"),
            text("status"),
        ],
    );
    for i in &r.inputs {
        t.row(vec![
            i.name.clone(),
            i.format.name().into(),
            if i.big_endian {
                "big-endian"
            } else {
                "little-endian"
            }
            .into(),
            i.sections.to_string(),
            i.interfaces.to_string(),
            i.packets.to_string(),
            if i.truncated {
                "truncated/corrupt"
            } else {
                "ok"
            }
            .into(),
        ]);
    }
    s.table(t);
    out.push(s);

    let mut s = Section::new("totals", "Totals");
    s.lines.push(format!(
        "{} packets, {} bytes on the wire ({}), {} bytes captured",
        tot.packets,
        tot.bytes,
        human_bytes(tot.bytes as f64),
        tot.captured_bytes
    ));
    if let (Some(a), Some(b)) = (&tot.start, &tot.end) {
        s.lines
            .push(format!("from {a} to {b}, {:.3} s", tot.duration_s));
    }
    s.lines.push(format!(
        "{:.1} packets/s, {} on average",
        tot.packets_per_s,
        human_bits(tot.bits_per_s)
    ));
    if tot.unsupported_link_packets > 0 {
        s.lines.push(format!(
            "{} packets of link types that are not decoded",
            tot.unsupported_link_packets
        ));
    }
    out.push(s);

    let mut s = Section::new("link-types", "Link types");
    let mut t = Table::new(
        "",
        &[
            text("link type"),
            num("number"),
            text("decoded"),
            num("packets"),
            num("bytes"),
        ],
    );
    for l in &r.link_types {
        let decoded = if l.supported { "yes" } else { "no" };
        t.row(vec![
            l.name.clone(),
            l.linktype.to_string(),
            decoded.into(),
            l.packets.to_string(),
            l.bytes.to_string(),
        ]);
    }
    s.table(t);
    out.push(s);

    let decoded = r
        .protocols
        .l4
        .iter()
        .fold((0, 0), |a, p| (a.0 + p.packets, a.1 + p.bytes));
    let mut s = Section::new("protocols", "Protocol mix");
    s.table(mix(
        "By EtherType",
        text("ethertype"),
        &r.protocols.ethertypes,
        decoded,
    ));
    s.table(mix(
        "By IP protocol",
        num("number"),
        &r.protocols.ip_protocols,
        decoded,
    ));
    s.table(mix(
        "By transport",
        text("transport"),
        &r.protocols.l4,
        decoded,
    ));
    out.push(s);

    let tt = &r.top_talkers;
    let mut s = Section::new("talkers", "Top talkers");
    s.lines.push(format!(
        "{} sources, {} destinations, {} address pairs",
        tt.sources_distinct, tt.destinations_distinct, tt.conversations_distinct
    ));
    for (caption, list) in [("Sources", &tt.sources), ("Destinations", &tt.destinations)] {
        let mut t = Table::new(
            caption,
            &[
                text("address"),
                num("packets"),
                num("% packets"),
                num("bytes"),
                num("% bytes"),
            ],
        );
        for x in list {
            t.row(vec![
                x.ip.clone(),
                x.packets.to_string(),
                pct(x.packets, tot.packets),
                x.bytes.to_string(),
                pct(x.bytes, tot.bytes),
            ]);
        }
        s.table(t);
    }
    let mut t = Table::new(
        "Conversations (both directions)",
        &[
            text("address A"),
            text("address B"),
            num("packets"),
            num("bytes"),
        ],
    );
    for c in &tt.conversations {
        t.row(vec![
            c.a.clone(),
            c.b.clone(),
            c.packets.to_string(),
            c.bytes.to_string(),
        ]);
    }
    s.table(t);
    out.push(s);

    let tcp = &r.tcp;
    let o = &tcp.outcomes;
    let mut s = Section::new("tcp", "TCP");
    s.lines.push(format!(
        "{} flows: handshake completed {}; closed {}, reset {}, half-open {}, still open {}",
        tcp.flows_total, o.handshake_completed, o.closed, o.reset, o.half_open, o.open
    ));
    let mut t = Table::new(
        "Flows by bytes",
        &[
            text("client"),
            text("server"),
            num("packets"),
            num("bytes"),
            num("duration s"),
            text("flags"),
            text("handshake"),
            text("outcome"),
        ],
    );
    for f in &tcp.flows {
        let mut row = flow_cells(&f.flow);
        row.extend([f.flags.clone(), f.handshake.into(), f.outcome.into()]);
        t.row(row);
    }
    s.table(t);
    let minutes = &tcp.connections_per_minute;
    let mut busiest: Vec<_> = minutes.iter().collect();
    if busiest.len() > MAX_MINUTES {
        busiest.sort_by(|a, b| {
            b.connections
                .cmp(&a.connections)
                .then_with(|| a.minute.cmp(&b.minute))
        });
        busiest.truncate(MAX_MINUTES);
        busiest.sort_by(|a, b| a.minute.cmp(&b.minute));
    }
    let caption = if busiest.len() < minutes.len() {
        format!(
            "Connections started per minute (busiest {} of {} minutes)",
            busiest.len(),
            minutes.len()
        )
    } else {
        "Connections started per minute".into()
    };
    let mut t = Table::new(caption, &[text("minute"), num("connections")]);
    for m in busiest {
        t.row(vec![m.minute.clone(), m.connections.to_string()]);
    }
    s.table(t);
    out.push(s);

    let mut s = Section::new("udp", "UDP");
    s.lines.push(format!("{} flows", r.udp.flows_total));
    let mut t = Table::new(
        "Flows by bytes",
        &[
            text("client"),
            text("server"),
            num("packets"),
            num("bytes"),
            num("duration s"),
        ],
    );
    for f in &r.udp.flows {
        t.row(flow_cells(f));
    }
    s.table(t);
    out.push(s);

    let mut s = Section::new("icmp", "ICMP");
    let mut t = Table::new(
        "",
        &[
            text("version"),
            num("type"),
            num("code"),
            text("message"),
            num("packets"),
            num("bytes"),
        ],
    );
    for m in &r.icmp {
        t.row(vec![
            m.version.into(),
            m.r#type.to_string(),
            m.code.to_string(),
            m.name.clone(),
            m.packets.to_string(),
            m.bytes.to_string(),
        ]);
    }
    if t.rows.is_empty() {
        s.lines.push("none".into());
    }
    s.table(t);
    out.push(s);

    out.push(application(r));

    let mut s = Section::new("tunnels", "Tunnels");
    let mut t = Table::new(
        "",
        &[
            text("kind"),
            text("outer source"),
            text("outer destination"),
            num("vni/key"),
            num("packets"),
            num("bytes"),
            num("inner sources"),
        ],
    );
    for r in &r.tunnels {
        t.row(vec![
            r.kind.into(),
            r.outer_src.clone(),
            r.outer_dst.clone(),
            r.vni.to_string(),
            r.packets.to_string(),
            r.bytes.to_string(),
            r.inner_sources.to_string(),
        ]);
    }
    if t.rows.is_empty() {
        s.lines.push("none".into());
    }
    s.table(t);
    out.push(s);

    let mut s = Section::new("errors", "Parse errors");
    let mut t = Table::new("", &[text("kind"), num("packets")]);
    for e in &r.parse_errors {
        t.row(vec![e.kind.into(), e.packets.to_string()]);
    }
    if t.rows.is_empty() {
        s.lines.push("none".into());
    }
    s.table(t);
    out.push(s);

    let d = &r.detection;
    let th = &d.thresholds;
    let mut s = Section::new("alerts", "Alerts");
    s.lines.push(format!(
        "detectors read every {} s of capture time, window {} s; thresholds: port_scan {} ports, host_sweep {} hosts; from one source: syn_flood {}/s, udp_flood {}/s, icmp_flood {}/s; at one destination: syn_flood {}/s or {} Mbit/s (ACKs under {} per SYN), udp_flood {}/s or {} Mbit/s, icmp_flood {}/s or {} Mbit/s, tcp_flood {}/s or {} Mbit/s, frag_flood {}/s or {} Mbit/s, proto_flood {}/s or {} Mbit/s, reflection {}/s or {} Mbit/s",
        d.poll_interval_s,
        d.window_s,
        th.port_scan_ports,
        th.host_sweep_hosts,
        th.syn_flood_pps,
        th.udp_flood_pps,
        th.icmp_flood_pps,
        th.syn_flood_dst_pps,
        th.syn_flood_dst_bps / 1e6,
        th.syn_flood_dst_ack_ratio,
        th.udp_flood_dst_pps,
        th.udp_flood_dst_bps / 1e6,
        th.icmp_flood_dst_pps,
        th.icmp_flood_dst_bps / 1e6,
        th.tcp_flood_pps,
        th.tcp_flood_bps / 1e6,
        th.frag_flood_pps,
        th.frag_flood_bps / 1e6,
        th.proto_flood_pps,
        th.proto_flood_bps / 1e6,
        th.reflection_pps,
        th.reflection_bps / 1e6,
    ));
    if d.admission_changes > 0 {
        s.lines.push(format!(
            "new sources arrived faster than the per-source state keeps them (spoofed flood?): admission at the second packet switched {} times, {} packets of unknown sources not admitted",
            d.admission_changes, d.sources_deferred
        ));
    }
    if r.alert_lines.is_empty() {
        s.lines.push("no alerts".into());
    }
    s.lines.extend(r.alert_lines.iter().cloned());
    out.push(s);

    if !r.warnings.is_empty() {
        let mut s = Section::new("warnings", "Warnings");
        s.lines.extend(r.warnings.iter().cloned());
        out.push(s);
    }
    out
}

fn application(r: &Report) -> Section {
    let a = &r.application;
    let mut s = Section::new("application", "Application hints");
    s.lines.push(format!(
        "HTTP requests {} ({} distinct); URLs in cleartext {} distinct; DNS queries {}, responses {}, not DNS on port 53 {}; TLS ClientHellos {} ({} distinct SNI)",
        a.http_requests,
        a.http_distinct,
        a.urls_distinct,
        a.dns.queries,
        a.dns.responses,
        a.dns.malformed,
        a.tls_client_hellos,
        a.tls_sni_distinct
    ));
    let mut t = Table::new(
        "HTTP requests",
        &[num("count"), text("method"), text("host"), text("url")],
    );
    for h in &a.http {
        t.row(vec![
            h.count.to_string(),
            h.method.clone(),
            h.host.clone(),
            h.url.clone(),
        ]);
    }
    s.table(t);
    for (caption, list) in [
        ("URLs seen in cleartext payloads", &a.urls),
        ("TLS server names (SNI)", &a.tls_sni),
    ] {
        let mut t = Table::new(caption, &[num("count"), text("name")]);
        for n in list {
            t.row(vec![n.count.to_string(), n.name.clone()]);
        }
        s.table(t);
    }
    let mut t = Table::new(
        "DNS questions",
        &[
            text("name"),
            text("qtype"),
            num("queries"),
            num("responses"),
        ],
    );
    for n in &a.dns.names {
        t.row(vec![
            n.name.clone(),
            n.qtype.clone(),
            n.queries.to_string(),
            n.responses.to_string(),
        ]);
    }
    s.table(t);
    let mut t = Table::new("DNS response codes", &[text("rcode"), num("count")]);
    for n in &a.dns.rcodes {
        t.row(vec![n.name.clone(), n.count.to_string()]);
    }
    s.table(t);
    s
}

/// Client, server, packets, bytes and duration of a flow.
fn flow_cells(f: &Flow) -> Vec<String> {
    vec![
        endpoint(&f.client, f.client_port),
        endpoint(&f.server, f.server_port),
        f.packets.to_string(),
        f.bytes.to_string(),
        format!("{:.3}", f.duration_s),
    ]
}

fn endpoint(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}
