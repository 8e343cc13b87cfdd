--
-- triggers: define_trigger(), fire_trigger(), fire_signed_trigger() and
-- pipeline.trigger_event (SPEC §15, README "Triggers").
--
-- Every refusal of a definition is 22023 with the JSON path and stores
-- nothing; a secret is never shown (not in the definition, a view, an error,
-- an event or a run).  fire_trigger reads the provider's header or infers the
-- event type, starts each matching pipeline with the GIT_* params and records
-- the event with the runs or, per trigger, why not.  fire_signed_trigger
-- checks the signature in the server first (28000, nothing recorded).
-- The signatures below were computed with
--   printf '%s' "$BODY" | openssl dgst -sha256 -hmac "$SECRET"
\set VERBOSITY sqlstate

SELECT pipeline.define_job('{"name": "tr_build", "command": "echo $GIT_REF",
  "params": [{"name": "TARGET", "default": "all"}]}') AS version;
SELECT pipeline.define_pipeline('{"name": "tr_app", "stages": [
  {"name": "build", "tasks": [{"name": "make", "job": "tr_build"}]}]}') AS version;
SELECT pipeline.define_pipeline('{"name": "tr_release", "stages": [
  {"name": "release", "tasks": [{"name": "ship", "job": "tr_build"}]}]}') AS version;
SELECT pipeline.define_job('{"name": "tr_needs", "command": "true",
  "params": [{"name": "APPROVER", "required": true}]}') AS version;
SELECT pipeline.define_pipeline('{"name": "tr_strict", "stages": [
  {"name": "s", "tasks": [{"name": "t", "job": "tr_needs"}]}]}') AS version;

-- what the engine stores about triggers, to show that a refusal stores nothing
CREATE FUNCTION regress.trigger_state() RETURNS text LANGUAGE sql AS $$
SELECT md5(concat_ws(' | ',
    (SELECT string_agg(x::text, ',' ORDER BY name, version) FROM pipeline.trigger x),
    (SELECT string_agg(x::text, ',' ORDER BY id) FROM pipeline.trigger_event x),
    regress.state()))
$$;
SELECT regress.trigger_state() AS s0 \gset

