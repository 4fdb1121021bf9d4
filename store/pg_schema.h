#pragma once

/// The PostgreSQL journal's schema and statements (docs/store.md,
/// "PostgreSQL"). Job states and failure classes are stored as their
/// numbers (core::JobState, core::FailureClass): part of the schema.

namespace troupe::store::detail::pg {

/// troupe_schema.version this trouped writes; a newer one is refused.
constexpr int kSchemaVersion = 5;
/// The advisory lock creating and migrating the schema runs under (any
/// constant all trouped versions agree on: "troupe" in ASCII).
constexpr const char* kLockSchema = "SELECT pg_advisory_xact_lock(127978942625893)";

constexpr const char* kCreateVersionTable =
    "CREATE TABLE IF NOT EXISTS troupe_schema (version integer NOT NULL)";
constexpr const char* kSelectVersion = "SELECT max(version) FROM troupe_schema";
/// Version 1, created in the search_path's first schema.
constexpr const char* kCreateSchema = R"sql(
CREATE TABLE troupe_replicas (
  incarnation bigserial PRIMARY KEY, name text NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(), heartbeat_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL);
CREATE TABLE troupe_jobs (
  id bigint PRIMARY KEY, seq bigserial NOT NULL,
  troupe text NOT NULL, state smallint NOT NULL,
  owner bigint, epoch bigint NOT NULL DEFAULT 1,
  cancel_requested boolean NOT NULL DEFAULT false,
  payload bytea, key text, idempotency_key text, metadata bytea,
  submitted_ns bigint, deadline_ns bigint, attempt_timeout_ns bigint,
  attempts integer NOT NULL DEFAULT 0, failure smallint NOT NULL DEFAULT 0, output bytea,
  started_ns bigint, finished_ns bigint, next_run_ns bigint);
CREATE INDEX troupe_jobs_claimable ON troupe_jobs (troupe, seq) WHERE owner IS NULL AND state IN (0, 1, 2);
CREATE INDEX troupe_jobs_owned ON troupe_jobs (owner) WHERE owner IS NOT NULL;
CREATE INDEX troupe_jobs_dead ON troupe_jobs (troupe, finished_ns) WHERE state = 5;
CREATE INDEX troupe_jobs_finished ON troupe_jobs (finished_ns) WHERE state IN (3, 4, 6, 7);
INSERT INTO troupe_schema (version) VALUES (1);
)sql";

/// Version 2, step "cluster view" (h19; Journal::cluster()): the
/// unfinished rows by troupe and state, so that counting a troupe's queue
/// is an index-only scan of the unfinished rows however many finished ones
/// are kept. Idempotent (a database created at version 2 runs it too).
constexpr const char* kMigrateClusterView = R"sql(
CREATE INDEX IF NOT EXISTS troupe_jobs_live ON troupe_jobs (troupe, state, submitted_ns)
  WHERE state IN (0, 1, 2);
INSERT INTO troupe_schema (version) SELECT 2
  WHERE NOT EXISTS (SELECT 1 FROM troupe_schema WHERE version >= 2);
)sql";

/// Version 2, step "coordination": singleton leases and max_concurrency permits
/// (docs/cluster.md). Idempotent, from version 1.
constexpr const char* kMigrateCoordination = R"sql(
CREATE TABLE IF NOT EXISTS troupe_leases (
  troupe text PRIMARY KEY, owner bigint, term bigint NOT NULL DEFAULT 0,
  expires_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS troupe_permits (
  troupe text NOT NULL, slot integer NOT NULL, owner bigint, PRIMARY KEY (troupe, slot));
INSERT INTO troupe_schema (version) SELECT 2
  WHERE NOT EXISTS (SELECT 1 FROM troupe_schema WHERE version >= 2);
)sql";

/// Version 3, step "rate limits": a token bucket per troupe with a cluster
/// rate limit (docs/cluster.md). Idempotent, from version 2.
constexpr const char* kMigrateRateLimits = R"sql(
CREATE TABLE IF NOT EXISTS troupe_rate_buckets (
  troupe text PRIMARY KEY, tokens double precision NOT NULL, granted bigint NOT NULL DEFAULT 0,
  refilled_at timestamptz NOT NULL);
INSERT INTO troupe_schema (version) SELECT 3
  WHERE NOT EXISTS (SELECT 1 FROM troupe_schema WHERE version >= 3);
)sql";

