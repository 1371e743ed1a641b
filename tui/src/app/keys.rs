//! Keys: what each one does in each mode. [`BINDINGS`] is the one table
//! behind key handling, the help overlay, the footer and the CLI's
//! description of the dashboard.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use dsync_api::types::Role;

use super::{AdminOp, App, Mode, Panel, MAX_FILTER};

/// What a key does in normal mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    NextPanel,
    PrevPanel,
    /// The digit keys: panel n (1-based).
    Panel,
    Up,
    Down,
    Filter,
    ClearFilter,
    Help,
    Transfer,
    ForceRelease,
    Quit,
}

pub struct Binding {
    pub codes: &'static [KeyCode],
    /// How the help names the keys.
    pub keys: &'static str,
    /// Its word in the footer, if it has one there.
    pub footer: Option<&'static str>,
    pub what: &'static str,
    pub act: Act,
}

const DIGITS: &[KeyCode] = &[
    KeyCode::Char('1'),
    KeyCode::Char('2'),
    KeyCode::Char('3'),
    KeyCode::Char('4'),
    KeyCode::Char('5'),
    KeyCode::Char('6'),
    KeyCode::Char('7'),
    KeyCode::Char('8'),
    KeyCode::Char('9'),
];

pub const BINDINGS: &[Binding] = &[
    Binding {
        codes: &[KeyCode::Tab],
        keys: "Tab",
        footer: Some("Tab/1-{n} panel"),
        what: "next panel",
        act: Act::NextPanel,
    },
    Binding {
        codes: &[KeyCode::BackTab],
        keys: "Shift-Tab",
        footer: None,
        what: "previous panel",
        act: Act::PrevPanel,
    },
    Binding {
        codes: DIGITS,
        keys: "1 … {n}",
        footer: None,
        what: "{panels}",
        act: Act::Panel,
    },
    Binding {
        codes: &[KeyCode::Up, KeyCode::Char('k')],
        keys: "↑ ↓  (k j)",
        footer: Some("↑↓ select"),
        what: "select a row",
        act: Act::Up,
    },
    Binding {
        codes: &[KeyCode::Down, KeyCode::Char('j')],
        keys: "",
        footer: None,
        what: "",
        act: Act::Down,
    },
    Binding {
        codes: &[KeyCode::Char('/')],
        keys: "/",
        footer: Some("/ filter"),
        what: "filter the rows of every panel (Enter keeps, Esc clears)",
        act: Act::Filter,
    },
    Binding {
        codes: &[KeyCode::Esc],
        keys: "",
        footer: None,
        what: "",
        act: Act::ClearFilter,
    },
    Binding {
        codes: &[KeyCode::Char('t')],
        keys: "t",
        footer: Some("t transfer leader"),
        what: "Cluster: transfer leadership to the selected node",
        act: Act::Transfer,
    },
    Binding {
        codes: &[KeyCode::Char('r')],
        keys: "r",
        footer: Some("r force-release"),
        what: "Locks: force-release the selected lock (evicts every holder)",
        act: Act::ForceRelease,
    },
    Binding {
        codes: &[KeyCode::Char('?')],
        keys: "?",
        footer: Some("? help"),
        what: "this help (any key closes it)",
        act: Act::Help,
    },
    Binding {
        codes: &[KeyCode::Char('q')],
        keys: "q / Ctrl-C",
        footer: Some("q quit"),
        what: "quit",
        act: Act::Quit,
    },
];

/// The panel count (`{n}`) and names (`{panels}`) where the table says so.
fn fill(text: &str) -> String {
    let names: Vec<&str> = Panel::ALL.iter().map(|p| p.title()).collect();
    text.replace("{panels}", &names.join(", "))
        .replace("{n}", &Panel::ALL.len().to_string())
}

/// The help overlay's rows: keys and what they do.
pub fn help_rows() -> Vec<(String, String)> {
    BINDINGS
        .iter()
        .filter(|b| !b.keys.is_empty())
        .map(|b| (fill(b.keys), fill(b.what)))
        .collect()
}

/// The footer's one line of key hints.
pub fn footer_hint() -> String {
    let words: Vec<String> = BINDINGS.iter().filter_map(|b| b.footer.map(fill)).collect();
    format!(" {}", words.join("  "))
}

/// The keys in one sentence, for `dsync tui --help`.
pub fn describe_keys() -> String {
    let parts: Vec<String> = help_rows()
        .into_iter()
        .map(|(k, what)| format!("{k}: {what}"))
        .collect();
    format!("Keys: {}.", parts.join("; "))
}

fn act_of(code: KeyCode) -> Option<Act> {
    BINDINGS
        .iter()
        .find(|b| b.codes.contains(&code))
        .map(|b| b.act)
}

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
        let n = Panel::ALL.len();
        match act_of(k.code) {
            Some(Act::Quit) => self.quit = true,
            Some(Act::NextPanel) => self.panel = Panel::ALL[(panel + 1) % n],
            Some(Act::PrevPanel) => self.panel = Panel::ALL[(panel + n - 1) % n],
            Some(Act::Panel) => {
                let digit = DIGITS
                    .iter()
                    .position(|c| *c == k.code)
                    .unwrap_or(usize::MAX);
                if let Some(p) = Panel::ALL.get(digit) {
                    self.panel = *p
                }
            }
            Some(Act::Up) => self.selected[panel] = self.selected[panel].saturating_sub(1),
            Some(Act::Down) => self.selected[panel] += 1,
            Some(Act::Filter) => self.mode = Mode::Filter,
            Some(Act::ClearFilter) => self.filter.clear(),
            Some(Act::Help) => self.mode = Mode::Help,
            Some(Act::Transfer) => self.ask_transfer(),
            Some(Act::ForceRelease) => self.ask_force_release(),
            None => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_is_bound_twice_and_the_texts_follow_the_panels() {
        let mut seen = Vec::new();
        for b in BINDINGS {
            for c in b.codes {
                assert!(!seen.contains(c), "{c:?} bound twice");
                seen.push(*c);
            }
        }
        let rows = help_rows();
        let n = Panel::ALL.len();
        assert!(
            rows.iter()
                .any(|(k, what)| *k == format!("1 … {n}")
                    && what.ends_with(Panel::ALL[n - 1].title()))
        );
        assert!(footer_hint().starts_with(&format!(" Tab/1-{n} panel")));
        assert!(describe_keys().contains("q / Ctrl-C: quit"));
    }
}
