-- 004_stems: the stems a separation job wrote. One row per stem file;
-- file_path is relative to storage_dir (stems/<job_id>/<stem>.wav). Rows are
-- inserted after the files are renamed into place, in one transaction per job.
CREATE TABLE stems (
  id CHAR(36) NOT NULL PRIMARY KEY,
  job_id CHAR(36) NOT NULL,
  track_id CHAR(36) NOT NULL,
  user_id CHAR(36) NOT NULL,
  model VARCHAR(64) NOT NULL,
  stem VARCHAR(40) NOT NULL,
  format VARCHAR(16) NOT NULL,
  size BIGINT NOT NULL,
  duration DOUBLE NOT NULL,
  file_path VARCHAR(1024) NOT NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  UNIQUE KEY stems_job_stem (job_id, stem),
  KEY stems_track (track_id, created_at),
  KEY stems_user (user_id),
  CONSTRAINT stems_job_fk FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE CASCADE,
  CONSTRAINT stems_track_fk FOREIGN KEY (track_id) REFERENCES tracks (id) ON DELETE CASCADE,
  CONSTRAINT stems_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