/// Version 4, step "idempotency" (issue 14; Journal::accept_keyed()): a
/// key names at most one row of a troupe, so that replicas racing with one
/// key are told apart by the database. Rows already sharing a key (written
/// before this step, when each replica checked only its own jobs) keep it
/// on the oldest only. Idempotent, from version 3.
constexpr const char* kMigrateIdempotency = R"sql(
UPDATE troupe_jobs SET idempotency_key = '' WHERE id IN (SELECT id FROM (SELECT id,
  row_number() OVER (PARTITION BY troupe, idempotency_key ORDER BY seq) AS n FROM troupe_jobs
  WHERE idempotency_key <> '') d WHERE d.n > 1);
CREATE UNIQUE INDEX IF NOT EXISTS troupe_jobs_idempotency ON troupe_jobs (troupe, idempotency_key)
  WHERE idempotency_key <> '';
INSERT INTO troupe_schema (version) SELECT 4
  WHERE NOT EXISTS (SELECT 1 FROM troupe_schema WHERE version >= 4);
)sql";

/// Version 5, step "key order" (issue 14; CoordinatedTroupe::key_order):
/// the unfinished rows of each key in submission order, so that a claim
/// finds who holds a key and its earlier rows with an index probe.
/// Idempotent, from version 4.
constexpr const char* kMigrateKeyOrder = R"sql(
CREATE INDEX IF NOT EXISTS troupe_jobs_key_order ON troupe_jobs (troupe, key, seq)
  WHERE state IN (0, 1, 2) AND key <> '';
INSERT INTO troupe_schema (version) SELECT 5
  WHERE NOT EXISTS (SELECT 1 FROM troupe_schema WHERE version >= 5);
)sql";

/// $1 name, $2 lease in microseconds.
constexpr const char* kRegister =
    "INSERT INTO troupe_replicas (name, expires_at) VALUES ($1, now() + $2 * interval '1 "
    "microsecond') RETURNING incarnation";

/// A job's columns as the journal reads them back (decode_job()).
#define TROUPE_PG_JOB_COLUMNS(p)                                                                   \
  p "id, " p "troupe, " p "state, " p "payload, " p "key, " p "idempotency_key, " p "metadata, " p \
    "submitted_ns, " p "deadline_ns, " p "attempt_timeout_ns, " p "attempts, " p "failure, " p     \
    "output, " p "started_ns, " p "finished_ns, " p "next_run_ns"
constexpr int kJobColumns = 16;

/// The tail of a statement whose CTE `rows` returns the troupe of each job
/// it made claimable: one NOTIFY on troupe_jobs per troupe.
#define TROUPE_PG_NOTIFY_TROUPES_OF(rows) \
  "SELECT pg_notify('troupe_jobs', t) FROM (SELECT DISTINCT troupe AS t FROM " rows ") f"

// A commit writes each kind of entry with one statement for the whole
// batch, its rows as arrays (unnest). A job's entries keep their order: a
// job appears at most once per statement, and statements of a later
// "phase" (a job's second update in the batch, ...) come after.

/// Jobs as accepted, with the entries of the same commit folded in. A
/// second accept of an id is nothing (a resend after a lost answer); so is
/// the accept of a job whose idempotency key another row holds (a keyed job
/// accepted without accept_keyed(): its later writes find no row, and the
/// job is lost here).
constexpr const char* kInsert =
    "INSERT INTO troupe_jobs (id, troupe, state, owner, payload, key, idempotency_key, metadata, "
    "submitted_ns, deadline_ns, attempt_timeout_ns, attempts, failure, output, started_ns, "
    "finished_ns, next_run_ns) SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], "
    "$4::bigint[], $5::bytea[], $6::text[], $7::text[], $8::bytea[], $9::bigint[], $10::bigint[], "
    "$11::bigint[], $12::bigint[], $13::bigint[], $14::bytea[], $15::bigint[], $16::bigint[], "
    "$17::bigint[]) ON CONFLICT DO NOTHING";

// A job with an idempotency key, accepted in a transaction of its own
// (Journal::accept_keyed()), in this order:
/// $1 troupe, $2 key, $3 submitted at or before this (ns): the key of such
/// a row has expired (idempotency_ttl after its submit) and is cleared, so
/// that it names no job any more (the row itself stays for its result).
constexpr const char* kExpireKey =
    "UPDATE troupe_jobs SET idempotency_key = '' WHERE troupe = $1 AND idempotency_key = $2 "
    "AND submitted_ns <= $3";
