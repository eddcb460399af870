//! `kici watch` (spec/cli.md §4): compile, then recompile on every change of a workflow, a
//! module it imports or a `hashFiles` match, debounced by 200 ms.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use notify::{RecursiveMode, Watcher};

use kici_compiler::compile::compile;

use super::compile::{CompileArgs, Mode, report, request_for};
use super::output::banner;
use super::repo::locate;
use super::{GlobalArgs, exit};

const DEBOUNCE: Duration = Duration::from_millis(200);

/// What wakes the watch loop.
enum Wake {
    Changed(Vec<PathBuf>),
    /// SIGINT or SIGTERM: exit 0 (cli.md §4).
    Stop,
}

pub fn run(global: &GlobalArgs) -> u8 {
    banner(global);
    let location = match locate(global.kici_dir.as_deref()) {
        Ok(location) => location,
        Err(e) => {
            eprintln!("error: cannot determine the current directory: {e}");
            return exit::FAILURE;
        }
    };
    let (tx, rx) = mpsc::channel();
    // Before any thread exists, so that every thread inherits the blocked signals.
    stop_on_signals(tx.clone());
    let mut watcher =
        match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event
                && !event.kind.is_access()
            {
                let _ = tx.send(Wake::Changed(event.paths));
            }
        }) {
            Ok(watcher) => watcher,
            Err(e) => {
                eprintln!("error: cannot watch files: {e}");
                return exit::FAILURE;
            }
        };
    let args = CompileArgs {
        check: false,
        dry_run: false,
        watch: false,
        deny_warnings: false,
        verbose: false,
    };
    let lock_path = location.kici_dir.join("kici.lock.json");
    let mut watched: BTreeSet<PathBuf> = BTreeSet::new();
    loop {
        if std::io::stderr().is_terminal() {
            eprint!("\x1b[2J\x1b[H");
        }
        eprintln!("[{}] compiling", clock());
        let compilation = compile(&request_for(&location));
        report(global, &args, &location, &compilation, Mode::Write);
        // The watched set follows the compile: new imports and hashFiles matches join it.
        let mut wanted: BTreeSet<PathBuf> = compilation.inputs.clone();
        // Until `.kici/workflows/` exists, watch its nearest existing ancestor so that
        // creating it (or `kici init`) triggers a compile.
        wanted.insert(existing_ancestor(&location.kici_dir.join("workflows")));
        for gone in watched.difference(&wanted) {
            let _ = watcher.unwatch(gone);
        }
        for path in wanted.difference(&watched) {
            if let Err(e) = watcher.watch(path, RecursiveMode::NonRecursive) {
                eprintln!("warning: cannot watch {}: {e}", path.display());
            }
        }
        watched = wanted;
        eprintln!(
            "[{}] watching {} paths for changes (Ctrl-C to stop)",
            clock(),
            watched.len()
        );
        // Wait for a relevant change, then let the burst settle.
        loop {
            match rx.recv() {
                Ok(Wake::Changed(paths)) => {
                    if paths.iter().any(|p| *p != lock_path && !is_temp(p)) {
                        break;
                    }
                }
                Ok(Wake::Stop) | Err(_) => return exit::OK,
            }
        }
        while let Ok(wake) = rx.recv_timeout(DEBOUNCE) {
            if matches!(wake, Wake::Stop) {
                return exit::OK;
            }
        }
    }
}

/// Blocks SIGINT and SIGTERM in this thread (and so in every thread started later) and
/// turns them into [`Wake::Stop`] from a dedicated `sigwait` thread. Child processes do not
/// inherit the mask: the standard library resets it on spawn.
fn stop_on_signals(tx: mpsc::Sender<Wake>) {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    if set.thread_block().is_err() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("kici-watch-signals".into())
        .spawn(move || {
            if set.wait().is_ok() {
                let _ = tx.send(Wake::Stop);
            }
        });
    if spawned.is_err() {
        let _ = set.thread_unblock();
    }
}

fn existing_ancestor(path: &Path) -> PathBuf {
    path.ancestors()
        .find(|p| p.exists())
        .unwrap_or(path)
        .to_path_buf()
}

fn is_temp(path: &std::path::Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".tmp") || n.ends_with('~') || n.starts_with(".#"))
}

/// `HH:MM:SS` UTC, for the timestamped result lines.
fn clock() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}
