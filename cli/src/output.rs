//! How answers are shown: colour only on a terminal and never with
//! `NO_COLOR`, JSON for scripts, tables, durations, spinners.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Colour for stdout: a terminal, and `NO_COLOR` unset or empty
/// (https://no-color.org).
pub fn color_enabled() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stdout().is_terminal()
}

#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub fn detect() -> Style {
        Style {
            color: color_enabled(),
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn bold(&self, t: &str) -> String {
        self.paint("1", t)
    }
    pub fn green(&self, t: &str) -> String {
        self.paint("32", t)
    }
    pub fn red(&self, t: &str) -> String {
        self.paint("31", t)
    }
    pub fn yellow(&self, t: &str) -> String {
        self.paint("33", t)
    }
    pub fn dim(&self, t: &str) -> String {
        self.paint("2", t)
    }

    /// A request's status, coloured by what it means for the person.
    pub fn status(&self, status: &str) -> String {
        match status {
            "approved" => self.green(status),
            "pending" => self.yellow(status),
            _ => self.red(status),
        }
    }
}

pub fn print_json(v: &serde_json::Value) {
    println!("{v}");
}

/// `5400` → `1h 30m`; under a minute in seconds.
pub fn duration_text(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// Text cut to `max` characters, with an ellipsis when cut.
pub fn clip(text: &str, max: usize) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// Columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>], style: Style) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = widths[i].saturating_sub(c.chars().count());
                format!("{c}{}", " ".repeat(pad))
            })
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = style.bold(&line(headers.iter().map(|h| h.to_string()).collect()));
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.clone()));
    }
    out
}

/// A spinner on stderr, drawn only on a terminal (never in `--json` runs).
pub fn spinner(message: &str, json: bool) -> ProgressBar {
    let bar = if json || !std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
    } else {
        ProgressBar::new_spinner()
    };
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
        bar.set_style(style);
    }
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Progress lines for a run that is not on a terminal (or has no spinner):
/// each new message once, on stderr.
pub struct Progress {
    bar: ProgressBar,
    visible: bool,
    last: String,
}

impl Progress {
    pub fn new(message: &str, json: bool) -> Progress {
        let bar = spinner(message, json);
        let visible = !bar.is_hidden();
        let mut p = Progress {
            bar,
            visible,
            last: String::new(),
        };
        p.say(message, json);
        p
    }

    pub fn say(&mut self, message: &str, json: bool) {
        if message == self.last {
            return;
        }
        self.last = message.to_string();
        if self.visible {
            self.bar.set_message(message.to_string());
        } else if !json {
            eprintln!("{message}");
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_say_them() {
        assert_eq!(duration_text(45), "45s");
        assert_eq!(duration_text(7200), "2h");
        assert_eq!(duration_text(5400), "1h 30m");
        assert_eq!(duration_text(90_000), "1d 1h");
    }

    #[test]
    fn tables_pad_and_clip() {
        let t = table(
            &["ID", "REASON"],
            &[vec!["a".into(), clip("a long\nreason", 8)]],
            Style { color: false },
        );
        assert_eq!(t, "ID  REASON\na   a long …");
    }
}
