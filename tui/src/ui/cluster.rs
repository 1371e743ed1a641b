//! Cluster panel: one row per node with role, term, indexes, lag and health.

use dsync_api::types::Role;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::{panel_block, selected_style};
use crate::app::{App, NodeRow};

pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let nodes = app.visible_nodes();
    let [table_area, events_area, info_area] = Layout::vertical([
        Constraint::Length(nodes.len() as u16 + 3),
        Constraint::Min(3),
        Constraint::Length(2),
    ])
    .areas(area);
    let header = Row::new([
        "ID", "ADDRESS", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "LAG", "HEALTH", "VERSION",
    ])
    .bold()
    .underlined();
    let rows = nodes.iter().map(|n| row(n));
    let addr_width = app
        .nodes
        .iter()
        .map(|n| address(n).len())
        .max()
        .unwrap_or(0);
    let widths = [
        Constraint::Length(3),
        Constraint::Length(addr_width.max(7) as u16),
        Constraint::Length(11),
        Constraint::Length(5),
        Constraint::Length(6),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Min(8),
        Constraint::Length(8),
    ];
    let reachable = app.nodes.iter().filter(|n| n.status.is_some()).count();
    let title = format!(" Cluster: {reachable}/{} nodes reachable ", app.nodes.len());
    let table = Table::new(rows, widths)
        .header(header)
        .block(panel_block(&title, None))
        .row_highlight_style(selected_style())
        .highlight_symbol("▶ ");
    let mut state = TableState::default().with_selected(Some(app.selected()));
    f.render_stateful_widget(table, table_area, &mut state);
    super::events::list(f, events_area, app, " Recent events ", false);

    let events = match &app.events_source {
        Ok(ep) => Line::from(format!(" events: following {ep}")).dark_gray(),
        Err(why) => Line::from(format!(" events: not connected ({why})")).red(),
    };
    let hint = Line::from(" t: transfer leadership to the selected node").dark_gray();
    f.render_widget(Paragraph::new(vec![events, hint]), info_area);
}

/// `host:port`: every node speaks plain HTTP.
fn address(n: &NodeRow) -> &str {
    n.endpoint.trim_start_matches("http://")
}

fn row(n: &NodeRow) -> Row<'static> {
    let Some(s) = &n.status else {
        let why = n.error.clone().unwrap_or_default();
        return Row::new(vec![
            Cell::from(n.id.map_or("?".into(), |i| i.to_string())),
            Cell::from(address(n).to_string()),
            Cell::from("UNREACHABLE").red().bold(),
            Cell::from("-"),
            Cell::from("-"),
            Cell::from("-"),
            Cell::from("-"),
            Cell::from("-"),
            Cell::from(why).red(),
            Cell::from("-"),
        ]);
    };
    let role_style = match s.role {
        Role::Leader => Style::new().green().bold(),
        Role::Follower => Style::new(),
        Role::Candidate => Style::new().yellow(),
        Role::Learner => Style::new().cyan(),
        Role::Shutdown => Style::new().red(),
    };
    let lag = match n.lag {
        Some(0) => Cell::from("0"),
        Some(l) => Cell::from(l.to_string()).yellow(),
        None => Cell::from("-"),
    };
    let health = if n.healthy {
        Cell::from("ok").green()
    } else {
        Cell::from("failing").red()
    };
    Row::new(vec![
        Cell::from(s.id.to_string()),
        Cell::from(address(n).to_string()),
        Cell::from(s.role.to_string()).style(role_style),
        Cell::from(s.term.to_string()),
        Cell::from(s.leader.map_or("-".into(), |l| l.to_string())),
        Cell::from(s.commit_index.to_string()),
        Cell::from(s.applied_index.to_string()),
        lag,
        health,
        Cell::from(s.version.clone()),
    ])
}
