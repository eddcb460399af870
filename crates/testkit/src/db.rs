//! Per-test databases for behaviour suites that run on every backend: a SQLite file in a temp
//! directory, or a fresh PostgreSQL database `kici_test_<random>` that is dropped when the
//! test passes and kept when it fails (call [`TestDatabase::finish`] only after the body).

use std::path::PathBuf;

use sqlx::Connection;

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/";

/// A database URL that belongs to one test.
pub struct TestDatabase {
    pub url: String,
    postgres_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

/// The server the PostgreSQL half of a suite uses: `KICI_TEST_POSTGRES_URL`, else the local
/// one on 127.0.0.1:5432 (trust auth).
fn postgres_base() -> String {
    std::env::var("KICI_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES.to_string())
}

fn postgres_url(base: &str, database: &str) -> String {
    format!("{}/{database}", base.trim_end_matches('/'))
}

impl TestDatabase {
    /// A new SQLite file (created on first connect) in a temp directory of its own.
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("temp dir");
        let path: PathBuf = dir.path().join("kici.db");
        TestDatabase {
            url: format!("sqlite://{}", path.display()),
            postgres_name: None,
            _dir: Some(dir),
        }
    }

    /// A new, empty PostgreSQL database. `None` (after a loud message) when the server is
    /// unreachable outside CI; with `CI` set an unreachable server fails the test.
    pub async fn postgres() -> Option<TestDatabase> {
        let base = postgres_base();
        let admin_url = postgres_url(&base, "postgres");
        let mut admin = match sqlx::PgConnection::connect(&admin_url).await {
            Ok(conn) => conn,
            Err(e) => {
                if std::env::var_os("CI").is_some() {
                    panic!("PostgreSQL unreachable at {admin_url} (CI is set, so this fails): {e}");
                }
                eprintln!(
                    "\n*** SKIPPED: PostgreSQL unreachable at {admin_url}: {e}\n*** set KICI_TEST_POSTGRES_URL or start PostgreSQL to run the PostgreSQL half of the suite\n"
                );
                return None;
            }
        };
        let name = format!("kici_test_{}", uuid::Uuid::new_v4().simple());
        // Identifiers cannot be bound; the name is ours and alphanumeric.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        admin.close().await.ok();
        Some(TestDatabase {
            url: postgres_url(&base, &name),
            postgres_name: Some(name),
            _dir: None,
        })
    }

    /// Drops a PostgreSQL database (a SQLite file goes with its temp directory). Call it only
    /// when the test body returned, so that a failing test keeps its database to look at.
    pub async fn finish(self) {
        let Some(name) = self.postgres_name else {
            return;
        };
        let admin_url = postgres_url(&postgres_base(), "postgres");
        if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await;
            admin.close().await.ok();
        }
    }
}
