//! `dsync queue push`: enqueue one message, or one per line of stdin.

use std::io::{BufRead, IsTerminal};
use std::time::{Duration, Instant};

use dsync_api::queue::{EnqueueResponse, NewMessage, MAX_BATCH};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use super::{parse_payload, plural};
use crate::commands::{EXIT_OK, EXIT_USAGE};
use crate::context::{GlobalArgs, RequestExt};
use crate::duration::{millis, parse_duration};
use crate::output::Output;

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// Topic to push to.
    pub topic: String,

    /// The message: JSON if it parses as JSON, else a string. `-` (or no
    /// PAYLOAD with stdin not a terminal) reads one message per non-empty
    /// line of stdin; push the string "-" as '"-"'.
    pub payload: Option<String>,

    /// Keep the messages invisible for this long after they are enqueued
    /// (500ms, 30s, 2m, or milliseconds; at most 15m).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub delay: Option<Duration>,

    /// Deduplication id: pushing again with the same id within 5 minutes
    /// returns the first push's id instead of enqueuing twice. With stdin,
    /// the message of line N gets ID-N, so re-running the same input is safe.
    #[arg(long, value_name = "ID")]
    pub dedup_id: Option<String>,

    /// Messages per request when reading stdin.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=MAX_BATCH as i64), value_name = "N")]
    pub batch: u32,
}

pub async fn run(global: &GlobalArgs, args: PushArgs) -> anyhow::Result<i32> {
    let from_stdin = match args.payload.as_deref() {
        Some("-") => true,
        Some(_) => false,
        None if !std::io::stdin().is_terminal() => true,
        None => {
            eprintln!(
                "error: no PAYLOAD: give one, or `-` to read one message per line of stdin \
                 (see `dsync queue push --help`)"
            );
            return Ok(EXIT_USAGE);
        }
    };
    if from_stdin {
        return push_stdin(global, &args).await;
    }
    let text = args.payload.as_deref().unwrap_or_default();
    let message = NewMessage {
        payload: parse_payload(text),
        delay_ms: args.delay.map(millis),
        dedup_id: args.dedup_id.clone(),
    };
    let client = global.client()?;
    let resp = client.queue_push(&args.topic, vec![message]).await.api()?;
    global.output.print(&resp, || ids_text(&resp.ids))?;
    Ok(EXIT_OK)
}

/// Pushes stdin batch by batch, in order. A reader thread splits lines
/// while the previous batch is in flight; a detached thread (not a tokio
/// blocking task) so an unfinished terminal read never holds up the exit.
async fn push_stdin(global: &GlobalArgs, args: &PushArgs) -> anyhow::Result<i32> {
    let client = global.client()?;
    let out = global.output;
    if std::io::stdin().is_terminal() {
        eprintln!("reading messages from stdin, one per line; end with Ctrl-D");
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let size = args.batch as usize;
    std::thread::spawn(move || {
        for batch in batches(std::io::stdin().lock(), size) {
            if tx.blocking_send(batch).is_err() {
                break;
            }
        }
    });
    let bar = counter_bar(&args.topic);
    let started = Instant::now();
    let (mut pushed, mut requests) = (0usize, 0usize);
    let mut all_ids = Vec::new();
    while let Some(batch) = rx.recv().await {
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                finish(&bar);
                eprintln!(
                    "pushed {pushed} {} before the unreadable line; nothing after them was pushed",
                    plural(pushed, "message")
                );
                return Err(e);
            }
        };
        let messages = to_messages(&batch, args.delay.map(millis), args.dedup_id.as_deref());
        let resp = match client.queue_push(&args.topic, messages).await.api() {
            Ok(resp) => resp,
            Err(e) => {
                finish(&bar);
                eprintln!("{}", failure_note(pushed, &batch));
                return Err(e);
            }
        };
        pushed += batch.len();
        requests += 1;
        if out == Output::Table {
            let text = ids_text(&resp.ids);
            match &bar {
                Some(bar) => bar.suspend(|| print!("{text}")),
                None => print!("{text}"),
            }
        } else {
            all_ids.extend(resp.ids);
        }
        if let Some(bar) = &bar {
            bar.inc(batch.len() as u64);
            let secs = started.elapsed().as_secs_f64();
            if secs > 0.0 {
                bar.set_message(format!("at {:.0}/s ", pushed as f64 / secs));
            }
        }
    }
    finish(&bar);
    if out != Output::Table {
        out.print(&EnqueueResponse { ids: all_ids }, String::new)?;
    }
    eprintln!(
        "{}",
        summary(&args.topic, pushed, requests, started.elapsed())
    );
    Ok(EXIT_OK)
}

/// A live count on a terminal; `None` when stderr is piped.
fn counter_bar(topic: &str) -> Option<ProgressBar> {
    std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} pushed {human_pos} messages to {prefix} {msg}({elapsed})",
        ) {
            bar.set_style(style);
        }
        bar.set_prefix(topic.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    })
}

fn finish(bar: &Option<ProgressBar>) {
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

/// One message read from stdin: its line number (from 1) and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub number: usize,
    pub payload: Value,
}

/// Splits `reader` into batches of at most `size` messages, one per
/// non-empty line (a trailing `\r` is dropped), parsed like PAYLOAD.
pub fn batches<R: BufRead>(reader: R, size: usize) -> Batches<R> {
    Batches {
        lines: reader.split(b'\n'),
        number: 0,
        size: size.max(1),
        done: false,
    }
}

pub struct Batches<R> {
    lines: std::io::Split<R>,
    number: usize,
    size: usize,
    done: bool,
}

