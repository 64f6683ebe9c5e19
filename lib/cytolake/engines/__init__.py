"""The engines over the lake's storage: Spark (the session, its JVM's class-data archive and logging, DataFrame
writes in one Delta commit and snapshot reads) and read-only SQL (DuckDB or Spark SQL)."""
