//! `cargo xtask`: project automation.
fn main() {
    eprintln!("xtask: not yet");
    std::process::exit(2);
}
