//! The migration runner: embedded SQL files, one directory per backend, applied in order
//! under a lock and recorded in `schema_migrations` (with a checksum, so an edited released
//! migration is detected instead of silently skipped).
//!
//! Our own runner rather than `sqlx::migrate!`: it needs no proc-macro, names the table as
//! the spec does, and takes the lock the spec asks for on SQLite too — one `BEGIN IMMEDIATE`
//! transaction around the whole check-and-apply, where sqlx's SQLite migrator takes none.
//! PostgreSQL holds a session advisory lock, and applies each migration in its own
//! transaction.

use sqlx::Connection;

use crate::{Backend, Error, Result, RowExt, Store};

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

const SQLITE: &[Migration] = &[Migration {
    version: 1,
    name: "initial",
    sql: include_str!("../migrations/sqlite/0001_initial.sql"),
}];

const POSTGRES: &[Migration] = &[Migration {
    version: 1,
    name: "initial",
    sql: include_str!("../migrations/postgres/0001_initial.sql"),
}];

/// Arbitrary, fixed: every KiCI node contends for the same advisory lock.
const PG_MIGRATION_LOCK: i64 = 0x6b69_6369_6d69_6772;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    BIGINT PRIMARY KEY,
    name       TEXT NOT NULL,
    checksum   TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)";

/// What [`Store::migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions applied by this call, in order.
    pub applied: Vec<i64>,
    /// The schema version afterwards.
    pub current: i64,
}

fn checksum(sql: &str) -> String {
    crate::sha256_hex(sql.as_bytes())
}

/// Compares what the database has applied with the embedded list and returns the
/// migrations still to apply.
fn pending<'m>(
    migrations: &'m [Migration],
    applied: &[(i64, String, String)],
) -> Result<Vec<&'m Migration>> {
    let known = migrations.last().map_or(0, |m| m.version);
    for (version, name, sum) in applied {
        match migrations.iter().find(|m| m.version == *version) {
            None => {
                return Err(Error::SchemaTooNew {
                    found: *version,
                    known,
                });
            }
            Some(m) => {
                let embedded = checksum(m.sql);
                if embedded != *sum {
                    return Err(Error::MigrationChanged {
                        version: *version,
                        name: name.clone(),
                        applied: sum.clone(),
                        embedded,
                    });
                }
            }
        }
    }
    Ok(migrations
        .iter()
        .filter(|m| !applied.iter().any(|(v, _, _)| *v == m.version))
        .collect())
}

const SELECT_APPLIED: &str =
    "SELECT version, name, checksum FROM schema_migrations ORDER BY version";
const INSERT_APPLIED: &str =
    "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)";

impl Store {
    /// Applies every embedded migration not yet applied. Safe to call from several
    /// processes at once, and a no-op when the schema is current. `now` is recorded as
    /// `applied_at`.
    pub async fn migrate(&self, now: i64) -> Result<MigrationReport> {
        match &self.backend {
            Backend::Sqlite { write, .. } => {
                let mut tx = write.begin_with("BEGIN IMMEDIATE").await?;
                sqlx::query(CREATE_TABLE).execute(&mut *tx).await?;
                let rows = sqlx::query(SELECT_APPLIED).fetch_all(&mut *tx).await?;
                let applied = rows
                    .iter()
                    .map(|r| Ok((r.int("version")?, r.text("name")?, r.text("checksum")?)))
                    .collect::<Result<Vec<_>>>()?;
                let todo = pending(SQLITE, &applied)?;
                let mut report = Vec::new();
                for m in todo {
                    sqlx::raw_sql(m.sql)
                        .execute(&mut *tx)
                        .await
                        .map_err(|source| Error::Migration {
                            version: m.version,
                            name: m.name,
                            source,
                        })?;
                    sqlx::query(INSERT_APPLIED)
                        .bind(m.version)
                        .bind(m.name)
                        .bind(checksum(m.sql))
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    report.push(m.version);
                }
                tx.commit().await?;
                Ok(MigrationReport {
                    applied: report,
                    current: SQLITE.last().map_or(0, |m| m.version),
                })
            }
            Backend::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(PG_MIGRATION_LOCK)
                    .execute(&mut *conn)
                    .await?;
                let result = migrate_pg(&mut conn, now).await;
                // A connection dropped by an error releases the lock with its session.
                let unlock = sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(PG_MIGRATION_LOCK)
                    .execute(&mut *conn)
                    .await;
                let report = result?;
                unlock?;
                Ok(report)
            }
        }
    }

    /// The applied schema version (0 for an empty database).
    pub async fn schema_version(&self) -> Result<i64> {
        let exists = crate::on_reader!(self, |pool| {
            match sqlx::query("SELECT MAX(version) AS v FROM schema_migrations")
                .fetch_one(pool)
                .await
            {
                Ok(row) => row.opt_int("v")?,
                Err(sqlx::Error::Database(_)) => None,
                Err(e) => return Err(e.into()),
            }
        });
        Ok(exists.unwrap_or(0))
    }
}

async fn migrate_pg(conn: &mut sqlx::PgConnection, now: i64) -> Result<MigrationReport> {
    sqlx::query(CREATE_TABLE).execute(&mut *conn).await?;
    let rows = sqlx::query(SELECT_APPLIED).fetch_all(&mut *conn).await?;
    let applied = rows
        .iter()
        .map(|r| Ok((r.int("version")?, r.text("name")?, r.text("checksum")?)))
        .collect::<Result<Vec<_>>>()?;
    let mut report = Vec::new();
    for m in pending(POSTGRES, &applied)? {
        let mut tx = conn.begin().await?;
        sqlx::raw_sql(m.sql)
            .execute(&mut *tx)
            .await
            .map_err(|source| Error::Migration {
                version: m.version,
                name: m.name,
                source,
            })?;
        sqlx::query(INSERT_APPLIED)
            .bind(m.version)
            .bind(m.name)
            .bind(checksum(m.sql))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        report.push(m.version);
    }
    Ok(MigrationReport {
        applied: report,
        current: POSTGRES.last().map_or(0, |m| m.version),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_have_the_same_versions_in_order() {
        let versions =
            |list: &[Migration]| list.iter().map(|m| (m.version, m.name)).collect::<Vec<_>>();
        assert_eq!(versions(SQLITE), versions(POSTGRES));
        for list in [SQLITE, POSTGRES] {
            for (i, m) in list.iter().enumerate() {
                assert_eq!(m.version, i as i64 + 1);
            }
        }
    }

    #[test]
    fn an_edited_or_unknown_migration_is_an_error() {
        let applied = vec![(1, "initial".to_string(), "bogus".to_string())];
        assert!(matches!(
            pending(SQLITE, &applied),
            Err(Error::MigrationChanged { version: 1, .. })
        ));
        let applied = vec![(99, "future".to_string(), String::new())];
        assert!(matches!(
            pending(SQLITE, &applied),
            Err(Error::SchemaTooNew { found: 99, .. })
        ));
        assert_eq!(pending(SQLITE, &[]).unwrap().len(), SQLITE.len());
    }
}