/// The row, queued and owned by $3 (incarnation), unless the key (or the
/// id: a resend) is taken: troupe_jobs_idempotency decides, a racing
/// insert waiting for the other's commit. Column: id (no row: taken).
constexpr const char* kInsertKeyed =
    "INSERT INTO troupe_jobs (id, troupe, state, owner, payload, key, idempotency_key, metadata, "
    "submitted_ns, deadline_ns, attempt_timeout_ns) VALUES ($1, $2, 0, $3, $4, $5, $6, $7, $8, $9, "
    "$10) ON CONFLICT DO NOTHING RETURNING id";
/// $1 troupe, $2 key: the job the key names (the statement's own snapshot:
/// the winner of a race is committed by then).
constexpr const char* kFindByKey = "SELECT " TROUPE_PG_JOB_COLUMNS(
    "") " FROM troupe_jobs WHERE troupe = $1 AND idempotency_key = $2";
/// $1 id, $2 incarnation: a keyed row refused by its replica after all.
constexpr const char* kWithdrawKeyed =
    "DELETE FROM troupe_jobs WHERE id = $1 AND owner = $2 AND state = 0";

// The owner's writes, fenced: per row id and epoch; the last parameter is
// this incarnation. RETURNING the ids written: a job missing from them is
// held by another replica now.
constexpr const char* kStarted =
    "UPDATE troupe_jobs j SET state = 1, attempts = u.attempts, started_ns = u.started_ns "
    "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[]) "
    "AS u(id, epoch, attempts, started_ns) "
    "WHERE j.id = u.id AND j.owner = $5 AND j.epoch = u.epoch RETURNING j.id";
constexpr const char* kRetryWait =
    "UPDATE troupe_jobs j SET state = 2, attempts = u.attempts, next_run_ns = u.next_run_ns, "
    "output = u.output, failure = u.failure "
    "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bytea[], "
    "$6::bigint[]) AS u(id, epoch, attempts, next_run_ns, output, failure) "
    "WHERE j.id = u.id AND j.owner = $7 AND j.epoch = u.epoch RETURNING j.id";
/// Handed back: claimable, and the replicas hosting their troupes told.
constexpr const char* kRequeued =
    "WITH r AS (UPDATE troupe_jobs j SET state = 0, attempts = u.attempts, next_run_ns = 0, "
    "owner = NULL FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS u(id, epoch, attempts) "
    "WHERE j.id = u.id AND j.owner = $4 AND j.epoch = u.epoch RETURNING "
    "j.troupe) " TROUPE_PG_NOTIFY_TROUPES_OF("r");
/// A terminal row has no owner. Sent again after a lost answer it matches
/// the row it wrote (same epoch, terminal, unowned): idempotent.
constexpr const char* kTerminal =
    "UPDATE troupe_jobs j SET state = u.state, failure = u.failure, attempts = u.attempts, "
    "output = u.output, started_ns = CASE WHEN u.started_ns <> 0 THEN u.started_ns ELSE "
    "j.started_ns END, finished_ns = u.finished_ns, next_run_ns = 0, owner = NULL "
    "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], "
    "$6::bytea[], $7::bigint[], $8::bigint[]) "
    "AS u(id, epoch, state, failure, attempts, output, started_ns, finished_ns) "
    "WHERE j.id = u.id AND j.epoch = u.epoch AND (j.owner = $9 OR (j.owner IS NULL AND "
    "j.state >= 3)) RETURNING j.id";

// The heartbeat round. $1 incarnation, $2 lease in microseconds.
constexpr const char* kRenew =
    "UPDATE troupe_replicas SET heartbeat_at = now(), expires_at = now() + $2 * interval '1 "
    "microsecond' WHERE incarnation = $1";
/// Expired incarnations go; their live jobs become claimable, state kept;
/// one NOTIFY per troupe freed. Through troupe_jobs_owned: cheap.
constexpr const char* kReap =
    "WITH dead AS (DELETE FROM troupe_replicas WHERE expires_at < now() RETURNING incarnation), "
    "freed AS (UPDATE troupe_jobs j SET owner = NULL FROM dead WHERE j.owner = dead.incarnation "
    "AND j.state IN (0, 1, 2) RETURNING j.troupe) " TROUPE_PG_NOTIFY_TROUPES_OF("freed");
