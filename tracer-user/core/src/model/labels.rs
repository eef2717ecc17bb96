//! Bounded label values: a metric label takes at most `cap` distinct
//! values; later newcomers are folded into `other` (and counted), so a
//! client or resource flood cannot grow the exposition without bound.

use std::{collections::BTreeSet, sync::Arc};

/// The value for labels past the bound.
pub const OTHER: &str = "other";
/// The client of a stream whose request was never seen.
pub const UNKNOWN: &str = "unknown";

/// A label value, shared: every event names one, and a copy per event
/// (and per family it is counted in) was a good part of the agent's CPU.
pub(crate) type Label = Arc<str>;

/// A bounded set of label values.
#[derive(Clone, Debug)]
pub(crate) struct LabelSet {
    cap: usize,
    known: BTreeSet<Label>,
    other: Label,
    unknown: Label,
    /// Values folded into `other` because the set was full.
    folded: u64,
}

impl LabelSet {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap,
            known: BTreeSet::new(),
            other: OTHER.into(),
            unknown: UNKNOWN.into(),
            folded: 0,
        }
    }

    /// `value` itself while it is known or there is room, else `other`.
    pub(crate) fn label(&mut self, value: &str) -> Label {
        if value == OTHER {
            return self.other.clone();
        }
        if value == UNKNOWN {
            return self.unknown.clone();
        }
        if let Some(known) = self.known.get(value) {
            return known.clone();
        }
        if self.known.len() < self.cap {
            let label: Label = value.into();
            self.known.insert(label.clone());
            return label;
        }
        self.folded += 1;
        self.other.clone()
    }

    /// The label of a stream or connection whose client is not known.
    pub(crate) fn unknown(&self) -> Label {
        self.unknown.clone()
    }

    pub(crate) fn folded(&self) -> u64 {
        self.folded
    }
}

/// The client program named by a user-agent: the part before its first
/// `/` (`kube-controller-manager/v1.31.0 (linux/amd64) ...` →
/// `kube-controller-manager`), trimmed and cut to 64 bytes.
pub(crate) fn program_name(user_agent: &str) -> &str {
    let name = user_agent.split('/').next().unwrap_or_default().trim();
    let mut end = name.len().min(64);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    if name[..end].is_empty() {
        UNKNOWN
    } else {
        &name[..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_names_stop_at_the_first_slash() {
        assert_eq!(
            program_name("kube-controller-manager/v1.31.0 (linux/amd64) kubernetes/abc"),
            "kube-controller-manager"
        );
        assert_eq!(program_name("kubectl"), "kubectl");
        assert_eq!(program_name("/v1"), UNKNOWN);
        assert_eq!(program_name(""), UNKNOWN);
        assert_eq!(program_name(&"é".repeat(40)).len(), 64);
    }

    #[test]
    fn past_the_cap_new_values_become_other() {
        let mut set = LabelSet::new(2);
        assert_eq!(&*set.label("a"), "a");
        assert_eq!(&*set.label("b"), "b");
        assert_eq!(&*set.label("c"), OTHER);
        assert_eq!(&*set.label("a"), "a", "known values keep their label");
        assert_eq!(&*set.label(UNKNOWN), UNKNOWN, "not counted against the cap");
        assert_eq!(&*set.label("d"), OTHER);
        assert_eq!(set.folded(), 2);
    }
}
