/*
 * pipeline--0.1--0.2.sql: upgrade of the pipeline extension from 0.1 to 0.2.
 *
 * Users' data survives: only additive or in-place changes (ALTER TABLE ... ADD, CREATE OR
 * REPLACE, new objects).  Each change below names the issue it comes from.
 */

\echo Use "ALTER EXTENSION pipeline UPDATE TO '0.2'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Issue 9 item 9, backup and restore (SPEC §18): pg_dump dumps the rows of an extension's
-- tables only when they are registered here, and the values of its
-- sequences likewise.  Every table and sequence holding user data is, with
-- the sequences behind the identity columns, so that a restored database
-- goes on numbering runs, tasks, events, deliveries and log chunks after the
-- dumped ones.  (pg_dump orders the tables' data by their foreign keys.)
SELECT pg_catalog.pg_extension_config_dump('job', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline_task', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline_task_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('job_task', '');
SELECT pg_catalog.pg_extension_config_dump('job_task_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('job_task_spec', '');
SELECT pg_catalog.pg_extension_config_dump('event', '');
SELECT pg_catalog.pg_extension_config_dump('event_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('hook_delivery', '');
SELECT pg_catalog.pg_extension_config_dump('hook_delivery_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('schedule', '');
SELECT pg_catalog.pg_extension_config_dump('job_task_log', '');
SELECT pg_catalog.pg_extension_config_dump('job_task_log_seq_seq', '');
SELECT pg_catalog.pg_extension_config_dump('rejected_token_seq', '');
