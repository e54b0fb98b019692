//! The server-side Lua scripts: every check-then-write runs in one script, so no other
//! client's command can come between the check and the write.
//!
//! Scripts are sent as `EVALSHA`, built directly as one command (no intermediate copies of
//! the arguments), and loaded on `NOSCRIPT` (after a restart or failover), so a call costs
//! one round trip and the script body crosses the network once per server.

use redis::{Cmd, ErrorKind, FromRedisValue, RedisResult, Script, ServerErrorKind};
use std::sync::LazyLock;

/// An `EVALSHA` of `script` on `keys`; the caller appends the arguments.
pub(crate) fn evalsha(script: &Script, keys: &[&str]) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len()).arg(keys);
    cmd
}

/// Runs an [`evalsha`] call; where the server does not know the script (it restarted or a
/// replica took over) loads it (on every node of a cluster) and runs the call again.
pub(crate) async fn run<T, C>(script: &Script, call: &Cmd, conn: &mut C) -> RedisResult<T>
where
    T: FromRedisValue,
    C: redis::aio::ConnectionLike + Send,
{
    match call.query_async(conn).await {
        Err(err) if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            script.load_async(conn).await?;
            call.query_async(conn).await
        }
        other => other,
    }
}

/// Compare-and-swap write of a record.
///
/// KEYS: record, tombstone. ARGV: precondition (`any`, `absent`, `version`), the expected
/// version, the encoded token set, the expiry in ms (`0`: none), provider, client, account.
/// Returns the new version, or 0 when the precondition does not hold.
///
/// A version is the larger of the server's clock in microseconds and one more than the
/// stored version (or, for a new record, than its tombstone's): it increases with every
/// write of a key, and a record re-created after a delete starts above every version the
/// deleted one had. Lua numbers are doubles, exact for integers below 2^53 (the clock in
/// microseconds stays below that until the year 2255); `%d` prints them without an
/// exponent. The key parts never change for a record, so they are written only when it is
/// created: rewriting them on every update cost a quarter of the throughput.
pub(crate) static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local current = redis.call('HGET', KEYS[1], 'v')
if ARGV[1] == 'absent' then
  if current then return 0 end
elseif ARGV[1] == 'version' then
  if current ~= ARGV[2] then return 0 end
end
local floor
if current then
  floor = tonumber(current)
else
  floor = tonumber(redis.call('GET', KEYS[2]) or '0')
end
local now = redis.call('TIME')
local version = math.max(floor + 1, tonumber(now[1]) * 1000000 + tonumber(now[2]))
if current then
  redis.call('HSET', KEYS[1], 'v', string.format('%d', version), 'd', ARGV[3])
else
  redis.call('HSET', KEYS[1], 'v', string.format('%d', version), 'd', ARGV[3],
    'p', ARGV[5], 'c', ARGV[6], 'a', ARGV[7])
end
if ARGV[4] == '0' then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return version
"#,
    )
});

/// Conditional delete of a record; leaves a tombstone with its last version.
///
/// KEYS: record, tombstone. ARGV: precondition, the expected version, the tombstone's
/// lifetime in ms. Returns 1 when deleted, 0 when nothing was stored, -1 when the
/// precondition does not hold.
pub(crate) static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local current = redis.call('HGET', KEYS[1], 'v')
if ARGV[1] == 'absent' then
  if current then return -1 end
  return 0
elseif ARGV[1] == 'version' then
  if current ~= ARGV[2] then return -1 end
end
if not current then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], current, 'PX', ARGV[3])
return 1
"#,
    )
});

/// Extends a lease only while `holder` holds it. KEYS: lease. ARGV: holder, TTL in ms.
/// Returns 1 when renewed, 0 when the lease is gone or someone else's.
pub(crate) static RENEW_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"#,
    )
});

/// Deletes a lease only while `holder` holds it. KEYS: lease. ARGV: holder.
/// Returns 1 when released, 0 otherwise.
pub(crate) static RELEASE_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#,
    )
});
