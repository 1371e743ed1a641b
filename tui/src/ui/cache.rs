//! Cache panel: a key × node matrix of MESI states.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;

use super::{panel_block, selected_style};
use crate::app::{App, CacheCell};
use crate::model::{CachePoll, LineState};
use dsync_api::routes::CACHE_LINES;

pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    if !app.cache_available() {
        let why = if app.cache.contains(&CachePoll::NotAvailable) {
            format!(
                " The cache is not available on this cluster: its nodes answer 404 to \
                 GET {CACHE_LINES}."
            )
        } else {
            " No node answered for its cache lines yet.".to_string()
        };
        let p = Paragraph::new(why)
            .wrap(Wrap { trim: false })
            .block(panel_block(" Cache ", None));
        f.render_widget(p, area);
        return;
    }
    let keys = app.cache_keys();
    let mut header = vec![Cell::from("KEY")];
    // An unreachable node's id is unknown: name it by its port.
    header.extend(app.nodes.iter().map(|n| {
        Cell::from(n.status.as_ref().map_or_else(
            || {
                n.endpoint
                    .rsplit_once(':')
                    .map_or("?", |(_, p)| p)
                    .to_string()
            },
            |s| format!("node {}", s.id),
        ))
    }));
    let rows = keys.iter().map(|k| {
        let mut cells = vec![Cell::from(k.clone())];
        cells.extend((0..app.nodes.len()).map(|i| cell(app.cache_cell(i, k))));
        Row::new(cells)
    });
    let key_width = keys.iter().map(|k| k.chars().count()).max().unwrap_or(0);
    let mut widths = vec![Constraint::Length(key_width.clamp(8, 48) as u16 + 2)];
    widths.extend(app.nodes.iter().map(|_| Constraint::Length(8)));
    widths.push(Constraint::Fill(1));
    let title = format!(
        " Cache: {} keys (M modified, E exclusive, S shared, I invalid) ",
        keys.len()
    );
    let table = Table::new(rows, widths)
        .header(Row::new(header).bold().underlined())
        .block(panel_block(&title, None))
        .row_highlight_style(selected_style())
        .highlight_symbol("▶ ");
    let mut state = TableState::default().with_selected(Some(app.selected()));
    f.render_stateful_widget(table, area, &mut state);
    if keys.is_empty() {
        let inner = area.inner(ratatui::layout::Margin::new(1, 2));
        f.render_widget(Line::from(" no node holds a line").dark_gray(), inner);
    }
}

fn cell(c: CacheCell) -> Cell<'static> {
    match c {
        CacheCell::State(s) => {
            let color = match s {
                LineState::M => Color::Red,
                LineState::E => Color::Magenta,
                LineState::S => Color::Green,
                LineState::I => Color::DarkGray,
            };
            Cell::from(format!("   {}", s.as_str())).style(Style::new().fg(color).bold())
        }
        CacheCell::Unknown => Cell::from("   ?").red(),
    }
}
