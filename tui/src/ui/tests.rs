//! Snapshot tests: every panel drawn from fixed fixture data on ratatui's
//! TestBackend. The `.snap` files under `snapshots/` are the expected
//! screens; insta fails on any difference (and never rewrites them in CI).

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;
use ratatui::Terminal;

use crate::app::{Action, App, Panel};
use crate::fixtures;

fn render(app: &App) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(110, 26)).unwrap();
    t.draw(|f| super::draw(f, app)).unwrap();
    t
}

fn on(panel: Panel, cache: bool) -> App {
    let mut app = fixtures::app(cache);
    app.panel = panel;
    app
}

fn key(app: &mut App, code: KeyCode) {
    app.update(Action::Key(KeyEvent::from(code)));
}

/// The foreground colour of the first cell of `text` on screen.
fn color_of(buf: &Buffer, text: &str) -> Color {
    let area = buf.area;
    for y in 0..area.height {
        let row: String = (0..area.width).map(|x| buf[(x, y)].symbol()).collect();
        if let Some(byte) = row.find(text) {
            let col = row[..byte].chars().count() as u16;
            return buf[(col, y)].fg;
        }
    }
    panic!("{text:?} is not on screen:\n{buf:?}");
}

#[test]
fn cluster_panel_marks_the_unreachable_node() {
    let t = render(&on(Panel::Cluster, true));
    insta::assert_snapshot!(t.backend());
    assert_eq!(color_of(t.backend().buffer(), "UNREACHABLE"), Color::Red);
}

#[test]
fn locks_panel_highlights_the_refused_cycle() {
    let t = render(&on(Panel::Locks, true));
    insta::assert_snapshot!(t.backend());
    let buf = t.backend().buffer();
    assert_eq!(
        color_of(buf, "cycle on orders: bob → alice → bob"),
        Color::Red
    );
    assert_eq!(color_of(buf, "alice ──▶ bob"), Color::Red);
    assert_eq!(color_of(buf, "erin ──▶ carol"), Color::Reset);
}

#[test]
fn cache_panel_shows_the_mesi_matrix() {
    let t = render(&on(Panel::Cache, true));
    insta::assert_snapshot!(t.backend());
}

#[test]
fn cache_panel_says_when_the_cluster_has_no_cache() {
    let t = render(&on(Panel::Cache, false));
    insta::assert_snapshot!(t.backend());
}

#[test]
fn queues_panel_shows_depth_and_rates() {
    let t = render(&on(Panel::Queues, true));
    insta::assert_snapshot!(t.backend());
}

#[test]
fn shards_panel_shows_each_group_by_node() {
    let t = render(&on(Panel::Shards, true));
    insta::assert_snapshot!(t.backend());
}

#[test]
fn shards_panel_marks_the_moving_replica_and_the_jobs_progress() {
    let mut app = fixtures::shards::rebalancing_app();
    app.panel = Panel::Shards;
    let t = render(&app);
    insta::assert_snapshot!(t.backend());
    let buf = t.backend().buffer();
    assert_eq!(color_of(buf, "1→4 catching up"), Color::Yellow);
    assert_eq!(color_of(buf, "lrn @640"), Color::Yellow);
    assert_eq!(color_of(buf, "queued 3→4"), Color::DarkGray);
    assert_eq!(
        color_of(buf, "job 2 rebalance: 1 of 3 moves done; now group 2: 1→4"),
        Color::Yellow
    );
}

#[test]
fn shards_panel_marks_the_moving_topic_on_both_groups() {
    let mut app = fixtures::shards::resharding_app();
    app.panel = Panel::Shards;
    let t = render(&app);
    insta::assert_snapshot!(t.backend());
    let buf = t.backend().buffer();
    assert_eq!(color_of(buf, "orders→4 frozen"), Color::Yellow);
    assert_eq!(
        color_of(
            buf,
            "job 3 reshard: 1 of 3 moves done; now topic orders: group 2 → 4"
        ),
        Color::Yellow
    );
}

#[test]
fn events_panel_lists_newest_first() {
    let t = render(&on(Panel::Events, true));
    insta::assert_snapshot!(t.backend());
}

#[test]
fn help_overlay() {
    let mut app = on(Panel::Cluster, true);
    key(&mut app, KeyCode::Char('?'));
    insta::assert_snapshot!(render(&app).backend());
}

#[test]
fn force_release_asks_for_confirmation() {
    let mut app = on(Panel::Locks, true);
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Char('r'));
    insta::assert_snapshot!(render(&app).backend());
}

#[test]
fn filter_narrows_the_rows() {
    let mut app = on(Panel::Locks, true);
    key(&mut app, KeyCode::Char('/'));
    for c in "rep".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    insta::assert_snapshot!(render(&app).backend());
}

#[test]
fn tiny_terminals_do_not_panic() {
    let app = fixtures::app(true);
    for (w, h) in [(1, 1), (20, 5), (40, 10)] {
        for p in Panel::ALL {
            let mut a = app.clone();
            a.panel = p;
            let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
            t.draw(|f| super::draw(f, &a)).unwrap();
        }
    }
}
