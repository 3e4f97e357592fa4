//! Reading capture files for `picket analyze`: the format and packet decoding live in the
//! `picket-capture` crate (fuzzed on its own); this adds files, standard input and a
//! progress bar.

use std::io::Write as _;

use anyhow::Result;
pub use picket_capture::reader::{Format, Frame, InputInfo, read_capture};

/// Reads `path` (`-`: standard input) and feeds its frames to `on_frame`; a progress bar is
/// drawn on standard error for files of at least `progress_min` bytes when it is a terminal.
pub fn read_path(
    path: &std::path::Path,
    progress_min: Option<u64>,
    on_frame: &mut dyn FnMut(&Frame<'_>),
) -> Result<InputInfo> {
    let name = path.display().to_string();
    if name == "-" {
        return read_capture(&name, std::io::stdin(), &mut |_| {}, on_frame);
    }
    let file = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let size = file.metadata().map_or(0, |m| m.len());
    let bar = progress_min
        .filter(|min| size >= *min && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .map(|_| progress_bar(size, &name));
    let res = read_capture(
        &name,
        // Unbuffered: the reader's own buffer takes each read straight from the file.
        file,
        &mut |n| {
            if let Some(b) = &bar {
                b.set_position(n);
            }
        },
        on_frame,
    );
    if let Some(b) = bar {
        b.finish_and_clear();
        let _ = std::io::stderr().flush();
    }
    res
}

fn progress_bar(size: u64, name: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(size),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{wide_bar}] {bytes}/{total_bytes} {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    let file = std::path::Path::new(name)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned());
    bar.set_message(file.unwrap_or_else(|| name.to_string()));
    bar
}
