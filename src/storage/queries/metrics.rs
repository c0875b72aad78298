//! Metric names and bucketed series.
//!
//! Gauges and sums are aggregated by DuckDB per (series, step). Histograms
//! are merged here: per step, delta points are added up and cumulative ones
//! are differenced against the previous step (a drop means the process
//! restarted, and the new point is taken as is); percentiles are then
//! interpolated inside the bucket that holds them, as Prometheus's
//! `histogram_quantile` does.

use std::collections::{BTreeMap, BTreeSet};

use duckdb::types::Value;

use super::{texts, Where};
use crate::model::query::{
    raw_json, rfc3339, MetricBucket, MetricData, MetricInfo, MetricQuery, MetricSeries,
};
use crate::storage::reader::{QueryError, SqlContext};
use crate::storage::Conn;

/// Histogram points read for one answer at most; past it the caller is asked
/// to narrow the range or widen the step.
const MAX_HISTOGRAM_POINTS: usize = 200_000;

pub fn list_metrics(c: &Conn) -> Result<Vec<MetricInfo>, QueryError> {
    let mut stmt = c
        .prepare(
            "WITH keyed AS (SELECT name, kind, list(DISTINCT key ORDER BY key) AS keys FROM \
             (SELECT name, kind, unnest(json_keys(attributes)) AS key \
              FROM (SELECT DISTINCT name, kind, attributes FROM metric_rows_all metric_rows)) GROUP BY name, kind) \
             SELECT m.name, m.kind, any_value(unit), any_value(description), any_value(temporality), \
             list(DISTINCT service_name ORDER BY service_name), count(*), \
             count(DISTINCT (service_name, attributes)), max(time_unix_nano), any_value(keyed.keys) \
             FROM metric_rows_all m LEFT JOIN keyed ON keyed.name = m.name AND keyed.kind = m.kind \
             GROUP BY m.name, m.kind ORDER BY m.name, m.kind",
        )
        .ctx("preparing the metric list")?;
    let rows = stmt
        .query_map([], |r| {
            let services = texts(r.get(5)?);
            Ok(MetricInfo {
                name: r.get(0)?,
                kind: r.get(1)?,
                unit: r.get(2)?,
                description: r.get(3)?,
                temporality: r.get(4)?,
                services,
                points: r.get(6)?,
                series: r.get(7)?,
                last_time: rfc3339(r.get(8)?),
                attribute_keys: texts(r.get(9)?),
            })
        })
        .ctx("listing metrics")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading the metric list")?;
    Ok(rows)
}

fn point_filter(q: &MetricQuery, kind: &str) -> Where {
    let mut w = Where::default();
    w.cond("name = ?", [Value::Text(q.name.clone())]);
    w.cond("kind = ?", [Value::Text(kind.to_string())]);
    w.eq("service_name", q.service.as_ref());
    w.ge("time_unix_nano", q.since);
    w.lt("time_unix_nano", q.until);
    w.attrs(&q.attrs);
    w
}

