use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Subcommand;
use ltf_schemas::registry::{self, RegistryAdmin};

use crate::settings::Common;

#[derive(Debug, Subcommand)]
pub enum SchemasCmd {
    /// Register every schema (TopicRecordNameStrategy) and set each subject to
    /// BACKWARD_TRANSITIVE.
    Register,
    /// Check the .avsc files of a folder against the registered versions; exits non-zero
    /// naming the subject, the version and the field at fault.
    Check {
        /// Folder of .avsc files; defaults to the schemas built into this binary.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// List the registry's subjects with their versions and compatibility.
    List,
}

pub async fn run(common: &Common, cmd: SchemasCmd) -> Result<()> {
    let topics = common.topics();
    match cmd {
        SchemasCmd::Register => {
            for r in registry::register_all(&common.registry, &topics).await? {
                println!("registered {:<70} id {:>4}  ({})", r.subject, r.id, r.file);
            }
            println!("compatibility: {}", registry::COMPATIBILITY);
        }
        SchemasCmd::Check { dir } => {
            let local = match &dir {
                Some(d) => registry::load_dir(d)?,
                None => registry::embedded(),
            };
            match registry::check_all(&common.registry, &topics, &local).await {
                Ok(subjects) => {
                    for s in subjects {
                        println!("compatible  {s}");
                    }
                }
                Err(e) => bail!("{e}"),
            }
        }
        SchemasCmd::List => {
            let admin = RegistryAdmin::new(&common.registry);
            let mut subjects = admin.subjects().await?;
            subjects.sort();
            for s in subjects.iter().filter(|s| s.starts_with(&format!("{}.", topics.prefix()))) {
                let versions = admin.versions(s).await?;
                let level = admin.compatibility(s).await?.unwrap_or_else(|| "(default)".into());
                println!("{s:<72} versions {versions:?}  {level}");
            }
        }
    }
    Ok(())
}