/// Live jobs owned by an incarnation that is gone without being reaped
/// (written under an incarnation declared dead meanwhile) become
/// claimable. Scans every owned live row: every kOrphanSweepEvery-th
/// heartbeat.
constexpr const char* kReapOrphans =
    "WITH freed AS (UPDATE troupe_jobs j SET owner = NULL WHERE j.owner IS NOT NULL "
    "AND j.state IN (0, 1, 2) AND NOT EXISTS (SELECT 1 FROM troupe_replicas r "
    "WHERE r.incarnation = j.owner) RETURNING j.troupe) " TROUPE_PG_NOTIFY_TROUPES_OF("freed");
constexpr int kOrphanSweepEvery = 12;
/// $1 incarnation: the live rows the store has it own (read after a
/// reconnect: a claim whose answer was lost with the connection gave it rows
/// it does not know of).
constexpr const char* kOwnedLive =
    "SELECT id FROM troupe_jobs WHERE owner = $1 AND state IN (0, 1, 2)";
/// $1 incarnation, $2 ids (bigint[]): those of them it still owns, live, go
/// back to the store (claimable; the replicas hosting their troupes told).
constexpr const char* kReleaseUnknown =
    "WITH r AS (UPDATE troupe_jobs SET owner = NULL WHERE id = ANY($2::bigint[]) AND owner = $1 "
    "AND state IN (0, 1, 2) RETURNING troupe) " TROUPE_PG_NOTIFY_TROUPES_OF("r");
/// $1 incarnation: cancels asked for while a NOTIFY was missed.
constexpr const char* kCancelsAsked =
    "SELECT id FROM troupe_jobs WHERE owner = $1 AND cancel_requested AND state IN (0, 1, 2)";
/// $1 finished before this, $2 submitted before this (idempotency keys).
constexpr const char* kExpire =
    "DELETE FROM troupe_jobs WHERE id IN (SELECT id FROM troupe_jobs WHERE state IN (3, 4, 6, 7) "
    "AND finished_ns <= $1 AND (coalesce(idempotency_key, '') = '' OR submitted_ns <= $2) "
    "LIMIT 1000)";
/// The most rows kExpire deletes at once.
constexpr int kExpireBatch = 1000;
/// $1 troupe, $2 DEAD rows kept.
constexpr const char* kTrimDead =
    "DELETE FROM troupe_jobs WHERE id IN (SELECT id FROM troupe_jobs WHERE state = 5 AND "
    "troupe = $1 ORDER BY finished_ns DESC OFFSET $2)";
constexpr const char* kStoreBytes = "SELECT pg_total_relation_size('troupe_jobs')";

// Claims.
/// The troupes with claimable rows: a loose index scan of
/// troupe_jobs_claimable (one probe per troupe, however many rows wait).
constexpr const char* kClaimableTroupes =
    "WITH RECURSIVE t AS ((SELECT troupe FROM troupe_jobs WHERE owner IS NULL AND state IN "
    "(0, 1, 2) ORDER BY troupe LIMIT 1) UNION ALL SELECT (SELECT troupe FROM troupe_jobs WHERE "
    "owner IS NULL AND state IN (0, 1, 2) AND troupe > t.troupe ORDER BY troupe LIMIT 1) "
    "FROM t WHERE t.troupe IS NOT NULL) SELECT troupe FROM t WHERE troupe IS NOT NULL";
/// $1 incarnation, $2 troupe, $3 at most. Columns: seq, epoch,
/// cancel_requested, then the job's.
constexpr const char* kClaim =
    "UPDATE troupe_jobs j SET owner = $1, epoch = j.epoch + 1 FROM (SELECT id FROM troupe_jobs "
    "WHERE troupe = $2 AND owner IS NULL AND state IN (0, 1, 2) ORDER BY seq LIMIT $3 "
    "FOR UPDATE SKIP LOCKED) c WHERE j.id = c.id RETURNING j.seq, j.epoch, "
    "j.cancel_requested, " TROUPE_PG_JOB_COLUMNS("j.");

