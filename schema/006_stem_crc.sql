-- 006_stem_crc: each stem file's CRC-32, taken by the engine as it records
-- the stem. The ZIP of a job's stems (GET /export/stems/:track_id,
-- /files/stems/<job_id>/stems.zip) is now composed by demix-fcgi as it is
-- sent, stored entries holding the stem files' own bytes, instead of the
-- engine keeping a second copy of every stem in a stems.zip: a
-- stem_archives row still announces the archive (entries, exact size) and
-- its file_path names where it is served; only jobs recorded before this
-- migration have that file, and it is sent as it is. Their stems have no
-- CRC here (NULL) and get it when first needed.
ALTER TABLE stems ADD COLUMN crc32 INT UNSIGNED NULL AFTER size;
