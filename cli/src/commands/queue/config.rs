//! `dsync queue config`: change a topic's settings.

use std::time::Duration;

use dsync_api::queue::{TopicSettings, HARD_MAX_MESSAGE_BYTES};

use super::stats::detail;
use crate::commands::EXIT_OK;
use crate::context::{GlobalArgs, RequestExt};
use crate::duration::{millis, parse_duration};

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Topic to configure.
    pub topic: String,

    /// Deliveries of a message before it moves to TOPIC.dlq.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub max_attempts: Option<u32>,

    /// Default visibility timeout of received messages (500ms, 30s, 2m, or
    /// milliseconds; at most 12h).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub visibility: Option<Duration>,

    /// Largest payload accepted, in bytes of JSON text (at most 1048576).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=HARD_MAX_MESSAGE_BYTES), value_name = "BYTES")]
    pub max_message_bytes: Option<u64>,

    /// How long an unacked message is kept before it is dropped (500ms,
    /// 30s, 2m, 96h, or milliseconds).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub retention: Option<Duration>,
}

pub async fn run(global: &GlobalArgs, args: ConfigArgs) -> anyhow::Result<i32> {
    let settings = settings_of(&args);
    let client = global.client()?;
    let stats = if settings == TopicSettings::default() {
        client.queue_stats(&args.topic).await.api()?
    } else {
        client.queue_settings(&args.topic, &settings).await.api()?
    };
    global.output.print(&stats, || detail(&stats))?;
    Ok(EXIT_OK)
}

fn settings_of(args: &ConfigArgs) -> TopicSettings {
    TopicSettings {
        max_attempts: args.max_attempts,
        visibility_ms: args.visibility.map(millis),
        max_message_bytes: args.max_message_bytes,
        retention_ms: args.retention.map(millis),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cli;
    use clap::Parser;

    fn parse(args: &[&str]) -> ConfigArgs {
        let cli = Cli::try_parse_from(["dsync", "queue", "config"].iter().chain(args)).unwrap();
        match cli.cmd {
            crate::Command::Queue(super::super::QueueCommand::Config(a)) => a,
            other => panic!("parsed {other:?}"),
        }
    }

    #[test]
    fn only_given_settings_are_sent() {
        let s = settings_of(&parse(&["t", "--max-attempts", "3", "--visibility", "1m"]));
        assert_eq!(
            s,
            TopicSettings {
                max_attempts: Some(3),
                visibility_ms: Some(60_000),
                max_message_bytes: None,
                retention_ms: None,
            }
        );
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"{"max_attempts":3,"visibility_ms":60000}"#);
        let s = settings_of(&parse(&[
            "t",
            "--max-message-bytes",
            "1024",
            "--retention",
            "2h",
        ]));
        assert_eq!(s.max_message_bytes, Some(1024));
        assert_eq!(s.retention_ms, Some(7_200_000));
        assert_eq!(settings_of(&parse(&["t"])), TopicSettings::default());
    }

    #[test]
    fn out_of_range_settings_are_usage_errors() {
        for bad in [
            ["--max-attempts", "0"],
            ["--max-message-bytes", "0"],
            ["--max-message-bytes", "1048577"],
        ] {
            let args = ["dsync", "queue", "config", "t", bad[0], bad[1]];
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?}");
        }
    }
}
