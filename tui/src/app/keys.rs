//! Keys: what each one does in each mode.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use dsync_api::types::Role;

use super::{AdminOp, App, Mode, Panel, MAX_FILTER};

impl App {
    pub(super) fn on_key(&mut self, k: KeyEvent) -> Option<AdminOp> {
        if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
            self.quit = true;
            return None;
        }
        match &self.mode {
            Mode::Help => self.mode = Mode::Normal,
            Mode::Filter => match k.code {
                KeyCode::Enter => self.mode = Mode::Normal,
                KeyCode::Esc => {
                    self.filter.clear();
                    self.mode = Mode::Normal;
                }
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) if self.filter.len() < MAX_FILTER && !c.is_control() => {
                    self.filter.push(c)
                }
                _ => {}
            },
            Mode::Confirm(op) => match k.code {
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                    let op = op.clone();
                    self.message = Some((false, format!("{} …", op.question())));
                    self.mode = Mode::Normal;
                    return Some(op);
                }
                _ => {
                    self.message = Some((false, "cancelled".into()));
                    self.mode = Mode::Normal;
                }
            },
            Mode::Normal => self.on_normal_key(k),
        }
        self.clamp();
        None
    }

    fn on_normal_key(&mut self, k: KeyEvent) {
        let panel = self.panel.index();
        match k.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Tab => self.panel = Panel::ALL[(panel + 1) % Panel::ALL.len()],
            KeyCode::BackTab => {
                self.panel = Panel::ALL[(panel + Panel::ALL.len() - 1) % Panel::ALL.len()]
            }
            KeyCode::Char(c @ '1'..='9') => {
                if let Some(p) = Panel::ALL.get(c as usize - '1' as usize) {
                    self.panel = *p
                }
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.selected[panel] = self.selected[panel].saturating_sub(1)
            }
            KeyCode::Down | KeyCode::Char('j') => self.selected[panel] += 1,
            KeyCode::Char('/') => self.mode = Mode::Filter,
            KeyCode::Esc => self.filter.clear(),
            KeyCode::Char('?') => self.mode = Mode::Help,
            KeyCode::Char('t') => self.ask_transfer(),
            KeyCode::Char('r') => self.ask_force_release(),
            _ => {}
        }
    }

    fn ask_transfer(&mut self) {
        if self.panel != Panel::Cluster {
            self.message = Some((true, "select a node in the Cluster panel (1) first".into()));
            return;
        }
        let node = self
            .visible_nodes()
            .get(self.selected())
            .map(|n| n.status.clone());
        match node {
            Some(Some(s)) if s.role == Role::Leader => {
                self.message = Some((true, format!("node {} already leads", s.id)))
            }
            Some(Some(s)) => self.mode = Mode::Confirm(AdminOp::TransferLeader { to: s.id }),
            _ => self.message = Some((true, "the selected node is unreachable".into())),
        }
    }

    fn ask_force_release(&mut self) {
        if self.panel != Panel::Locks {
            self.message = Some((true, "select a lock in the Locks panel (2) first".into()));
            return;
        }
        let lock = self
            .visible_locks()
            .get(self.selected())
            .map(|l| l.name.clone());
        match lock {
            Some(lock) => self.mode = Mode::Confirm(AdminOp::ForceRelease { lock }),
            None => self.message = Some((true, "no lock selected".into())),
        }
    }
}