/// The claims of a key-ordered troupe (`dispatch: key`), $1 troupe: one at
/// a time across replicas (the advisory lock is the round's transaction's),
/// so that each claim's snapshot has the claims before it. A key's
/// unfinished rows are then owned by one incarnation at most:
constexpr const char* kLockKeyClaims = "SELECT pg_advisory_xact_lock(1953656693, hashtext($1))";
/// $1 incarnation, $2 troupe, $3 at most: as kClaim, and a row with a key
/// only when no other incarnation owns an unfinished row of its key and
/// every earlier unfinished row of its key is claimed here (now, or before:
/// epoch > 1; a row this replica accepted under an idempotency key has
/// epoch 1 until it hands it over). Rows of a key are claimed in order;
/// unfinished rows of a key held elsewhere are not candidates (they do not
/// fill the batch). Columns as kClaim.
constexpr const char* kClaimInKeyOrder =
    "WITH c AS (SELECT w.id, w.key, w.seq FROM troupe_jobs w WHERE w.troupe = $2 AND w.owner IS "
    "NULL AND w.state IN (0, 1, 2) AND (coalesce(w.key, '') = '' OR NOT EXISTS (SELECT 1 FROM "
    "troupe_jobs o WHERE o.troupe = $2 AND o.key = w.key AND o.key <> '' AND o.state IN (0, 1, 2) "
    "AND o.owner <> $1)) ORDER BY w.seq LIMIT $3 FOR UPDATE OF w SKIP LOCKED) "
    "UPDATE troupe_jobs j SET owner = $1, epoch = j.epoch + 1 FROM c WHERE j.id = c.id AND "
    "(coalesce(c.key, '') = '' OR NOT EXISTS (SELECT 1 FROM troupe_jobs e WHERE e.troupe = $2 AND "
    "e.key = c.key AND e.key <> '' AND e.state IN (0, 1, 2) AND e.seq < c.seq AND (e.owner IS NULL "
    "OR e.epoch = 1) AND e.id NOT IN (SELECT id FROM c))) RETURNING j.seq, j.epoch, "
    "j.cancel_requested, " TROUPE_PG_JOB_COLUMNS("j.");
/// After terminal writes of keyed rows of key-ordered troupes ($1 troupes,
/// $2 keys, as arrays): the replicas hosting a troupe are told when a key's
/// later rows wait unowned (the key may be free now).
constexpr const char* kKeysFreed =
    "SELECT pg_notify('troupe_jobs', f.troupe) FROM (SELECT DISTINCT u.troupe FROM "
    "unnest($1::text[], $2::text[]) AS u(troupe, key) WHERE EXISTS (SELECT 1 FROM troupe_jobs j "
    "WHERE j.troupe = u.troupe AND j.key = u.key AND j.key <> '' AND j.owner IS NULL AND j.state "
    "IN (0, 1, 2))) f";

// Lookups and cancels from any replica. $1 id.
constexpr const char* kFind = "SELECT " TROUPE_PG_JOB_COLUMNS("") " FROM troupe_jobs WHERE id = $1";
constexpr const char* kFindForUpdate =
    "SELECT " TROUPE_PG_JOB_COLUMNS("") " FROM troupe_jobs WHERE id = $1 FOR UPDATE";
/// $2 now (ns). An unowned live job ends CANCELLED at once.
constexpr const char* kCancelUnowned =
    "UPDATE troupe_jobs SET state = 6, failure = 5, output = 'cancelled by request', "
    "finished_ns = $2, next_run_ns = 0 WHERE id = $1 AND owner IS NULL AND state IN (0, 1, 2)";
/// An owned one is flagged, and its owner told ('<incarnation>:<id>').
constexpr const char* kCancelOwned =
    "WITH f AS (UPDATE troupe_jobs SET cancel_requested = true WHERE id = $1 "
    "AND owner IS NOT NULL AND state IN (0, 1, 2) RETURNING owner, id) "
    "SELECT pg_notify('troupe_cancel', owner::text || ':' || id::text) FROM f";
/// $1 troupe, $2 at most.
constexpr const char* kDeadJobs =
    "SELECT " TROUPE_PG_JOB_COLUMNS("") " FROM troupe_jobs WHERE troupe = $1 AND state = 5 "
    "ORDER BY finished_ns DESC LIMIT $2";

// The cluster view (h19; Journal::cluster()), one round: the database's
// clock, the replicas, the unfinished jobs per troupe (troupe_jobs_live).
// Sorted by bytes (COLLATE "C"), as std::string compares.
// Times in ns since the epoch, on the database's clock.
constexpr const char* kClusterNow = "SELECT (extract(epoch FROM now()) * 1000000000)::bigint";
/// Columns: name, incarnation, started, heartbeat, expires, alive.
constexpr const char* kClusterReplicas =
    "SELECT name, incarnation, (extract(epoch FROM started_at) * 1000000000)::bigint, "
    "(extract(epoch FROM heartbeat_at) * 1000000000)::bigint, "
    "(extract(epoch FROM expires_at) * 1000000000)::bigint, expires_at > now() "
    "FROM troupe_replicas ORDER BY name COLLATE \"C\", incarnation";
