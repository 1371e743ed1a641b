//! `role` events: this node's role, term and known leader in the control
//! group, published on the event bus whenever one of them changes.

use dsync_api::events::Event;
use dsync_api::types::Role;

use crate::events::EventBus;
use crate::raft::Raft;

/// Node `id`'s role in the control group `raft` as a `role` event.
pub fn role_event(id: u64, raft: &Raft) -> Event {
    let m = raft.metrics();
    let m = m.borrow();
    Event::Role {
        node: id,
        role: crate::raft::role_of(m.state),
        term: m.current_term,
        leader: m.current_leader,
    }
}

/// Publishes a `role` event whenever this node's role, term or known leader
/// changes.
pub async fn watch_roles(id: u64, raft: Raft, events: EventBus) {
    let mut rx = raft.metrics();
    let mut last: Option<(Role, u64, Option<u64>)> = None;
    loop {
        let event = role_event(id, &raft);
        if let Event::Role {
            role, term, leader, ..
        } = &event
        {
            let now = (*role, *term, *leader);
            if last != Some(now) {
                last = Some(now);
                events.publish(event);
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