/// The metric's series, or `None` when no point has that name.
pub fn metric_series(c: &Conn, q: &MetricQuery) -> Result<Option<MetricData>, QueryError> {
    let head: Option<(String, Option<String>, Option<String>)> = c
        .query_row(
            "SELECT kind, any_value(unit), any_value(temporality) FROM metric_rows_all metric_rows WHERE name = ? \
             GROUP BY kind ORDER BY count(*) DESC LIMIT 1",
            [&q.name],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .map(Some)
        .or_else(|e| match e {
            duckdb::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })
        .ctx("looking up the metric")?;
    let Some((kind, unit, temporality)) = head else {
        return Ok(None);
    };
    let step = q.step_ns.max(1);
    let series = match kind.as_str() {
        "gauge" | "sum" => number_series(c, q, &kind, temporality.as_deref(), step)?,
        _ => distribution_series(c, q, &kind, step)?,
    };
    Ok(Some(MetricData {
        name: q.name.clone(),
        kind,
        unit,
        step_ms: step / 1_000_000,
        series,
        read: None,
    }))
}

fn bucket(time: u64) -> MetricBucket {
    MetricBucket {
        time: rfc3339(time),
        time_unix_nano: time.to_string(),
        ..Default::default()
    }
}

fn number_series(
    c: &Conn,
    q: &MetricQuery,
    kind: &str,
    temporality: Option<&str>,
    step: u64,
) -> Result<Vec<MetricSeries>, QueryError> {
    let w = point_filter(q, kind);
    let sql = format!(
        "SELECT service_name, attributes, (time_unix_nano // {step}) * {step} AS b, \
         avg(value), min(value), max(value), arg_max(value, time_unix_nano), \
         arg_min(value, time_unix_nano), sum(value), count(*) \
         FROM metric_rows_all metric_rows{} GROUP BY ALL ORDER BY service_name, attributes, b",
        w.sql()
    );
    let mut stmt = c.prepare(&sql).ctx("preparing the metric series")?;
    type Agg = (
        String,
        String,
        u64,
        Option<f64>,
        Option<f64>,
        Option<f64>,
        Option<f64>,
        Option<f64>,
        Option<f64>,
        u64,
    );
    let rows: Vec<Agg> = stmt
        .query_map(duckdb::params_from_iter(w.params.iter()), |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
            ))
        })
        .ctx("aggregating the metric")?
        .collect::<Result<_, _>>()
        .ctx("reading the metric series")?;
    let cumulative = kind == "sum" && temporality != Some("delta");
    let mut out: Vec<MetricSeries> = Vec::new();
    let mut prev_last: Option<f64> = None;
    for (service, attrs, b, avg, min, max, last, first, sum, count) in rows {
        let new_series = match out.last() {
            Some(s) => s.service_name != service || s.attributes.get() != attrs,
            None => true,
        };
        if new_series {
            out.push(MetricSeries {
                service_name: service,
                attributes: raw_json(&attrs),
                points: Vec::new(),
            });
            prev_last = None;
        }
        let mut p = bucket(b);
        p.count = Some(count);
        match kind {
            "gauge" => {
                p.value = last;
                p.avg = avg;
                p.min = min;
                p.max = max;
            }
            _ if cumulative => {
                // The increase over the step; a drop is a counter reset.
                p.value = match (last, prev_last.or(first)) {
                    (Some(l), Some(prev)) if l >= prev => Some(l - prev),
                    (Some(l), _) => Some(l),
                    _ => None,
                };
                p.max = last;
                prev_last = last;
            }
            _ => p.value = sum,
        }
        if let Some(s) = out.last_mut() {
            s.points.push(p);
        }
    }
    Ok(match q.group_by {
        Some(_) => merge_number_series(q, kind, out),
        None => out,
    })
}

/// The key a series is aggregated under: its own (service, attributes), or
/// with `group_by` the service when `service.name` is listed (else empty)
/// and the listed attributes it has, as a JSON object.
fn group_key(q: &MetricQuery, service: &str, attrs: &str) -> (String, String) {
    let Some(keys) = &q.group_by else {
        return (service.to_string(), attrs.to_string());
    };
    let parsed: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(attrs).unwrap_or_default();
    let mut kept = serde_json::Map::new();
    let mut by_service = false;
    for k in keys {
        if k == "service.name" {
            by_service = true;
        } else if let Some(v) = parsed.get(k) {
            kept.insert(k.clone(), v.clone());
        }
    }
    let service = if by_service { service } else { "" };
    (
        service.to_string(),
        serde_json::Value::Object(kept).to_string(),
    )
}

/// A merged series names its service when all its series came from one.
fn merged_service(key_service: String, services: &BTreeSet<String>) -> String {
    match (key_service.is_empty(), services.len()) {
        (true, 1) => services.iter().next().cloned().unwrap_or_default(),
        _ => key_service,
    }
}

fn add(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x + y),
        (x, y) => x.or(y),
    }
}

