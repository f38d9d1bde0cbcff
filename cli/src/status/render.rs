//! The human (and `--json`) form of a [`Status`].

use anyhow::Result;

use super::Status;

pub fn print(s: &Status, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    println!("ltf status  prefix {}  at {}", s.topic_prefix, s.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    if s.groups.is_empty() {
        println!("\nno consumer groups with prefix {}", s.topic_prefix);
    }
    for g in &s.groups {
        let k = &g.kafka;
        println!("\ngroup {}  state {}  members {}", k.group, k.state, k.members.len());
        for m in &k.members {
            println!("  member {}  client {}  host {}", m.id, m.client_id, m.host);
        }
        if k.topics.is_empty() {
            println!("  no committed offsets");
        } else {
            println!("  {:<56} {:>10} {:>12}", "TOPIC", "LAG", "LAG SECONDS");
            for t in &k.topics {
                println!("  {:<56} {:>10} {:>12.1}", t.topic, t.lag, t.lag_seconds);
            }
        }
        let classes: Vec<String> = g
            .dead_letters
            .iter()
            .flat_map(|c| c.by_class.iter().map(move |(class, n)| format!("{} {class} {n}", c.source_topic)))
            .collect();
        println!(
            "  dead letters {}{}",
            g.dead_letters_total,
            if classes.is_empty() { String::new() } else { format!(" ({})", classes.join(", ")) }
        );
    }
    match (&s.outbox, &s.outbox_note) {
        (Some(o), _) => println!("\noutbox  unsent {}  oldest {:.1} s", o.unsent, o.oldest_age_seconds),
        (None, Some(note)) => println!("\n{note}"),
        (None, None) => {}
    }
    Ok(())
}
