"""Reads qyl's archive straight from an S3 bucket with ClickHouse (chdb, the
real engine), as the README shows for querying every node's data at scale.
Prints the number of spans and of distinct span ids, as JSON.

usage: bucket_reader.py ENDPOINT BUCKET PREFIX
"""

import json
import sys

import chdb

endpoint, bucket, prefix = sys.argv[1:4]
url = f"{endpoint}/{bucket}/{prefix}/signal=spans/*/*/*/*.parquet"
src = f"s3('{url}', 'qyl-test', 'qyl-test-secret', 'Parquet')"
rows = json.loads(
    str(chdb.query(f"SELECT count() AS n, uniqExact(span_id) AS d FROM {src}", "JSON"))
)["data"][0]
print(json.dumps({"spans": int(rows["n"]), "distinct_span_ids": int(rows["d"])}))
