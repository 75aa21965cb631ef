//! Fuzz target: the Jira search page parser (`jira::parse_search_page`:
//! the page, each issue, and its conversion by a mapping, changelog
//! history included). The first byte picks one of five mappings (finding,
//! review, threat model, exception, release) reading priorities, labels,
//! components, custom fields, descriptions and links; the rest is the page
//! body. Every record must survive export and import.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use secmetrics_connectors::jira::convert::{Context, FieldIds, Outcome};
use secmetrics_connectors::jira::mapping::{Mapping, MappingSettings};
use secmetrics_connectors::jira::parse_search_page;
use std::sync::OnceLock;

fn mappings() -> &'static Vec<Mapping> {
    static M: OnceLock<Vec<Mapping>> = OnceLock::new();
    M.get_or_init(|| {
        let settings = serde_json::json!([
            {"record": "finding", "jql": "project = SEC", "asset_from": "component",
             "asset": "unassigned", "severity_from": "priority",
             "environment_from": "label:env-", "domain_from": "field:customfield_10600",
             "refs_field": "customfield_10100", "refs_from_description": true,
             "fingerprint_from": "field:customfield_10101", "done_statuses": ["Closed"],
             "assets": {"Payments API": "payments-api"}},
            {"record": "review", "jql": "project = SECREV", "review_type": "design",
             "review_type_from": "label:review-"},
            {"record": "threat_model", "jql": "project = TM", "asset_from": "label:asset-",
             "reviewed_at_field": "customfield_10400"},
            {"record": "exception", "jql": "project = RISK", "asset_from": "field:customfield_10600",
             "asset": "unassigned", "opened_at_field": "customfield_10201",
             "expires_at_field": "customfield_10200", "reason_field": "customfield_10202",
             "link_types": ["Relates"]},
            {"record": "release", "jql": "project = REL", "asset": "unassigned",
             "at_field": "customfield_10302", "gate_field": "customfield_10300",
             "reason_field": "customfield_10301", "gates": {"Waived": "passed_with_exception"}}
        ]);
        let settings: Vec<MappingSettings> = serde_json::from_value(settings).expect("mappings");
        settings
            .iter()
            .map(|m| m.validate().expect("valid mapping"))
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let m = &mappings()[usize::from(pick) % 5];
    let fields = FieldIds::default();
    let ctx = Context {
        source: "jira",
        base_url: "https://acme.atlassian.net",
        fields: &fields,
    };
    if let Ok(outcomes) = parse_search_page(m, &ctx, body) {
        for o in outcomes {
            match o {
                Outcome::Record(record, history) => {
                    common::check_record(&record);
                    if let Some(h) = history {
                        assert_eq!(h.identity, record.identity());
                    }
                }
                Outcome::Left(why) => assert!(!why.is_empty()),
                Outcome::Problem(p) => assert!(!p.field.is_empty() && !p.message.is_empty()),
            }
        }
    }
});