/// Gauge and sum series merged per group, step by step: values (increases,
/// sums of deltas, gauges' last values) and counts add up, as PromQL's
/// `sum by` does; gauge averages are weighted by their points, min and max
/// are over the group.
fn merge_number_series(
    q: &MetricQuery,
    kind: &str,
    series: Vec<MetricSeries>,
) -> Vec<MetricSeries> {
    type Group = (BTreeSet<String>, BTreeMap<u64, MetricBucket>);
    let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
    for s in series {
        let g = groups
            .entry(group_key(q, &s.service_name, s.attributes.get()))
            .or_default();
        g.0.insert(s.service_name.clone());
        for p in s.points {
            let t: u64 = p.time_unix_nano.parse().unwrap_or(0);
            let Some(acc) = g.1.get_mut(&t) else {
                g.1.insert(t, p);
                continue;
            };
            let (ca, cb) = (acc.count.unwrap_or(0), p.count.unwrap_or(0));
            if kind == "gauge" {
                acc.avg = match (acc.avg, p.avg) {
                    (Some(x), Some(y)) if ca + cb > 0 => {
                        Some((x * ca as f64 + y * cb as f64) / (ca + cb) as f64)
                    }
                    (x, y) => x.or(y),
                };
                acc.min = match (acc.min, p.min) {
                    (Some(x), Some(y)) => Some(x.min(y)),
                    (x, y) => x.or(y),
                };
                acc.max = match (acc.max, p.max) {
                    (Some(x), Some(y)) => Some(x.max(y)),
                    (x, y) => x.or(y),
                };
            } else {
                // A cumulative sum's `max` is its counter value: the group's
                // counter is their total.
                acc.max = add(acc.max, p.max);
            }
            acc.value = add(acc.value, p.value);
            acc.count = Some(ca + cb);
        }
    }
    groups
        .into_iter()
        .map(|((service, attrs), (services, points))| MetricSeries {
            service_name: merged_service(service, &services),
            attributes: raw_json(&attrs),
            points: points.into_values().collect(),
        })
        .collect()
}

/// A histogram point's buckets: explicit upper bounds (the last bucket is
/// unbounded) and counts.
#[derive(Debug, Clone, PartialEq)]
struct Buckets {
    bounds: Vec<f64>,
    counts: Vec<f64>,
}

fn parse_buckets(kind: &str, json: &str) -> Option<Buckets> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let nums = |key: &str, from: &serde_json::Value| -> Vec<f64> {
        from.get(key)
            .and_then(|a| a.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
            .unwrap_or_default()
    };
    match kind {
        "histogram" => Some(Buckets {
            bounds: nums("bounds", &v),
            counts: nums("counts", &v),
        }),
        "exponential_histogram" => {
            // Bucket i covers (base^i, base^(i+1)] with base = 2^(2^-scale);
            // only the positive range is used for percentiles, with the zero
            // bucket below it.
            let scale = v.get("scale")?.as_i64()?;
            let base = 2f64.powf(2f64.powi(-(scale as i32)));
            let positive = v.get("positive").filter(|p| !p.is_null());
            let offset = positive
                .and_then(|p| p.get("offset"))
                .and_then(|o| o.as_i64())
                .unwrap_or(0);
            let counts = positive.map(|p| nums("counts", p)).unwrap_or_default();
            let zero = v.get("zero_count").and_then(|z| z.as_f64()).unwrap_or(0.0);
            let bounds = (0..=counts.len() as i64)
                .map(|k| base.powi((offset + k) as i32))
                .collect();
            let mut all = vec![zero];
            all.extend(counts);
            all.push(0.0);
            Some(Buckets {
                bounds,
                counts: all,
            })
        }
        _ => None,
    }
}

/// The `q` quantile, interpolated linearly inside its bucket.
fn quantile(b: &Buckets, q: f64) -> Option<f64> {
    let total: f64 = b.counts.iter().sum();
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut seen = 0.0;
    for (i, &c) in b.counts.iter().enumerate() {
        if c > 0.0 && seen + c >= rank {
            // The overflow bucket has no upper bound: report its lower one.
            let Some(&upper) = b.bounds.get(i) else {
                return b.bounds.last().copied();
            };
            let lower = if i == 0 {
                upper.min(0.0)
            } else {
                b.bounds[i - 1]
            };
            return Some(lower + (upper - lower) * ((rank - seen) / c));
        }
        seen += c;
    }
    b.bounds.last().copied()
}

