//! Shards panel: every Raft group by node (leader `L`, follower `F` with
//! its match index on the leader's view, `-` not a replica), with the
//! topics and messages each group holds.

use std::collections::BTreeSet;

use dsync_api::shards::GroupStatus;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Stylize;
use ratatui::widgets::{Cell, Row, Table, TableState};
use ratatui::Frame;

use super::{panel_block, selected_style};
use crate::app::App;

pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let groups: &[GroupStatus] = app.shards.as_ref().map_or(&[], |s| &s.groups);
    let nodes: BTreeSet<u64> = groups
        .iter()
        .flat_map(|g| g.replicas.iter().map(|r| r.id))
        .collect();
    let mut header = vec!["GROUP".to_string(), "TERM".to_string()];
    header.extend(nodes.iter().map(|n| format!("NODE {n}")));
    header.extend(["TOPICS".to_string(), "DEPTH".to_string()]);
    let mut widths = vec![Constraint::Length(12), Constraint::Length(6)];
    widths.extend(nodes.iter().map(|_| Constraint::Length(12)));
    widths.extend([Constraint::Length(8), Constraint::Min(8)]);
    let rows = groups.iter().map(|g| row(g, &nodes));
    let title = match &app.shards {
        Some(s) => format!(
            " Shards (map epoch {}, {} queue groups; * holds the topics) ",
            s.map.epoch,
            s.map.groups.len()
        ),
        None => " Shards ".to_string(),
    };
    let table = Table::new(rows, widths)
        .header(Row::new(header).bold().underlined())
        .block(panel_block(&title, app.shards_error.as_deref()))
        .row_highlight_style(selected_style())
        .highlight_symbol("▶ ");
    let mut state = TableState::default().with_selected(Some(app.selected()));
    f.render_stateful_widget(table, area, &mut state);
}

fn row(g: &GroupStatus, nodes: &BTreeSet<u64>) -> Row<'static> {
    let name = match (g.id, g.holds_topics) {
        (0, true) => "0 control*".to_string(),
        (0, false) => "0 control".to_string(),
        (id, _) => id.to_string(),
    };
    let mut cells = vec![Cell::from(name), Cell::from(g.term.to_string())];
    for n in nodes {
        cells.push(match g.replicas.iter().find(|r| r.id == *n) {
            Some(r) if r.leader => Cell::from("L").green().bold(),
            Some(r) => Cell::from(match r.matched_index {
                Some(i) => format!("F @{i}"),
                None => "F".to_string(),
            }),
            None => Cell::from("-").dark_gray(),
        });
    }
    cells.push(Cell::from(g.topics.to_string()));
    cells.push(Cell::from(g.depth.to_string()));
    Row::new(cells)
}
