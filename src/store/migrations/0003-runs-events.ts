import type { Migration } from './types';

/** Long-running jobs with progress and logs, and the annotation timing behind 'time saved'. */
export const migration: Migration = {
  version: 3,
  name: 'runs-events',
  up(db) {
    db.exec(`
      -- pid and host let the next open tell a run whose process died (marked 'interrupted') from
      -- one still going in another process on this machine.
      CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('import', 'pretrain', 'train', 'prelabel', 'eval')),
        config TEXT NOT NULL CHECK (json_valid(config)),
        status TEXT NOT NULL DEFAULT 'running'
          CHECK (status IN ('running', 'completed', 'failed', 'cancelled', 'interrupted')),
        step INTEGER NOT NULL DEFAULT 0 CHECK (step >= 0),
        total INTEGER CHECK (total IS NULL OR total >= 0),
        message TEXT,
        model_id INTEGER REFERENCES models (id),
        pid INTEGER,
        host TEXT,
        started_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        finished_at INTEGER,
        CHECK ((status = 'running') = (finished_at IS NULL))
      ) STRICT;
      CREATE INDEX runs_running ON runs (host, pid) WHERE status = 'running';
      CREATE INDEX runs_by_kind ON runs (kind, started_at);

      -- Log lines in their own rows: appending is an INSERT, not a rewrite of a growing text.
      CREATE TABLE run_log (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        at INTEGER NOT NULL,
        text TEXT NOT NULL
      ) STRICT;
      CREATE INDEX run_log_by_run ON run_log (run_id, id);

      CREATE TABLE annotation_events (
        id INTEGER PRIMARY KEY,
        image_id INTEGER NOT NULL REFERENCES images (id),
        label_version INTEGER,
        kind TEXT NOT NULL CHECK (kind IN ('annotate', 'correct', 'accept', 'review', 'skip')),
        time_spent_ms INTEGER NOT NULL CHECK (time_spent_ms >= 0),
        pixels_changed INTEGER NOT NULL CHECK (pixels_changed >= 0),
        created_at INTEGER NOT NULL,
        FOREIGN KEY (image_id, label_version) REFERENCES label_versions (image_id, version)
      ) STRICT;
      CREATE INDEX annotation_events_by_image ON annotation_events (image_id, created_at);
      CREATE INDEX annotation_events_by_time ON annotation_events (created_at);
    `);
  },
};
