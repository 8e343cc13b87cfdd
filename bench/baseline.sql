-- bench/baseline.sql: the reference transaction of every ratio bench/run prints.
-- One autocommit UPDATE of one random row of a 1,000-row table (bench_t, made by bench/run).
\set id random(1, 1000)
UPDATE bench_t SET n = n + 1 WHERE id = :id;
