//! `where` of an `on = "slo"` trigger, checked natively against each SLO
//! level change the hub carries (`Record::Slo`). Text fields take a value
//! or `{ one_of = {…} }`, as `on = "error"` does; numbers take a value or
//! `{ gt, gte, lt, lte }`.
//!
//! ```lua
//! trigger = { on = "slo", where = { level = "page", service = "checkout", objective = { gte = 99 } } }
//! ```

use mlua::{Table, Value};

use crate::model::slo::{SloLevel, SloTransition};

/// Fields of `where` for `on = "slo"`.
pub const SLO_WHERE_FIELDS: &[&str] = &[
    "service",
    "slo",
    "level",
    "from",
    "objective",
    "budget_remaining",
    "burn_rate_long",
    "burn_rate_short",
];

/// A number field's bounds; every one given must hold.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Bounds {
    pub eq: Option<f64>,
    pub gt: Option<f64>,
    pub gte: Option<f64>,
    pub lt: Option<f64>,
    pub lte: Option<f64>,
}

impl Bounds {
    fn holds(&self, n: f64) -> bool {
        self.eq.is_none_or(|b| n == b)
            && self.gt.is_none_or(|b| n > b)
            && self.gte.is_none_or(|b| n >= b)
            && self.lt.is_none_or(|b| n < b)
            && self.lte.is_none_or(|b| n <= b)
    }

    fn describe(&self, key: &str) -> Vec<String> {
        [
            ("=", self.eq),
            (">", self.gt),
            (">=", self.gte),
            ("<", self.lt),
            ("<=", self.lte),
        ]
        .into_iter()
        .filter_map(|(sym, b)| b.map(|b| format!("{key} {sym} {b}")))
        .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberField {
    Objective,
    BudgetRemaining,
    BurnRateLong,
    BurnRateShort,
}

impl NumberField {
    fn of(key: &str) -> Option<NumberField> {
        Some(match key {
            "objective" => NumberField::Objective,
            "budget_remaining" => NumberField::BudgetRemaining,
            "burn_rate_long" => NumberField::BurnRateLong,
            "burn_rate_short" => NumberField::BurnRateShort,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            NumberField::Objective => "objective",
            NumberField::BudgetRemaining => "budget_remaining",
            NumberField::BurnRateLong => "burn_rate_long",
            NumberField::BurnRateShort => "burn_rate_short",
        }
    }

    fn get(self, t: &SloTransition) -> f64 {
        match self {
            NumberField::Objective => t.objective,
            NumberField::BudgetRemaining => t.budget_remaining,
            NumberField::BurnRateLong => t.burn_rate_long,
            NumberField::BurnRateShort => t.burn_rate_short,
        }
    }
}

/// A compiled `where` for `on = "slo"`; an empty list accepts anything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SloFilter {
    pub service: Vec<String>,
    /// The `[[errors.slo]]` name.
    pub slo: Vec<String>,
    /// The level reached (`to`).
    pub level: Vec<SloLevel>,
    /// The level before.
    pub from: Vec<SloLevel>,
    pub numbers: Vec<(NumberField, Bounds)>,
}

impl SloFilter {
    pub fn matches(&self, t: &SloTransition) -> bool {
        let text =
            |allowed: &[String], v: &str| allowed.is_empty() || allowed.iter().any(|a| a == v);
        let level = |allowed: &[SloLevel], v: SloLevel| allowed.is_empty() || allowed.contains(&v);
        text(&self.service, &t.service_name)
            && text(&self.slo, &t.slo)
            && level(&self.level, t.to)
            && level(&self.from, t.from)
            && self.numbers.iter().all(|(f, b)| b.holds(f.get(t)))
    }

    /// "slo level in [page], objective >= 99".
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        let levels = |v: &[SloLevel]| v.iter().map(|l| l.as_str()).collect::<Vec<_>>().join(", ");
        for (name, values) in [("service", &self.service), ("slo", &self.slo)] {
            if !values.is_empty() {
                parts.push(format!("{name} in [{}]", values.join(", ")));
            }
        }
        if !self.level.is_empty() {
            parts.push(format!("level in [{}]", levels(&self.level)));
        }
        if !self.from.is_empty() {
            parts.push(format!("from in [{}]", levels(&self.from)));
        }
        for (f, b) in &self.numbers {
            parts.extend(b.describe(f.name()));
        }
        if parts.is_empty() {
            "every slo level change".into()
        } else {
            format!("slo {}", parts.join(", "))
        }
    }
}

/// A mistake in `where`: the field (`trigger.where.level`) and why.
pub type FilterError = (String, String);

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{:?}", s.to_string_lossy()),
        Value::Number(n) => n.to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Boolean(b) => b.to_string(),
        other => other.type_name().to_string(),
    }
}