fn sub_buckets(a: &Buckets, prev: &Buckets) -> Option<Buckets> {
    if a.bounds != prev.bounds || a.counts.len() != prev.counts.len() {
        return None;
    }
    let counts: Vec<f64> = a
        .counts
        .iter()
        .zip(&prev.counts)
        .map(|(x, y)| x - y)
        .collect();
    counts.iter().all(|c| *c >= 0.0).then(|| Buckets {
        bounds: a.bounds.clone(),
        counts,
    })
}

fn add_buckets(into: &mut Option<Buckets>, b: Buckets) {
    match into {
        Some(acc) if acc.bounds == b.bounds && acc.counts.len() == b.counts.len() => {
            for (x, y) in acc.counts.iter_mut().zip(b.counts) {
                *x += y;
            }
        }
        // Points with other bounds (a changed view) start over rather than
        // mixing incompatible buckets.
        _ => *into = Some(b),
    }
}

fn distribution_series(
    c: &Conn,
    q: &MetricQuery,
    kind: &str,
    step: u64,
) -> Result<Vec<MetricSeries>, QueryError> {
    if q.group_by.is_some() && kind == "summary" {
        return Err(QueryError::Invalid(
            "group_by: summaries carry quantiles computed by the SDK, which cannot be merged"
                .into(),
        ));
    }
    let w = point_filter(q, kind);
    let sql = format!(
        "SELECT service_name, attributes, time_unix_nano, count, sum, histogram, temporality \
         FROM metric_rows_all metric_rows{} ORDER BY service_name, attributes, time_unix_nano LIMIT {}",
        w.sql(),
        MAX_HISTOGRAM_POINTS + 1
    );
    let mut stmt = c.prepare(&sql).ctx("preparing the histogram series")?;
    type Point = (
        String,
        String,
        u64,
        Option<u64>,
        Option<f64>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Point> = stmt
        .query_map(duckdb::params_from_iter(w.params.iter()), |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .ctx("reading histogram points")?
        .collect::<Result<_, _>>()
        .ctx("reading histogram points")?;
    if rows.len() > MAX_HISTOGRAM_POINTS {
        return Err(QueryError::Invalid(format!(
            "more than {MAX_HISTOGRAM_POINTS} points match; narrow the time range or filter by service or attribute"
        )));
    }
    // (service, attributes) → step → accumulated (buckets, count, sum)
    struct Acc {
        buckets: Option<Buckets>,
        count: u64,
        sum: f64,
        has_sum: bool,
        quantiles: Option<serde_json::Value>,
    }
    // Cumulative points are differenced per series as sent (`prev`), then
    // added into their group's steps (`series`): merged buckets keep
    // percentiles exact over a group.
    let mut series: BTreeMap<(String, String), BTreeMap<u64, Acc>> = BTreeMap::new();
    let mut services: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut prev: BTreeMap<(String, String), (Buckets, u64, f64)> = BTreeMap::new();
    for (service, attrs, time, count, sum, hist, temporality) in rows {
        let group = group_key(q, &service, &attrs);
        services
            .entry(group.clone())
            .or_default()
            .insert(service.clone());
        let key = (service, attrs);
        let b = (time / step) * step;
        let cumulative = temporality.as_deref() == Some("cumulative");
        let acc = series.entry(group).or_default().entry(b).or_insert(Acc {
            buckets: None,
            count: 0,
            sum: 0.0,
            has_sum: false,
            quantiles: None,
        });
        if kind == "summary" {
            // Summaries carry their own quantiles; the step shows the last.
            acc.quantiles = hist
                .as_deref()
                .and_then(|h| serde_json::from_str::<serde_json::Value>(h).ok());
            acc.count = count.unwrap_or(0);
            acc.sum = sum.unwrap_or(0.0);
            acc.has_sum = sum.is_some();
            continue;
        }
        let Some(buckets) = hist.as_deref().and_then(|h| parse_buckets(kind, h)) else {
            continue;
        };
        let (count, sum) = (count.unwrap_or(0), sum.unwrap_or(0.0));
        let (delta, dcount, dsum) = if cumulative {
            let d = match prev.get(&key) {
                Some((pb, pc, ps)) if count >= *pc => match sub_buckets(&buckets, pb) {
                    Some(d) => (d, count - pc, sum - ps),
                    None => (buckets.clone(), count, sum),
                },
                _ => (buckets.clone(), count, sum),
            };
            prev.insert(key.clone(), (buckets, count, sum));
            d
        } else {
            (buckets, count, sum)
        };
        add_buckets(&mut acc.buckets, delta);
        acc.count += dcount;
        acc.sum += dsum;
        acc.has_sum = true;
    }
    let out = series
        .into_iter()
        .map(|(group, steps)| MetricSeries {
            service_name: merged_service(
                group.0.clone(),
                services.get(&group).unwrap_or(&BTreeSet::new()),
            ),
            attributes: raw_json(&group.1),
            points: steps
                .into_iter()
                .map(|(t, acc)| {
                    let mut p = bucket(t);
                    p.count = Some(acc.count);
                    p.sum = acc.has_sum.then_some(acc.sum);
                    if let Some(bk) = &acc.buckets {
                        p.p50 = quantile(bk, 0.5);
                        p.p90 = quantile(bk, 0.9);
                        p.p95 = quantile(bk, 0.95);
                        p.p99 = quantile(bk, 0.99);
                    }
                    if let Some(qs) = acc.quantiles.as_ref().and_then(|v| v.get("quantiles")) {
                        let find = |want: f64| {
                            qs.as_array()?.iter().find_map(|e| {
                                let q = e.get("quantile")?.as_f64()?;
                                ((q - want).abs() < 1e-9).then(|| e.get("value")?.as_f64())?
                            })
                        };
                        p.p50 = find(0.5);
                        p.p90 = find(0.9);
                        p.p95 = find(0.95);
                        p.p99 = find(0.99);
                    }
                    if acc.count > 0 && acc.has_sum {
                        p.avg = Some(acc.sum / acc.count as f64);
                    }
                    p
                })
                .collect(),
        })
        .collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        // 10 values ≤ 1, 10 in (1, 2], none above.
        let b = Buckets {
            bounds: vec![1.0, 2.0],
            counts: vec![10.0, 10.0, 0.0],
        };
        assert_eq!(quantile(&b, 0.5), Some(1.0));
        assert_eq!(quantile(&b, 0.75), Some(1.5));
        assert_eq!(quantile(&b, 0.25), Some(0.5));
        let overflow = Buckets {
            bounds: vec![1.0],
            counts: vec![0.0, 5.0],
        };
        assert_eq!(quantile(&overflow, 0.99), Some(1.0));
        let empty = Buckets {
            bounds: vec![1.0],
            counts: vec![0.0, 0.0],
        };
        assert_eq!(quantile(&empty, 0.5), None);
    }

    #[test]
    fn cumulative_differences_detect_resets() {
        let a = Buckets {
            bounds: vec![1.0],
            counts: vec![5.0, 7.0],
        };
        let prev = Buckets {
            bounds: vec![1.0],
            counts: vec![2.0, 3.0],
        };
        assert_eq!(sub_buckets(&a, &prev).unwrap().counts, vec![3.0, 4.0]);
        assert!(sub_buckets(&prev, &a).is_none());
    }

    #[test]
    fn exponential_buckets_become_bounds() {
        let b = parse_buckets(
            "exponential_histogram",
            r#"{"scale":0,"zero_count":1,"zero_threshold":0,"positive":{"offset":0,"counts":[1,2]},"negative":null}"#,
        )
        .unwrap();
        assert_eq!(b.bounds, vec![1.0, 2.0, 4.0]);
        assert_eq!(b.counts, vec![1.0, 1.0, 2.0, 0.0]);
    }
}
