//! `hourglass`: the server binary (being built; see issue 3).

fn main() {
    eprintln!("hourglass: the Temporal API server is not built yet");
    std::process::exit(2);
}
