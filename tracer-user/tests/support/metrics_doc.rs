//! The metric families docs/metrics.md documents, read from its table.

use std::collections::BTreeMap;

const DOC: &str = include_str!("../../../docs/metrics.md");

/// Family name to type (`counter`, `gauge`, `histogram`), one per table
/// row `| \`watchtrace_…\` | type | labels | meaning |`.
pub(crate) fn documented_families() -> BTreeMap<String, String> {
    DOC.lines()
        .filter(|l| l.starts_with("| `watchtrace_"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_owned(), cells[2].to_owned())
        })
        .collect()
}
