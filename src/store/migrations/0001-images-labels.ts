import type { Migration } from './types';

/** Project identity, the image catalogue, lossless versioned labels and settings. */
export const migration: Migration = {
  version: 1,
  name: 'images-labels',
  up(db) {
    db.exec(`
      CREATE TABLE project (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        uuid TEXT NOT NULL,
        name TEXT NOT NULL,
        created_at INTEGER NOT NULL
      ) STRICT;

      -- Images are referenced, not copied: path (relative to the project folder where possible)
      -- plus content hash. byte_size and mtime_ms let verification skip rehashing unchanged files.
      CREATE TABLE images (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE CHECK (path <> ''),
        content_hash TEXT NOT NULL CHECK (length(content_hash) = 64 AND content_hash NOT GLOB '*[^0-9a-f]*'),
        byte_size INTEGER NOT NULL CHECK (byte_size >= 0),
        mtime_ms REAL NOT NULL,
        width INTEGER NOT NULL CHECK (width > 0),
        height INTEGER NOT NULL CHECK (height > 0),
        channels INTEGER NOT NULL CHECK (channels > 0),
        bit_depth INTEGER NOT NULL CHECK (bit_depth IN (1, 8, 16, 32, 64)),
        pages INTEGER NOT NULL DEFAULT 1 CHECK (pages > 0),
        format TEXT NOT NULL CHECK (format <> ''),
        split TEXT NOT NULL DEFAULT 'unassigned' CHECK (split IN ('train', 'val', 'test', 'unassigned')),
        status TEXT NOT NULL DEFAULT 'unlabeled' CHECK (status IN ('unlabeled', 'proposed', 'labeled', 'reviewed')),
        added_at INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX images_by_hash ON images (content_hash);
      CREATE INDEX images_by_status ON images (status, id);
      CREATE INDEX images_by_split ON images (split, status);

      -- Append-only: a version is never updated or deleted (triggers below), so every edit can be
      -- restored. Masks are zlib-compressed little-endian arrays of the stated dtype; unknown is
      -- the same for a Uint8 mask of pixels the annotator left unlabeled (NULL: none).
      CREATE TABLE label_versions (
        id INTEGER PRIMARY KEY,
        image_id INTEGER NOT NULL REFERENCES images (id),
        version INTEGER NOT NULL CHECK (version > 0),
        parent_version INTEGER CHECK (parent_version IS NULL OR parent_version < version),
        restored_from INTEGER CHECK (restored_from IS NULL OR restored_from < version),
        source TEXT NOT NULL CHECK (source IN ('manual', 'accepted_proposal', 'edited_proposal', 'imported')),
        author TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        dtype TEXT NOT NULL CHECK (dtype IN ('uint8', 'uint16', 'int32')),
        width INTEGER NOT NULL CHECK (width > 0),
        height INTEGER NOT NULL CHECK (height > 0),
        encoding TEXT NOT NULL CHECK (encoding IN ('zlib')),
        mask BLOB NOT NULL,
        unknown BLOB,
        UNIQUE (image_id, version),
        FOREIGN KEY (image_id, parent_version) REFERENCES label_versions (image_id, version),
        FOREIGN KEY (image_id, restored_from) REFERENCES label_versions (image_id, version)
      ) STRICT;
      CREATE INDEX label_versions_by_time ON label_versions (created_at);
      CREATE TRIGGER label_versions_no_update BEFORE UPDATE ON label_versions
      BEGIN SELECT RAISE(ABORT, 'label versions are immutable: add a new version instead'); END;
      CREATE TRIGGER label_versions_no_delete BEFORE DELETE ON label_versions
      BEGIN SELECT RAISE(ABORT, 'label versions are never deleted'); END;

      CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL CHECK (json_valid(value)),
        updated_at INTEGER NOT NULL
      ) STRICT, WITHOUT ROWID;
    `);
  },
};
