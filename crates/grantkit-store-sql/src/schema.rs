//! The tables, the statements on them, and the migrations that create them.
//!
//! Every statement is written once; what differs between PostgreSQL and SQLite (column
//! types and how to read the database's clock) is filled in per database. Both accept `$n`
//! parameters and `INSERT … ON CONFLICT`, `UPDATE … WHERE`, `DELETE … RETURNING`.

use crate::config::DatabaseKind;

/// The qualified names of the store's tables.
#[derive(Clone, Debug)]
pub(crate) struct Tables {
    /// `schema.` (quoted) or nothing.
    schema: String,
    /// The table-name prefix, e.g. `grantkit_`.
    prefix: String,
}

impl Tables {
    /// Names from a checked schema and prefix (lowercase letters, digits, `_`).
    pub(crate) fn new(schema: Option<&str>, prefix: &str) -> Self {
        Self {
            schema: schema.map(|s| format!("\"{s}\".")).unwrap_or_default(),
            prefix: prefix.to_owned(),
        }
    }

    fn table(&self, name: &str) -> String {
        format!("{}\"{}{name}\"", self.schema, self.prefix)
    }

    /// An index's name: unqualified (an index lives in its table's schema).
    fn index(&self, name: &str) -> String {
        format!("\"{}{name}\"", self.prefix)
    }

    /// The name of the migrations table, which also names the migration lock.
    pub(crate) fn migrations(&self) -> String {
        self.table("schema_migrations")
    }
}

/// How many keys one `get_many` statement names.
pub(crate) const MANY_KEYS_PER_STATEMENT: usize = 1000;

/// The statements of one store, with its table names in them.
#[derive(Clone, Debug)]
pub(crate) struct Statements {
    tokens: String,
    pub(crate) get: String,
    pub(crate) put_any: String,
    pub(crate) put_absent: String,
    pub(crate) put_version: String,
    pub(crate) exists: String,
    pub(crate) delete_any: String,
    pub(crate) delete_version: String,
    pub(crate) list_provider: String,
    pub(crate) list_client: String,
    pub(crate) try_lease: String,
    pub(crate) renew_lease: String,
    pub(crate) release_lease: String,
    pub(crate) put_pending: String,
    pub(crate) take_pending: String,
    pub(crate) purge_pending: String,
    pub(crate) purge_leases: String,
    pub(crate) purge_tokens: String,
    pub(crate) migrations_table: String,
    pub(crate) schema_version: String,
    pub(crate) record_migration: String,
    /// What starts the migration transaction: SQLite takes the write lock at once.
    pub(crate) begin_migration: &'static str,
    /// PostgreSQL: the advisory lock that makes concurrent openers migrate one at a time.
    pub(crate) lock_migration: Option<&'static str>,
    /// The migrations: version, statements.
    pub(crate) migrations: Vec<(i64, Vec<String>)>,
}

