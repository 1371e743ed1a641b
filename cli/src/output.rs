//! How results reach stdout: an aligned text table for people, JSON or YAML
//! for scripts. Progress and hints go to stderr so stdout stays parseable.

use std::fmt::Write as _;

use serde::Serialize;

/// `--output` format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns for reading.
    #[default]
    Table,
    /// One pretty-printed JSON document.
    Json,
    /// One YAML document.
    Yaml,
}

impl Output {
    /// Renders `value` as JSON or YAML; `None` in table mode, where each
    /// command draws its own table.
    pub fn structured<T: Serialize>(self, value: &T) -> anyhow::Result<Option<String>> {
        Ok(match self {
            Output::Table => None,
            Output::Json => Some(serde_json::to_string_pretty(value)? + "\n"),
            Output::Yaml => Some(serde_yaml::to_string(value)?),
        })
    }

    /// Prints `value` as JSON/YAML, or calls `table` in table mode.
    pub fn print<T: Serialize>(
        self,
        value: &T,
        table: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        let text = match self.structured(value)? {
            Some(text) => text,
            None => table(),
        };
        print!("{text}");
        Ok(())
    }
}

/// A small left-aligned text table; the last column is not padded so lines
/// carry no trailing spaces.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        Table {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Self {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }

    pub fn render(&self) -> String {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.headers.len()])
            .max()
            .unwrap_or(0);
        let mut widths = vec![0usize; columns];
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            for (i, cell) in line.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            let mut text = String::new();
            for (i, cell) in line.iter().enumerate() {
                if i + 1 == line.len() {
                    text.push_str(cell);
                } else {
                    let _ = write!(text, "{cell:<w$}  ", w = widths[i]);
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Shortens `text` to at most `max` characters, marking the cut.
pub fn ellipsize(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{kept}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_without_trailing_spaces() {
        let mut t = Table::new(["ID", "ADDR", "ROLE"]);
        t.row(["1", "127.0.0.1:7000", "leader"]);
        t.row(["10", "h:1", ""]);
        assert_eq!(
            t.render(),
            "ID  ADDR            ROLE\n1   127.0.0.1:7000  leader\n10  h:1\n"
        );
    }

    #[test]
    fn table_counts_characters_not_bytes() {
        let mut t = Table::new(["A", "B"]);
        t.row(["é", "x"]);
        assert_eq!(t.render(), "A  B\né  x\n");
    }

    #[test]
    fn structured_output_is_json_or_yaml() {
        let v = serde_json::json!({"a": 1});
        assert_eq!(Output::Table.structured(&v).unwrap(), None);
        assert_eq!(
            Output::Json.structured(&v).unwrap().unwrap(),
            "{\n  \"a\": 1\n}\n"
        );
        assert_eq!(Output::Yaml.structured(&v).unwrap().unwrap(), "a: 1\n");
    }

    #[test]
    fn ellipsize_marks_cuts() {
        assert_eq!(ellipsize("abc", 5), "abc");
        assert_eq!(ellipsize("abcdef", 4), "abc…");
    }
}
