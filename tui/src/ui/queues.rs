//! Queues panel: depth, in-flight, delayed and dead letters per topic, with
//! enqueue and ack rate sparklines.

use std::collections::VecDeque;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::widgets::{Cell, Row, Sparkline, Table, TableState};
use ratatui::Frame;

use super::{panel_block, selected_style};
use crate::app::{App, TopicRow};
use crate::describe::age;

/// Samples shown in a row's inline sparkline.
const INLINE: usize = 10;

pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let [table_area, spark_area] =
        Layout::vertical([Constraint::Min(4), Constraint::Length(6)]).areas(area);
    let topics = app.visible_topics();
    let header = Row::new([
        "TOPIC",
        "READY",
        "IN-FLIGHT",
        "DELAYED",
        "DLQ",
        "OLDEST",
        "ENQ/s",
        "ACK/s",
    ])
    .bold()
    .underlined();
    let widths = [
        Constraint::Min(14),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Length(8),
        Constraint::Length(INLINE as u16 + 7),
        Constraint::Length(INLINE as u16 + 7),
    ];
    let title = format!(" Queues ({} topics) ", topics.len());
    let table = Table::new(topics.iter().map(|t| row(t)), widths)
        .header(header)
        .block(panel_block(&title, app.queues_error.as_deref()))
        .row_highlight_style(selected_style())
        .highlight_symbol("▶ ");
    let mut state = TableState::default().with_selected(Some(app.selected()));
    f.render_stateful_widget(table, table_area, &mut state);

    let [enq, ack] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
        .areas(spark_area);
    let selected = topics.get(app.selected());
    for (area, what, rate) in [
        (enq, "enqueued", selected.map(|t| &t.enqueue_rate)),
        (ack, "acked", selected.map(|t| &t.ack_rate)),
    ] {
        let name = selected.map_or("-", |t| t.stats.topic.as_str());
        let data: Vec<u64> = rate
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default();
        // The newest samples, right-aligned like a scrolling chart.
        let width = area.width.saturating_sub(2) as usize;
        let data = &data[data.len().saturating_sub(width)..];
        let title = format!(" {name}: {what}/s ");
        let s = Sparkline::default()
            .block(panel_block(&title, None))
            .data(data)
            .style(Style::new().cyan());
        f.render_widget(s, area);
    }
}

fn row(t: &TopicRow) -> Row<'static> {
    let s = &t.stats;
    let dlq = if s.dead_lettered > 0 {
        Cell::from(s.dead_lettered.to_string()).red().bold()
    } else {
        Cell::from("0")
    };
    Row::new(vec![
        Cell::from(s.topic.clone()),
        Cell::from(s.ready.to_string()),
        Cell::from(s.in_flight.to_string()),
        Cell::from(s.delayed.to_string()),
        dlq,
        Cell::from(if s.oldest_age_ms == 0 {
            "-".to_string()
        } else {
            age(s.oldest_age_ms)
        }),
        Cell::from(rate_cell(&t.enqueue_rate)),
        Cell::from(rate_cell(&t.ack_rate)),
    ])
}

/// The latest rate and a one-line sparkline of the recent ones.
fn rate_cell(r: &VecDeque<u64>) -> String {
    let last = r.back().copied().unwrap_or(0);
    format!(
        "{last:>5} {}",
        inline_spark(r.iter().rev().take(INLINE).rev().copied())
    )
}

pub(crate) fn inline_spark(samples: impl Iterator<Item = u64>) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let v: Vec<u64> = samples.collect();
    let max = v.iter().copied().max().unwrap_or(0).max(1);
    v.iter()
        .map(|&x| BARS[((x * 7 + max / 2) / max) as usize])
        .collect()
}
