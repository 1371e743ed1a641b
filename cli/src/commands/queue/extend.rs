//! `dsync queue extend`: keep received messages invisible for longer.

use std::time::Duration;

use dsync_api::queue::ReceiptsRequest;

use super::{settle_and_print, Settle};
use crate::context::GlobalArgs;
use crate::duration::{millis, parse_duration};

#[derive(Debug, clap::Args)]
pub struct ExtendArgs {
    /// Topic the messages came from.
    pub topic: String,

    /// Receipts printed by `dsync queue consume` (any number).
    #[arg(required = true, num_args = 1.., value_name = "RECEIPT")]
    pub receipts: Vec<String>,

    /// New visibility timeout, counted from now (500ms, 30s, 2m, or
    /// milliseconds; at most 12h).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub visibility: Duration,
}

pub async fn run(global: &GlobalArgs, args: ExtendArgs) -> anyhow::Result<i32> {
    let template = ReceiptsRequest {
        receipts: Vec::new(),
        delay_ms: None,
        visibility_ms: Some(millis(args.visibility)),
    };
    settle_and_print(
        global,
        &args.topic,
        Settle::Extend,
        &args.receipts,
        template,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cli;
    use clap::Parser;

    #[test]
    fn visibility_is_required() {
        assert!(Cli::try_parse_from(["dsync", "queue", "extend", "t", "r1"]).is_err());
        let cli = Cli::try_parse_from([
            "dsync",
            "queue",
            "extend",
            "t",
            "r1",
            "r2",
            "--visibility",
            "2m",
        ])
        .unwrap();
        let crate::Command::Queue(super::super::QueueCommand::Extend(a)) = cli.cmd else {
            panic!("not an extend");
        };
        assert_eq!(a.visibility, Duration::from_secs(120));
        assert_eq!(a.receipts.len(), 2);
    }
}
