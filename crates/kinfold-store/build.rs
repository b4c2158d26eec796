//! `sqlx::migrate!` embeds the migrations when this crate compiles: a migration file added
//! later must compile it again (sqlx's documented build script).
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
