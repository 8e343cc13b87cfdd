-- bench/baseline_notify.sql: the baseline transaction plus one NOTIFY, for reference.
-- PostgreSQL serializes the commits of notifying transactions (a global lock held from
-- pre-commit until after the commit record is flushed), so no transaction that notifies --
-- every status update does -- can be faster than this on the same machine.
\set id random(1, 1000)
WITH u AS (UPDATE bench_t SET n = n + 1 WHERE id = :id RETURNING n) SELECT pg_notify('bench_events', n::text) FROM u;
