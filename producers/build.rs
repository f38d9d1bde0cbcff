//! `sqlx::migrate!` embeds the repository's `migrations/` folder at compile time; rebuild
//! this crate when a migration is added or changed.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
