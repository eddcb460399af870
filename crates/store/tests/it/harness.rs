//! Per-test databases: a temp SQLite file, or a fresh PostgreSQL database
//! `kici_test_<random>` that is dropped when the test passes and kept when it fails.

use std::path::PathBuf;

use kici_store::{Store, StoreOptions};
use sqlx::Connection;

const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/";

pub struct TestDb {
    pub url: String,
    pub store: Store,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

fn pg_base() -> String {
    std::env::var("KICI_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG.to_string())
}

fn pg_url(base: &str, db: &str) -> String {
    format!("{}/{db}", base.trim_end_matches('/'))
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let path: PathBuf = dir.path().join("kici.db");
        let url = kici_store::sqlite_url(&path);
        let store = Store::connect(&url, StoreOptions::default())
            .await
            .expect("open sqlite");
        TestDb {
            url,
            store,
            pg_name: None,
            _dir: Some(dir),
        }
    }

    /// `None` (after a loud message) when PostgreSQL is unreachable outside CI; in CI an
    /// unreachable server fails the test.
    pub async fn postgres() -> Option<TestDb> {
        let base = pg_base();
        let admin_url = pg_url(&base, "postgres");
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
        let url = pg_url(&base, &name);
        let store = Store::connect(&url, StoreOptions::default())
            .await
            .expect("open postgres");
        Some(TestDb {
            url,
            store,
            pg_name: Some(name),
            _dir: None,
        })
    }

    /// Another store on the same database, with its own connections.
    pub async fn open_another(&self, options: StoreOptions) -> Store {
        Store::connect(&self.url, options).await.expect("open")
    }

    pub async fn migrated(&self) -> Store {
        self.store.migrate(1).await.expect("migrate");
        self.store.clone()
    }

    /// Called only when the test body returned, so a failing test keeps its database.
    pub async fn finish(self) {
        self.store.close().await;
        if let Some(name) = self.pg_name {
            let admin_url = pg_url(&pg_base(), "postgres");
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
}

/// Expands each suite function into a SQLite and a PostgreSQL test.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = crate::harness::TestDb::sqlite().await;
                    crate::suite::$name(&db).await;
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
                    crate::suite::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
}

pub(crate) use backend_tests;
