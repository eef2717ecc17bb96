//! `watchtrace check`.

use crate::check::Report;

/// Prints the report; `Err` holds the one-line reason to exit non-zero.
pub fn run() -> Result<(), String> {
    let report = Report::probe();
    print!("{}", report.render());
    match report.failure() {
        None => {
            let degraded = report.degraded();
            if degraded.is_empty() {
                println!("result: ok, watchtrace can run on this host");
            } else {
                println!(
                    "result: ok, watchtrace can run on this host, degraded: {}",
                    degraded.join("; ")
                );
            }
            Ok(())
        }
        Some(reason) => Err(reason),
    }
}
