import type { Migration } from './types';

/**
 * A rejected proposal is its own kind of annotation event ('reject'), no longer a 'skip': the
 * time-saved summary must not count it as an image passed over. SQLite cannot change a CHECK
 * constraint in place, so the table is rebuilt with its rows, ids and indexes.
 */
export const migration: Migration = {
  version: 4,
  name: 'reject-events',
  up(db) {
    db.exec(`
      CREATE TABLE annotation_events_v4 (
        id INTEGER PRIMARY KEY,
        image_id INTEGER NOT NULL REFERENCES images (id),
        label_version INTEGER,
        kind TEXT NOT NULL CHECK (kind IN ('annotate', 'correct', 'accept', 'reject', 'review', 'skip')),
        time_spent_ms INTEGER NOT NULL CHECK (time_spent_ms >= 0),
        pixels_changed INTEGER NOT NULL CHECK (pixels_changed >= 0),
        created_at INTEGER NOT NULL,
        FOREIGN KEY (image_id, label_version) REFERENCES label_versions (image_id, version)
      ) STRICT;
      INSERT INTO annotation_events_v4 SELECT id, image_id, label_version, kind, time_spent_ms, pixels_changed, created_at FROM annotation_events;
      DROP TABLE annotation_events;
      ALTER TABLE annotation_events_v4 RENAME TO annotation_events;
      CREATE INDEX annotation_events_by_image ON annotation_events (image_id, created_at);
      CREATE INDEX annotation_events_by_time ON annotation_events (created_at);
    `);
  },
};
