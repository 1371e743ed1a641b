//! `dsync queue ack`: settle messages as done.

use dsync_api::queue::ReceiptsRequest;

use super::{settle_and_print, Settle};
use crate::context::GlobalArgs;

#[derive(Debug, clap::Args)]
pub struct AckArgs {
    /// Topic the messages came from.
    pub topic: String,

    /// Receipts printed by `dsync queue consume` (any number).
    #[arg(required = true, num_args = 1.., value_name = "RECEIPT")]
    pub receipts: Vec<String>,
}

pub async fn run(global: &GlobalArgs, args: AckArgs) -> anyhow::Result<i32> {
    let template = ReceiptsRequest {
        receipts: Vec::new(),
        delay_ms: None,
        visibility_ms: None,
    };
    settle_and_print(global, &args.topic, Settle::Ack, &args.receipts, template).await
}

#[cfg(test)]
mod tests {
    use crate::Cli;
    use clap::Parser;

    #[test]
    fn at_least_one_receipt_is_required() {
        assert!(Cli::try_parse_from(["dsync", "queue", "ack", "t"]).is_err());
        let cli = Cli::try_parse_from(["dsync", "queue", "ack", "t", "r1", "r2"]).unwrap();
        let crate::Command::Queue(super::super::QueueCommand::Ack(a)) = cli.cmd else {
            panic!("not an ack");
        };
        assert_eq!(a.receipts, vec!["r1", "r2"]);
    }
}
