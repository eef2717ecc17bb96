//! A private tmux server for tests that run `watchtrace top` in a real
//! terminal: keys sent, the screen read back.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::{
    process::Command,
    time::{Duration, Instant},
};

/// A private tmux server (its own socket), killed when dropped.
pub(crate) struct Tmux {
    socket: String,
}

impl Tmux {
    pub(crate) fn start(width: u16, height: u16) -> Self {
        // One server per Tmux: a killed server's socket may linger a
        // moment, so the next one gets a name of its own.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmux = Self {
            socket: format!("watchtrace-top-test-{}-{n}", std::process::id()),
        };
        let status = Command::new("tmux")
            .args(["-L", &tmux.socket, "-f", "/dev/null", "new-session", "-d"])
            .args([
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
                "-s",
                "t",
            ])
            .arg("env PS1='$ ' sh")
            .status()
            .expect("tmux is needed for this test (cargo xtask setup installs it)");
        assert!(status.success(), "tmux new-session failed");
        tmux
    }

    pub(crate) fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub(crate) fn send(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    pub(crate) fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "t"])
    }

    pub(crate) fn alternate_on(&self) -> bool {
        self.tmux(&["display", "-p", "-t", "t", "#{alternate_on}"])
            .trim()
            == "1"
    }

    /// Waits until the screen satisfies `ok`; panics with the last screen.
    pub(crate) fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

/// The status `echo EXIT=$?` printed, once it has: a line of its own.
pub(crate) fn exit_status(screen: &str) -> Option<i32> {
    screen
        .lines()
        .find_map(|line| line.trim_end().strip_prefix("EXIT=")?.parse().ok())
}
