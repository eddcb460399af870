//! A workspace with one workflow file, a sink that records everything, and a job runner.

use std::sync::{Arc, Mutex};

use kici_executor::{Cancel, JobEvent, JobRequest, JobResult, LogSink, run_job, run_job_after};
use tokio::sync::watch;

#[derive(Default)]
pub struct Recorder {
    pub events: Mutex<Vec<(String, JobEvent)>>,
}

impl LogSink for Recorder {
    fn emit(&self, job: &str, event: JobEvent) {
        self.events
            .lock()
            .expect("lock")
            .push((job.to_string(), event));
    }
}

impl Recorder {
    /// Every output line, `step|text`.
    pub fn lines(&self) -> Vec<String> {
        self.events
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|(_, e)| match e {
                JobEvent::Line { step, text, .. } => {
                    Some(format!("{}|{text}", step.clone().unwrap_or_default()))
                }
                _ => None,
            })
            .collect()
    }

    /// Everything the sink received, as text (for leak checks).
    pub fn all_text(&self) -> String {
        format!("{:?}", self.events.lock().expect("lock"))
    }
}

pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new(workflow: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join(".kici/workflows")).expect("mkdir");
        std::fs::write(dir.path().join(".kici/workflows/w.ts"), workflow).expect("write");
        Workspace { dir }
    }

    pub fn request(&self, workflow: &str, job: &str) -> JobRequest {
        let mut req = JobRequest::new(
            self.dir.path().to_path_buf(),
            ".kici/workflows/w.ts",
            workflow,
            job,
        );
        req.kill_grace = std::time::Duration::from_millis(500);
        req
    }
}

pub fn run(req: JobRequest) -> (JobResult, Arc<Recorder>) {
    run_with_cancel(req, None)
}

/// Runs the job; when `cancel_after` is given, a graceful cancel is sent after that long.
pub fn run_with_cancel(
    req: JobRequest,
    cancel_after: Option<(std::time::Duration, Cancel)>,
) -> (JobResult, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let sink: Arc<dyn LogSink> = recorder.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (tx, rx) = watch::channel(Cancel::None);
    let result = rt.block_on(async move {
        if let Some((after, kind)) = cancel_after {
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = tx.send(kind);
            });
        } else {
            std::mem::forget(tx);
        }
        run_job(req, sink, rx).await
    });
    (result, recorder)
}

/// Runs the job with [`run_job_after`]: the workflow loads once `ready` resolves.
pub fn run_after(
    req: JobRequest,
    ready: impl std::future::Future<Output = Result<(), String>>,
) -> (JobResult, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let sink: Arc<dyn LogSink> = recorder.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (_tx, rx) = watch::channel(Cancel::None);
    let result = rt.block_on(run_job_after(req, sink, rx, ready));
    (result, recorder)
}
