-- Positions written by the processor. Idempotent on (device_id, ts): a re-delivered record is a no-op.
CREATE TABLE IF NOT EXISTS positions (
  device_id   text             NOT NULL,
  ts          timestamptz      NOT NULL,
  latitude    double precision NOT NULL,
  longitude   double precision NOT NULL,
  altitude    double precision NOT NULL,
  angle       double precision NOT NULL,
  speed       double precision NOT NULL,
  satellites  smallint         NOT NULL,
  priority    smallint         NOT NULL,
  event_id    integer          NOT NULL,
  attributes  jsonb            NOT NULL DEFAULT '{}'::jsonb,
  ingested_at timestamptz      NOT NULL DEFAULT now(),
  PRIMARY KEY (device_id, ts)
);

-- A hypertable on ts (1-day chunks) where TimescaleDB can be loaded; a plain table elsewhere.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
     AND current_setting('shared_preload_libraries', true) LIKE '%timescaledb%' THEN
    CREATE EXTENSION IF NOT EXISTS timescaledb;
    EXECUTE $sql$SELECT create_hypertable('positions', 'ts', chunk_time_interval => INTERVAL '1 day',
                                           if_not_exists => TRUE, migrate_data => TRUE)$sql$;
  END IF;
END
$$;
