//! Value parsers and limits shared by the command line and the configuration file (a leaf:
//! it imports no other module of the crate).

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    ops::RangeInclusive,
    time::Duration,
};

use ipnet::IpNet;

/// Allowed capacities of the per-source and per-destination maps.
pub const MAP_ENTRIES: RangeInclusive<u32> = 16..=16_777_216;
/// Largest `metrics.top_k`.
pub const MAX_TOP_K: u32 = 1000;
/// Port of the metrics endpoint in examples (the OpenTelemetry Prometheus exporter's).
pub const EXAMPLE_METRICS_PORT: u16 = 9464;

/// Parses "1s", "500ms", "2m".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 1s, 500ms, 2m)"))
}

/// Parses a CIDR, or a bare address as a host network.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{s:?} is not a CIDR or IP address"))
}

/// Parses `ADDR:PORT`, `[V6]:PORT`, `:PORT` or `PORT`; without an address the endpoint binds
/// 127.0.0.1.
pub fn parse_metrics_addr(s: &str) -> Result<SocketAddr, String> {
    let port_only = s.strip_prefix(':').unwrap_or(s);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    s.parse::<SocketAddr>().map_err(|_| {
        format!(
            "{s:?} is not ADDR:PORT or PORT (e.g. 127.0.0.1:{EXAMPLE_METRICS_PORT}, \
             0.0.0.0:{EXAMPLE_METRICS_PORT}, [::1]:{EXAMPLE_METRICS_PORT}, {EXAMPLE_METRICS_PORT})"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_addresses() {
        let v4 = |s: &str| parse_metrics_addr(s).unwrap().to_string();
        assert_eq!(v4("9464"), "127.0.0.1:9464");
        assert_eq!(v4(":9464"), "127.0.0.1:9464");
        assert_eq!(v4("0.0.0.0:9100"), "0.0.0.0:9100");
        assert_eq!(v4("[::1]:9100"), "[::1]:9100");
        assert!(parse_metrics_addr("localhost:9100").is_err());
        assert!(parse_metrics_addr("99999").is_err());
    }
}
