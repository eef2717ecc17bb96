//! The terminal edge: raw mode and the alternate screen, entered by
//! [`Tty::enter`] and left by its `Drop` and by a panic hook, so the shell
//! gets its terminal back however the view ends.

use std::{
    io::{self, Stdout},
    sync::Once,
    time::Duration,
};

use ratatui::{
    Terminal,
    backend::CrosstermBackend,
    crossterm::{
        cursor,
        event::{self, Event},
        execute,
        terminal::{self, EnterAlternateScreen, LeaveAlternateScreen},
    },
};

use super::{App, render};

/// The terminal while the view owns it.
pub struct Tty {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Tty {
    /// Raw mode, the alternate screen, a hidden cursor; restored on drop and
    /// on panic.
    pub fn enter() -> io::Result<Self> {
        install_panic_hook();
        terminal::enable_raw_mode()?;
        let guard = RestoreOnError;
        execute!(io::stdout(), EnterAlternateScreen, cursor::Hide)?;
        let terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
        std::mem::forget(guard);
        Ok(Self { terminal })
    }

    /// Draws the view.
    pub fn draw(&mut self, app: &App) -> io::Result<()> {
        self.terminal.draw(|frame| render(frame, app))?;
        Ok(())
    }

    /// The next terminal event, waiting at most `timeout`.
    pub fn next_event(&mut self, timeout: Duration) -> io::Result<Option<Event>> {
        if event::poll(timeout)? {
            event::read().map(Some)
        } else {
            Ok(None)
        }
    }
}

impl Drop for Tty {
    fn drop(&mut self) {
        restore();
    }
}

/// Restores the terminal if [`Tty::enter`] fails half-way.
struct RestoreOnError;

impl Drop for RestoreOnError {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves the alternate screen and raw mode, shows the cursor. Harmless
/// when already restored.
pub fn restore() {
    // Errors are ignored: this runs while unwinding or exiting, and there
    // is nowhere better to report them than the terminal being restored.
    let _ = terminal::disable_raw_mode();
    let _ = execute!(io::stdout(), LeaveAlternateScreen, cursor::Show);
}

/// Restores the terminal before the previous hook prints the panic, so the
/// message lands on the normal screen and the shell is usable.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