/// A text field's accepted values: `"x"` or `{ one_of = {"x", "y"} }`.
/// Shared with `on = "error"`.
pub(crate) fn string_values(field: &str, v: &Value) -> Result<Vec<String>, FilterError> {
    let fail = |m: String| Err((field.to_string(), m));
    let expected = || format!("expected a string or {{ one_of = {{…}} }}, got {}", show(v));
    match v {
        Value::String(s) => Ok(vec![s.to_string_lossy()]),
        Value::Table(op) => {
            let mut out = Vec::new();
            for pair in op.pairs::<Value, Value>() {
                let (opk, list) = pair.map_err(|e| (field.to_string(), e.to_string()))?;
                let is_one_of = matches!(&opk, Value::String(s) if s.to_string_lossy() == "one_of");
                if !is_one_of {
                    return fail(format!("unknown operator {}; only one_of", show(&opk)));
                }
                let Value::Table(list) = list else {
                    return fail(expected());
                };
                for item in list.sequence_values::<Value>() {
                    match item.map_err(|e| (field.to_string(), e.to_string()))? {
                        Value::String(s) => out.push(s.to_string_lossy()),
                        other => {
                            return fail(format!("one_of takes strings, got {}", show(&other)))
                        }
                    }
                }
            }
            Ok(out)
        }
        _ => fail(expected()),
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => Some(*n),
        Value::Integer(i) => Some(*i as f64),
        _ => None,
    }
}

fn bounds(field: &str, v: &Value) -> Result<Bounds, FilterError> {
    let fail = |m: String| Err((field.to_string(), m));
    if let Some(n) = number(v) {
        return Ok(Bounds {
            eq: Some(n),
            ..Default::default()
        });
    }
    let Value::Table(t) = v else {
        return fail(format!(
            "expected a number or {{ gt = …, gte = …, lt = …, lte = … }}, got {}",
            show(v)
        ));
    };
    let mut b = Bounds::default();
    for pair in t.pairs::<Value, Value>() {
        let (op, value) = pair.map_err(|e| (field.to_string(), e.to_string()))?;
        let op = match &op {
            Value::String(s) => s.to_string_lossy(),
            other => return fail(format!("unknown operator {}", show(other))),
        };
        let Some(n) = number(&value) else {
            return fail(format!("`{op}` needs a number, got {}", show(&value)));
        };
        match op.as_str() {
            "gt" => b.gt = Some(n),
            "gte" => b.gte = Some(n),
            "lt" => b.lt = Some(n),
            "lte" => b.lte = Some(n),
            other => {
                return fail(format!(
                    "unknown operator `{other}` (operators: gt, gte, lt, lte)"
                ))
            }
        }
    }
    if b == Bounds::default() {
        return fail("empty operator table".into());
    }
    Ok(b)
}

fn levels(field: &str, v: &Value) -> Result<Vec<SloLevel>, FilterError> {
    string_values(field, v)?
        .into_iter()
        .map(|s| {
            SloLevel::parse(&s).ok_or_else(|| {
                (
                    field.to_string(),
                    format!("{s:?} is not one of ok, warning, page"),
                )
            })
        })
        .collect()
}