/// Columns: troupe, queue depth (queued and retry-waiting), running, the
/// oldest queued job's submit time (0: none).
constexpr const char* kClusterTroupes =
    "SELECT troupe, count(*) FILTER (WHERE state IN (0, 2)), count(*) FILTER (WHERE state = 1), "
    "coalesce(min(submitted_ns) FILTER (WHERE state = 0), 0) FROM troupe_jobs "
    "WHERE state IN (0, 1, 2) GROUP BY troupe ORDER BY troupe COLLATE \"C\"";

/// Columns: troupe, the holder's name ('' when none or its incarnation is
/// gone), its incarnation (0: released), term, expiry, held (a registered
/// incarnation holds it and it has not expired: kAcquireLease's "free" is
/// the opposite). troupe_leases has a row per singleton troupe ever led.
constexpr const char* kClusterLeases =
    "SELECT l.troupe, coalesce(r.name, ''), coalesce(l.owner, 0), l.term, "
    "(extract(epoch FROM l.expires_at) * 1000000000)::bigint, "
    "(r.incarnation IS NOT NULL AND l.expires_at >= now()) "
    "FROM troupe_leases l LEFT JOIN troupe_replicas r ON r.incarnation = l.owner "
    "ORDER BY l.troupe COLLATE \"C\"";
/// Columns: troupe, replica name, incarnation, permits it holds. Only
/// registered incarnations: a permit of one that is gone is free
/// (kTakePermits). troupe_permits has max_concurrency rows per troupe.
constexpr const char* kClusterPermits =
    "SELECT p.troupe, r.name, p.owner, count(*) FROM troupe_permits p "
    "JOIN troupe_replicas r ON r.incarnation = p.owner GROUP BY p.troupe, r.name, p.owner "
    "ORDER BY p.troupe COLLATE \"C\", r.name COLLATE \"C\", p.owner";

/// At close: this incarnation's live jobs become claimable at once, and
/// its row goes. $1 incarnation.
constexpr const char* kRelease =
    "WITH r AS (UPDATE troupe_jobs SET owner = NULL WHERE owner = $1 AND state IN (0, 1, 2) "
    "RETURNING troupe) " TROUPE_PG_NOTIFY_TROUPES_OF("r");
constexpr const char* kUnregister = "DELETE FROM troupe_replicas WHERE incarnation = $1";

// Coordination (schema version 2): a lease per singleton troupe, N permits
// per troupe with max_concurrency. A lease or permit whose owner's
// incarnation is gone (reaped, or stopped) is free.

/// $1 incarnation, $2 lease in microseconds: the leases this incarnation
/// still holds, renewed, while its own lease runs (an incarnation past its
/// lease is as good as reaped: any replica may do so now). Columns: troupe,
/// term.
constexpr const char* kRenewLeases =
    "UPDATE troupe_leases SET expires_at = now() + $2 * interval '1 microsecond' "
    "WHERE owner = $1 AND EXISTS (SELECT 1 FROM troupe_replicas r WHERE r.incarnation = $1 "
    "AND r.expires_at > now()) "
    "RETURNING troupe, term";
/// $1 troupe, $2 incarnation, $3 lease in microseconds: takes the lease when
/// it is free (none yet, expired, its owner gone) or already this
/// incarnation's, raising its fencing term; never for an incarnation that
/// was declared dead (it would be free for others at once). Column: term
/// (no row: held by another).
constexpr const char* kAcquireLease =
    "INSERT INTO troupe_leases AS l (troupe, owner, term, expires_at) SELECT $1, $2, 1, now() + "
    "$3 * interval '1 microsecond' WHERE EXISTS (SELECT 1 FROM troupe_replicas r WHERE "
    "r.incarnation = $2 AND r.expires_at > now()) ON CONFLICT (troupe) DO UPDATE SET owner = $2, "
    "term = l.term + 1, "
    "expires_at = excluded.expires_at WHERE l.owner IS NULL OR l.owner = $2 OR l.expires_at < "
    "now() OR NOT EXISTS (SELECT 1 FROM troupe_replicas r WHERE r.incarnation = l.owner) "
    "RETURNING term";
