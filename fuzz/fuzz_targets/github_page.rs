//! Fuzz target: the GitHub page parser (`github::parse_page`, what a pass
//! does with each page it fetches). The first byte picks the list (secret
//! alerts, code alerts, repositories) and whether it is a repository-level
//! list; the rest is the page body. Every record must survive export and
//! import, and no secret alert may keep a `secret`.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use secmetrics_connectors::github::{parse_page, GithubSettings, ListKind};
use std::sync::OnceLock;

fn settings() -> &'static GithubSettings {
    static S: OnceLock<GithubSettings> = OnceLock::new();
    S.get_or_init(|| {
        serde_json::from_value(serde_json::json!({
            "name": "gh",
            "org": "acme",
            "assets": {"acme/api": "payments-api"},
            "coverage": {"asset_topic_prefix": "asset-", "asset_property": "asset"},
            "environments": {"acme/web": "non_production"}
        }))
        .expect("fuzz settings")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let list = match pick % 3 {
        0 => ListKind::SecretAlerts,
        1 => ListKind::CodeAlerts,
        _ => ListKind::Repos,
    };
    let listed_in = (pick & 4 != 0).then_some("acme/api");
    if let Ok(items) = parse_page(settings(), list, listed_in, body) {
        for item in items {
            match item {
                Ok(record) => common::check_record(&record),
                Err(why) => assert!(!why.is_empty()),
            }
        }
    }
});
