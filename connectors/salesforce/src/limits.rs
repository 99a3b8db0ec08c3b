//! `Sforce-Limit-Info` parsing and the API budget guard.
//!
//! The header carries several `;`-separated parts (`api-usage=N/M`, `per-app-api-usage=N/M(appName=x)`,
//! `api-bursts=N/M`); a guard that only matches the first form silently turns itself off when
//! the others follow, so every part is parsed.

use sluice_connector_sdk::model::{ApiUsage, Failure, FailureKind};

/// Everything `Sforce-Limit-Info` reported.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LimitInfo {
    /// The org's rolling-24-hour API usage.
    pub api: Option<ApiUsage>,
    /// Per connected app usage: app name and usage.
    pub per_app: Vec<(String, ApiUsage)>,
}

fn usage(s: &str) -> Option<ApiUsage> {
    let (u, l) = s.trim().split_once('/')?;
    Some(ApiUsage {
        used: u.trim().parse().ok()?,
        limit: l.trim().parse().ok()?,
    })
}

/// Parses the header; unknown parts are ignored, malformed parts are skipped.
pub fn parse(header: &str) -> LimitInfo {
    let mut info = LimitInfo::default();
    for part in header.split([';', ',']) {
        let Some((name, value)) = part.trim().split_once('=') else {
            continue;
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "api-usage" => info.api = usage(value).or(info.api),
            "per-app-api-usage" => {
                let (nums, app) = match value.split_once('(') {
                    Some((n, rest)) => {
                        let app = rest
                            .trim_end_matches(')')
                            .trim()
                            .strip_prefix("appName=")
                            .unwrap_or(rest.trim_end_matches(')'))
                            .to_string();
                        (n, app)
                    }
                    None => (value, String::new()),
                };
                if let Some(u) = usage(nums) {
                    info.per_app.push((app, u));
                }
            }
            _ => {}
        }
    }
    info
}

/// Whether `u` has reached `percent` of its limit.
fn over(u: &ApiUsage, percent: u8) -> bool {
    u.limit > 0 && u.used.saturating_mul(100) >= u.limit.saturating_mul(u64::from(percent))
}

/// Seconds to wait before the rolling daily budget is worth retrying.
pub const BUDGET_RETRY_S: u32 = 3600;

/// The budget guard: a rate-limited failure once any reported quota reaches `percent`.
pub fn check(info: &LimitInfo, percent: u8) -> Result<(), Failure> {
    if let Some(u) = &info.api
        && over(u, percent)
    {
        return Err(Failure {
            kind: FailureKind::RateLimited,
            message: format!(
                "stopped at the API budget: the org has used {} of its {} daily API requests, \
                 and this integration may use {percent}%; the pull resumes when usage falls",
                u.used, u.limit
            ),
            retry_after_s: Some(BUDGET_RETRY_S),
        });
    }
    for (app, u) in &info.per_app {
        if over(u, percent) {
            return Err(Failure {
                kind: FailureKind::RateLimited,
                message: format!(
                    "stopped at the API budget: the connected app {app} has used {} of its {} \
                     daily API requests, and this integration may use {percent}%",
                    u.used, u.limit
                ),
                retry_after_s: Some(BUDGET_RETRY_S),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_part() {
        let i = parse("api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)");
        assert_eq!(
            i.api,
            Some(ApiUsage {
                used: 25,
                limit: 5000
            })
        );
        assert_eq!(
            i.per_app,
            vec![(
                "sample-connected-app".to_string(),
                ApiUsage {
                    used: 17,
                    limit: 250
                }
            )]
        );
        let i = parse("api-usage=110018/100000; api-bursts=1/750");
        assert_eq!(
            i.api,
            Some(ApiUsage {
                used: 110018,
                limit: 100000
            })
        );
        assert!(i.per_app.is_empty());
        assert_eq!(parse("api-usage=10018/100000").api.unwrap().used, 10018);
        assert_eq!(parse("garbage"), LimitInfo::default());
    }

    #[test]
    fn guard_stops_at_share_including_per_app() {
        let ok = parse("api-usage=79/100");
        assert!(check(&ok, 80).is_ok());
        let f = check(&parse("api-usage=80/100"), 80).unwrap_err();
        assert_eq!(f.kind, FailureKind::RateLimited);
        assert_eq!(f.retry_after_s, Some(3600));
        // The org is fine but the app's own quota is spent: the guard still stops.
        let f = check(
            &parse("api-usage=10/1000; per-app-api-usage=240/250(appName=sluice)"),
            80,
        )
        .unwrap_err();
        assert!(f.message.contains("sluice"), "{}", f.message);
        assert!(check(&parse("api-usage=100/100"), 100).is_err());
        assert!(check(&parse("api-usage=99/100"), 100).is_ok());
    }
}