/// $1 incarnation: at close, its leases go, and the replicas hosting their
/// troupes are told (they take the lease over at once).
constexpr const char* kReleaseLeases =
    "WITH r AS (UPDATE troupe_leases SET owner = NULL, expires_at = now() WHERE owner = $1 "
    "RETURNING troupe) SELECT pg_notify('troupe_leases', troupe) FROM r";
/// Permits, each with $1 troupe, $2 N (max_concurrency), $3 incarnation, $4
/// the permits wanted; in this order, in one transaction.
/// The troupe's N slots exist.
constexpr const char* kPermitSlots =
    "INSERT INTO troupe_permits (troupe, slot) SELECT $1, s FROM generate_series(0, $2 - 1) s "
    "WHERE $3::bigint IS NOT NULL AND $4::bigint IS NOT NULL ON CONFLICT DO NOTHING";
/// Permits held beyond the wanted (the highest slots) go back.
constexpr const char* kReleasePermits =
    "UPDATE troupe_permits SET owner = NULL WHERE troupe = $1 AND owner = $3 AND (slot >= $2 OR "
    "slot IN (SELECT slot FROM troupe_permits WHERE troupe = $1 AND owner = $3 AND slot < $2 "
    "ORDER BY slot DESC OFFSET greatest($4, 0)))";
/// Free permits (no owner, or its incarnation gone) are taken up to the
/// wanted, by a live incarnation only; SKIP LOCKED: two replicas never
/// take the same.
constexpr const char* kTakePermits =
    "UPDATE troupe_permits p SET owner = $3 FROM (SELECT slot FROM troupe_permits f WHERE "
    "EXISTS (SELECT 1 FROM troupe_replicas m WHERE m.incarnation = $3 AND m.expires_at > now()) "
    "AND "
    "f.troupe = $1 AND f.slot < $2 AND (f.owner IS NULL OR NOT EXISTS (SELECT 1 FROM "
    "troupe_replicas r WHERE r.incarnation = f.owner)) ORDER BY f.slot LIMIT greatest(0, $4 - "
    "(SELECT count(*) FROM troupe_permits h WHERE h.troupe = $1 AND h.owner = $3 AND h.slot < $2)) "
    "FOR UPDATE SKIP LOCKED) c WHERE p.troupe = $1 AND p.slot = c.slot";
/// Column: the permits this incarnation holds now.
constexpr const char* kHeldPermits =
    "SELECT count(*) FROM troupe_permits WHERE troupe = $1 AND slot < $2 AND owner = $3 AND "
    "$4::bigint IS NOT NULL";
/// $1 incarnation: at close, its permits go.
constexpr const char* kReleaseAllPermits =
    "UPDATE troupe_permits SET owner = NULL WHERE owner = $1";

// Cluster rate limits (schema version 3).

/// $1 troupe, $2 its rate in tokens per million seconds, $3 burst (the
/// bucket's size), $4 tokens wanted: refills the troupe's bucket for the
/// time since its last refill (on the database's clock; a full bucket
/// keeps no more than $3) and grants up to $4 whole tokens. A new bucket
/// starts full. The row lock orders concurrent requests; `excluded`'s time
/// was read before the lock, so the refill time never moves back.
/// Columns: tokens granted, tokens left in millionths.
#define TROUPE_PG_REFILLED                                                              \
  "least($3::float8, b.tokens + $2::float8 / 1000000 * greatest(0, extract(epoch FROM " \
  "excluded.refilled_at - b.refilled_at)::float8))"
constexpr const char* kTakeTokens =
    "INSERT INTO troupe_rate_buckets AS b (troupe, tokens, granted, refilled_at) VALUES ($1, "
    "$3::float8 - least($3, $4), least($3, $4), clock_timestamp()) ON CONFLICT (troupe) DO "
    "UPDATE SET granted = least(floor(" TROUPE_PG_REFILLED
    ")::bigint, $4), tokens = " TROUPE_PG_REFILLED " - least(floor(" TROUPE_PG_REFILLED
    ")::bigint, $4), refilled_at = "
    "greatest(b.refilled_at, excluded.refilled_at) RETURNING granted, (tokens * 1000000)::bigint";
#undef TROUPE_PG_REFILLED

}  // namespace troupe::store::detail::pg
