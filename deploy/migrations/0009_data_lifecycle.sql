-- Issue 22, "Data lifecycle": retention (`hub purge`, also scheduled inside `hub run`) and privacy
-- erasure (`hub customers erase`).
--
-- The purge deletes old rows in small batches, each its own short transaction, walking an index on
-- the age it judges by, so a batch reads only what it deletes (hub/ops/lifecycle.py). On a large
-- existing database these indexes take a while to build and block writes to their table meanwhile:
-- build them first with CREATE INDEX CONCURRENTLY under the same names (as the schema owner), and
-- this migration skips them. The outbox needs none: it is walked by id.
CREATE INDEX IF NOT EXISTS inbox_processed ON inbox (processed_at);
CREATE INDEX IF NOT EXISTS shipment_events_occurred ON shipment_events (occurred_at);
CREATE INDEX IF NOT EXISTS call_logs_occurred ON call_logs (occurred_at);
CREATE INDEX IF NOT EXISTS dead_letters_settled ON dead_letters ((coalesce(replayed_at, created_at)));

-- Privacy requests: what `hub customers erase` did, and who asked. Never the erased data itself:
-- counts of the rows it changed, per table and column. Append-only, like task_events.
CREATE TABLE erasures (
    id           bigserial PRIMARY KEY,
    customer_id  text NOT NULL,
    erased_at    timestamptz NOT NULL DEFAULT now(),
    erased_by    text NOT NULL CHECK (btrim(erased_by) <> ''),
    touched      jsonb NOT NULL            -- {"customers": 1, "call_logs.payload": 12, ...}
);
CREATE INDEX erasures_customer ON erasures (customer_id, erased_at);

CREATE FUNCTION hub_refuse_erasure_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'erasures is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER erasures_append_only BEFORE UPDATE OR DELETE ON erasures
    FOR EACH ROW EXECUTE FUNCTION hub_refuse_erasure_change();
CREATE TRIGGER erasures_no_truncate BEFORE TRUNCATE ON erasures
    FOR EACH STATEMENT EXECUTE FUNCTION hub_refuse_erasure_change();

-- The register remembers that a customer was erased (their row stays: tasks and history refer to it).
ALTER TABLE customers ADD COLUMN erased_at timestamptz;

-- The application role may DELETE from exactly the tables the purge empties, and nothing else.
-- It is the role deploy/postgres-init/hub-roles.psql gave default write privileges on this owner's
-- tables (that script grants the same when it runs after this migration). Where no such role
-- exists (the embedded database, a single-role setup) there is nothing to grant.
DO $$
DECLARE
    app text;
BEGIN
    FOR app IN
        SELECT DISTINCT pg_get_userbyid(acl.grantee)
        FROM pg_default_acl AS d, aclexplode(d.defaclacl) AS acl
        WHERE d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = current_user)
          AND d.defaclobjtype = 'r' AND acl.privilege_type = 'INSERT'
          AND acl.grantee NOT IN (0, d.defaclrole)
    LOOP
        EXECUTE format('GRANT DELETE ON inbox, outbox, dead_letters, shipment_events, call_logs TO %I', app);
    END LOOP;
END
$$;
