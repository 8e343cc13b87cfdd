/*
 * pipeline--0.2--0.3.sql: upgrade of the pipeline extension from 0.2 to 0.3.
 *
 * Users' data survives: only additive or in-place changes (ALTER TABLE ... ADD, CREATE OR
 * REPLACE, new objects, backfills of new columns from existing rows).  Every change made to
 * pipeline--0.3.sql is written here too, in a section naming the issue it comes from;
 * test/t/021_upgrade.pl checks that 0.1 -> 0.2 -> 0.3 and 0.2 -> 0.3 give the same catalog
 * as a fresh 0.3 install.  New tables and sequences are registered with
 * pg_extension_config_dump, as in the install script.
 */

\echo Use "ALTER EXTENSION pipeline UPDATE TO '0.3'" to load this file. \quit
