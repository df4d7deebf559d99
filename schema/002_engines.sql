-- 002_engines: the demixd engines attached to this database, for /health.
-- Each demixd inserts its row at start, renews last_seen every
-- heartbeat_seconds and deletes the row on a clean exit; a row whose
-- last_seen is older than a few heartbeats belongs to an engine that died.
-- Times are UTC DATETIME(3).
CREATE TABLE engines (
  id CHAR(36) NOT NULL PRIMARY KEY,
  hostname VARCHAR(255) NOT NULL,
  pid INT NOT NULL,
  device ENUM('cpu', 'cuda') NOT NULL,
  gpu VARCHAR(255) NULL,
  workers INT NOT NULL,
  running INT NOT NULL DEFAULT 0,
  job_types VARCHAR(1024) NOT NULL DEFAULT '',
  version VARCHAR(32) NOT NULL DEFAULT '',
  started_at DATETIME(3) NOT NULL,
  last_seen DATETIME(3) NOT NULL,
  KEY engines_last_seen (last_seen),
  KEY engines_host (hostname, pid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
