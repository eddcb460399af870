//! Per-test databases (a temp SQLite file, or a fresh PostgreSQL database that is dropped
//! when the test passes), a throw-away git repository with a lock, and signed GitHub
//! deliveries.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use kici_engine::protocol::Secret;
use kici_orchestrator::lock_source::{BoxFuture, FetchError, Fetched, LocalFile, LockSource};
use kici_orchestrator::{
    AppState, Config, LockSourceConfig, Source, SourceConfig, SourceKind, Sources,
};
use kici_store::{Store, StoreOptions};
use kici_testkit::db::TestDatabase;
use tower::ServiceExt;

pub const APP_ID: &str = "4242";
pub const SECRET: &str = "s3cret-webhook";
pub const REPO: &str = "acme/widgets";

/// A per-test database (`kici_testkit::db`).
pub struct TestDb {
    pub url: String,
    database: TestDatabase,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        Self::from(TestDatabase::sqlite())
    }

    /// `None` when PostgreSQL is unreachable outside CI.
    pub async fn postgres() -> Option<TestDb> {
        Some(Self::from(TestDatabase::postgres().await?))
    }

    fn from(database: TestDatabase) -> TestDb {
        TestDb {
            url: database.url.clone(),
            database,
        }
    }

    pub async fn store(&self, max_attempts: i64) -> Store {
        let options = StoreOptions {
            inbox_max_attempts: max_attempts,
            ..StoreOptions::default()
        };
        let store = Store::connect(&self.url, options)
            .await
            .expect("open store");
        store.migrate(1).await.expect("migrate");
        store
    }

    /// Called only when the test body returned, so a failing test keeps its database.
    pub async fn finish(self) {
        self.database.finish().await;
    }
}

/// Expands each suite function into a SQLite and a PostgreSQL test.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        crate::harness::backend_tests!(in suite; $($name),*);
    };
    // The suite functions of another module: `backend_tests!(in agents; a, b)`.
    (in $module:ident; $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = crate::harness::TestDb::sqlite().await;
                    crate::$module::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = crate::harness::TestDb::postgres().await else {
                        return;
                    };
                    crate::$module::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
}

pub(crate) use backend_tests;

/// A lock with two workflows: `ci` (push to main; a two-way matrix `build`, `test` needing
/// it, and `lint`) and `release` (tags only).
pub const LOCK: &str = r##"{
  "schemaVersion": 29,
  "source": {"file": ".kici/workflows/ci.ts", "export": "#default"},
  "contentHash": "0000000000000000000000000000000000000000000000000000000000000000",
  "workflows": [
    {
      "name": "ci",
      "source": {"file": ".kici/workflows/ci.ts", "export": "#default"},
      "contentHash": "1111111111111111111111111111111111111111111111111111111111111111",
      "compileSchemaVersion": 5,
      "triggers": [{"_type": "push", "branches": [{"type": "glob", "pattern": "main"}], "paths": []}],
      "jobs": [
        {"_type": "static", "name": "build",
         "runsOn": [{"kind": "exact", "value": "kici:os:linux"}],
         "needs": [],
         "matrix": {"_type": "static", "values": {"node": ["20", "22"]}},
         "steps": [{"name": "compile", "hasOutputs": false}]},
        {"_type": "static", "name": "test", "needs": ["build"],
         "steps": [{"name": "unit", "hasOutputs": false}]},
        {"_type": "static", "name": "lint", "needs": [],
         "steps": [{"name": "fmt", "hasOutputs": false}]}
      ]
    },
    {
      "name": "release",
      "source": {"file": ".kici/workflows/release.ts", "export": "#default"},
      "contentHash": "2222222222222222222222222222222222222222222222222222222222222222",
      "compileSchemaVersion": 5,
      "triggers": [{"_type": "tag", "tags": [{"type": "glob", "pattern": "v*"}]}],
      "jobs": [
        {"_type": "static", "name": "publish", "needs": [],
         "steps": [{"name": "upload", "hasOutputs": false}]}
      ]
    }
  ]
}"##;

/// A lock with one workflow, `ci` (push to main), whose `jobs` array holds `jobs` (JSON).
pub fn ci_push_lock(jobs: &str) -> String {
    format!(
        r##"{{
  "schemaVersion": 29,
  "source": {{"file": ".kici/workflows/ci.ts", "export": "#default"}},
  "contentHash": "{zeros}",
  "workflows": [{{
    "name": "ci",
    "source": {{"file": ".kici/workflows/ci.ts", "export": "#default"}},
    "contentHash": "{ones}",
    "compileSchemaVersion": 5,
    "triggers": [{{"_type": "push", "branches": [{{"type": "glob", "pattern": "main"}}], "paths": []}}],
    "jobs": [{jobs}]
  }}]
}}"##,
        zeros = "0".repeat(64),
        ones = "1".repeat(64),
    )
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `<base>/acme/widgets` with two commits: the first without a lock, the second with
/// [`LOCK`] and a source file. The working tree then loses the lock, to prove it is read at
/// the commit.
pub struct TestRepo {
    pub base: PathBuf,
    pub first: String,
    pub head: String,
    _dir: tempfile::TempDir,
}

impl TestRepo {
    pub fn new() -> TestRepo {
        Self::with_lock(LOCK)
    }

