/*
 * pipeline--0.1--0.2.sql: upgrade of the pipeline extension from 0.1 to 0.2.
 *
 * Users' data survives: only additive or in-place changes (ALTER TABLE ... ADD, CREATE OR
 * REPLACE, new objects).  Each change below names the issue it comes from.
 */

\echo Use "ALTER EXTENSION pipeline UPDATE TO '0.2'" to load this file. \quit
