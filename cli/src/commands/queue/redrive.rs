//! `dsync queue redrive`: move dead letters back into their topic.

use dsync_api::queue::DLQ_SUFFIX;

use super::plural;
use crate::commands::EXIT_OK;
use crate::context::{GlobalArgs, RequestExt};

#[derive(Debug, clap::Args)]
pub struct RedriveArgs {
    /// Topic whose dead letters (in TOPIC.dlq) go back into it.
    pub topic: String,
}

pub async fn run(global: &GlobalArgs, args: RedriveArgs) -> anyhow::Result<i32> {
    let client = global.client()?;
    let resp = client.queue_redrive(&args.topic).await.api()?;
    global
        .output
        .print(&resp, || moved_line(&args.topic, resp.moved))?;
    Ok(EXIT_OK)
}

fn moved_line(topic: &str, moved: u64) -> String {
    format!(
        "moved {moved} {} from {topic}{DLQ_SUFFIX} back to {topic}\n",
        plural(usize::try_from(moved).unwrap_or(usize::MAX), "message")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_both_topics() {
        assert_eq!(
            moved_line("jobs", 2),
            "moved 2 messages from jobs.dlq back to jobs\n"
        );
        assert_eq!(moved_line("j", 1), "moved 1 message from j.dlq back to j\n");
    }
}
