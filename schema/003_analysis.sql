-- 003_analysis: stored analysis results. One row per completed analysis
-- job; the latest row of a track (by created_at) is its current analysis.
-- features is the JSON array of the groups requested ("tempo", "key", ...);
-- result is the analysis document (see engine/analysis/result_json.c).
-- The job row may be purged later: job_id then becomes NULL.
CREATE TABLE analyses (
  id CHAR(36) NOT NULL PRIMARY KEY,
  track_id CHAR(36) NOT NULL,
  job_id CHAR(36) NULL,
  features LONGTEXT NOT NULL CHECK (JSON_VALID(features)),
  result LONGTEXT NOT NULL CHECK (JSON_VALID(result)),
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  KEY analyses_track_created (track_id, created_at),
  KEY analyses_job (job_id),
  CONSTRAINT analyses_track_fk FOREIGN KEY (track_id) REFERENCES tracks (id) ON DELETE CASCADE,
  CONSTRAINT analyses_job_fk FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
