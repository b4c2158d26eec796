//! Fresh PostgreSQL databases for tests, benchmarks and the robustness suite.
//!
//! The PostgreSQL tests never skip. When no server answers, the first caller gets one clear
//! message (the URL tried, the error, and how to start a server); every other caller in the
//! process fails at once with a one-line pointer to it.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::{create_postgres_database, drop_postgres_database};

/// The variable that names the PostgreSQL server's administrative URL.
pub const POSTGRES_URL_VAR: &str = "KINFOLD_TEST_POSTGRES_URL";

/// Where the tests look when [`POSTGRES_URL_VAR`] is unset.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The administrative URL the tests use.
pub fn postgres_admin_url() -> String {
    std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into())
}

/// A database made for one test; [`TestPostgres::drop_database`] removes it.
#[derive(Debug)]
pub struct TestPostgres {
    /// The URL of the new database.
    pub url: String,
    admin_url: String,
    name: String,
}

impl TestPostgres {
    /// Creates a database with a unique name on the test server.
    pub async fn create() -> Result<Self, String> {
        static REACHABLE: tokio::sync::OnceCell<Result<(), String>> =
            tokio::sync::OnceCell::const_new();
        static TOLD: AtomicBool = AtomicBool::new(false);
        let admin_url = postgres_admin_url();
        let reachable = REACHABLE
            .get_or_init(|| async {
                use sqlx::Connection;
                match sqlx::PgConnection::connect(&admin_url).await {
                    Ok(connection) => {
                        let _ = connection.close().await;
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                }
            })
            .await;
        if let Err(error) = reachable {
            return Err(if TOLD.swap(true, Ordering::SeqCst) {
                format!("PostgreSQL is not reachable at {admin_url} (see the first failure)")
            } else {
                unreachable_message(&admin_url, error)
            });
        }
        let name = format!("kinfold_test_{}", unique_suffix());
        create_postgres_database(&admin_url, &name)
            .await
            .map_err(|e| format!("could not create test database {name} at {admin_url}: {e:?}"))?;
        Ok(Self {
            url: with_database(&admin_url, &name),
            admin_url,
            name,
        })
    }

    /// Drops the database.
    pub async fn drop_database(self) -> Result<(), String> {
        drop_postgres_database(&self.admin_url, &self.name)
            .await
            .map_err(|e| format!("could not drop test database {}: {e}", self.name))
    }
}

fn unreachable_message(admin_url: &str, error: &str) -> String {
    format!(
        "PostgreSQL is not reachable at {admin_url}: {error}\n\
         The PostgreSQL half of Kinfold's tests needs a server that this user can create \
         databases on. Start one (on Debian or Ubuntu: \
         `pg_ctlcluster $(ls /etc/postgresql) main start`, which `.ci/run` does for you), or set \
         {POSTGRES_URL_VAR} to the URL of a server that is running."
    )
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .get(..6)
            .unwrap_or("0")
    )
}

/// The same server and query string, another database.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = base.rsplit_once('/').map_or(base, |(head, _)| head);
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn another_database_keeps_the_server_and_the_options() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres?sslmode=disable", "t1"),
            "postgres://u@h:5432/t1?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h/postgres", "t2"),
            "postgres://u@h/t2"
        );
    }
}
