-- 005_stem_archives: the ZIP of one separation job's stems. The engine
-- writes storage_dir/stems/<job_id>/stems.zip (entries <model>/<stem>.wav,
-- byte for byte the job's stem files) after the stems, renames it into
-- place and inserts this row in the same transaction as the job's rows in
-- `stems`. GET /export/stems/:track_id serves the archive of the track's
-- newest completed separation job the caller may see. One row per job.
CREATE TABLE stem_archives (
  job_id CHAR(36) NOT NULL PRIMARY KEY,
  track_id CHAR(36) NOT NULL,
  user_id CHAR(36) NOT NULL,
  model VARCHAR(64) NOT NULL,
  entries INT NOT NULL,
  size BIGINT NOT NULL,
  file_path VARCHAR(1024) NOT NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  KEY stem_archives_track (track_id, created_at),
  KEY stem_archives_user (user_id),
  CONSTRAINT stem_archives_job_fk FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE CASCADE,
  CONSTRAINT stem_archives_track_fk FOREIGN KEY (track_id) REFERENCES tracks (id) ON DELETE CASCADE,
  CONSTRAINT stem_archives_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
