//! Subcommand implementations (I/O edges: they own the terminal, the clock
//! and the loaded programs).

pub mod check;
pub mod count;
pub mod record;
pub mod replay;
pub mod run;
pub mod top;
pub mod top_replay;
