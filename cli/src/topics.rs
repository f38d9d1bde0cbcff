use anyhow::Result;
use clap::Subcommand;
use ltf_kafka::topics::{ensure_topics, Ensured, TopicSpec, CLUSTER_DEFAULT_REPLICATION};

use crate::settings::Common;

#[derive(Debug, Subcommand)]
pub enum TopicsCmd {
    /// Create the four event topics; a no-op for topics that exist.
    Ensure {
        /// Partitions per topic.
        #[arg(long, env = "LTF_TOPIC_PARTITIONS", default_value_t = 6)]
        partitions: i32,
        /// Replication factor (default: the cluster's `default.replication.factor`).
        #[arg(long, env = "LTF_TOPIC_REPLICATION")]
        replication_factor: Option<i32>,
    },
}

pub async fn run(common: &Common, cmd: TopicsCmd) -> Result<()> {
    let TopicsCmd::Ensure { partitions, replication_factor } = cmd;
    let replication_factor = replication_factor.unwrap_or(CLUSTER_DEFAULT_REPLICATION);
    let specs: Vec<TopicSpec> =
        common.topics().all_events().into_iter().map(|name| TopicSpec { name, partitions, replication_factor }).collect();
    for (name, outcome) in ensure_topics(&common.bootstrap, &specs).await? {
        let what = match outcome {
            Ensured::Created => "created",
            Ensured::AlreadyExisted => "exists ",
        };
        println!("{what} {name}");
    }
    Ok(())
}