impl<R: BufRead> Iterator for Batches<R> {
    type Item = anyhow::Result<Vec<Line>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut batch = Vec::new();
        while batch.len() < self.size {
            let Some(raw) = self.lines.next() else {
                self.done = true;
                break;
            };
            self.number += 1;
            let line = match raw.map_err(anyhow::Error::from).and_then(|mut bytes| {
                if bytes.last() == Some(&b'\r') {
                    bytes.pop();
                }
                Ok(String::from_utf8(bytes)?)
            }) {
                Ok(line) => line,
                Err(e) => {
                    self.done = true;
                    let e = e.context(format!("cannot read line {} of stdin", self.number));
                    return Some(Err(e));
                }
            };
            if !line.trim().is_empty() {
                batch.push(Line {
                    number: self.number,
                    payload: parse_payload(&line),
                });
            }
        }
        (!batch.is_empty()).then_some(Ok(batch))
    }
}

/// The request of one batch; with a dedup id, line N's message gets `ID-N`.
pub fn to_messages(
    batch: &[Line],
    delay_ms: Option<u64>,
    dedup_id: Option<&str>,
) -> Vec<NewMessage> {
    batch
        .iter()
        .map(|line| NewMessage {
            payload: line.payload.clone(),
            delay_ms,
            dedup_id: dedup_id.map(|id| format!("{id}-{}", line.number)),
        })
        .collect()
}

/// Ids one per line, for `xargs` and friends.
fn ids_text(ids: &[u64]) -> String {
    ids.iter().map(|id| format!("{id}\n")).collect()
}

fn summary(topic: &str, pushed: usize, requests: usize, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        pushed as f64 / secs
    } else {
        0.0
    };
    format!(
        "pushed {pushed} {} to {topic} in {requests} {} ({secs:.2} s, {rate:.0}/s)",
        plural(pushed, "message"),
        plural(requests, "request"),
    )
}

/// Where a stdin push stopped, so the rest can be sent again.
fn failure_note(pushed: usize, failed: &[Line]) -> String {
    let first = failed.first().map_or(0, |l| l.number);
    let last = failed.last().map_or(0, |l| l.number);
    format!(
        "pushed {pushed} {} before the batch of lines {first}-{last} failed; \
         that batch and the lines after it were not (or not surely) enqueued",
        plural(pushed, "message")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cli;
    use clap::Parser;
    use serde_json::json;

    fn split(input: &str, size: usize) -> Vec<Vec<(usize, Value)>> {
        batches(input.as_bytes(), size)
            .map(|b| {
                b.unwrap()
                    .into_iter()
                    .map(|l| (l.number, l.payload))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn lines_split_into_batches_skipping_blank_lines() {
        let got = split("a\n\n{\"n\":1}\r\n  \n5\nlast", 2);
        assert_eq!(
            got,
            vec![
                vec![(1, json!("a")), (3, json!({"n": 1}))],
                vec![(5, json!(5)), (6, json!("last"))],
            ]
        );
    }

    #[test]
    fn batches_are_full_until_the_last() {
        let input: String = (1..=7).map(|i| format!("{i}\n")).collect();
        let sizes: Vec<usize> = split(&input, 3).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![3, 3, 1]);
        assert!(split("", 3).is_empty());
        assert!(split("\n\n \n", 3).is_empty());
    }

    #[test]
    fn invalid_utf8_names_the_line_and_stops() {
        let input: &[u8] = b"ok\n\xff\xfe\nafter\n";
        let mut it = batches(input, 1);
        assert_eq!(it.next().unwrap().unwrap()[0].payload, json!("ok"));
        let err = format!("{:#}", it.next().unwrap().unwrap_err());
        assert!(err.contains("line 2"), "{err}");
        assert!(it.next().is_none());
    }

    #[test]
    fn dedup_ids_get_the_line_number() {
        let batch = vec![
            Line {
                number: 4,
                payload: json!(1),
            },
            Line {
                number: 9,
                payload: json!("x"),
            },
        ];
        let msgs = to_messages(&batch, Some(500), Some("job"));
        assert_eq!(msgs[0].dedup_id.as_deref(), Some("job-4"));
        assert_eq!(msgs[1].dedup_id.as_deref(), Some("job-9"));
        assert_eq!(msgs[1].delay_ms, Some(500));
        assert_eq!(to_messages(&batch, None, None)[0].dedup_id, None);
    }

    #[test]
    fn ids_print_one_per_line_and_failures_say_where() {
        assert_eq!(ids_text(&[3, 4]), "3\n4\n");
        let failed = [
            Line {
                number: 201,
                payload: json!(1),
            },
            Line {
                number: 305,
                payload: json!(2),
            },
        ];
        let note = failure_note(200, &failed);
        assert!(note.starts_with("pushed 200 messages before the batch of lines 201-305"));
        let s = summary("t", 1, 1, Duration::from_millis(500));
        assert_eq!(s, "pushed 1 message to t in 1 request (0.50 s, 2/s)");
    }

    #[test]
    fn flags_parse_with_a_bounded_batch() {
        let cli = Cli::try_parse_from([
            "dsync", "queue", "push", "t", "-", "--delay", "2s", "--batch", "1000",
        ])
        .unwrap();
        let crate::Command::Queue(super::super::QueueCommand::Push(a)) = cli.cmd else {
            panic!("not a push");
        };
        assert_eq!(a.payload.as_deref(), Some("-"));
        assert_eq!(a.delay, Some(Duration::from_secs(2)));
        assert_eq!(a.batch, 1000);
        for bad in ["0", "1001"] {
            let args = ["dsync", "queue", "push", "t", "x", "--batch", bad];
            assert!(Cli::try_parse_from(args).is_err(), "--batch {bad}");
        }
    }
}
