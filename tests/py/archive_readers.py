"""Reads qyl's Parquet archive with other engines, as the README tells users
to: DuckDB (Python) and ClickHouse (chdb, the real ClickHouse engine in
process). Prints, for each engine, a trace's spans, a service's error count
and the GenAI cost of a model, as JSON for tests/archive.rs to compare with
qyl's own answers.

usage: archive_readers.py ROOT TRACE_ID SERVICE MODEL
"""

import json
import sys

import chdb
import duckdb

root, trace_id, service, model = sys.argv[1:5]
spans = f"{root}/signal=spans/*/*/*/*.parquet"


def duckdb_answers():
    con = duckdb.connect()
    # hive_partitioning: signal, date, hour and node come from the path.
    src = f"read_parquet('{spans}', hive_partitioning = true)"
    trace = [
        r[0]
        for r in con.execute(
            f"SELECT span_id FROM {src} WHERE trace_id = ? ORDER BY span_id", [trace_id]
        ).fetchall()
    ]
    errors = con.execute(
        f"SELECT count(*) FROM {src} WHERE service_name = ? AND status_code = 'ERROR'",
        [service],
    ).fetchone()[0]
    cost = con.execute(
        f"SELECT round(sum(gen_ai_cost_usd), 9) FROM {src} WHERE gen_ai_request_model = ?",
        [model],
    ).fetchone()[0]
    nodes = [r[0] for r in con.execute(f"SELECT DISTINCT node FROM {src} ORDER BY 1").fetchall()]
    return {"trace": trace, "errors": errors, "cost": cost, "nodes": nodes}


def clickhouse_answers():
    def q(sql):
        return json.loads(str(chdb.query(sql, "JSON")))["data"]

    src = f"file('{spans}', Parquet)"
    trace = [
        r["span_id"]
        for r in q(f"SELECT span_id FROM {src} WHERE trace_id = '{trace_id}' ORDER BY span_id")
    ]
    errors = q(
        f"SELECT count() AS n FROM {src} WHERE service_name = '{service}' AND status_code = 'ERROR'"
    )[0]["n"]
    cost = q(
        f"SELECT round(sum(gen_ai_cost_usd), 9) AS c FROM {src} WHERE gen_ai_request_model = '{model}'"
    )[0]["c"]
    return {"trace": trace, "errors": int(errors), "cost": cost}


print(json.dumps({"duckdb": duckdb_answers(), "clickhouse": clickhouse_answers()}))
