//! Shards panel: every Raft group by node (leader `L`, follower `F` with
//! its match index on the leader's view, learner `lrn`, `-` not a
//! replica), with the topics and messages each group holds. While a shard
//! job runs, the group whose replica is moving is marked with the move and
//! its phase, later moves of the job are listed as queued, and the last
//! lines tell the job's progress.

use std::collections::BTreeSet;

use dsync_api::shards::{GroupStatus, MovePhase, ReplicaMove, ShardJob, TopicMove, TopicPhase};
use dsync_api::types::MemberKind;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};
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
    header.extend(["TOPICS", "DEPTH", "MOVE"].map(String::from));
    let mut widths = vec![Constraint::Length(12), Constraint::Length(6)];
    widths.extend(nodes.iter().map(|_| Constraint::Length(12)));
    widths.extend([
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Min(12),
    ]);
    let job = app.shard_job.as_ref();
    let rows = groups.iter().map(|g| row(g, &nodes, job));
    let title = match &app.shards {
        Some(s) => format!(
            " Shards (map epoch {}, {} queue groups; * holds the topics) ",
            s.map.epoch,
            s.map.groups.len()
        ),
        None => " Shards ".to_string(),
    };
    // The map's failure matters more than the jobs' when both failed.
    let stale = match (&app.shards_error, &app.jobs_error) {
        (Some(e), _) => Some(e.clone()),
        (None, Some(e)) => Some(format!("jobs: {e}")),
        (None, None) => None,
    };
    let block = panel_block(&title, stale.as_deref());
    let inner = block.inner(area);
    f.render_widget(block, area);
    let [table_area, job_area] = match job {
        Some(_) => Layout::vertical([Constraint::Min(1), Constraint::Length(2)]).areas(inner),
        None => [inner, Rect::default()],
    };
    let table = Table::new(rows, widths)
        .header(Row::new(header).bold().underlined())
        .row_highlight_style(selected_style())
        .highlight_symbol("▶ ");
    let mut state = TableState::default().with_selected(Some(app.selected()));
    f.render_stateful_widget(table, table_area, &mut state);
    if let Some(job) = job {
        f.render_widget(Paragraph::new(job_lines(job)), job_area);
    }
}

fn row(g: &GroupStatus, nodes: &BTreeSet<u64>, job: Option<&ShardJob>) -> Row<'static> {
    let current = job
        .and_then(|j| j.current())
        .map(|(_, m)| m)
        .filter(|m| m.group == g.id);
    let name = match (g.id, g.holds_topics) {
        (0, true) => "0 control*".to_string(),
        (0, false) => "0 control".to_string(),
        (id, _) => id.to_string(),
    };
    let topic = job
        .and_then(|j| j.current_topic())
        .map(|(_, t)| t)
        .filter(|t| t.from == g.id || t.to == g.id);
    let mut name = Cell::from(name);
    if current.is_some() || topic.is_some() {
        name = name.yellow().bold();
    }
    let mut cells = vec![name, Cell::from(g.term.to_string())];
    for n in nodes {
        let cell = match g.replicas.iter().find(|r| r.id == *n) {
            Some(r) if r.leader => Cell::from("L").green().bold(),
            Some(r) => {
                let kind = match r.kind {
                    MemberKind::Learner => "lrn",
                    _ => "F",
                };
                Cell::from(match r.matched_index {
                    Some(i) => format!("{kind} @{i}"),
                    None => kind.to_string(),
                })
            }
            None => Cell::from("-").dark_gray(),
        };
        let moving = current.is_some_and(|m| m.from == Some(*n) || m.to == Some(*n));
        cells.push(if moving { cell.yellow() } else { cell });
    }
    cells.push(Cell::from(g.topics.to_string()));
    cells.push(Cell::from(g.depth.to_string()));
    cells.push(match (current, job) {
        (Some(m), _) => Cell::from(format!("{} {}", endpoints(m), phase(m.phase)))
            .yellow()
            .bold(),
        (None, Some(_)) if topic.is_some() => {
            Cell::from(topic.map(|t| topic_move(t, g.id)).unwrap_or_default())
                .yellow()
                .bold()
        }
        (None, Some(j)) => Cell::from(queued(j, g.id)).dark_gray(),
        (None, None) => Cell::from(""),
    });
    Row::new(cells)
}

/// The moves of `job` for `group` that have not begun, in job order.
fn queued(job: &ShardJob, group: u64) -> String {
    let next: Vec<String> = job
        .moves
        .iter()
        .filter(|m| m.group == group && m.phase == MovePhase::Pending)
        .map(endpoints)
        .collect();
    if next.is_empty() {
        String::new()
    } else {
        format!("queued {}", next.join(", "))
    }
}

/// `3→4` (a replica moves), `+4` (the group gains one), `-3` (loses one).
fn endpoints(m: &ReplicaMove) -> String {
    match (m.from, m.to) {
        (Some(f), Some(t)) => format!("{f}→{t}"),
        (None, Some(t)) => format!("+{t}"),
        (Some(f), None) => format!("-{f}"),
        (None, None) => "?".to_string(),
    }
}

/// `orders→4 frozen` on the source group, `orders←1 frozen` on the target.
fn topic_move(t: &TopicMove, group: u64) -> String {
    let way = if t.from == group {
        format!("{}→{}", t.topic, t.to)
    } else {
        format!("{}←{}", t.topic, t.from)
    };
    format!("{way} {}", topic_phase(t.phase))
}

fn topic_phase(p: TopicPhase) -> &'static str {
    match p {
        TopicPhase::Pending => "next",
        TopicPhase::Frozen => "frozen",
        TopicPhase::Copied => "copied",
        TopicPhase::Switched => "switched",
        TopicPhase::Done => "done",
    }
}

fn phase(p: MovePhase) -> &'static str {
    match p {
        MovePhase::Pending => "starting",
        MovePhase::CatchingUp => "catching up",
        MovePhase::Done => "done",
        MovePhase::RolledBack => "rolled back",
    }
}

/// Two lines: the job's progress and the move under way, then why the
/// plan has that move (and its last error, while it retries).
fn job_lines(job: &ShardJob) -> Vec<Line<'static>> {
    let (done, all) = job.progress();
    let mut head = format!(" job {} {}: {done} of {all} moves done", job.id, job.kind);
    let mut why = String::new();
    if let Some((_, m)) = job.current() {
        head.push_str(&format!(
            "; now group {}: {} {}",
            m.group,
            endpoints(m),
            phase(m.phase)
        ));
        why = format!("   why: {}", m.why);
        if let Some(e) = &m.error {
            why.push_str(&format!("; last error: {e}"));
        }
    } else if let Some((_, t)) = job.current_topic() {
        head.push_str(&format!(
            "; now topic {}: group {} → {} {}",
            t.topic,
            t.from,
            t.to,
            topic_phase(t.phase)
        ));
        if let Some(target) = &job.target {
            why = format!("   to {} queue groups", target.groups.len());
        }
        if let Some(e) = &job.error {
            why.push_str(&format!("; last error: {e}"));
        }
    } else if job.target.is_some() {
        head.push_str("; listing the topics to move");
    }
    vec![
        Line::styled(head, Style::new().yellow().bold()),
        Line::styled(why, Style::new().yellow()),
    ]
}