impl Statements {
    pub(crate) fn new(kind: DatabaseKind, tables: &Tables) -> Self {
        let (bytes, int, now) = match kind {
            DatabaseKind::Postgres => (
                "BYTEA",
                "BIGINT",
                "(extract(epoch from clock_timestamp()) * 1000)::bigint",
            ),
            DatabaseKind::Sqlite => (
                "BLOB",
                "INTEGER",
                "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
            ),
        };
        let tokens = tables.table("tokens");
        let leases = tables.table("leases");
        let pending = tables.table("pending");
        let migrations_table = tables.migrations();
        let insert = format!(
            "INSERT INTO {tokens} \
             (key_hash, provider_hash, client_hash, provider, client, account, version, record, purge_after_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (key_hash)"
        );
        let version_1 = vec![
            format!(
                "CREATE TABLE {tokens} (\
                 key_hash {bytes} PRIMARY KEY, \
                 provider_hash {bytes} NOT NULL, \
                 client_hash {bytes} NOT NULL, \
                 provider {bytes} NOT NULL, \
                 client {bytes} NOT NULL, \
                 account {bytes} NOT NULL, \
                 version {int} NOT NULL, \
                 record {bytes} NOT NULL, \
                 purge_after_ms {int})"
            ),
            format!(
                "CREATE INDEX {} ON {tokens} (provider_hash, client_hash)",
                tables.index("tokens_by_client")
            ),
            format!(
                "CREATE INDEX {} ON {tokens} (purge_after_ms)",
                tables.index("tokens_by_purge_time")
            ),
            format!(
                "CREATE TABLE {leases} (\
                 key_hash {bytes} PRIMARY KEY, \
                 holder TEXT NOT NULL, \
                 expires_at_ms {int} NOT NULL)"
            ),
            format!(
                "CREATE TABLE {pending} (\
                 state_hash TEXT PRIMARY KEY, \
                 record {bytes} NOT NULL, \
                 expires_at_ms {int} NOT NULL)"
            ),
            format!(
                "CREATE INDEX {} ON {pending} (expires_at_ms)",
                tables.index("pending_by_expiry")
            ),
        ];
        Self {
            get: format!("SELECT version, record FROM {tokens} WHERE key_hash = $1"),
            put_any: format!(
                "{insert} DO UPDATE SET version = excluded.version, record = excluded.record, \
                 purge_after_ms = excluded.purge_after_ms"
            ),
            put_absent: format!("{insert} DO NOTHING"),
            put_version: format!(
                "UPDATE {tokens} SET version = $2, record = $3, purge_after_ms = $4 \
                 WHERE key_hash = $1 AND version = $5"
            ),
            exists: format!("SELECT 1 FROM {tokens} WHERE key_hash = $1"),
            delete_any: format!("DELETE FROM {tokens} WHERE key_hash = $1"),
            delete_version: format!("DELETE FROM {tokens} WHERE key_hash = $1 AND version = $2"),
            list_provider: format!(
                "SELECT provider, client, account FROM {tokens} WHERE provider_hash = $1"
            ),
            list_client: format!(
                "SELECT provider, client, account FROM {tokens} \
                 WHERE provider_hash = $1 AND client_hash = $2"
            ),
            // Taken when free or expired, atomically: a conflicting row is replaced only
            // when its lease has run out, and only a taken lease returns a row.
            try_lease: format!(
                "INSERT INTO {leases} AS held (key_hash, holder, expires_at_ms) \
                 VALUES ($1, $2, {now} + $3) ON CONFLICT (key_hash) DO UPDATE \
                 SET holder = excluded.holder, expires_at_ms = excluded.expires_at_ms \
                 WHERE held.expires_at_ms <= {now} RETURNING holder"
            ),
            renew_lease: format!(
                "UPDATE {leases} SET expires_at_ms = {now} + $3 WHERE key_hash = $1 AND holder = $2"
            ),
            release_lease: format!("DELETE FROM {leases} WHERE key_hash = $1 AND holder = $2"),
            put_pending: format!(
                "INSERT INTO {pending} (state_hash, record, expires_at_ms) \
                 VALUES ($1, $2, {now} + $3) ON CONFLICT (state_hash) DO UPDATE \
                 SET record = excluded.record, expires_at_ms = excluded.expires_at_ms"
            ),
            take_pending: format!(
                "DELETE FROM {pending} WHERE state_hash = $1 RETURNING record, expires_at_ms - {now}"
            ),
            purge_pending: format!("DELETE FROM {pending} WHERE expires_at_ms <= {now}"),
            purge_leases: format!("DELETE FROM {leases} WHERE expires_at_ms <= {now}"),
            purge_tokens: format!(
                "DELETE FROM {tokens} WHERE purge_after_ms IS NOT NULL AND purge_after_ms <= {now}"
            ),
            schema_version: format!("SELECT MAX(version) FROM {migrations_table}"),
            record_migration: format!(
                "INSERT INTO {migrations_table} (version, applied_at_ms) VALUES ($1, {now})"
            ),
            migrations_table: format!(
                "CREATE TABLE IF NOT EXISTS {migrations_table} \
                 (version {int} PRIMARY KEY, applied_at_ms {int} NOT NULL)"
            ),
            begin_migration: match kind {
                DatabaseKind::Postgres => "BEGIN",
                DatabaseKind::Sqlite => "BEGIN IMMEDIATE",
            },
            lock_migration: match kind {
                DatabaseKind::Postgres => Some("SELECT pg_advisory_xact_lock($1)"),
                DatabaseKind::Sqlite => None,
            },
            migrations: vec![(1, version_1)],
            tokens,
        }
    }

    /// `SELECT` of the records of `count` keys (`$1` … `$count`).
    pub(crate) fn get_many(&self, count: usize) -> String {
        let mut sql = format!(
            "SELECT key_hash, version, record FROM {} WHERE key_hash IN (",
            self.tokens
        );
        for n in 1..=count {
            if n > 1 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&n.to_string());
        }
        sql.push(')');
        sql
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_and_prefixed() {
        let tables = Tables::new(Some("auth"), "app_");
        let sql = Statements::new(DatabaseKind::Postgres, &tables);
        assert_eq!(
            sql.get,
            "SELECT version, record FROM \"auth\".\"app_tokens\" WHERE key_hash = $1"
        );
        assert!(
            sql.migrations[0].1[1]
                .starts_with("CREATE INDEX \"app_tokens_by_client\" ON \"auth\".\"app_tokens\"")
        );
        let sqlite = Statements::new(DatabaseKind::Sqlite, &Tables::new(None, "grantkit_"));
        assert!(
            sqlite
                .get_many(3)
                .ends_with("FROM \"grantkit_tokens\" WHERE key_hash IN ($1, $2, $3)")
        );
    }
}
