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

/// Reads the version of the record at `KEYS[1]` into `current` (`nil` when there is
/// none): from a record of format 3 or 2 (`v3|<version>|…`), or from a hash of format 1
/// (field `v`), which a rolling upgrade may still hold. Anything else under the key is refused
/// as `WRONGTYPE`, which the client reports as a corrupt record.
const READ_CURRENT: &str = r#"
local raw = redis.pcall('GET', KEYS[1])
local current
if type(raw) == 'table' then
  if raw.err and string.sub(raw.err, 1, 9) == 'WRONGTYPE' then
    current = redis.call('HGET', KEYS[1], 'v')
  else
    return raw
  end
elseif raw then
  local head = string.sub(raw, 1, 3)
  local bar = (head == 'v3|' or head == 'v2|') and string.find(raw, '|', 4, true)
  if not bar then
    return redis.error_reply('WRONGTYPE the key holds no grantkit record')
  end
  current = string.sub(raw, 4, bar - 1)
end
"#;

/// Compare-and-swap write of a record, at the floor of what one costs: one read, one
/// comparison, one `SET` (with its expiry, or none).
///
/// KEYS: record, tombstone. ARGV: the precondition (`any`, `absent`, or the expected
/// version), the payload (the key parts and the encoded token set), the expiry in ms (`0`:
/// none). Returns the new version, or 0 when the precondition does not hold.
///
/// A version is one more than the stored one; a new record starts above both its
/// tombstone (the last version of a deleted record) and the server's clock in
/// microseconds, so a record re-created after its tombstone expired still starts above
/// every version it ever had. Only a creation reads the tombstone and the clock. Lua
/// numbers are doubles, exact for integers below 2^53 (the clock in microseconds stays
/// below that until the year 2255); `%d` prints them without an exponent. `SET` replaces
/// whatever was there, a format-1 hash included, and sets or clears the expiry with it.
pub(crate) static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{READ_CURRENT}
if ARGV[1] == 'absent' then
  if current then return 0 end
elseif ARGV[1] ~= 'any' then
  if current ~= ARGV[1] then return 0 end
end
local version
if current then
  version = tonumber(current) + 1
else
  local now = redis.call('TIME')
  version = math.max(tonumber(redis.call('GET', KEYS[2]) or '0') + 1,
    tonumber(now[1]) * 1000000 + tonumber(now[2]))
end
local record = 'v3|' .. string.format('%d', version) .. '|' .. ARGV[2]
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], record)
else
  redis.call('SET', KEYS[1], record, 'PX', ARGV[3])
end
return version
"#
    ))
});

/// Compare-and-swap replacement of a known version: the write a refresh makes, at the
/// floor of what one costs. The client knows the next version (one more than the one it
/// replaces) and sends the whole record, so the script only compares and writes.
///
/// KEYS: record. ARGV: the expected version, the whole new record, the expiry in ms (`0`:
/// none). Returns 1 when written, 0 when the stored version is another (or none).
pub(crate) static REPLACE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{READ_CURRENT}
if current ~= ARGV[1] then return 0 end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
"#
    ))
});

/// Conditional delete of a record; leaves a tombstone with its last version.
///
/// KEYS: record, tombstone. ARGV: the precondition (as for [`PUT`]), the tombstone's
/// lifetime in ms. Returns 1 when deleted, 0 when nothing was stored, -1 when the
/// precondition does not hold.
pub(crate) static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{READ_CURRENT}
if ARGV[1] == 'absent' then
  if current then return -1 end
  return 0
elseif ARGV[1] ~= 'any' then
  if current ~= ARGV[1] then return -1 end
end
if not current then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], current, 'PX', ARGV[2])
return 1
"#
    ))
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
