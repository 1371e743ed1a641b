//! Events panel: the `/v1/events` stream, newest first.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::widgets::{Cell, Row, Table, TableState};
use ratatui::Frame;

use super::{panel_block, selected_style};
use crate::app::{App, Severity};
use crate::describe::clock;

pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let title = format!(" Events ({}, newest first) ", app.visible_events().len());
    list(f, area, app, &title, true);
}

/// The events table; the Cluster panel shows it too, without selection.
pub(super) fn list(f: &mut Frame, area: Rect, app: &App, title: &str, selectable: bool) {
    let events = app.visible_events();
    let rows = events.iter().map(|e| {
        let style = match e.severity {
            Severity::Info => Style::new(),
            Severity::Notice => Style::new().yellow(),
            Severity::Alert => Style::new().red().bold(),
        };
        Row::new(vec![
            Cell::from(clock(e.at_ms)).dark_gray(),
            Cell::from(e.kind),
            Cell::from(e.text.clone()),
        ])
        .style(style)
    });
    let widths = [
        Constraint::Length(8),
        Constraint::Length(19),
        Constraint::Min(20),
    ];
    let stale = app.events_source.as_ref().err().map(String::as_str);
    let table = Table::new(rows, widths)
        .header(Row::new(["TIME", "KIND", "WHAT"]).bold().underlined())
        .block(panel_block(title, stale));
    if selectable {
        let table = table
            .row_highlight_style(selected_style())
            .highlight_symbol("▶ ");
        let mut state = TableState::default().with_selected(Some(app.selected()));
        f.render_stateful_widget(table, area, &mut state);
    } else {
        f.render_widget(table, area);
    }
}
