//! `dsync tui`: the live admin dashboard (ratatui + crossterm).
//!
//! Shape (after gitui and ratatui's component template): all state lives in
//! [`app::App`] and changes only through `App::update(Action)`; background
//! tasks ([`fetch`]) turn HTTP results and the `/v1/events` stream into
//! actions; [`ui::draw`] only reads the state, one file per panel.

pub mod app;
mod describe;
pub mod fetch;
#[cfg(test)]
mod fixtures;
pub mod model;
pub mod ui;

use std::io;
use std::time::Duration;

use dsync_api::{Client, ClientConfig};
use tokio::sync::mpsc;

use app::{Action, App};

/// `dsync tui --help`: what the dashboard shows and its keys (from the
/// same table the dashboard uses).
pub fn about() -> String {
    let panels: Vec<&str> = app::Panel::ALL.iter().map(|p| p.title()).collect();
    format!(
        "Live dashboard: {}.\n\nPolls every node each 500 ms (an unreachable node is marked, \
         never waited for) and follows one node's /v1/events.\n\n{}\n\nt and r ask for \
         confirmation before anything is sent.",
        panels.join(", "),
        app::keys::describe_keys()
    )
}

/// Bound of the action queue: a flood of events waits here instead of
/// growing memory; the server then skips events for us (`lagged`).
const QUEUE: usize = 1024;

/// Runs the dashboard until the operator quits. `config` names the nodes;
/// polling uses short timeouts of its own, admin operations `config`'s.
pub async fn run(config: ClientConfig) -> io::Result<()> {
    let endpoints: Vec<String> = config
        .endpoints
        .iter()
        .map(|e| dsync_api::client::base_url(e))
        .collect();
    let admin = Client::new(config.clone()).map_err(io::Error::other)?;
    let poll = Client::new(ClientConfig {
        request_timeout: Duration::from_millis(800),
        retry_for: Duration::from_millis(400),
        ..config
    })
    .map_err(io::Error::other)?;

    let (tx, mut rx) = mpsc::channel(QUEUE);
    let tasks = [
        tokio::spawn(fetch::poll_loop(
            poll.clone(),
            endpoints.clone(),
            tx.clone(),
        )),
        tokio::spawn(fetch::follow_events(poll, endpoints.clone(), tx.clone())),
    ];
    spawn_input(tx.clone());

    // Installs a panic hook that restores the terminal before the message.
    let mut terminal = ratatui::try_init()?;
    let mut app = App::new(&endpoints);
    let result = loop {
        if let Err(e) = terminal.draw(|f| ui::draw(f, &app)) {
            break Err(e);
        }
        let Some(first) = rx.recv().await else {
            break Ok(());
        };
        // Apply everything already queued before drawing again.
        let mut next = Some(first);
        while let Some(action) = next {
            if let Some(op) = app.update(action) {
                tokio::spawn(fetch::run_admin(admin.clone(), op, tx.clone()));
            }
            next = rx.try_recv().ok();
        }
        if app.quit {
            break Ok(());
        }
    };
    ratatui::restore();
    for t in tasks {
        t.abort();
    }
    result
}

/// Terminal input is blocking: a thread reads it and queues actions.
fn spawn_input(tx: mpsc::Sender<Action>) {
    std::thread::spawn(move || loop {
        let action = match crossterm::event::read() {
            Ok(crossterm::event::Event::Key(k))
                if k.kind != crossterm::event::KeyEventKind::Release =>
            {
                Action::Key(k)
            }
            Ok(crossterm::event::Event::Resize(..)) => Action::Resize,
            Ok(_) => continue,
            Err(_) => return,
        };
        if tx.blocking_send(action).is_err() {
            return;
        }
    });
}
