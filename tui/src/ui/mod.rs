//! Drawing: reads the [`App`], never changes it. One file per panel.

mod cache;
mod cluster;
mod events;
mod locks;
mod overlay;
mod queues;
mod shards;
#[cfg(test)]
mod tests;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Tabs};
use ratatui::Frame;

use crate::app::{App, Mode, Panel};

pub fn draw(f: &mut Frame, app: &App) {
    let [top, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(f.area());
    header(f, top, app);
    match app.panel {
        Panel::Cluster => cluster::draw(f, body, app),
        Panel::Locks => locks::draw(f, body, app),
        Panel::Cache => cache::draw(f, body, app),
        Panel::Queues => queues::draw(f, body, app),
        Panel::Events => events::draw(f, body, app),
        Panel::Shards => shards::draw(f, body, app),
    }
    footer(f, bottom, app);
    match &app.mode {
        Mode::Help => overlay::help(f, f.area()),
        Mode::Confirm(op) => overlay::confirm(f, f.area(), &op.question()),
        Mode::Normal | Mode::Filter => {}
    }
}

fn header(f: &mut Frame, area: Rect, app: &App) {
    let leader = match app.leader() {
        Some(l) => Line::from(vec![
            Span::raw("leader "),
            Span::styled(format!("node {}", l.id), Style::new().green().bold()),
            Span::raw(format!(" term {} ", l.term)),
        ]),
        None => Line::from(Span::styled("no leader ", Style::new().red().bold())),
    }
    .right_aligned();
    let width = leader.width() as u16;
    let [tabs_area, leader_area] =
        Layout::horizontal([Constraint::Min(10), Constraint::Length(width)]).areas(area);
    let titles = Panel::ALL
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{} {}", i + 1, p.title()));
    let tabs = Tabs::new(titles)
        .select(app.panel.index())
        .highlight_style(Style::new().black().on_cyan().bold())
        .divider("│");
    f.render_widget(tabs, tabs_area);
    f.render_widget(leader, leader_area);
}

fn footer(f: &mut Frame, area: Rect, app: &App) {
    let line = if app.mode == Mode::Filter {
        Line::from(vec![
            Span::styled(" filter: ", Style::new().yellow()),
            Span::raw(app.filter.clone()),
            Span::styled("█", Style::new().yellow()),
            Span::raw("  (Enter keep, Esc clear)"),
        ])
    } else if let Some((err, msg)) = &app.message {
        let style = if *err {
            Style::new().red()
        } else {
            Style::new().green()
        };
        Line::from(Span::styled(format!(" {msg}"), style))
    } else {
        let mut spans = vec![Span::raw(crate::app::keys::footer_hint()).dark_gray()];
        if !app.filter.is_empty() {
            spans.push(Span::styled(
                format!("  [filter: {}]", app.filter),
                Style::new().yellow(),
            ));
        }
        Line::from(spans)
    };
    f.render_widget(Paragraph::new(line), area);
}

/// A panel's frame; `stale` names a failed refresh whose old data is shown.
pub(crate) fn panel_block<'a>(title: &'a str, stale: Option<&'a str>) -> Block<'a> {
    let mut b = Block::bordered().title(Line::from(title).bold());
    if let Some(why) = stale {
        b = b.title(Line::from(format!(" stale: {why} ")).red().right_aligned());
    }
    b
}

pub(crate) fn selected_style() -> Style {
    Style::new()
        .bg(Color::DarkGray)
        .add_modifier(Modifier::BOLD)
}
