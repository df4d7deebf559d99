-- 007_job_turns: engines take queued jobs in turns, one job per user per
-- turn, so a user who queues a thousand jobs (a batch operator) shares the
-- engines with everyone else instead of holding them until the last one is
-- done. This is start-time fair queueing over users with every job counted
-- as one: a new job's queue_turn is the later of the turn being served (the
-- lowest turn among queued jobs; with none queued, the highest among running
-- ones) and one past the highest turn of its user's queued and running jobs. Claims take the lowest turn, then the oldest
-- run_after. Jobs queued before this migration have turn 0 and go first,
-- in their old order.
ALTER TABLE jobs
  ADD COLUMN queue_turn BIGINT NOT NULL DEFAULT 0 AFTER run_after,
  DROP KEY jobs_claim,
  ADD KEY jobs_claim (status, queue_turn, run_after),
  ADD KEY jobs_user_turn (user_id, status, queue_turn);
