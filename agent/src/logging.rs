//! Diagnostics: every message about what the agent does goes through `tracing` to standard
//! error, one line each, so that standard output carries data only (alerts, summaries,
//! reports).
//!
//! Lines read as they always have: `picket: <message>` (info), `picket: warning: <message>`
//! (warn), `picket: error: <message>` (error), and `picket: debug: …` / `picket: trace: …`
//! with `-v` / `-vv`. The names of the spans an event is in follow `picket`
//! (`picket bench: …`). The level is info by default, chosen with `-v`/`-q`, and `RUST_LOG`
//! (tracing's env-filter syntax) refines that choice: a level there (`RUST_LOG=debug`)
//! replaces it, a target's (`RUST_LOG=agent::live=trace`) applies to that target only.

use std::fmt;

use tracing::{Event, Level, Subscriber, level_filters::LevelFilter};
use tracing_subscriber::{
    EnvFilter,
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    registry::LookupSpan,
};

/// How much to say on standard error: global flags of every command.
#[derive(clap::Args, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verbosity {
    /// More diagnostics on standard error: -v debug, -vv trace (a level in RUST_LOG wins)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Fewer diagnostics on standard error: -q warnings and errors, -qq errors only
    #[arg(
        short,
        long,
        action = clap::ArgAction::Count,
        global = true,
        conflicts_with = "verbose"
    )]
    pub quiet: u8,
}

impl Verbosity {
    /// The most detailed level shown.
    pub fn level(self) -> LevelFilter {
        match (i16::from(self.verbose) - i16::from(self.quiet)).clamp(-2, 2) {
            -2 => LevelFilter::ERROR,
            -1 => LevelFilter::WARN,
            0 => LevelFilter::INFO,
            1 => LevelFilter::DEBUG,
            _ => LevelFilter::TRACE,
        }
    }
}

/// Installs the subscriber that writes diagnostics to standard error. Call once, first
/// thing in `main`.
pub fn init(v: Verbosity) {
    // The flags' level first, then RUST_LOG's directives: a level there replaces the flags'
    // one, a target's (`agent=trace`) refines it.
    let env = std::env::var(EnvFilter::DEFAULT_ENV).unwrap_or_default();
    tracing_subscriber::fmt()
        .with_env_filter(filter(v, &env))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(Lines)
        .init();
}

/// The filter for the flags `v` and the directives `env` (`RUST_LOG`).
fn filter(v: Verbosity, env: &str) -> EnvFilter {
    EnvFilter::builder().parse_lossy(format!("{},{env}", v.level()))
}

/// `picket[ span…]: [level: ]message fields`, one line per event.
struct Lines;

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        w.write_str("picket")?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                write!(w, " {}", span.name())?;
            }
        }
        w.write_str(": ")?;
        w.write_str(prefix(*event.metadata().level()))?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// What follows `picket: ` for a level.
fn prefix(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error: ",
        Level::WARN => "warning: ",
        Level::INFO => "",
        Level::DEBUG => "debug: ",
        Level::TRACE => "trace: ",
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io,
        sync::{Arc, Mutex},
    };

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    #[test]
    fn lines_keep_the_picket_prefixes() {
        let buf = Buf::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(LevelFilter::INFO)
            .with_writer(buf.clone())
            .with_ansi(false)
            .event_format(Lines)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("attached xdp (driver) to {}", "eth0");
            tracing::warn!("more sources than the map holds");
            tracing::error!("interface eth0 disappeared");
            tracing::debug!("not shown");
            let _bench = tracing::error_span!("bench").entered();
            tracing::warn!("kernel.bpf_stats_enabled=1");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            out,
            "picket: attached xdp (driver) to eth0\n\
             picket: warning: more sources than the map holds\n\
             picket: error: interface eth0 disappeared\n\
             picket bench: warning: kernel.bpf_stats_enabled=1\n"
        );
    }

    /// What `filter(v, env)` lets through of an info, a warning and a debug event from
    /// this module.
    fn shown(v: Verbosity, env: &str) -> String {
        let buf = Buf::default();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter(v, env))
            .with_writer(buf.clone())
            .with_ansi(false)
            .event_format(Lines)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("i");
            tracing::warn!("w");
            tracing::debug!("d");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        out.lines().map(|l| l.rsplit(' ').next().unwrap()).collect()
    }

    #[test]
    fn rust_log_refines_the_flags() {
        let quiet = Verbosity {
            verbose: 0,
            quiet: 1,
        };
        assert_eq!(shown(Verbosity::default(), ""), "iw");
        assert_eq!(shown(quiet, ""), "w");
        assert_eq!(shown(Verbosity::default(), "debug"), "iwd");
        assert_eq!(shown(Verbosity::default(), "error"), "");
        assert_eq!(shown(quiet, "agent::logging=debug"), "iwd");
        assert_eq!(shown(Verbosity::default(), "other_crate=trace"), "iw");
    }

    #[test]
    fn flags_choose_the_level() {
        let v = |verbose, quiet| Verbosity { verbose, quiet }.level();
        assert_eq!(v(0, 0), LevelFilter::INFO);
        assert_eq!(v(1, 0), LevelFilter::DEBUG);
        assert_eq!(v(5, 0), LevelFilter::TRACE);
        assert_eq!(v(0, 1), LevelFilter::WARN);
        assert_eq!(v(0, 2), LevelFilter::ERROR);
        assert_eq!(v(0, 9), LevelFilter::ERROR);
    }
}