-- ---------------------------------------------------------------- refusals of define_trigger
SELECT pipeline.define_trigger(NULL);
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('[]');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('{"pipeline": "tr_app", "provider": "github", "secret": "0123456789"}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('{"name": "bad name", "pipeline": "tr_app", "provider": "github", "secret": "0123456789"}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('{"name": "t", "pipeline": "tr_app", "provider": "github", "secret": "0123456789", "timout": 1}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('{"name": "t", "provider": "github", "secret": "0123456789"}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('{"name": "t", "pipeline": "tr_nope", "provider": "github", "secret": "0123456789"}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('{"name": "t", "pipeline": "tr_app", "secret": "0123456789"}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('{"name": "t", "pipeline": "tr_app", "provider": "bitbucket", "secret": "0123456789"}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('{"name": "t", "pipeline": "tr_app", "provider": 1, "secret": "0123456789"}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('{"name": "t", "pipeline": "tr_app", "provider": "github", "secret": "0123456789", "events": "push"}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('{"name": "t", "pipeline": "tr_app", "provider": "github", "secret": "0123456789", "events": []}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('{"name": "t", "pipeline": "tr_app", "provider": "github", "secret": "0123456789", "events": ["push", "issues"]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('{"name": "t", "pipeline": "tr_app", "provider": "github", "secret": "0123456789", "events": ["tag", "tag"]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('{"name": "t", "pipeline": "tr_app", "provider": "github", "secret": "0123456789", "events": [1]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('{"name": "t", "pipeline": "tr_app", "provider": "github", "secret": "0123456789", "refs": "^refs/heads/(main"}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('{"name": "t", "pipeline": "tr_app", "provider": "github", "secret": "0123456789", "refs": ["main"]}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger(jsonb_build_object('name', 't', 'pipeline', 'tr_app', 'provider', 'github',
       'secret', '0123456789', 'refs', repeat('a', 1025)));
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('{"name": "t", "pipeline": "tr_app", "provider": "github"}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('{"name": "t", "pipeline": "tr_app", "provider": "github", "secret": 12345678}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('{"name": "t", "pipeline": "tr_app", "provider": "github", "secret": "short"}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('{"name": "t", "pipeline": "tr_app", "provider": "github", "secret": "tab\tinside-secret"}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger(jsonb_build_object('name', 't', 'pipeline', 'tr_app', 'provider', 'github',
       'secret', repeat('x', 1025)));
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('{"name": "t", "pipeline": "tr_app", "provider": "github", "secret": "0123456789", "params": {"GIT_REF": "x"}}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('{"name": "t", "pipeline": "tr_app", "provider": "github", "secret": "0123456789", "params": {"1X": "x"}}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('{"name": "t", "pipeline": "tr_app", "provider": "github", "secret": "0123456789", "params": {"X": {"a": 1}}}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('{"name": "t", "pipeline": "tr_app", "provider": "github", "secret": "0123456789", "params": []}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('{"name": "t", "pipeline": "tr_app", "provider": "github", "secret": "0123456789", "enabled": "yes"}');
\echo :LAST_ERROR_MESSAGE
-- a refusal never quotes the secret, whatever else is wrong
CREATE FUNCTION regress.refusal_quotes(def jsonb, needle text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pipeline.define_trigger(def);
    RETURN 'accepted';
EXCEPTION WHEN invalid_parameter_value THEN
    RETURN CASE WHEN position(needle in SQLERRM) > 0 THEN 'refused, quoting the secret'
                ELSE 'refused, secret not quoted' END;
END $$;
SELECT regress.refusal_quotes('{"name": "t", "pipeline": "tr_nope", "provider": "github",
                                "secret": "do-not-show-me-1"}', 'do-not-show-me') AS unknown_pipeline,
       regress.refusal_quotes('{"name": "t", "pipeline": "tr_app", "provider": "github",
                                "secret": "do-not-show-me-\u00e9"}', 'do-not-show-me') AS non_ascii_secret,
       regress.refusal_quotes('{"name": "t", "pipeline": "tr_app", "provider": "github",
                                "secret": "do-not-show-me-1", "refs": "("}', 'do-not-show-me') AS bad_refs;
SELECT regress.trigger_state() = :'s0' AS nothing_stored;

-- ---------------------------------------------------------------- definitions
SELECT pipeline.define_trigger('{"name": "gh-main", "pipeline": "tr_app", "provider": "github",
  "events": ["push"], "refs": "^refs/heads/main$", "secret": "gh-secret-A-123",
  "params": {"TARGET": "linux"}, "description": "main branch builds"}') AS version;
SELECT pipeline.define_trigger('{"name": "gh-release", "pipeline": "tr_release", "provider": "github",
  "events": ["tag"], "refs": "^refs/tags/v[0-9]", "secret": "gh-secret-A-123"}') AS version;
SELECT pipeline.define_trigger('{"name": "gh-other", "pipeline": "tr_app", "provider": "github",
  "events": ["push", "merge_request"], "secret": "gh-secret-B-456"}') AS version;
SELECT pipeline.define_trigger('{"name": "lab", "pipeline": "tr_app", "provider": "gitlab",
  "events": ["push", "tag", "merge_request"], "secret": "gitlab-token-xyz"}') AS version;
SELECT pipeline.define_trigger('{"name": "tea", "pipeline": "tr_release", "provider": "gitea",
  "events": ["tag"], "secret": "gitea-secret-789"}') AS version;
SELECT pipeline.define_trigger('{"name": "gen", "pipeline": "tr_app", "provider": "generic",
  "secret": "generic-secret-0"}') AS version;
-- a new version replaces the old one (versions as for jobs)
SELECT pipeline.define_trigger('{"name": "gen", "pipeline": "tr_app", "provider": "generic",
  "refs": "^refs/heads/", "secret": "generic-secret-0"}') AS version;
-- the view: the latest versions, normalized, no secret anywhere
SELECT name, version, definition FROM pipeline.triggers ORDER BY name;
SELECT count(*) FILTER (WHERE definition ? 'secret') AS definitions_with_secret,
       count(*) FILTER (WHERE t::text LIKE '%secret-%' OR t::text LIKE '%token-xyz%') AS rows_showing_secret
  FROM pipeline.triggers t;
SELECT array_agg(column_name::text ORDER BY ordinal_position) AS trigger_view_columns
  FROM information_schema.columns WHERE table_schema = 'pipeline' AND table_name = 'triggers';

-- ---------------------------------------------------------------- fire_trigger: refusals
SELECT regress.trigger_state() AS s1 \gset
SELECT pipeline.fire_trigger(NULL, '{}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.fire_trigger('svn', '{}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.fire_trigger('github', NULL);
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.fire_trigger('github', '[1, 2]');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.fire_trigger('github', '"push"');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.fire_trigger('github', '{}', E'push\nX-Injected: 1');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.fire_trigger('github', jsonb_build_object('ref', 'refs/heads/main', 'pad', repeat('x', 5 * 1024 * 1024)));
\echo :LAST_ERROR_MESSAGE
SELECT regress.trigger_state() = :'s1' AS nothing_stored;

-- the outcome of the latest event, and the runs it started as people see them
CREATE FUNCTION regress.last_trigger_event()
RETURNS TABLE (provider text, provider_event text, event_type text, repo text, ref text, sha text,
               author text, runs int, triggers jsonb, reason text) LANGUAGE sql AS $$
SELECT provider, provider_event, event_type, repo, ref, sha, author, cardinality(runs),
       (SELECT jsonb_agg(t - 'run' || CASE WHEN t ? 'run' THEN '{"run": "started"}'::jsonb ELSE '{}' END)
          FROM jsonb_array_elements(e.triggers) t),
       reason
  FROM pipeline.trigger_events e ORDER BY id DESC LIMIT 1
$$;
CREATE FUNCTION regress.trigger_runs(ids bigint[])
RETURNS TABLE (pipeline_name text, params jsonb, run_by text, trigger_label text, event_label_ok boolean)
LANGUAGE sql AS $$
SELECT p.pipeline_name, p.params, p.run_by, p.labels ->> 'trigger',
       (p.labels ->> 'trigger_event')::bigint = (SELECT max(id) FROM pipeline.trigger_event)
  FROM pipeline.pipeline_tasks p WHERE p.id = ANY (ids) ORDER BY p.pipeline_name
$$;

-- ---------------------------------------------------------------- fire_trigger: GitHub
-- a push to main, with the header: gh-main and gh-other (any ref) start
SELECT array_agg(r ORDER BY r) AS runs FROM pipeline.fire_trigger('github', '{
  "ref": "refs/heads/main", "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
  "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
  "repository": {"full_name": "acme/widget"}, "pusher": {"name": "octo-dev"},
  "sender": {"login": "octo-dev"}, "created": false, "deleted": false,
  "commits": [{"id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "message": "fix"}],
  "head_commit": {"id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"}}', 'push') r \gset
SELECT * FROM regress.last_trigger_event();
SELECT * FROM regress.trigger_runs(:'runs');
-- the same push without the header: the type is inferred ("ref" and "commits")
SELECT count(*) AS runs FROM pipeline.fire_trigger('github',
  '{"ref": "refs/heads/main", "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "commits": []}');
SELECT event_type, provider_event, runs FROM regress.last_trigger_event();
-- a tag is a push of refs/tags/...: gh-release starts
SELECT array_agg(r) AS runs FROM pipeline.fire_trigger('github', '{
  "ref": "refs/tags/v1.2.0", "before": "0000000000000000000000000000000000000000",
  "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "created": true, "deleted": false,
  "repository": {"full_name": "acme/widget"}, "pusher": {"name": "release-bot"},
  "commits": [], "head_commit": {"id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"}}', 'push') r \gset
SELECT * FROM regress.last_trigger_event();
SELECT * FROM regress.trigger_runs(:'runs');
-- a push to another branch: recorded with each trigger's reason
SELECT count(*) AS runs FROM pipeline.fire_trigger('github',
  '{"ref": "refs/heads/feature/x", "after": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "commits": []}', 'push');
SELECT * FROM regress.last_trigger_event();
-- a tag that does not match refs
SELECT count(*) AS runs FROM pipeline.fire_trigger('github',
  '{"ref": "refs/tags/nightly", "after": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "commits": []}');
SELECT event_type, runs, triggers, reason FROM regress.last_trigger_event();
-- a pull request is a merge_request; its ref is the source branch
SELECT count(*) AS runs FROM pipeline.fire_trigger('github', '{"action": "opened", "number": 7,
  "pull_request": {"head": {"ref": "feature/y", "sha": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"},
                   "user": {"login": "contrib"}},
  "repository": {"full_name": "acme/widget"}}', 'pull_request');
SELECT event_type, ref, sha, author, runs, triggers FROM regress.last_trigger_event();
-- events no trigger listens to, deleted branches, missing or odd fields: recorded, no run
SELECT count(*) AS runs FROM pipeline.fire_trigger('github', '{"zen": "Keep it simple.", "hook_id": 1}', 'ping');
SELECT event_type, runs, reason FROM regress.last_trigger_event();
SELECT count(*) AS runs FROM pipeline.fire_trigger('github', '{"action": "opened", "issue": {}}');
SELECT event_type, runs, reason FROM regress.last_trigger_event();
SELECT count(*) AS runs FROM pipeline.fire_trigger('github',
  '{"ref": "refs/heads/main", "after": "0000000000000000000000000000000000000000", "deleted": true, "commits": []}', 'push');
SELECT event_type, ref, runs, reason FROM regress.last_trigger_event();
SELECT count(*) AS runs FROM pipeline.fire_trigger('github', '{"ref": 42, "after": "abc", "commits": []}', 'push');
SELECT event_type, ref, runs, reason FROM regress.last_trigger_event();
SELECT count(*) AS runs FROM pipeline.fire_trigger('github', '{"commits": [], "after": "abc"}', 'push');
SELECT event_type, runs, reason FROM regress.last_trigger_event();
SELECT count(*) AS runs FROM pipeline.fire_trigger('github',
  jsonb_build_object('ref', E'refs/heads/main\n', 'after', 'abc', 'commits', '[]'::jsonb), 'push');
SELECT event_type, ref, runs, reason FROM regress.last_trigger_event();
SELECT count(*) AS runs FROM pipeline.fire_trigger('github',
  jsonb_build_object('ref', 'refs/heads/' || repeat('b', 2000), 'after', 'abc', 'commits', '[]'::jsonb), 'push');
SELECT event_type, ref, runs, reason FROM regress.last_trigger_event();
SELECT count(*) AS runs FROM pipeline.fire_trigger('github',
  '{"ref": "refs/heads/main", "after": "abc", "commits": [], "repository": {"full_name": ["a"]}, "pusher": 7}', 'push');
SELECT event_type, repo, author, runs FROM regress.last_trigger_event();

-- ---------------------------------------------------------------- GitLab, Gitea, generic
SELECT count(*) AS runs FROM pipeline.fire_trigger('gitlab', '{"object_kind": "push", "event_name": "push",
  "ref": "refs/heads/main", "before": "95790bf891e76fee5e1747ab589903a6a1f80f22",
  "after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", "checkout_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
  "user_name": "Lab Dev", "user_username": "labdev", "project_id": 15,
  "project": {"id": 15, "path_with_namespace": "acme/widget"}, "commits": [], "total_commits_count": 0}');
SELECT * FROM regress.last_trigger_event();
SELECT count(*) AS runs FROM pipeline.fire_trigger('gitlab', '{"object_kind": "tag_push",
  "ref": "refs/tags/v1.2.0", "before": "0000000000000000000000000000000000000000",
  "after": "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7", "checkout_sha": "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
  "user_username": "release-bot", "project": {"path_with_namespace": "acme/widget"}, "commits": []}', 'Tag Push Hook');
SELECT provider_event, event_type, ref, sha, author, runs FROM regress.last_trigger_event();
SELECT count(*) AS runs FROM pipeline.fire_trigger('gitlab', '{"object_kind": "merge_request",
  "user": {"username": "contrib"}, "project": {"path_with_namespace": "acme/widget"},
  "object_attributes": {"source_branch": "fix/z", "target_branch": "main",
                        "last_commit": {"id": "cccccccccccccccccccccccccccccccccccccccc"}}}');
SELECT event_type, ref, sha, author, runs FROM regress.last_trigger_event();
SELECT count(*) AS runs FROM pipeline.fire_trigger('gitlab', '{"object_kind": "pipeline"}');
SELECT event_type, runs, reason FROM regress.last_trigger_event();
-- gitea: a push of a branch (tea listens to tags only), then a tag
SELECT count(*) AS runs FROM pipeline.fire_trigger('gitea', '{"ref": "refs/heads/main",
  "after": "bffeb74224043ba2feb48d137756c8a9331c449a", "commits": [],
  "repository": {"full_name": "acme/widget"}, "pusher": {"login": "teadev", "username": "teadev"}}', 'push');
SELECT event_type, runs, triggers, reason FROM regress.last_trigger_event();
SELECT array_agg(r) AS runs FROM pipeline.fire_trigger('gitea', '{"ref": "refs/tags/v1.2.0",
  "before": "0000000000000000000000000000000000000000", "after": "bffeb74224043ba2feb48d137756c8a9331c449a",
  "commits": [], "repository": {"full_name": "acme/widget"},
  "pusher": {"login": "release-bot"}}') r \gset
SELECT * FROM regress.trigger_runs(:'runs');
-- generic: the event in the payload or the header
SELECT array_agg(r) AS runs FROM pipeline.fire_trigger('generic', '{"event": "push", "ref": "refs/heads/main",
  "sha": "4b825dc642cb6eb9a060e54bf8d69288fbee4904", "repo": "acme/widget", "author": "ci-bridge"}') r \gset
SELECT * FROM regress.trigger_runs(:'runs');
SELECT count(*) AS runs FROM pipeline.fire_trigger('generic', '{"ref": "refs/pull/1", "sha": "abc"}', 'push');
SELECT event_type, runs, triggers FROM regress.last_trigger_event();

-- ---------------------------------------------------------------- disabled triggers, refused runs
SELECT pipeline.define_trigger('{"name": "gen", "pipeline": "tr_app", "provider": "generic",
  "secret": "generic-secret-0", "enabled": false}') AS version;
SELECT count(*) AS runs FROM pipeline.fire_trigger('generic', '{"ref": "refs/heads/main", "sha": "abc"}', 'push');
SELECT runs, triggers, reason FROM regress.last_trigger_event();
-- one trigger's run refused (a required param without a value): recorded, the others start
SELECT pipeline.define_trigger('{"name": "gl-strict", "pipeline": "tr_strict", "provider": "gitlab",
  "secret": "gitlab-token-xyz"}') AS version;
SELECT count(*) AS runs FROM pipeline.fire_trigger('gitlab', '{"object_kind": "push", "ref": "refs/heads/main",
  "checkout_sha": "dddddddddddddddddddddddddddddddddddddddd", "project": {"path_with_namespace": "acme/widget"}}');
SELECT runs, triggers, reason FROM regress.last_trigger_event();

-- ---------------------------------------------------------------- fire_signed_trigger
-- GitHub: X-Hub-Signature-256 of this exact body with gh-secret-A-123 (gh-main, gh-release)
\set b1 '{"ref":"refs/heads/main","after":"1111111111111111111111111111111111111111","commits":[],"repository":{"full_name":"acme/widget"},"pusher":{"name":"octo"}}'
SELECT count(*) AS events_before FROM pipeline.trigger_event \gset
SELECT array_agg(r) AS runs FROM pipeline.fire_signed_trigger('github', convert_to(:'b1', 'UTF8'),
  'sha256=a070b3b57a7438c67cde7bc9ead9a3c83fd5e5386192ffbc968d6729ef635a19', 'push') r \gset
-- only the triggers whose secret verified were considered: gh-other (secret B) is not
SELECT * FROM regress.last_trigger_event();
SELECT * FROM regress.trigger_runs(:'runs');
SELECT payload_bytes = octet_length(:'b1') AS size_ok,
       payload_sha256 = encode(sha256(convert_to(:'b1', 'UTF8')), 'hex') AS digest_ok
  FROM pipeline.trigger_event ORDER BY id DESC LIMIT 1;
-- uppercase hex is the same signature; the other secret selects the other trigger
SELECT count(*) AS runs FROM pipeline.fire_signed_trigger('github', convert_to(:'b1', 'UTF8'),
  'sha256=A070B3B57A7438C67CDE7BC9EAD9A3C83FD5E5386192FFBC968D6729EF635A19', 'push');
SELECT count(*) AS runs FROM pipeline.fire_signed_trigger('github', convert_to(:'b1', 'UTF8'),
  'sha256=c09dd4ad03851220cdc5ebd3b356a2e7c1a6a9b243fcfae8b50ce0db0c818be8', 'push');
SELECT triggers FROM regress.last_trigger_event();
SELECT count(*) - :events_before AS events_recorded FROM pipeline.trigger_event;
-- bad, missing, truncated, wrong-prefix signatures and a changed body: 28000, nothing recorded
SELECT regress.trigger_state() AS s2 \gset
SELECT pipeline.fire_signed_trigger('github', convert_to(:'b1', 'UTF8'),
  'sha256=0070b3b57a7438c67cde7bc9ead9a3c83fd5e5386192ffbc968d6729ef635a19', 'push');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.fire_signed_trigger('github', convert_to(:'b1', 'UTF8'), NULL, 'push');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.fire_signed_trigger('github', convert_to(:'b1', 'UTF8'), '', 'push');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.fire_signed_trigger('github', convert_to(:'b1', 'UTF8'),
  'sha256=a070b3b57a7438c67cde7bc9ead9a3c83fd5e5386192ffbc968d6729ef635a', 'push');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.fire_signed_trigger('github', convert_to(:'b1', 'UTF8'),
  'a070b3b57a7438c67cde7bc9ead9a3c83fd5e5386192ffbc968d6729ef635a19', 'push');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.fire_signed_trigger('github', convert_to(:'b1' || ' ', 'UTF8'),
  'sha256=a070b3b57a7438c67cde7bc9ead9a3c83fd5e5386192ffbc968d6729ef635a19', 'push');
\echo :LAST_ERROR_MESSAGE
-- a secret is not a signature: sending the secret itself fails for HMAC providers
SELECT pipeline.fire_signed_trigger('github', convert_to(:'b1', 'UTF8'), 'gh-secret-A-123', 'push');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.fire_signed_trigger('gitlab', convert_to(:'b1', 'UTF8'), 'gitlab-token-xy', 'Push Hook');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.fire_signed_trigger('github', NULL, 'sha256=00');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.fire_signed_trigger('bitbucket', '\x7b7d', 'sha256=00');
\echo :LAST_ERROR_MESSAGE
SELECT regress.trigger_state() = :'s2' AS nothing_stored;
-- a genuine signature over a body that is not a JSON object: 22023, nothing recorded
SELECT pipeline.fire_signed_trigger('github', convert_to('{"ref": "refs/heads/main", "after": ', 'UTF8'),
  'sha256=52a3c05a52733e04516e8cfb1947392fc7852f53541816b82e1e7ec30e9c1ca1');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.fire_signed_trigger('github', convert_to('[1,2]', 'UTF8'),
  'sha256=45eb35b7962a7bf0c032a017d3cfb9b8da028900ac040f7549e59340856c144b');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.fire_signed_trigger('github', convert_to(repeat('[', 100) || repeat(']', 100), 'UTF8'),
  'sha256=c16019c54ffb5a9bcfa373967b2682f87770a3d78f0537407aeca6f7bb91999f');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.fire_signed_trigger('github', '\xfffe',
  'sha256=39356d2257505ddcffea5f791f5097ac7808328c41472bfc865e1ef7f40a21c8');
\echo :LAST_ERROR_MESSAGE
SELECT regress.trigger_state() = :'s2' AS nothing_stored;
-- GitLab: the token itself; Gitea: bare hex
SELECT count(*) AS runs FROM pipeline.fire_signed_trigger('gitlab', convert_to(:'b1', 'UTF8'), 'gitlab-token-xyz', 'Push Hook');
SELECT provider_event, event_type, runs, triggers FROM regress.last_trigger_event();
\set b5 '{"ref":"refs/tags/v2.0.0","after":"2222222222222222222222222222222222222222","commits":[],"repository":{"full_name":"acme/widget"},"pusher":{"login":"tea"}}'
SELECT array_agg(r) AS runs FROM pipeline.fire_signed_trigger('gitea', convert_to(:'b5', 'UTF8'),
  '899d8a261889c2facd6f6bd55af7a6fb2e172db227cf5a495a77868d52f984d3', 'push') r \gset
SELECT * FROM regress.trigger_runs(:'runs');
-- generic: sha256=<hex>; the gen trigger is disabled now, so there is no trigger to verify against
\set b6 '{"event":"push","ref":"refs/heads/main","sha":"3333333333333333333333333333333333333333","repo":"acme/widget","author":"bridge"}'
SELECT pipeline.fire_signed_trigger('generic', convert_to(:'b6', 'UTF8'),
  'sha256=2b1936d743667033498c50679c0bd9740f563bb852f4598a183afb6820e2ea1b');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('{"name": "gen", "pipeline": "tr_app", "provider": "generic",
  "secret": "generic-secret-0"}') AS version;
SELECT array_agg(r) AS runs FROM pipeline.fire_signed_trigger('generic', convert_to(:'b6', 'UTF8'),
  'sha256=2b1936d743667033498c50679c0bd9740f563bb852f4598a183afb6820e2ea1b') r \gset
SELECT * FROM regress.trigger_runs(:'runs');

-- ---------------------------------------------------------------- no secret anywhere
SELECT
  (SELECT count(*) FROM pipeline.trigger_event e
    WHERE e::text ~ '(gh-secret|gitlab-token|gitea-secret|generic-secret)') AS events_showing_secret,
  (SELECT count(*) FROM pipeline.pipeline_task p
    WHERE p::text ~ '(gh-secret|gitlab-token|gitea-secret|generic-secret)') AS runs_showing_secret,
  (SELECT count(*) FROM pipeline.event e
    WHERE e::text ~ '(gh-secret|gitlab-token|gitea-secret|generic-secret)') AS engine_events_showing_secret,
  (SELECT count(*) FROM pipeline.trigger_events e
    WHERE e::text ~ '(gh-secret|gitlab-token|gitea-secret|generic-secret)') AS view_rows_showing_secret;

-- ---------------------------------------------------------------- privileges
-- a receiver role may call fire_signed_trigger only; it cannot read the secrets
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_triggerd;
DROP ROLE IF EXISTS regress_trigger_nobody;
RESET client_min_messages;
CREATE ROLE regress_triggerd;
CREATE ROLE regress_trigger_nobody;
GRANT USAGE ON SCHEMA pipeline TO regress_triggerd;
GRANT EXECUTE ON FUNCTION pipeline.fire_signed_trigger(text, bytea, text, text) TO regress_triggerd;
SET ROLE regress_triggerd;
SELECT count(*) AS runs FROM pipeline.fire_signed_trigger('github', convert_to(:'b1', 'UTF8'),
  'sha256=a070b3b57a7438c67cde7bc9ead9a3c83fd5e5386192ffbc968d6729ef635a19', 'push');
SELECT secret FROM pipeline.trigger;
\echo :LAST_ERROR_MESSAGE
SELECT count(*) FROM pipeline.fire_trigger('github', '{"ref": "refs/heads/main", "commits": []}');
\echo :LAST_ERROR_MESSAGE
SELECT pipeline.define_trigger('{"name": "evil", "pipeline": "tr_app", "provider": "github", "secret": "0123456789"}');
\echo :LAST_ERROR_MESSAGE
RESET ROLE;
SET ROLE regress_trigger_nobody;
SELECT count(*) FROM pipeline.fire_signed_trigger('github', '\x7b7d', 'sha256=00');
\echo :LAST_ERROR_MESSAGE
RESET ROLE;
SELECT received_by FROM pipeline.trigger_event ORDER BY id DESC LIMIT 1;
REVOKE ALL ON FUNCTION pipeline.fire_signed_trigger(text, bytea, text, text) FROM regress_triggerd;
REVOKE USAGE ON SCHEMA pipeline FROM regress_triggerd;
DROP ROLE regress_triggerd, regress_trigger_nobody;

-- tidy: later tests count runs and events of their own only, but leave no trigger enabled
SELECT name, pipeline.define_trigger(t.definition || '{"enabled": false}'
                                     || jsonb_build_object('secret', 'disabled-' || name)) AS version
  FROM pipeline.triggers t WHERE (t.definition ->> 'enabled')::boolean ORDER BY name;
SELECT count(*) AS enabled_triggers FROM pipeline.triggers WHERE (definition ->> 'enabled')::boolean;

-- ---------------------------------------------------------------- purge() and trigger events
-- purge(older_than) deletes the trigger events received before the horizon
-- whose runs are all gone (purged now or before; an event that started
-- nothing has none), and keeps the ones younger or with a run still there.
SELECT pipeline.define_trigger('{"name": "tr_purge", "pipeline": "tr_app", "provider": "github",
  "secret": "purge-secret-0123", "refs": "^refs/heads/main$"}') AS version;
CREATE TEMP TABLE tp (name text PRIMARY KEY, event bigint, run bigint);
CREATE FUNCTION pg_temp.fire(name text, ref text) RETURNS void LANGUAGE sql AS $$
INSERT INTO tp (name, run) VALUES (name, (SELECT r FROM pipeline.fire_trigger('github',
    jsonb_build_object('ref', ref, 'after', '0d1a26e6', 'commits', '[]'::jsonb,
                       'repository', jsonb_build_object('full_name', 'acme/purge')), 'push') r LIMIT 1));
UPDATE tp SET event = (SELECT max(id) FROM pipeline.trigger_event) WHERE tp.name = fire.name;
$$;
SELECT count(*) AS fired
  FROM (VALUES ('old_run', 'refs/heads/main'), ('old_nomatch', 'refs/heads/dev'),
               ('old_open_run', 'refs/heads/main'), ('young_run', 'refs/heads/main')) v(n, ref),
       LATERAL pg_temp.fire(n, ref);
SELECT name, run IS NOT NULL AS started FROM tp ORDER BY name;
SELECT stage FROM pipeline.cancel_pipeline_task((SELECT run FROM tp WHERE name = 'old_run'), 'purge test');
SELECT stage FROM pipeline.cancel_pipeline_task((SELECT run FROM tp WHERE name = 'young_run'), 'purge test');
UPDATE pipeline.pipeline_task SET end_at = now() - interval '40 days'
 WHERE id = (SELECT run FROM tp WHERE name = 'old_run');
UPDATE pipeline.trigger_event SET received_at = now() - interval '41 days'
 WHERE id IN (SELECT event FROM tp WHERE name LIKE 'old%');
-- (other files' runs may go too: the count is not shown)
SELECT pipeline.purge('30 days') >= 1 AS purged;
SELECT tp.name, e.id IS NOT NULL AS event_kept, p.id IS NOT NULL AS run_kept
  FROM tp LEFT JOIN pipeline.trigger_event e ON e.id = tp.event
          LEFT JOIN pipeline.pipeline_task p ON p.id = tp.run
 ORDER BY tp.name;
SELECT pipeline.define_trigger(t.definition || '{"enabled": false}'
                               || jsonb_build_object('secret', 'disabled-' || name)) AS version
  FROM pipeline.triggers t WHERE name = 'tr_purge';
SELECT regress.cancel_all() IS NOT NULL AS tidy;
