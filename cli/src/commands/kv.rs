//! `dsync kv`: the replicated key-value store.

use std::io::Read;

use anyhow::Context;
use clap::Subcommand;
use dsync_api::types::Consistency;
use serde_json::Value;

use crate::commands::EXIT_OK;
use crate::context::{GlobalArgs, RequestExt};
use crate::output::{ellipsize, Output, Table};

/// Widest value shown in `kv list` tables; JSON/YAML output is never cut.
const LIST_VALUE_WIDTH: usize = 60;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ConsistencyArg {
    /// The leader's state, confirmed by a quorum round.
    #[default]
    Linearizable,
    /// The leader's state without a quorum round.
    Leader,
    /// The answering node's state, possibly behind.
    Stale,
}

impl From<ConsistencyArg> for Consistency {
    fn from(c: ConsistencyArg) -> Self {
        match c {
            ConsistencyArg::Linearizable => Consistency::Linearizable,
            ConsistencyArg::Leader => Consistency::Leader,
            ConsistencyArg::Stale => Consistency::Stale,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Write a value.
    Put {
        /// The key.
        key: String,
        /// The value: JSON if it parses as JSON, else taken as a string; `-` reads stdin.
        value: String,
        /// Write only if the key's current version is this (0 = only if absent).
        #[arg(long, value_name = "V")]
        if_version: Option<u64>,
    },
    /// Read a value and its version.
    Get {
        /// The key.
        key: String,
        /// How fresh the read must be.
        #[arg(long, value_enum, default_value_t = ConsistencyArg::Linearizable)]
        consistency: ConsistencyArg,
    },
    /// Delete a key.
    Del {
        /// The key.
        key: String,
        /// Delete only if the key's current version is this.
        #[arg(long, value_name = "V")]
        if_version: Option<u64>,
    },
    /// List keys by prefix, in key order.
    List {
        /// Only keys starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// At most this many keys.
        #[arg(long)]
        limit: Option<usize>,
        /// How fresh the listing must be.
        #[arg(long, value_enum, default_value_t = ConsistencyArg::Linearizable)]
        consistency: ConsistencyArg,
    },
}

pub async fn run(global: &GlobalArgs, cmd: KvCommand) -> anyhow::Result<i32> {
    let out = global.output;
    match cmd {
        KvCommand::Put {
            key,
            value,
            if_version,
        } => {
            let value = parse_value(&value, std::io::stdin())?;
            let client = global.client()?;
            let resp = client.kv_put(&key, value, if_version).await.api()?;
            out.print(&resp, || format!("ok, version {}\n", resp.version))?;
        }
        KvCommand::Get { key, consistency } => {
            let client = global.client()?;
            let item = client.kv_get(&key, consistency.into()).await.api()?;
            out.print(&item, || {
                let mut text = pretty(&item.value) + "\n";
                text.push_str(&format!("version: {}\n", item.version));
                if let Some(ms) = item.staleness_ms {
                    text.push_str(&format!("staleness_ms: {ms}\n"));
                }
                text
            })?;
        }
        KvCommand::Del { key, if_version } => {
            let client = global.client()?;
            let resp = client.kv_delete(&key, if_version).await.api()?;
            out.print(&resp, || deleted_text(resp.deleted))?;
        }
        KvCommand::List {
            prefix,
            limit,
            consistency,
        } => {
            let client = global.client()?;
            let resp = client
                .kv_list(&prefix, limit, consistency.into())
                .await
                .api()?;
            out.print(&resp, || {
                let mut t = Table::new(["KEY", "VERSION", "VALUE"]);
                for item in &resp.items {
                    let value = serde_json::to_string(&item.value).unwrap_or_default();
                    t.row([
                        item.key.clone(),
                        item.version.to_string(),
                        ellipsize(&value, LIST_VALUE_WIDTH),
                    ]);
                }
                t.render()
            })?;
            if resp.truncated && out == Output::Table {
                eprintln!("(listing stopped at --limit; more keys match)");
            }
        }
    }
    Ok(EXIT_OK)
}

/// JSON if the text parses as JSON, otherwise the text as a JSON string, so
/// `put k 5` stores a number and `put k hello` a string. `-` reads `stdin`.
pub(crate) fn parse_value(arg: &str, mut stdin: impl Read) -> anyhow::Result<Value> {
    let text = if arg == "-" {
        let mut s = String::new();
        stdin
            .read_to_string(&mut s)
            .context("cannot read the value from stdin")?;
        // A trailing newline comes from `echo` or an editor, not from intent.
        let trimmed = s
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t));
        trimmed.map(str::to_string).unwrap_or(s)
    } else {
        arg.to_string()
    };
    Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// What a delete of a key (here or in the cache) says.
pub(crate) fn deleted_text(deleted: bool) -> String {
    if deleted {
        "deleted\n"
    } else {
        "not present\n"
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(arg: &str) -> Value {
        parse_value(arg, std::io::empty()).unwrap()
    }

    #[test]
    fn values_are_json_when_they_parse_else_strings() {
        assert_eq!(parse("5"), json!(5));
        assert_eq!(parse(r#"{"a":[1,true]}"#), json!({"a": [1, true]}));
        assert_eq!(parse(r#""quoted""#), json!("quoted"));
        assert_eq!(parse("hello world"), json!("hello world"));
        assert_eq!(parse("{not json"), json!("{not json"));
        assert_eq!(parse(""), json!(""));
    }

    #[test]
    fn dash_reads_stdin_without_its_final_newline() {
        let v = parse_value("-", "line one\nline two\n".as_bytes()).unwrap();
        assert_eq!(v, json!("line one\nline two"));
        let v = parse_value("-", "[1, 2]\r\n".as_bytes()).unwrap();
        assert_eq!(v, json!([1, 2]));
    }

    #[test]
    fn consistency_maps_to_the_wire_level() {
        assert_eq!(Consistency::from(ConsistencyArg::Stale), Consistency::Stale);
        assert_eq!(
            Consistency::from(ConsistencyArg::default()),
            Consistency::Linearizable
        );
    }
}
