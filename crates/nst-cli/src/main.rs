//! `nst`: neural style transfer from the command line.
fn main() {
    eprintln!("nst: not yet: the command line arrives with issue 5");
    std::process::exit(2);
}
