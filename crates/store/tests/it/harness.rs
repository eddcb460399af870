//! Per-test databases (`kici_testkit::db`) with a store opened on them.

use kici_store::{Store, StoreOptions};
use kici_testkit::db::TestDatabase;

pub struct TestDb {
    pub url: String,
    pub store: Store,
    database: TestDatabase,
}

impl TestDb {
    async fn open(database: TestDatabase) -> TestDb {
        let store = Store::connect(&database.url, StoreOptions::default())
            .await
            .expect("open store");
        TestDb {
            url: database.url.clone(),
            store,
            database,
        }
    }

    pub async fn sqlite() -> TestDb {
        Self::open(TestDatabase::sqlite()).await
    }

    /// `None` when PostgreSQL is unreachable outside CI (see [`TestDatabase::postgres`]).
    pub async fn postgres() -> Option<TestDb> {
        Some(Self::open(TestDatabase::postgres().await?).await)
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
        self.database.finish().await;
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
