-- 001_core: users, API tokens, tracks, jobs and the shared rate-limit counters.
-- Ids are UUID strings; times are UTC DATETIME(3).

CREATE TABLE users (
  id CHAR(36) NOT NULL PRIMARY KEY,
  name VARCHAR(64) NOT NULL,
  role ENUM('user', 'admin', 'superadmin') NOT NULL DEFAULT 'user',
  status ENUM('active', 'disabled') NOT NULL DEFAULT 'active',
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  UNIQUE KEY users_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Only the sha256 of a token is stored; prefix (first 8 chars) helps people tell tokens apart.
CREATE TABLE api_tokens (
  id CHAR(36) NOT NULL PRIMARY KEY,
  user_id CHAR(36) NOT NULL,
  token_hash CHAR(64) NOT NULL,
  prefix CHAR(8) NOT NULL,
  name VARCHAR(64) NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  last_used_at DATETIME(3) NULL,
  revoked_at DATETIME(3) NULL,
  UNIQUE KEY api_tokens_hash (token_hash),
  KEY api_tokens_user (user_id),
  CONSTRAINT api_tokens_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- file_path is relative to storage_dir. bpm/musical_key carry who set them:
-- analysis fills them only where the user has not.
CREATE TABLE tracks (
  id CHAR(36) NOT NULL PRIMARY KEY,
  user_id CHAR(36) NOT NULL,
  title VARCHAR(255) NULL,
  artist VARCHAR(255) NULL,
  album VARCHAR(255) NULL,
  bpm DOUBLE NULL,
  bpm_source ENUM('user', 'analysis') NULL,
  musical_key VARCHAR(32) NULL,
  key_source ENUM('user', 'analysis') NULL,
  tags LONGTEXT NULL CHECK (tags IS NULL OR JSON_VALID(tags)),
  duration DOUBLE NOT NULL,
  sample_rate INT NOT NULL,
  channels INT NOT NULL,
  frames BIGINT NOT NULL,
  format VARCHAR(16) NOT NULL,
  original_name VARCHAR(255) NULL,
  file_path VARCHAR(1024) NOT NULL,
  file_size BIGINT NOT NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  KEY tracks_user_created (user_id, created_at),
  CONSTRAINT tracks_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- A job is a row. Workers claim with SELECT ... FOR UPDATE SKIP LOCKED on
-- (status, run_after), hold a lease (lease_owner, lease_expires_at) that they
-- renew, and notice cancel_requested at their next progress step.
CREATE TABLE jobs (
  id CHAR(36) NOT NULL PRIMARY KEY,
  user_id CHAR(36) NOT NULL,
  track_id CHAR(36) NULL,
  type VARCHAR(32) NOT NULL,
  status ENUM('queued', 'running', 'completed', 'failed', 'cancelled') NOT NULL DEFAULT 'queued',
  progress INT NOT NULL DEFAULT 0,
  params LONGTEXT NULL CHECK (params IS NULL OR JSON_VALID(params)),
  result LONGTEXT NULL CHECK (result IS NULL OR JSON_VALID(result)),
  error TEXT NULL,
  attempts INT NOT NULL DEFAULT 0,
  max_attempts INT NOT NULL DEFAULT 3,
  run_after DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  lease_owner VARCHAR(128) NULL,
  lease_expires_at DATETIME(3) NULL,
  cancel_requested TINYINT NOT NULL DEFAULT 0,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  started_at DATETIME(3) NULL,
  finished_at DATETIME(3) NULL,
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  KEY jobs_claim (status, run_after),
  KEY jobs_lease (status, lease_expires_at),
  KEY jobs_user_created (user_id, created_at),
  KEY jobs_track (track_id),
  CONSTRAINT jobs_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
  CONSTRAINT jobs_track_fk FOREIGN KEY (track_id) REFERENCES tracks (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Fixed one-minute windows per token and bucket ('auth', 'heavy'), shared by
-- every responder on every host. Incremented atomically with
-- INSERT ... ON DUPLICATE KEY UPDATE count = LAST_INSERT_ID(count + 1).
CREATE TABLE rate_limits (
  token_id CHAR(36) NOT NULL,
  bucket VARCHAR(16) NOT NULL,
  window_start BIGINT NOT NULL,
  count INT NOT NULL,
  PRIMARY KEY (token_id, bucket, window_start),
  KEY rate_limits_window (window_start)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
