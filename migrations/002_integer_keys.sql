-- Every commit writes the new ops and events of each machine it carries. Keyed by the TEXT
-- machine id in WITHOUT ROWID tables, each of those rows landed on a page of its own per
-- machine in three b-trees, and a commit of 20 single-op requests dirtied ~860 KB of pages.
-- Now a machine has a small integer key, events are appended in rowid order (the rows of one
-- commit share a few pages) and the per-machine order lives in narrow indexes.
-- Checkpoints gain an optional snapshot of the whole model, so a restore replays only the ops
-- after the latest one.

CREATE TABLE machines_new (
  key         INTEGER PRIMARY KEY,
  id          TEXT NOT NULL UNIQUE,
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
INSERT INTO machines_new (id, owner, config, effective, created_at, op_count, seq, status, parent_id, parent_seq, diverged)
  SELECT id, owner, config, effective, created_at, op_count, seq, status, parent_id, parent_seq, diverged
  FROM machines ORDER BY created_at, id;

CREATE TABLE ops_new (
  mkey        INTEGER NOT NULL,
  n           INTEGER NOT NULL,         -- 1, 2, 3, ... per machine
  op          TEXT NOT NULL,            -- the op exactly as applied (JSON)
  seq_end     INTEGER NOT NULL,         -- machine seq after this op: `?at=` and branches cut here
  PRIMARY KEY (mkey, n)
) WITHOUT ROWID;
INSERT INTO ops_new SELECT m.key, o.n, o.op, o.seq_end FROM ops o JOIN machines_new m ON m.id = o.machine_id;

CREATE TABLE events_new (
  mkey        INTEGER NOT NULL,
  seq         INTEGER NOT NULL,
  type        TEXT NOT NULL,
  cpu         INTEGER,
  pid         INTEGER,
  body        TEXT NOT NULL             -- the whole event as JSON, served verbatim
);
INSERT INTO events_new SELECT m.key, e.seq, e.type, e.cpu, e.pid, e.body
  FROM events e JOIN machines_new m ON m.id = e.machine_id ORDER BY m.key, e.seq;

CREATE TABLE checkpoints_new (
  mkey        INTEGER NOT NULL,
  op_n        INTEGER NOT NULL,
  seq         INTEGER NOT NULL,
  state_hash  TEXT NOT NULL,            -- sha256 of JSON.stringify(state()) after op n
  snapshot    TEXT,                     -- the model after op n (src/sim/snapshot.ts), when taken
  PRIMARY KEY (mkey, op_n)
) WITHOUT ROWID;
INSERT INTO checkpoints_new (mkey, op_n, seq, state_hash)
  SELECT m.key, c.op_n, c.seq, c.state_hash FROM checkpoints c JOIN machines_new m ON m.id = c.machine_id;

DROP TABLE checkpoints;
DROP TABLE events;
DROP TABLE ops;
DROP TABLE machines;
ALTER TABLE machines_new RENAME TO machines;
ALTER TABLE ops_new RENAME TO ops;
ALTER TABLE events_new RENAME TO events;
ALTER TABLE checkpoints_new RENAME TO checkpoints;

-- Listing a principal's machines pages by id.
CREATE INDEX machines_by_owner ON machines (owner, id);
-- Paging a machine's trace by seq; filtered queries walk the type or pid index instead.
CREATE UNIQUE INDEX events_by_seq ON events (mkey, seq);
CREATE INDEX events_by_type ON events (mkey, type, seq);
CREATE INDEX events_by_pid ON events (mkey, pid, seq);