    /// [`TestRepo::new`] whose second commit holds `lock` instead of [`LOCK`].
    pub fn with_lock(lock: &str) -> TestRepo {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = dir.path().to_path_buf();
        let repo = base.join(REPO);
        std::fs::create_dir_all(&repo).expect("mkdir");
        git(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("README.md"), "hi\n").expect("write");
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "-q", "-m", "first"]);
        let first = git(&repo, &["rev-parse", "HEAD"]);
        std::fs::create_dir_all(repo.join(".kici")).expect("mkdir");
        std::fs::write(repo.join(".kici/kici.lock.json"), lock).expect("write");
        std::fs::write(repo.join("src.txt"), "code\n").expect("write");
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "-q", "-m", "lock"]);
        let head = git(&repo, &["rev-parse", "HEAD"]);
        std::fs::remove_file(repo.join(".kici/kici.lock.json")).expect("rm");
        TestRepo {
            base,
            first,
            head,
            _dir: dir,
        }
    }
}

pub fn source_config(base: &Path) -> SourceConfig {
    SourceConfig {
        name: "gh".to_string(),
        org_id: "default".to_string(),
        kind: SourceKind::GitHubApp {
            app_id: APP_ID.to_string(),
            webhook_secret: Secret::new(SECRET),
            previous_webhook_secret: None,
        },
        lock: LockSourceConfig::LocalFile {
            base: base.to_path_buf(),
        },
    }
}

pub fn config(base: &Path) -> Config {
    let mut config = Config::new(base.join("data"));
    config.bind = "127.0.0.1:0".parse().expect("addr");
    config.sources = vec![source_config(base)];
    config.inbox.workers = 1;
    config.inbox.poll_interval = Duration::from_millis(20);
    config.inbox.fixed_retry_delay = Some(Duration::ZERO);
    config
}

/// An app state whose single source reads locks through `lock`.
pub fn state_with(store: Store, base: &Path, lock: Option<Arc<dyn LockSource>>) -> AppState {
    let lock = lock.unwrap_or_else(|| Arc::new(LocalFile::new(base)));
    let mut sources = Sources::default();
    sources.insert(Source::new(&source_config(base), lock));
    AppState::new(store, config(base), sources)
}

/// A GitHub App push payload.
pub fn push_body(before: &str, after: &str, branch: &str) -> Vec<u8> {
    serde_json::json!({
        "ref": format!("refs/heads/{branch}"),
        "before": before,
        "after": after,
        "created": false,
        "deleted": false,
        "forced": false,
        "commits": [],
        "head_commit": {"id": after, "message": "lock"},
        "repository": {
            "full_name": REPO,
            "name": "widgets",
            "default_branch": "main",
            "owner": {"login": "acme"},
            "fork": false
        },
        "sender": {"login": "alice", "id": 7},
        "installation": {"id": 99}
    })
    .to_string()
    .into_bytes()
}

/// A signed GitHub App delivery.
pub fn delivery(event: &str, delivery_id: &str, body: Vec<u8>, secret: &str) -> Request<Body> {
    Request::post("/webhook/default/github")
        .header("content-type", "application/json")
        .header("X-GitHub-Event", event)
        .header("X-GitHub-Delivery", delivery_id)
        .header("X-GitHub-Hook-Installation-Target-ID", APP_ID)
        .header("X-GitHub-Hook-Installation-Target-Type", "integration")
        .header(
            "X-Hub-Signature-256",
            kici_engine::signature::sign_github(secret.as_bytes(), &body),
        )
        .body(Body::from(body))
        .expect("request")
}

/// Sends a request through the router; returns the status and the body as text.
pub async fn send(state: &AppState, request: Request<Body>) -> (StatusCode, String) {
    let response = kici_orchestrator::app(state.clone())
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Processes inbox items until none is due.
pub async fn drain(state: &AppState) -> usize {
    let mut n = 0;
    while kici_orchestrator::pipeline::run_once(state, "test-worker")
        .await
        .expect("claim")
    {
        n += 1;
        assert!(n < 100, "inbox never drained");
    }
    n
}

/// A lock reader over a [`TestRepo`] whose next fetches fail (with the error `failure` makes
/// from the call's index) while failures are left; counts every fetch.
pub struct FlakyLock {
    inner: LocalFile,
    /// Failures left; `usize::MAX`: every fetch fails until [`FlakyLock::set_failing`].
    failing: AtomicUsize,
    fetches: AtomicUsize,
    failure: fn(usize) -> FetchError,
}

impl FlakyLock {
    pub fn new(repo: &TestRepo, failing: usize, failure: fn(usize) -> FetchError) -> Arc<Self> {
        Arc::new(FlakyLock {
            inner: LocalFile::new(&repo.base),
            failing: AtomicUsize::new(failing),
            fetches: AtomicUsize::new(0),
            failure,
        })
    }

    pub fn set_failing(&self, failing: usize) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl LockSource for FlakyLock {
    fn fetch<'a>(
        &'a self,
        repo: &'a str,
        sha: &'a str,
    ) -> BoxFuture<'a, Result<Fetched, FetchError>> {
        let call = self.fetches.fetch_add(1, Ordering::SeqCst);
        let fails = self
            .failing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| match left {
                0 => None,
                usize::MAX => Some(usize::MAX),
                n => Some(n - 1),
            })
            .is_ok();
        if fails {
            let error = (self.failure)(call);
            return Box::pin(async move { Err(error) });
        }
        self.inner.fetch(repo, sha)
    }

    fn resolve<'a>(
        &'a self,
        repo: &'a str,
        git_ref: &'a str,
    ) -> BoxFuture<'a, Result<String, FetchError>> {
        self.inner.resolve(repo, git_ref)
    }

    fn changed_files<'a>(
        &'a self,
        repo: &'a str,
        base: &'a str,
        head: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, FetchError>> {
        self.inner.changed_files(repo, base, head)
    }
}
