//! Locks panel: holders and waiters per lock, the wait-for graph as edges,
//! and the recently refused deadlock cycles, highlighted.

use std::collections::HashSet;

use dsync_api::locks::{LockInfo, LockMode};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::{panel_block, selected_style};
use crate::app::App;
use crate::describe::{age, clock, cycle_text};

pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let [table_area, graph_area] =
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
    let locks = app.visible_locks();
    let title = format!(" Locks ({}) ", locks.len());
    let header = Row::new(["LOCK", "HOLDERS", "WAITERS"]).bold().underlined();
    let widths = [
        Constraint::Percentage(20),
        Constraint::Percentage(47),
        Constraint::Percentage(33),
    ];
    let table = Table::new(locks.iter().map(|l| row(l)), widths)
        .header(header)
        .block(panel_block(&title, app.locks_error.as_deref()))
        .row_highlight_style(selected_style())
        .highlight_symbol("▶ ");
    let mut state = TableState::default().with_selected(Some(app.selected()));
    f.render_stateful_widget(table, table_area, &mut state);
    graph(f, graph_area, app);
}

fn mode(m: LockMode) -> &'static str {
    match m {
        LockMode::Exclusive => "x",
        LockMode::Shared => "s",
    }
}

fn row(l: &LockInfo) -> Row<'static> {
    let holders = l
        .holders
        .iter()
        .map(|h| {
            format!(
                "{} ({} #{} {})",
                h.owner,
                mode(h.mode),
                h.token,
                age(h.held_ms)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let waiters = l
        .waiters
        .iter()
        .map(|w| format!("{} ({} {})", w.owner, mode(w.mode), age(w.waited_ms)))
        .collect::<Vec<_>>()
        .join(", ");
    Row::new(vec![l.name.clone(), holders, waiters])
}

fn graph(f: &mut Frame, area: Rect, app: &App) {
    let alert = Style::new().red().bold();
    // Pairs of owners that took part in a refused cycle.
    let in_cycle: HashSet<(&str, &str)> = app
        .graph
        .deadlocks
        .iter()
        .flat_map(|d| {
            let n = d.cycle.len();
            (0..n).map(move |i| (d.cycle[i].as_str(), d.cycle[(i + 1) % n].as_str()))
        })
        .collect();
    let mut lines = Vec::new();
    if app.graph.edges.is_empty() {
        lines.push(Line::from(" nobody waits").dark_gray());
    }
    for e in app
        .graph
        .edges
        .iter()
        .filter(|e| app.matches(&e.lock) || app.matches(&e.waiter) || app.matches(&e.holder))
    {
        let hot = in_cycle.contains(&(e.waiter.as_str(), e.holder.as_str()));
        let style = if hot { alert } else { Style::new() };
        let mut spans = vec![
            Span::styled(format!(" {} ──▶ {}", e.waiter, e.holder), style),
            Span::raw(format!("  on {}", e.lock)).dark_gray(),
        ];
        if hot {
            spans.push(Span::styled("  (in a refused cycle)", alert));
        }
        lines.push(Line::from(spans));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(" Refused deadlocks (newest first)").bold());
    if app.graph.deadlocks.is_empty() {
        lines.push(Line::from(" none").dark_gray());
    }
    for d in app.graph.deadlocks.iter().rev() {
        lines.push(Line::from(vec![
            Span::raw(format!(" {}  ", clock(d.at_ms))).dark_gray(),
            Span::styled(
                format!("cycle on {}: {}", d.lock, cycle_text(&d.cycle)),
                alert,
            ),
        ]));
    }
    let block = panel_block(" Wait-for graph ", app.graph_error.as_deref());
    f.render_widget(Paragraph::new(lines).block(block), area);
}
