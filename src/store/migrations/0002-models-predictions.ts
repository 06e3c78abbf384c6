import type { Migration } from './types';

/** Trained models with promotion history, and the masks they propose. */
export const migration: Migration = {
  version: 2,
  name: 'models-predictions',
  up(db) {
    db.exec(`
      CREATE TABLE models (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind <> ''),
        checkpoint_path TEXT NOT NULL UNIQUE CHECK (checkpoint_path <> ''),
        parent_id INTEGER REFERENCES models (id),
        pretext_init TEXT,
        config TEXT NOT NULL CHECK (json_valid(config)),
        val_metrics TEXT CHECK (val_metrics IS NULL OR json_valid(val_metrics)),
        promoted INTEGER NOT NULL DEFAULT 0 CHECK (promoted IN (0, 1)),
        created_at INTEGER NOT NULL
      ) STRICT;
      -- At most one promoted model, whatever code writes the table.
      CREATE UNIQUE INDEX models_single_promoted ON models (promoted) WHERE promoted = 1;

      -- Promotion history, for rollback: the active rows (rolled_back_at IS NULL) form a stack
      -- whose top is the promoted model.
      CREATE TABLE model_promotions (
        id INTEGER PRIMARY KEY,
        model_id INTEGER NOT NULL REFERENCES models (id),
        promoted_at INTEGER NOT NULL,
        reason TEXT NOT NULL,
        rolled_back_at INTEGER
      ) STRICT;

      -- One prediction per (image, model): prelabeling again with the same model replaces it, so
      -- importing shard results twice is harmless. Predictions are not labels and may be replaced.
      CREATE TABLE predictions (
        id INTEGER PRIMARY KEY,
        image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
        model_id INTEGER NOT NULL REFERENCES models (id),
        dtype TEXT NOT NULL CHECK (dtype IN ('uint8', 'uint16', 'int32')),
        width INTEGER NOT NULL CHECK (width > 0),
        height INTEGER NOT NULL CHECK (height > 0),
        encoding TEXT NOT NULL CHECK (encoding IN ('zlib')),
        mask BLOB NOT NULL,
        uncertainty BLOB,
        uncertainty_score REAL,
        created_at INTEGER NOT NULL,
        UNIQUE (image_id, model_id)
      ) STRICT;
      CREATE INDEX predictions_by_image ON predictions (image_id, created_at);
      CREATE INDEX predictions_by_model ON predictions (model_id, uncertainty_score);
    `);
  },
};
