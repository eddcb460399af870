//! Start-up: job directories left by a crashed agent are removed after 24 h (agent.md §2).

use std::path::Path;
use std::process::Command;

use kici_agent::Control;

use crate::support::{Agent, Orchestrator, wait_until, work_entries};

fn age(path: &Path, when: &str) {
    let status = Command::new("touch")
        .args(["-h", "-d", when])
        .arg(path)
        .status()
        .expect("touch");
    assert!(status.success(), "touch -d {when} {}", path.display());
}

fn make_job_dir(work: &Path, name: &str) -> std::path::PathBuf {
    let dir = work.join(name);
    std::fs::create_dir_all(dir.join("ws/src")).expect("mkdir");
    std::fs::write(dir.join("ws/src/file.txt"), "left over").expect("write");
    dir
}

#[tokio::test]
async fn stale_job_directories_are_removed_at_start_and_young_ones_kept() {
    let work = tempfile::tempdir().expect("work dir");
    let stale = make_job_dir(work.path(), "kici-stale001");
    age(&stale, "25 hours ago");
    let young = make_job_dir(work.path(), "kici-young001");
    age(&young, "23 hours ago");
    let other = make_job_dir(work.path(), "not-kici-old");
    age(&other, "30 days ago");
    let stale_spill = work.path().join("kici-outbox-0badc0de.spill");
    std::fs::write(&stale_spill, "{}").expect("write");
    age(&stale_spill, "2 days ago");

    let orch = Orchestrator::start().await;
    let agent = Agent::start_in(work, &orch.url, &[], |_| {});
    let path = agent.work_path();
    wait_until("the stale job directory is removed", || !stale.exists()).await;
    wait_until("the stale spill file is removed", || !stale_spill.exists()).await;
    assert_eq!(
        work_entries(&path, "kici-"),
        vec!["kici-young001".to_string()],
        "only the young job directory is left"
    );
    assert!(young.join("ws/src/file.txt").exists());
    assert!(other.exists(), "entries not named kici-* are not touched");

    let mut peer = orch.accept().await;
    peer.handshake(0).await;
    agent.stop(Control::Drain).await.expect("agent result");
}
