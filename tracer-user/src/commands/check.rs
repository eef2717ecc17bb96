//! `watchtrace check`.

use crate::check::Report;

/// Prints the report; `Err` holds the one-line reason to exit non-zero.
pub fn run() -> Result<(), String> {
    let report = Report::probe();
    print!("{}", report.render());
    match report.failure() {
        None => {
            println!("result: ok, watchtrace can run on this host");
            Ok(())
        }
        Some(reason) => Err(reason),
    }
}
