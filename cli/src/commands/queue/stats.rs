//! `dsync queue stats [TOPIC]`: depth and counters of topics.

use dsync_api::queue::{TopicList, TopicStats};

use crate::commands::EXIT_OK;
use crate::context::{GlobalArgs, RequestExt};
use crate::duration::format_ms;
use crate::output::Table;

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Show this topic with its settings instead of the overview of all topics.
    pub topic: Option<String>,
}

pub async fn run(global: &GlobalArgs, args: StatsArgs) -> anyhow::Result<i32> {
    let client = global.client()?;
    match args.topic {
        Some(topic) => {
            let stats = client.queue_stats(&topic).await.api()?;
            global.output.print(&stats, || detail(&stats))?;
        }
        None => {
            let list = client.queues().await.api()?;
            global.output.print(&list, || overview(&list))?;
        }
    }
    Ok(EXIT_OK)
}

/// One row per topic. DLQ counts TOPIC.dlq; OLDEST is the age of the
/// oldest message not yet acked.
pub fn overview(list: &TopicList) -> String {
    if list.topics.is_empty() {
        return "no topics\n".to_string();
    }
    table(&list.topics)
}

fn table(topics: &[TopicStats]) -> String {
    let mut t = Table::new([
        "TOPIC",
        "GROUP",
        "READY",
        "IN_FLIGHT",
        "DELAYED",
        "DLQ",
        "ENQUEUED",
        "ACKED",
        "OLDEST",
    ]);
    for s in topics {
        t.row([
            s.topic.clone(),
            s.group.to_string(),
            s.ready.to_string(),
            s.in_flight.to_string(),
            s.delayed.to_string(),
            s.dead_lettered.to_string(),
            s.enqueued_total.to_string(),
            s.acked_total.to_string(),
            if s.oldest_age_ms == 0 {
                "-".to_string()
            } else {
                format_ms(s.oldest_age_ms)
            },
        ]);
    }
    t.render()
}

/// One topic: its row, then its redelivery count and settings.
pub fn detail(s: &TopicStats) -> String {
    let mut out = table(std::slice::from_ref(s));
    out.push('\n');
    let lines = [
        ("redelivered", s.redelivered_total.to_string()),
        ("max_attempts", s.max_attempts.to_string()),
        ("visibility", format_ms(s.visibility_ms)),
        ("max_message_bytes", s.max_message_bytes.to_string()),
        ("retention", format_ms(s.retention_ms)),
    ];
    for (key, value) in lines {
        out.push_str(&format!("{:<19}{value}\n", format!("{key}:")));
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn stats(topic: &str, ready: u64, oldest_age_ms: u64) -> TopicStats {
        TopicStats {
            topic: topic.into(),
            ready,
            in_flight: 2,
            delayed: 1,
            dead_lettered: 4,
            enqueued_total: 1_000,
            acked_total: 990,
            redelivered_total: 5,
            oldest_age_ms,
            max_attempts: 10,
            visibility_ms: 30_000,
            max_message_bytes: 262_144,
            retention_ms: 4 * 24 * 3_600_000,
            group: 0,
        }
    }

    #[test]
    fn overview_has_one_row_per_topic() {
        let list = TopicList {
            topics: vec![stats("jobs", 3, 125_000), stats("mail.dlq", 0, 0)],
        };
        assert_eq!(
            overview(&list),
            "TOPIC     GROUP  READY  IN_FLIGHT  DELAYED  DLQ  ENQUEUED  ACKED  OLDEST\n\
             jobs      0      3      2          1        4    1000      990    2m5s\n\
             mail.dlq  0      0      2          1        4    1000      990    -\n"
        );
        assert_eq!(overview(&TopicList { topics: vec![] }), "no topics\n");
    }

    #[test]
    fn detail_adds_the_settings() {
        assert_eq!(
            detail(&stats("jobs", 3, 750)),
            "TOPIC  GROUP  READY  IN_FLIGHT  DELAYED  DLQ  ENQUEUED  ACKED  OLDEST\n\
             jobs   0      3      2          1        4    1000      990    750ms\n\n\
             redelivered:       5\n\
             max_attempts:      10\n\
             visibility:        30s\n\
             max_message_bytes: 262144\n\
             retention:         96h\n"
        );
    }
}
