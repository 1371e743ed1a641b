use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::fixtures;

fn key(app: &mut App, code: KeyCode) -> Option<AdminOp> {
    app.update(Action::Key(KeyEvent::from(code)))
}

#[test]
fn lag_comes_from_the_leaders_match_index() {
    let app = fixtures::app(true);
    let lags: Vec<Option<u64>> = app.nodes.iter().map(|n| n.lag).collect();
    assert_eq!(lags, [Some(0), Some(3), None]);
    assert_eq!(app.nodes[2].error.as_deref(), Some("connection refused"));
    assert_eq!(app.leader().map(|l| l.id), Some(1));
}

#[test]
fn rates_are_deltas_of_the_totals_per_second() {
    let app = fixtures::app(true);
    let emails = &app.topics[0];
    // 20 more enqueued per 500 ms poll; the first poll has no rate.
    assert_eq!(
        emails.enqueue_rate.iter().copied().collect::<Vec<_>>(),
        [40; 5]
    );
    let jobs = &app.topics[2];
    // Totals 1240 then 1325: 85 in 500 ms.
    assert_eq!(jobs.enqueue_rate.back(), Some(&170));
    assert_eq!(jobs.ack_rate.back(), Some(&0));
}

#[test]
fn transfer_needs_a_confirmed_non_leader() {
    let mut app = fixtures::app(true);
    assert_eq!(key(&mut app, KeyCode::Char('t')), None);
    assert!(
        app.message.as_ref().is_some_and(|m| m.0),
        "leader selected: refused"
    );
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Char('t'));
    assert_eq!(app.mode, Mode::Confirm(AdminOp::TransferLeader { to: 2 }));
    assert_eq!(key(&mut app, KeyCode::Char('n')), None);
    assert_eq!(app.mode, Mode::Normal);
    key(&mut app, KeyCode::Char('t'));
    assert_eq!(
        key(&mut app, KeyCode::Char('y')),
        Some(AdminOp::TransferLeader { to: 2 })
    );
    // The unreachable node cannot be chosen.
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Char('t'));
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn force_release_targets_the_selected_visible_lock() {
    let mut app = fixtures::app(true);
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Char('/'));
    key(&mut app, KeyCode::Char('p'));
    key(&mut app, KeyCode::Char('a'));
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('r'));
    assert_eq!(
        key(&mut app, KeyCode::Enter),
        Some(AdminOp::ForceRelease {
            lock: "payments".into()
        })
    );
    assert_eq!(app.filter, "pa");
}

#[test]
fn panels_cycle_and_selection_stays_in_bounds() {
    let mut app = fixtures::app(true);
    key(&mut app, KeyCode::BackTab);
    assert_eq!(app.panel, Panel::Shards, "the last panel");
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.panel, Panel::Cluster);
    key(&mut app, KeyCode::Char('6'));
    assert_eq!(app.panel, Panel::Shards);
    key(&mut app, KeyCode::Char('7'));
    assert_eq!(app.panel, Panel::Shards, "no seventh panel");
    key(&mut app, KeyCode::Char('4'));
    assert_eq!(app.panel, Panel::Queues);
    for _ in 0..10 {
        key(&mut app, KeyCode::Down);
    }
    assert_eq!(app.selected(), 2);
    key(&mut app, KeyCode::Char('?'));
    assert_eq!(app.mode, Mode::Help);
    key(&mut app, KeyCode::Char('q'));
    assert!(!app.quit, "q closes the help first");
    key(&mut app, KeyCode::Char('q'));
    assert!(app.quit);
    let mut app = fixtures::app(true);
    app.update(Action::Key(KeyEvent::new(
        KeyCode::Char('c'),
        KeyModifiers::CONTROL,
    )));
    assert!(app.quit);
}

#[test]
fn an_unreachable_node_keeps_its_last_known_id() {
    let mut app = fixtures::app(true);
    assert_eq!(app.nodes[1].id, Some(2));
    let mut p = fixtures::poll(9, true);
    p.nodes[1].status = Err("timed out".into());
    app.update(Action::Polled(p));
    assert_eq!(app.nodes[1].id, Some(2));
    assert!(app.nodes[1].status.is_none());
    assert_eq!(app.nodes[2].id, None, "never reached");
}

#[test]
fn a_deposed_leader_loses_to_the_higher_term() {
    let mut app = fixtures::app(true);
    let mut p = fixtures::poll(9, true);
    let s = p.nodes[1].status.as_mut().unwrap();
    s.role = dsync_api::types::Role::Leader;
    s.term = 8;
    app.update(Action::Polled(p));
    assert_eq!(app.leader().map(|l| l.id), Some(2));
}

#[test]
fn failed_refreshes_keep_the_last_data_marked_stale() {
    let mut app = fixtures::app(true);
    let mut p = fixtures::poll(9, true);
    p.locks = Err("unavailable: no leader".into());
    app.update(Action::Polled(p));
    assert_eq!(app.locks.len(), 3);
    assert_eq!(app.locks_error.as_deref(), Some("unavailable: no leader"));
}

#[test]
fn the_running_shard_job_is_kept_and_an_old_server_shows_none() {
    let mut app = fixtures::shards::rebalancing_app();
    assert_eq!(
        app.shard_job.as_ref().map(|j| j.id),
        Some(2),
        "not the finished one"
    );
    let m = app.current_move().expect("a move under way");
    assert_eq!((m.group, m.from, m.to), (2, Some(1), Some(4)));

    let mut p = fixtures::poll(7, true);
    p.jobs = crate::model::JobsPoll::Failed("timed out".into());
    app.update(Action::Polled(p));
    assert!(
        app.shard_job.is_some(),
        "a failed refresh keeps the last job"
    );
    assert_eq!(app.jobs_error.as_deref(), Some("timed out"));

    let mut p = fixtures::poll(8, true);
    p.jobs = crate::model::JobsPoll::NotAvailable;
    app.update(Action::Polled(p));
    assert_eq!(
        (app.shard_job.clone(), app.jobs_error.clone()),
        (None, None)
    );
    assert!(app.current_move().is_none());
}

#[test]
fn a_finished_job_marks_nothing() {
    let mut app = fixtures::shards::rebalancing_app();
    let mut p = fixtures::poll(7, true);
    p.jobs = crate::model::JobsPoll::Jobs(vec![fixtures::shards::finished_job()]);
    app.update(Action::Polled(p));
    assert!(app.shard_job.is_none());
}