/// Compiles `where` of an `on = "slo"` trigger.
pub fn parse_slo_filter(t: &Table) -> Result<SloFilter, FilterError> {
    let mut f = SloFilter::default();
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair.map_err(|e| ("trigger.where".to_string(), e.to_string()))?;
        let key = match &k {
            Value::String(s) => s.to_string_lossy(),
            other => {
                return Err((
                    "trigger.where".into(),
                    format!("keys must be field names, got {}", show(other)),
                ))
            }
        };
        let field = format!("trigger.where.{key}");
        match key.as_str() {
            "service" => f.service = string_values(&field, &v)?,
            "slo" => f.slo = string_values(&field, &v)?,
            "level" => f.level = levels(&field, &v)?,
            "from" => f.from = levels(&field, &v)?,
            other => match NumberField::of(other) {
                Some(n) => f.numbers.push((n, bounds(&field, &v)?)),
                None => {
                    return Err((
                        field,
                        format!(
                            "unknown field for on = \"slo\" (expected one of {})",
                            SLO_WHERE_FIELDS.join(", ")
                        ),
                    ))
                }
            },
        }
    }
    // Deterministic summaries whatever order the table iterated in.
    f.numbers.sort_by_key(|(n, _)| n.name());
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transition(to: SloLevel, from: SloLevel, objective: f64) -> SloTransition {
        SloTransition {
            slo: "checkout-availability".into(),
            service_name: "checkout".into(),
            objective,
            from,
            to,
            tier: Some("page 14.4x (1h & 5m)".into()),
            burn_rate_long: 20.0,
            burn_rate_short: 30.0,
            budget_remaining: 0.4,
            at_unix_nano: 1,
        }
    }

    fn filter(src: &str) -> Result<SloFilter, FilterError> {
        let lua = mlua::Lua::new();
        let t: Table = lua.load(src).eval().unwrap();
        parse_slo_filter(&t)
    }

    #[test]
    fn fields_and_operators() {
        let f = filter(
            r#"{ level = "page", from = { one_of = { "ok", "warning" } }, service = "checkout",
                 objective = { gte = 99 }, budget_remaining = { lt = 0.5 } }"#,
        )
        .unwrap();
        assert!(f.matches(&transition(SloLevel::Page, SloLevel::Ok, 99.9)));
        assert!(!f.matches(&transition(SloLevel::Warning, SloLevel::Ok, 99.9)));
        assert!(!f.matches(&transition(SloLevel::Page, SloLevel::Page, 99.9)));
        assert!(!f.matches(&transition(SloLevel::Page, SloLevel::Ok, 98.0)));
        assert_eq!(
            f.summary(),
            "slo service in [checkout], level in [page], from in [ok, warning], budget_remaining < 0.5, objective >= 99"
        );
        let any = filter("{}").unwrap();
        assert!(any.matches(&transition(SloLevel::Ok, SloLevel::Page, 90.0)));
        assert_eq!(any.summary(), "every slo level change");
        assert!(filter("{ objective = 99.9 }").unwrap().matches(&transition(
            SloLevel::Ok,
            SloLevel::Page,
            99.9
        )));
    }

    #[test]
    fn mistakes_name_the_field() {
        for (src, field, needle) in [
            (
                r#"{ level = "critical" }"#,
                "trigger.where.level",
                "not one of ok, warning, page",
            ),
            (
                r#"{ severity = "x" }"#,
                "trigger.where.severity",
                "unknown field for on = \"slo\"",
            ),
            (
                r#"{ objective = "high" }"#,
                "trigger.where.objective",
                "expected a number",
            ),
            (
                r#"{ objective = { above = 1 } }"#,
                "trigger.where.objective",
                "unknown operator",
            ),
            (
                r#"{ service = { prefix = "a" } }"#,
                "trigger.where.service",
                "only one_of",
            ),
            (r#"{ objective = {} }"#, "trigger.where.objective", "empty"),
        ] {
            let (f, m) = filter(src).unwrap_err();
            assert_eq!(f, field, "{src}");
            assert!(m.contains(needle), "{src}: {m}");
        }
    }
}
