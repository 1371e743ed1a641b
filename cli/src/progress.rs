//! Progress of long operations: a spinner on a terminal, plain lines on
//! stderr when piped (so logs of scripts and CI stay readable).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    spinner: Option<ProgressBar>,
    last: String,
}

impl Progress {
    pub fn new() -> Self {
        let spinner = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Progress {
            spinner,
            last: String::new(),
        }
    }

    /// Shows what is happening now; repeated messages print once.
    pub fn step(&mut self, message: impl Into<String>) {
        let message = message.into();
        if message == self.last {
            return;
        }
        match &self.spinner {
            Some(bar) => bar.set_message(message.clone()),
            None => eprintln!("{message}"),
        }
        self.last = message;
    }

    /// A line that stays on screen above the spinner.
    pub fn note(&self, message: impl AsRef<str>) {
        match &self.spinner {
            Some(bar) => bar.println(message.as_ref()),
            None => eprintln!("{}", message.as_ref()),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.spinner {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
