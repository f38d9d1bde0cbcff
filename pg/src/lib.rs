//! PostgreSQL failures by what they are, for every crate that talks to the database (the
//! API's use cases and the workers): one table of SQLSTATEs, so a database restart is
//! never a client error in one place and an outage in another.
//!
//! Guarantees of [`classify`]:
//! * **the database is away** ([`PgFailure::Unavailable`]): the connection could not be
//!   made or was lost (I/O, TLS, pool timeouts, a closed pool, a crashed driver worker),
//!   connection exceptions (SQLSTATE class `08`), an administrator shutdown, a crash or a
//!   restart (`57P01`, `57P02`, `57P03`), too many connections (`53300`) and I/O errors
//!   (`58030`). A retry after a wait heals it; the API answers 503 with `Retry-After`, a
//!   worker counts it against the `postgres` circuit breaker;
//! * **the transaction lost a race** ([`PgFailure::Conflict`]): a serialization failure
//!   (`40001`), a deadlock (`40P01`), a lock not available (`55P03`), a query cancelled or
//!   timed out (`57014`). Running the same transaction again heals it, at once;
//! * everything else is [`PgFailure::Permanent`]: a constraint, a syntax error, a missing
//!   table or row, a value out of range — running it again fails again.
//!
//! [`drop_database`] drops a database even while an autovacuum worker is at work on it.

#![warn(missing_docs)]

/// What a failed PostgreSQL call means for whoever called it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgFailure {
    /// The database is unreachable, restarting or out of connections.
    Unavailable,
    /// The transaction lost a race with another one (deadlock, serialization failure,
    /// lock or statement timeout); running it again may succeed.
    Conflict,
    /// Running it again fails again.
    Permanent,
}

impl PgFailure {
    /// Whether a retry may succeed ([`Unavailable`](PgFailure::Unavailable) or
    /// [`Conflict`](PgFailure::Conflict)).
    pub fn is_retryable(self) -> bool {
        self != PgFailure::Permanent
    }
}

/// SQLSTATEs of a database that is away (besides the whole class `08`).
const UNAVAILABLE: [&str; 5] = ["57P01", "57P02", "57P03", "53300", "58030"];
/// SQLSTATEs of a transaction that lost a race.
const CONFLICT: [&str; 4] = ["40001", "40P01", "55P03", "57014"];

/// What the SQLSTATE `code` means.
pub fn classify_sqlstate(code: &str) -> PgFailure {
    if code.starts_with("08") || UNAVAILABLE.contains(&code) {
        PgFailure::Unavailable
    } else if CONFLICT.contains(&code) {
        PgFailure::Conflict
    } else {
        PgFailure::Permanent
    }
}

/// What the sqlx error `e` means.
pub fn classify(e: &sqlx::Error) -> PgFailure {
    match e {
        sqlx::Error::Database(db) => db.code().map_or(PgFailure::Permanent, |c| classify_sqlstate(&c)),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => PgFailure::Unavailable,
        _ => PgFailure::Permanent,
    }
}

/// Drops the database `name` (`IF EXISTS`, `WITH (FORCE)`) over `conn`, a connection to
/// another database of the server. FORCE ends every session but an autovacuum worker (it
/// runs as the superuser: "must be a member of the role whose process is being
/// terminated or member of pg_signal_backend"), which may be at work on a database
/// right after a load; it ends on its own, so the drop is tried again for up to 10 s.
pub async fn drop_database(conn: &mut sqlx::PgConnection, name: &str) -> Result<(), sqlx::Error> {
    let drop = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", name.replace('"', "\"\""));
    let mut attempt = 0;
    loop {
        match sqlx::raw_sql(&drop).execute(&mut *conn).await {
            Ok(_) => return Ok(()),
            Err(e) if attempt < 40 && e.to_string().contains("pg_signal_backend") => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_by_class() {
        for code in ["08000", "08003", "08006", "08001", "57P01", "57P02", "57P03", "53300", "58030"] {
            assert_eq!(classify_sqlstate(code), PgFailure::Unavailable, "{code}");
        }
        for code in ["40001", "40P01", "55P03", "57014"] {
            assert_eq!(classify_sqlstate(code), PgFailure::Conflict, "{code}");
        }
        for code in ["23505", "23503", "42601", "42P01", "22003", "P0001"] {
            assert_eq!(classify_sqlstate(code), PgFailure::Permanent, "{code}");
        }
    }

    #[test]
    fn lost_connections_are_unavailable_and_missing_rows_permanent() {
        let io = sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
        assert_eq!(classify(&io), PgFailure::Unavailable);
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), PgFailure::Unavailable);
        assert_eq!(classify(&sqlx::Error::RowNotFound), PgFailure::Permanent);
        assert!(!PgFailure::Permanent.is_retryable() && PgFailure::Conflict.is_retryable());
    }
}
