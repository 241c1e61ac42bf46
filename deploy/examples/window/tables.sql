-- The tables the MaxCompute window examples load into. A window job does not
-- create its table: run these once (odpscmd -f tables.sql, or the DataWorks
-- console). `go run ./starter demo` creates them in the local emulator.
CREATE TABLE IF NOT EXISTS kafka_hourly (value STRING, kafka_partition BIGINT,
  kafka_offset BIGINT, kafka_ts BIGINT) PARTITIONED BY (pt STRING);
CREATE TABLE IF NOT EXISTS kafka_daily (order_id BIGINT, user_name STRING, amount DOUBLE,
  source STRING, kafka_offset BIGINT) PARTITIONED BY (pt STRING);
