-- The op log is the source of truth; events and checkpoints are derived from it and can be
-- rebuilt by replaying the ops of a machine against its config.

CREATE TABLE machines (
  id          TEXT PRIMARY KEY,
  owner       TEXT NOT NULL,
  config      TEXT NOT NULL,            -- the config as the client sent it (replay input)
  effective   TEXT NOT NULL,            -- machine.config at creation (served without a restore)
  created_at  TEXT NOT NULL,
  op_count    INTEGER NOT NULL DEFAULT 0,
  seq         INTEGER NOT NULL DEFAULT 0,
  status      TEXT NOT NULL DEFAULT 'running',
  parent_id   TEXT,
  parent_seq  INTEGER,
  diverged    TEXT                      -- set when a restore did not reproduce the stored hash
);
-- Listing a principal's machines pages by id.
CREATE INDEX machines_by_owner ON machines (owner, id);

CREATE TABLE ops (
  machine_id  TEXT NOT NULL,
  n           INTEGER NOT NULL,         -- 1, 2, 3, ... per machine
  op          TEXT NOT NULL,            -- the op exactly as applied (JSON)
  seq_end     INTEGER NOT NULL,         -- machine seq after this op: `?at=` and branches cut here
  PRIMARY KEY (machine_id, n)
) WITHOUT ROWID;

CREATE TABLE events (
  machine_id  TEXT NOT NULL,
  seq         INTEGER NOT NULL,
  type        TEXT NOT NULL,
  cpu         INTEGER,
  pid         INTEGER,
  body        TEXT NOT NULL,            -- the whole event as JSON, served verbatim
  PRIMARY KEY (machine_id, seq)
) WITHOUT ROWID;
-- Paged queries filtered by type or pid walk these instead of the whole trace.
CREATE INDEX events_by_type ON events (machine_id, type, seq);
CREATE INDEX events_by_pid ON events (machine_id, pid, seq);

-- Every so often the hash of JSON.stringify(state()) after op n, checked on restore.
CREATE TABLE checkpoints (
  machine_id  TEXT NOT NULL,
  op_n        INTEGER NOT NULL,
  seq         INTEGER NOT NULL,
  state_hash  TEXT NOT NULL,
  PRIMARY KEY (machine_id, op_n)
) WITHOUT ROWID;

-- Replies to requests that carried an Idempotency-Key, written in the same transaction as
-- their ops so that a retry after a crash sees either both or neither.
CREATE TABLE idempotency (
  owner         TEXT NOT NULL,
  key           TEXT NOT NULL,
  machine_id    TEXT NOT NULL,
  request_hash  TEXT NOT NULL,
  reply         TEXT NOT NULL,
  created_at    TEXT NOT NULL,
  PRIMARY KEY (owner, key)
) WITHOUT ROWID;
