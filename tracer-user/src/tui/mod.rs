//! The live view, `watchtrace top`: a pure state machine ([`App`]) driven by
//! key events and the model's [`Snapshot`]s, a pure renderer ([`render`]),
//! replay pacing ([`Pacer`]), and the terminal edge ([`terminal`]), which
//! alone touches raw mode and the alternate screen.
//!
//! [`Snapshot`]: crate::model::Snapshot

mod app;
mod columns;
mod format;
mod pace;
mod render;
pub mod terminal;

pub use app::{Action, App, Mode, ReplayControl, Sort, Tab};
pub use format::clock as format_clock;
pub use pace::{Due, Pacer};
pub use render::render;

#[cfg(test)]
mod tests;
