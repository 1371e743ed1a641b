//! `dsync shard reshard --groups G`: changing the number of queue groups,
//! which moves the topics whose place on the consistent-hash ring changes.

use dsync_api::shards::{ReshardPlan, ReshardRequest, TopicMove};

use super::rebalance::{print_and_follow, JobArgs};
use crate::context::{GlobalArgs, RequestExt};
use crate::output::Table;

#[derive(Debug, clap::Args)]
pub struct ReshardArgs {
    /// Queue groups wanted (1 to 1024). The number the cluster has already
    /// only moves topics that sit outside the group the ring names.
    #[arg(long, value_name = "G")]
    pub groups: u64,

    #[command(flatten)]
    pub job: JobArgs,
}

pub async fn run(global: &GlobalArgs, args: ReshardArgs) -> anyhow::Result<i32> {
    let client = global.client()?;
    let req = ReshardRequest {
        groups: args.groups,
        dry_run: args.job.dry_run,
    };
    let plan = client.shards_reshard(&req).await.api()?;
    let text = |dry_run| plan_text(&plan, dry_run);
    print_and_follow(global, &client, &plan, plan.job, text, &args.job).await
}

pub(super) fn topic_text(t: &TopicMove) -> String {
    format!(
        "topic {:?}: group {} -> {} ({:?})",
        t.topic, t.from, t.to, t.phase
    )
}

pub(super) fn topics_table(topics: &[TopicMove]) -> String {
    let mut t = Table::new(["TOPIC", "FROM", "TO", "PHASE"]);
    for m in topics {
        t.row([
            m.topic.clone(),
            m.from.to_string(),
            m.to.to_string(),
            format!("{:?}", m.phase).to_lowercase(),
        ]);
    }
    t.render()
}

fn plan_text(plan: &ReshardPlan, dry_run: bool) -> String {
    let head = format!(
        "{} -> {} queue groups: {} of {} topics move{}",
        plan.groups_before,
        plan.groups_after,
        plan.topics.len(),
        plan.topics_total,
        if dry_run {
            " (dry run)"
        } else {
            ", one at a time"
        }
    );
    if plan.topics.is_empty() {
        return format!("{head}\n");
    }
    format!("{head}:\n{}", topics_table(&plan.topics))
}

#[cfg(test)]
mod tests {
    use dsync_api::shards::TopicPhase;

    use super::*;

    #[test]
    fn the_plan_names_the_topics_and_their_groups() {
        let plan = ReshardPlan {
            groups_before: 2,
            groups_after: 5,
            topics_total: 10,
            topics: vec![TopicMove {
                topic: "orders".into(),
                from: 1,
                to: 4,
                phase: TopicPhase::Pending,
            }],
            job: None,
        };
        let text = plan_text(&plan, true);
        assert!(
            text.contains("2 -> 5 queue groups: 1 of 10 topics move (dry run)"),
            "{text}"
        );
        assert!(
            text.contains("orders") && text.contains("pending"),
            "{text}"
        );
    }
}
