//! `dsync queue nack`: give messages back for redelivery.

use std::time::Duration;

use dsync_api::queue::ReceiptsRequest;

use super::{settle_and_print, Settle};
use crate::context::GlobalArgs;
use crate::duration::{millis, parse_duration};

#[derive(Debug, clap::Args)]
pub struct NackArgs {
    /// Topic the messages came from.
    pub topic: String,

    /// Receipts printed by `dsync queue consume` (any number).
    #[arg(required = true, num_args = 1.., value_name = "RECEIPT")]
    pub receipts: Vec<String>,

    /// Redeliver only after this long (500ms, 30s, 2m, or milliseconds;
    /// default: at once).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub delay: Option<Duration>,
}

pub async fn run(global: &GlobalArgs, args: NackArgs) -> anyhow::Result<i32> {
    let template = ReceiptsRequest {
        receipts: Vec::new(),
        delay_ms: args.delay.map(millis),
        visibility_ms: None,
    };
    settle_and_print(global, &args.topic, Settle::Nack, &args.receipts, template).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cli;
    use clap::Parser;

    #[test]
    fn delay_is_optional_and_takes_units() {
        let cli =
            Cli::try_parse_from(["dsync", "queue", "nack", "t", "r1", "--delay", "1m30s"]).unwrap();
        let crate::Command::Queue(super::super::QueueCommand::Nack(a)) = cli.cmd else {
            panic!("not a nack");
        };
        assert_eq!(a.delay, Some(Duration::from_secs(90)));
        assert!(Cli::try_parse_from(["dsync", "queue", "nack", "t", "r1"]).is_ok());
        assert!(Cli::try_parse_from(["dsync", "queue", "nack", "t"]).is_err());
    }
}
