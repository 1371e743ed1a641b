//! Popups drawn over the panels: help and the admin confirmation.

use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::Stylize;
use ratatui::text::Line;
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use ratatui::Frame;

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let [v] = Layout::vertical([Constraint::Length(height)])
        .flex(Flex::Center)
        .areas(area);
    let [h] = Layout::horizontal([Constraint::Length(width)])
        .flex(Flex::Center)
        .areas(v);
    h
}

pub fn help(f: &mut Frame, area: Rect) {
    let lines: Vec<Line> = crate::app::keys::help_rows()
        .into_iter()
        .map(|(k, what)| Line::from(format!(" {k:<16} {what}")))
        .chain([
            Line::from(""),
            Line::from(" t and r ask for confirmation before anything is sent.").dark_gray(),
        ])
        .collect();
    let popup = centered(area, 80.min(area.width), lines.len() as u16 + 2);
    f.render_widget(Clear, popup);
    let p = Paragraph::new(lines).block(Block::bordered().title(" Keys ".bold()));
    f.render_widget(p, popup);
}

pub fn confirm(f: &mut Frame, area: Rect, question: &str) {
    let popup = centered(area, 60.min(area.width), 6);
    f.render_widget(Clear, popup);
    let p = Paragraph::new(vec![
        Line::from(format!(" {question}")).bold(),
        Line::from(""),
        Line::from(" y / Enter: do it     any other key: cancel").dark_gray(),
    ])
    .wrap(Wrap { trim: false })
    .block(Block::bordered().title(" Confirm ".yellow().bold()));
    f.render_widget(p, popup);
}
